"""The one environment interface that rollouts, GAE and every algorithm use.

An :class:`Env` is a single, unbatched environment made of pure functions;
rollouts vectorise it with ``jax.vmap``. ``step`` auto-resets: when an episode
ends it returns the first observation of the next episode as ``obs`` and the
true last observation of the finished one as ``final_obs``, so a truncated
episode can bootstrap from ``V(final_obs)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp


#: The observation key that carries an action mask (``bool [action_dim]``, True = allowed).
ACTION_MASK = "action_mask"


@dataclasses.dataclass(frozen=True)
class ActionSpace:
    """What the policy must output.

    Discrete: ``num_actions`` choices, actions are int32 scalars.
    Multi-discrete (``nvec`` set, e.g. ``(3, 4)``): one choice per factor, actions are
    int32 ``[len(nvec)]``; ``num_actions`` is ``sum(nvec)``, the number of logits
    (factor k owns logits ``[sum(nvec[:k]), sum(nvec[:k+1]))``). Build it with
    :meth:`multi_discrete`.
    Continuous: float32 vectors of ``shape`` with bounds ``low``/``high``
    (tuples, one entry per dimension).
    ``masked``: the observations are dicts with an :data:`ACTION_MASK` entry,
    ``bool [num_actions]`` (per factor, concatenated, for multi-discrete); masked-out
    actions get probability zero.
    """

    discrete: bool
    num_actions: int = 0
    shape: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    nvec: tuple[int, ...] = ()
    masked: bool = False

    def __post_init__(self):
        if self.nvec:
            if not self.discrete or any(int(n) < 1 for n in self.nvec) or self.num_actions != sum(self.nvec):
                raise ValueError(f"a multi-discrete space needs discrete=True, every nvec entry >= 1 and "
                                 f"num_actions == sum(nvec); got {self}")
        if self.masked and not self.discrete:
            raise ValueError("action masks apply to discrete (or multi-discrete) action spaces only")

    @classmethod
    def multi_discrete(cls, nvec: tuple[int, ...], masked: bool = False) -> "ActionSpace":
        """``len(nvec)`` independent categorical factors with ``nvec[k]`` choices each."""
        nvec = tuple(int(n) for n in nvec)
        return cls(discrete=True, num_actions=sum(nvec), nvec=nvec, masked=masked)

    @property
    def multi(self) -> bool:
        """True for a multi-discrete space."""
        return bool(self.nvec)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: ``()`` discrete, ``(len(nvec),)`` multi-discrete, ``shape`` continuous."""
        if self.discrete:
            return (len(self.nvec),) if self.nvec else ()
        return tuple(self.shape)

    @property
    def action_dim(self) -> int:
        """Number of policy outputs: logits for discrete, means for continuous."""
        if self.discrete:
            return self.num_actions
        size = 1
        for s in self.shape:
            size *= s
        return size


class StepResult(NamedTuple):
    """One environment transition (unbatched; vmapped rollouts add a leading ``[N]``).

    obs:        observation to act on next (first obs of a new episode if this one ended)
    state:      environment state after the (auto-reset) step
    reward:     float32 scalar
    terminated: bool scalar, the MDP reached a terminal state (no bootstrap)
    truncated:  bool scalar, the episode hit its time limit (bootstrap from final_obs)
    final_obs:  the true next observation of this transition, before any reset
    info:       dict of float32 scalars from wrappers (e.g. episode statistics)
    """

    obs: jax.Array
    state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    info: dict


class Env(Protocol):
    """A single environment: pure ``reset`` and ``step`` functions plus its spaces.

    ``observation_shape``: the shape of a flat float32 observation. An env whose
    observations are structured (a dict of arrays: vectors, images, an action mask)
    or not float32 defines ``observation_spec`` instead (or as well): a
    ``jax.ShapeDtypeStruct`` or a dict of them, one per key; :func:`observation_spec`
    reads either. ``max_episode_steps``: agent steps after which an episode is truncated.
    """

    observation_shape: tuple[int, ...]
    action_space: ActionSpace

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Start an episode: ``key -> (obs [*observation_shape], state)``."""
        ...

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        """Take ``action`` (int32 scalar, int32 ``[len(nvec)]`` or float32 ``[*shape]``); auto-resets at episode end."""
        ...


def auto_reset(done: jax.Array, reset: tuple[Any, Any], final_obs: Any, next_state: Any, reward: jax.Array,
               terminated: jax.Array, truncated: jax.Array) -> StepResult:
    """The :class:`StepResult` of an adapter's step, reset where the episode ended.

    ``reset``: ``(obs, state)`` of a fresh episode (drawn with the step's key); ``final_obs`` and
    ``next_state``: the observation and state after the transition. Where ``done``, ``obs`` and
    ``state`` are the fresh episode's (every leaf selected and cast to the fresh leaf's dtype: the
    state a rollout carries starts as a reset state), and ``final_obs`` stays the true last
    observation. Scalars are reshaped to ``()``.
    """
    reset_obs, reset_state = reset

    def select(fresh, stepped):
        fresh = jnp.asarray(fresh)
        return jnp.where(done, fresh, stepped).astype(fresh.dtype)

    return StepResult(
        obs=jax.tree_util.tree_map(select, reset_obs, final_obs),
        state=jax.tree_util.tree_map(select, reset_state, next_state),
        reward=jnp.asarray(reward, jnp.float32).reshape(()),
        terminated=jnp.asarray(terminated, bool).reshape(()),
        truncated=jnp.asarray(truncated, bool).reshape(()),
        final_obs=final_obs,
        info={},
    )


ObservationSpec = Any  # jax.ShapeDtypeStruct, or a dict of them


def observation_spec(env: Any) -> ObservationSpec:
    """The shapes and dtypes of one observation of ``env`` (unbatched).

    ``env.observation_spec`` where the env defines it, else a float32 array of
    ``env.observation_shape``.
    """
    spec = getattr(env, "observation_spec", None)
    if spec is not None:
        return spec
    return jax.ShapeDtypeStruct(tuple(env.observation_shape), jnp.float32)


def is_structured(spec: ObservationSpec) -> bool:
    """True when observations are a dict of arrays rather than one array."""
    return isinstance(spec, dict)


def zeros_like_spec(spec: ObservationSpec, batch_shape: tuple[int, ...] = ()) -> Any:
    """An all-zero observation (pytree like ``spec``) with leading ``batch_shape``."""
    return jax.tree_util.tree_map(lambda leaf: jnp.zeros(tuple(batch_shape) + tuple(leaf.shape), leaf.dtype), spec)
