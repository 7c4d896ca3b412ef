"""Training configurations: frozen dataclasses validated at construction.

``PPOConfig`` and ``TRPOConfig`` share every field of :class:`BaseConfig` (the
environment, the rollout, GAE and the network) and add their own update
hyperparameters. A bad value raises :class:`ConfigError` naming the field, the
value and what would be valid, before anything is compiled.

Configs are JAX pytrees: numeric hyperparameters (``HYPERPARAMETERS`` of each
class: learning rates, ``clip_eps``, ``max_kl``, γ, λ, coefficients) are leaves
and may be traced (e.g. vmapped over a sweep), while structural fields (sizes,
names, flags) are static metadata. Pytree reconstruction skips validation, so
traced leaves never reach a Python comparison.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import jax

ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "swish")
ACTION_SQUASHES = ("clip", "tanh")
#: PPO policy objectives (Schulman et al. 2017, Section 3-4 and Table 1).
POLICY_OBJECTIVES = ("clip", "kl_adaptive", "kl_fixed", "unclipped")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names field and value."""


def _help(text: str, default: Any) -> Any:
    """A dataclass field with a one-line help string (used by the CLI)."""
    return dataclasses.field(default=default, metadata={"help": text})


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_number_like(value: Any) -> bool:
    """A real number, or a scalar array/tracer (numeric leaves may be traced)."""
    return isinstance(value, numbers.Real) or getattr(value, "shape", None) == ()


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields shared by every algorithm: environment, rollout, GAE, network."""

    env_name: str = _help(
        "gymnax id (CartPole-v1, Pendulum-v1) or brax/<env>[?backend=..&episode_length=..&action_repeat=..]",
        "CartPole-v1",
    )
    total_timesteps: int = _help("environment steps per seed (all envs together)", 500_000)
    num_envs: int = _help("parallel environments per seed", 4)
    num_steps: int = _help("steps per environment in each rollout", 128)
    gamma: float = _help("discount factor γ", 0.99)
    gae_lambda: float = _help("GAE λ", 0.95)
    hidden_sizes: tuple[int, ...] = _help("hidden layer widths of actor and critic MLPs", (64, 64))
    activation: str = _help(f"hidden activation, one of {ACTIVATIONS}", "tanh")
    ent_coef: float = _help("entropy bonus coefficient", 0.01)
    vf_coef: float = _help("value-loss coefficient (PPO: in the joint loss; TRPO: scales the critic loss)", 0.5)
    normalize_advantages: bool = _help("normalise advantages (per minibatch for PPO, per batch for TRPO)", True)
    normalize_observations: bool = _help(
        "normalise observations by running mean/var (carried per seed, updated after each rollout)", False
    )
    scale_rewards: bool = _help("divide rewards by the running std of the per-env discounted return", False)
    action_squash: str = _help(
        f"continuous actions: {ACTION_SQUASHES[0]!r} the Gaussian sample to the bounds or squash it with "
        f"{ACTION_SQUASHES[1]!r} (log-prob corrected)", "clip"
    )
    eval_every: int = _help(
        "every this many updates, evaluate the deterministic policy into the eval_return metric (NaN on other "
        "updates); 0 = never", 0
    )
    eval_episodes: int = _help("episodes per periodic evaluation (run in parallel, each to its end)", 8)

    algo_name: ClassVar[str] = "base"
    #: Numeric fields that may be traced (pytree leaves); the rest are static.
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("gamma", "gae_lambda", "ent_coef", "vf_coef")

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
    def __post_init__(self) -> None:
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        self._check_types()
        self.validate()

    def _check_types(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if expected == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            if expected == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be True or False, got {value!r}")
            if expected == "str" and not isinstance(value, str):
                raise ConfigError(f"{f.name} must be a string, got {value!r}")
            if expected == "float" and _is_concrete_number(value) and not math.isfinite(float(value)):
                raise ConfigError(f"{f.name} must be finite, got {value!r}")
            if expected == "float" and (isinstance(value, (bool, str)) or not _is_number_like(value)):
                raise ConfigError(f"{f.name} must be a number, got {value!r}")

    def _check_range(self, name: str, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
        """Raise unless ``low <(=) getattr(self, name) <(=) high``; traced values pass."""
        value = getattr(self, name)
        if not _is_concrete_number(value):
            return
        ok_low = value > low if low_open else value >= low
        ok_high = value < high if high_open else value <= high
        if not (ok_low and ok_high):
            interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            raise ConfigError(f"{name} must be in {interval}, got {value!r}")

    def _check_positive_int(self, name: str) -> None:
        value = getattr(self, name)
        if value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    def _check_divides(self, name: str) -> None:
        count = getattr(self, name)
        if self.batch_size % count:
            raise ConfigError(
                f"num_envs * num_steps = {self.num_envs} * {self.num_steps} = {self.batch_size} "
                f"is not divisible by {name} = {count}; choose a divisor of {self.batch_size}"
            )

    def validate(self) -> None:
        """Check every field; subclasses extend this. Raises :class:`ConfigError`."""
        from purejaxrl_ppo.envs import check_env_name  # late: envs imports gymnax

        try:
            check_env_name(self.env_name)
        except ValueError as err:
            raise ConfigError(f"env_name: {err}") from None
        for name in ("num_envs", "num_steps", "total_timesteps"):
            self._check_positive_int(name)
        if self.total_timesteps < self.batch_size:
            raise ConfigError(
                f"total_timesteps = {self.total_timesteps} is smaller than one rollout "
                f"(num_envs * num_steps = {self.batch_size}); training would run 0 updates"
            )
        self._check_range("gamma", 0.0, 1.0, low_open=True, high_open=False)
        self._check_range("gae_lambda", 0.0, 1.0, low_open=False, high_open=False)
        self._check_range("ent_coef", 0.0, math.inf, low_open=False, high_open=True)
        self._check_range("vf_coef", 0.0, math.inf, low_open=False, high_open=True)
        if not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes or not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in self.hidden_sizes
        ):
            raise ConfigError(f"hidden_sizes must be a non-empty tuple of positive integers, got {self.hidden_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.action_squash not in ACTION_SQUASHES:
            raise ConfigError(f"action_squash must be one of {ACTION_SQUASHES}, got {self.action_squash!r}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be 0 (no evaluation) or a positive number of updates, got {self.eval_every!r}")
        self._check_positive_int("eval_episodes")

    # ---------------------------------------------------------------- conversions
    def replace(self, **changes: Any) -> "BaseConfig":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field plus ``algo``; JSON-serialisable."""
        out: dict[str, Any] = {"algo": self.algo_name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> one-line help string."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    # ---------------------------------------------------------------- pytree protocol
    def _tree_flatten(self):
        leaves = tuple(getattr(self, name) for name in self.HYPERPARAMETERS)
        static = tuple(
            (f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in self.HYPERPARAMETERS
        )
        return leaves, static

    @classmethod
    def _tree_unflatten(cls, static, leaves):
        obj = object.__new__(cls)  # bypass validation: leaves may be tracers or placeholders
        for name, value in static:
            object.__setattr__(obj, name, value)
        for name, value in zip(cls.HYPERPARAMETERS, leaves):
            object.__setattr__(obj, name, value)
        return obj


@dataclasses.dataclass(frozen=True)
class PPOConfig(BaseConfig):
    """Proximal Policy Optimisation (Schulman et al. 2017) with the clipped surrogate.

    Defaults are PureJaxRL's CartPole-v1 values: 4 envs × 128 steps, 4 epochs ×
    4 minibatches, learning rate 2.5e-4 linearly annealed to 0, γ 0.99, λ 0.95,
    ε 0.2, entropy 0.01, value 0.5, global gradient norm 0.5.

    ``policy_objective`` selects the surrogate of the paper's Table 1: ``"clip"``
    (eq. 7, the default), ``"kl_fixed"`` (eq. 8 with constant β = ``kl_coef``),
    ``"kl_adaptive"`` (eq. 8 with β starting at ``kl_coef`` and adapted towards
    ``kl_target`` after every update, Section 4) or ``"unclipped"`` (the plain
    importance-weighted surrogate E[r A], eq. 6).
    """

    update_epochs: int = _help("passes over the rollout per update", 4)
    num_minibatches: int = _help("minibatches per epoch; must divide num_envs * num_steps", 4)
    learning_rate: float = _help("Adam learning rate (actor and critic)", 2.5e-4)
    anneal_lr: bool = _help("anneal the learning rate linearly to 0 over training", True)
    clip_eps: float = _help("PPO clipping ε for the probability ratio", 0.2)
    clip_value_loss: bool = _help("clip the value update to ±clip_eps around the old value", True)
    max_grad_norm: float = _help("global gradient-norm clip", 0.5)
    policy_objective: str = _help(f"policy surrogate, one of {POLICY_OBJECTIVES}", "clip")
    kl_coef: float = _help("KL-penalty coefficient β (kl_fixed: constant; kl_adaptive: initial value)", 1.0)
    kl_target: float = _help("kl_adaptive's target KL d_targ: β halves below d_targ/1.5, doubles above 1.5·d_targ", 0.01)

    algo_name: ClassVar[str] = "ppo"
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = BaseConfig.HYPERPARAMETERS + (
        "learning_rate",
        "clip_eps",
        "max_grad_norm",
        "kl_coef",
        "kl_target",
    )

    @property
    def minibatch_size(self) -> int:
        """Transitions per minibatch: ``batch_size // num_minibatches``."""
        return self.batch_size // self.num_minibatches

    def validate(self) -> None:
        super().validate()
        self._check_positive_int("update_epochs")
        self._check_positive_int("num_minibatches")
        self._check_divides("num_minibatches")
        self._check_range("learning_rate", 0.0, math.inf, low_open=True, high_open=True)
        self._check_range("clip_eps", 0.0, 1.0, low_open=True, high_open=True)
        self._check_range("max_grad_norm", 0.0, math.inf, low_open=True, high_open=True)
        if self.policy_objective not in POLICY_OBJECTIVES:
            raise ConfigError(f"policy_objective must be one of {POLICY_OBJECTIVES}, got {self.policy_objective!r}")
        self._check_range("kl_coef", 0.0, math.inf, low_open=False, high_open=True)
        self._check_range("kl_target", 0.0, math.inf, low_open=True, high_open=True)


@dataclasses.dataclass(frozen=True)
class TRPOConfig(BaseConfig):
    """Trust Region Policy Optimisation (Schulman et al. 2015) with a natural-gradient step.

    Defaults, and why:

    * Rollout size (4 envs × 128 steps), γ 0.99 and λ 0.95 equal PPO's, so the two
      algorithms differ only in the policy update and compare at equal samples.
    * ``max_kl`` δ = 0.01, ``cg_iters`` 10, ``cg_damping`` 0.1: the TRPO paper's δ
      and OpenAI Baselines' ``trpo_mpi`` MuJoCo defaults.
    * ``fisher_subsample`` 5: ``trpo_mpi`` also forms Fisher-vector products on
      every 5th sample. They dominate TRPO's cost, and the Fisher (an average over
      states) is estimated well enough by a fifth of the batch for CartPole to be
      solved with these defaults (``tests/test_learning.py``).
    * ``line_search_steps`` 10 with ``backtrack_coef`` 0.5: the step shrinks to
      0.5⁹ ≈ 0.2% of the KL-boundary step before the update is rejected.
    * ``ent_coef`` 0: the trust region, not an entropy bonus, limits how fast
      the policy collapses (Baselines' default, ``entcoeff=0``).
    * Critic: Adam with learning rate 1e-3 for 5 epochs of 4 minibatches per
      update (``trpo_mpi``'s ``vf_stepsize`` and ``vf_iters``). Unlike PPO's joint
      loss, the critic's regression is the only thing this optimiser moves, so it
      can take larger and more steps than PPO's 2.5e-4 × 4 epochs without
      disturbing the policy.
    """

    ent_coef: float = _help("entropy bonus added to the surrogate", 0.0)
    max_kl: float = _help("trust-region size δ: bound on mean KL(old‖new) per update", 0.01)
    cg_iters: int = _help("conjugate-gradient iterations for F⁻¹g", 10)
    cg_damping: float = _help("damping λ added to the Fisher: (F + λI)", 0.1)
    fisher_subsample: int = _help("use every k-th sample of the batch for Fisher-vector products", 5)
    line_search_steps: int = _help("backtracking line-search trials", 10)
    backtrack_coef: float = _help("step shrink factor per line-search trial", 0.5)
    critic_learning_rate: float = _help("Adam learning rate of the critic", 1e-3)
    critic_epochs: int = _help("critic passes over the rollout per update", 5)
    critic_minibatches: int = _help("critic minibatches per epoch; must divide num_envs * num_steps", 4)

    algo_name: ClassVar[str] = "trpo"
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = BaseConfig.HYPERPARAMETERS + (
        "max_kl",
        "cg_damping",
        "backtrack_coef",
        "critic_learning_rate",
    )

    @property
    def critic_minibatch_size(self) -> int:
        """Transitions per critic minibatch: ``batch_size // critic_minibatches``."""
        return self.batch_size // self.critic_minibatches

    def validate(self) -> None:
        super().validate()
        self._check_range("max_kl", 0.0, 1.0, low_open=True, high_open=False)
        self._check_range("cg_damping", 0.0, math.inf, low_open=False, high_open=True)
        self._check_range("backtrack_coef", 0.0, 1.0, low_open=True, high_open=True)
        self._check_range("critic_learning_rate", 0.0, math.inf, low_open=True, high_open=True)
        for name in ("cg_iters", "fisher_subsample", "line_search_steps", "critic_epochs", "critic_minibatches"):
            self._check_positive_int(name)
        self._check_divides("critic_minibatches")
        if self.fisher_subsample > self.batch_size:
            raise ConfigError(
                f"fisher_subsample = {self.fisher_subsample} exceeds the batch size "
                f"num_envs * num_steps = {self.batch_size}; the Fisher would see no sample"
            )


CONFIGS: dict[str, type[BaseConfig]] = {"ppo": PPOConfig, "trpo": TRPOConfig}

for _cls in (PPOConfig, TRPOConfig):
    jax.tree_util.register_pytree_node(_cls, _cls._tree_flatten, _cls._tree_unflatten)


def config_from_dict(values: dict[str, Any]) -> BaseConfig:
    """Build a config from a dict with an ``algo`` key (``"ppo"`` or ``"trpo"``).

    Unknown keys raise :class:`ConfigError` listing the valid ones.
    """
    values = dict(values)
    algo = values.pop("algo", None)
    if algo not in CONFIGS:
        raise ConfigError(f"algo must be one of {sorted(CONFIGS)}, got {algo!r}")
    cls = CONFIGS[algo]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {algo} config field(s) {unknown}; valid fields: {sorted(names)}")
    if isinstance(values.get("hidden_sizes"), list):
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    return cls(**values)
