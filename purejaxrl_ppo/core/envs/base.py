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


@dataclasses.dataclass(frozen=True)
class ActionSpace:
    """What the policy must output.

    Discrete: ``num_actions`` choices, actions are int32 scalars.
    Continuous: float32 vectors of ``shape`` with bounds ``low``/``high``
    (tuples, one entry per dimension).
    """

    discrete: bool
    num_actions: int = 0
    shape: tuple[int, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

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
    """A single environment: pure ``reset`` and ``step`` functions plus its spaces."""

    observation_shape: tuple[int, ...]
    action_space: ActionSpace

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Start an episode: ``key -> (obs [*observation_shape], state)``."""
        ...

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        """Take ``action`` (int32 scalar or float32 ``[*shape]``); auto-resets at episode end."""
        ...
