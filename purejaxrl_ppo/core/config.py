"""Configuration as data: frozen dataclasses whose fields carry their own metadata.

Every field is declared once with :func:`field`: its default, a one-line help, and
optionally its bounds (:class:`Range`), its valid choices, and whether it is
*traced* (a numeric hyperparameter that may be a pytree leaf, e.g. vmapped over a
sweep). Everything else derives from that one declaration:

* validation at construction (:meth:`Validated.__post_init__`): the type (one checker,
  :func:`check_type`, shared with run files), bounds and choices, then each class's
  cross-field :meth:`Validated.check`; errors are :class:`ConfigError` naming the
  field, the value and what would be valid;
* the pytree structure of algorithm configs (:class:`BaseConfig`): traced fields are
  leaves, the rest static metadata (``HYPERPARAMETERS`` lists the traced names);
* the CLI flags and run-file keys (:mod:`purejaxrl_ppo.cli.flags`,
  :mod:`purejaxrl_ppo.runs.run_files`) and the field tables (:func:`field_table`).

:class:`BaseConfig` holds what every algorithm shares (environment, rollout, GAE,
network, normalisation, evaluation). Each algorithm declares its own subclass in its
folder (``core/algos/<name>/config.py``); a subclass is registered as a pytree when
it is defined.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any, Callable, ClassVar, Sequence

import jax

ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "swish")
ACTION_SQUASHES = ("clip", "tanh")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names field and value."""


class RetiredFieldWarning(UserWarning):
    """A saved config holds a field this version no longer has; it is ignored (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric field: ``low <(=) value <(=) high``."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True

    def contains(self, value: float) -> bool:
        ok_low = value > self.low if self.low_open else value >= self.low
        ok_high = value < self.high if self.high_open else value <= self.high
        return bool(ok_low and ok_high)

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


#: Common ranges.
POSITIVE = Range(0.0, low_open=True)
NON_NEGATIVE = Range(0.0)
UNIT_OPEN = Range(0.0, 1.0, low_open=True, high_open=True)
COUNT = Range(1)  # a positive integer
NON_NEGATIVE_COUNT = Range(0)


def field(
    default: Any,
    help: str,
    *,
    traced: bool = False,
    bounds: Range | None = None,
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
) -> Any:
    """A dataclass field that documents and validates itself.

    default: the default value; help: one line (the CLI help and the docs' table);
    traced: a numeric hyperparameter that may be a pytree leaf (traced, swept);
    bounds: a :class:`Range` checked at construction (traced values are skipped);
    choices: valid strings, or a function returning them (e.g. a registry's names).
    """
    metadata = {"help": help, "traced": traced, "bounds": bounds, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def field_kind(f: dataclasses.Field) -> str:
    """``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"tuple"`` (a tuple of ints) or ``"names"`` (a tuple
    of strings) for a field."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind.startswith("tuple[str"):
        return "names"
    return "tuple" if kind.startswith("tuple") else kind


def field_choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The field's valid values (calling a choices function), or ``None`` when any value of its type goes."""
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def check_type(name: str, value: Any, kind: str, *, traced_ok: bool = False) -> Any:
    """Raise :class:`ConfigError` unless ``value`` has ``kind``; returns it (lists become tuples).

    kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"tuple"`` (non-empty, positive ints) or
    ``"names"`` (strings, possibly none).
    traced_ok: a ``"float"`` may also be a scalar array or tracer (a traced hyperparameter); run
    files pass ``False``, since a file's values are never traced.
    """
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    if kind == "float":
        number_like = isinstance(value, numbers.Real) or (traced_ok and getattr(value, "shape", None) == ())
        if isinstance(value, (bool, str)) or not number_like:
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if _is_concrete_number(value) and not math.isfinite(float(value)):
            raise ConfigError(f"{name} must be finite, got {value!r}")
    if kind == "tuple":
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple) or not value or not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in value
        ):
            raise ConfigError(f"{name} must be a non-empty list of positive integers, got {value!r}")
    if kind == "names":
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{name} must be a list of non-empty strings, got {value!r}")
    return value


def check_field(f: dataclasses.Field, value: Any, *, traced_ok: bool) -> Any:
    """Type, bounds and choices of one field's value (see :func:`field`); returns the value."""
    value = check_type(f.name, value, field_kind(f), traced_ok=traced_ok)
    bounds = f.metadata.get("bounds")
    if bounds is not None and _is_concrete_number(value) and not bounds.contains(value):
        if bounds == COUNT and field_kind(f) == "int":
            raise ConfigError(f"{f.name} must be a positive integer, got {value!r}")
        if bounds == NON_NEGATIVE_COUNT and field_kind(f) == "int":
            raise ConfigError(f"{f.name} must be a non-negative integer, got {value!r}")
        raise ConfigError(f"{f.name} must be in {bounds}, got {value!r}")
    choices = field_choices(f)
    if choices is not None and value not in choices:
        raise ConfigError(f"{f.name} must be one of {choices}, got {value!r}")
    return value


class Validated:
    """Mixin for frozen dataclasses of :func:`field` s: checks every field, then :meth:`check`."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = check_field(f, getattr(self, f.name), traced_ok=f.metadata.get("traced", False))
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Cross-field rules (subclasses extend it). Raises :class:`ConfigError`."""

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> one-line help string."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


class _TracedNames:
    """``cls.HYPERPARAMETERS``: the names of the traced fields, in declaration order."""

    def __get__(self, obj: Any, cls: type) -> tuple[str, ...]:
        if not dataclasses.is_dataclass(cls):
            return ()
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("traced"))


@dataclasses.dataclass(frozen=True)
class BaseConfig(Validated):
    """Fields shared by every algorithm: environment, rollout, GAE, network, normalisation, evaluation."""

    env_name: str = field(
        "CartPole-v1",
        "gymnax id (CartPole-v1, Pendulum-v1), a partially observed one (CartPole-v1?mask=velocity), "
        "brax/<env>[?backend=..&episode_length=..&action_repeat=..], or an optional suite's "
        "playground/, craftax/, jumanji/, navix/, xland/ or popgym_arcade/<env>",
    )
    total_timesteps: int = field(500_000, "environment steps per seed (all envs together)", bounds=COUNT)
    num_envs: int = field(4, "parallel environments per seed", bounds=COUNT)
    num_steps: int = field(128, "steps per environment in each rollout", bounds=COUNT)
    gamma: float = field(0.99, "discount factor γ", traced=True, bounds=Range(0.0, 1.0, low_open=True, high_open=False))
    gae_lambda: float = field(0.95, "GAE λ", traced=True, bounds=Range(0.0, 1.0, high_open=False))
    policy: str = field("mlp", "policy network architecture (a registered network)", choices=lambda: _network_names())
    hidden_sizes: tuple[int, ...] = field(
        (64, 64), "hidden layer widths of the MLPs (policy='mlp': actor and critic; 'gru'/'attention': the "
        "observation encoder before the memory and the heads after it)"
    )
    activation: str = field("tanh", "hidden activation", choices=ACTIVATIONS)
    rnn_hidden_size: int = field(128, "GRU state size (policy='gru')", bounds=COUNT)
    context_len: int = field(
        16, "attention: how many of the episode's latest observations a step attends to, itself included "
        "(policy='attention')", bounds=COUNT,
    )
    num_heads: int = field(2, "attention heads (policy='attention'); must divide embed_dim", bounds=COUNT)
    embed_dim: int = field(64, "attention embedding width (policy='attention')", bounds=COUNT)
    shared_torso: bool = field(
        False, "actor and critic heads on one torso (encoder and memory) instead of two separate networks"
    )
    torso: str = field(
        "auto", "how rank-3 observation entries [H, W, C] are read: 'cnn' by a CNN, 'mlp' flattened, 'auto' a CNN "
        "for images (uint8 pixels, integer grids, or any rank-3 entry of a dict observation) and flattened "
        "otherwise (gymnax's float MinAtar grids)", choices=("auto", "mlp", "cnn"),
    )
    cnn_channels: tuple[int, ...] = field(
        (16, 32, 32), "channels of each IMPALA-style CNN stage (3x3 conv, stride-2 max-pool, two residual blocks) "
        "for image entries"
    )
    privileged_keys: tuple[str, ...] = field(
        ("privileged_state",), "dict-observation entries only the critic reads (asymmetric actor-critic, e.g. "
        "MuJoCo Playground's privileged_state); the actor never sees them"
    )
    log_std_init: float = field(
        0.0, "initial log σ of the Gaussian policy (continuous actions; SB3's policy_kwargs log_std_init)",
        bounds=Range(-20.0, 2.0, high_open=False),
    )
    ortho_init: bool = field(
        True, "orthogonal dense layers (√2 hidden, 0.01 policy head, 1 value head, zero biases); false: PyTorch's "
        "nn.Linear init, kernel and bias uniform on ±1/√fan_in, as SB3's ortho_init=False (policy='mlp' only)"
    )
    ent_coef: float = field(0.01, "entropy bonus coefficient", traced=True, bounds=NON_NEGATIVE)
    normalize_advantages: bool = field(True, "normalise advantages (per minibatch for PPO, per batch for TRPO)")
    normalize_observations: bool = field(
        False, "normalise observations by running mean/var (carried per seed, updated after each rollout)"
    )
    scale_rewards: bool = field(
        False, "divide rewards by the running std of the per-env discounted return (std floored at 1e-2, "
        "scaled rewards clipped to ±10)"
    )
    action_squash: str = field(
        "clip",
        f"continuous actions: {ACTION_SQUASHES[0]!r} the Gaussian sample to the bounds or squash it with "
        f"{ACTION_SQUASHES[1]!r} (log-prob corrected; its entropy is a one-sample estimate per transition)",
        choices=ACTION_SQUASHES,
    )
    eval_every: int = field(
        0,
        "every this many updates, evaluate the deterministic policy into the eval_return metric (NaN on other "
        "updates); 0 = never",
        bounds=NON_NEGATIVE_COUNT,
    )
    eval_episodes: int = field(8, "episodes per periodic evaluation (run in parallel, each to its end)", bounds=COUNT)

    #: The algorithm's registered name (each algorithm's config sets it).
    algo_name: ClassVar[str] = "base"
    #: Fields an earlier version had and this one dropped: name -> why (see :meth:`upgrade_dict`).
    RETIRED_FIELDS: ClassVar[dict[str, str]] = {}
    #: Traced (sweepable) fields, derived from the fields' metadata.
    HYPERPARAMETERS = _TracedNames()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    # ---------------------------------------------------------------- derived sizes
    @property
    def batch_size(self) -> int:
        """Transitions per rollout: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """Rollout/update iterations: ``total_timesteps // batch_size``."""
        return self.total_timesteps // self.batch_size

    # ---------------------------------------------------------------- validation
    def check(self) -> None:
        from purejaxrl_ppo.core.envs import check_env_name  # late: envs imports gymnax

        try:
            check_env_name(self.env_name)
        except ValueError as err:
            raise ConfigError(f"env_name: {err}") from None
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim = {self.embed_dim} is not divisible by num_heads = {self.num_heads}; "
                              "each head gets embed_dim / num_heads channels")
        if not self.ortho_init and self.policy != "mlp":
            raise ConfigError(f"ortho_init=False is implemented for policy='mlp' only, got policy={self.policy!r}; "
                              "use ortho_init=True (orthogonal initialisation)")
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"total_timesteps = {self.total_timesteps} is smaller than one rollout "
                f"(num_envs * num_steps = {self.batch_size}); training would run 0 updates"
            )

    @property
    def recurrent(self) -> bool:
        """Whether ``policy`` names a network that carries state (updates then keep whole sequences)."""
        from purejaxrl_ppo.core.networks import is_recurrent  # late: networks import flax

        return is_recurrent(self.policy)

    def _check_divides_envs(self, name: str) -> None:
        """For a recurrent policy: minibatches of whole sequences split the envs, so ``name`` must divide them."""
        count = getattr(self, name)
        if self.num_envs % count:
            raise ConfigError(
                f"policy={self.policy!r} keeps each env's sequence whole, so {name} = {count} must divide "
                f"num_envs = {self.num_envs} (minibatches are groups of envs); choose a divisor of {self.num_envs}"
            )

    def _check_divides(self, name: str) -> None:
        count = getattr(self, name)
        if self.batch_size % count:
            raise ConfigError(
                f"num_envs * num_steps = {self.num_envs} * {self.num_steps} = {self.batch_size} "
                f"is not divisible by {name} = {count}; choose a divisor of {self.batch_size}"
            )

    # ---------------------------------------------------------------- conversions
    @classmethod
    def upgrade_dict(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` without the fields this class retired, each dropped with a :class:`RetiredFieldWarning`.

        Run files, ``config.json`` and checkpoints written by an earlier version pass through
        here, so an old run directory still loads and resumes.
        """
        values = dict(values)
        for name, why in cls.RETIRED_FIELDS.items():
            if name in values:
                value = values.pop(name)
                warnings.warn(f"{cls.algo_name} config field {name}={value!r} is ignored: {why}",
                              RetiredFieldWarning, stacklevel=3)
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field plus ``algo``; JSON-serialisable."""
        out: dict[str, Any] = {"algo": self.algo_name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    # ---------------------------------------------------------------- pytree protocol
    def _tree_flatten(self):
        traced = type(self).HYPERPARAMETERS
        leaves = tuple(getattr(self, name) for name in traced)
        static = tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in traced)
        return leaves, static

    @classmethod
    def _tree_unflatten(cls, static, leaves):
        obj = object.__new__(cls)  # bypass validation: leaves may be tracers or placeholders
        for name, value in static:
            object.__setattr__(obj, name, value)
        for name, value in zip(cls.HYPERPARAMETERS, leaves):
            object.__setattr__(obj, name, value)
        return obj


def _network_names() -> tuple[str, ...]:
    from purejaxrl_ppo.core.networks import registered_networks  # late: networks import flax

    return registered_networks()


def field_table(cls: type) -> list[dict[str, Any]]:
    """One row per field of a config class: name, type, default, help, bounds, choices, traced."""
    rows = []
    for f in dataclasses.fields(cls):
        bounds = f.metadata.get("bounds")
        rows.append({
            "name": f.name, "type": field_kind(f), "default": f.default, "help": f.metadata.get("help", ""),
            "bounds": None if bounds is None else str(bounds), "choices": field_choices(f),
            "traced": bool(f.metadata.get("traced")),
        })
    return rows
