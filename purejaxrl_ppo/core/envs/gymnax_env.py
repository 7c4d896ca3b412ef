"""Adapter for every gymnax environment (gymnax >= 1.0 step API)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult


def import_gymnax():
    """The ``gymnax`` module, imported on first use.

    Importing gymnax runs jax computations (module-level arrays), which would start
    jax's backend on ``import purejaxrl_ppo`` (too early for
    :func:`purejaxrl_ppo.use_cpu_devices`) and, if the first import happened inside
    a ``jit`` trace, would leave tracers in gymnax's globals: hence lazily, and
    under ``jax.ensure_compile_time_eval``.
    """
    with jax.ensure_compile_time_eval():
        import gymnax
        import gymnax.environments.spaces  # noqa: F401
    return gymnax


def _action_space(space: Any) -> ActionSpace:
    """Translate a gymnax action space into an :class:`ActionSpace`."""
    spaces = import_gymnax().environments.spaces
    if isinstance(space, spaces.Discrete):
        return ActionSpace(discrete=True, num_actions=int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1)
        return ActionSpace(discrete=False, shape=shape, low=tuple(map(float, low)), high=tuple(map(float, high)))
    raise TypeError(f"unsupported gymnax action space {space!r}")


@dataclasses.dataclass(frozen=True)
class GymnaxEnv:
    """A gymnax environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    gymnax 1.0's ``step`` returns ``terminated`` and ``truncated`` separately and
    the pre-reset observation in ``info["final_observation"]``; both are passed on
    so truncation bootstraps and only termination is terminal. Continuous actions
    are clipped to the action bounds before stepping (the policy's log-prob is of
    the unclipped sample, as in PPO's reference implementations).
    """

    name: str
    env: Any = dataclasses.field(repr=False)
    params: Any = dataclasses.field(repr=False)
    observation_shape: tuple[int, ...]
    action_space: ActionSpace

    @classmethod
    def make(cls, name: str, **env_kwargs: Any) -> "GymnaxEnv":
        env, params = import_gymnax().make(name, **env_kwargs)
        obs_shape = tuple(int(s) for s in env.observation_space(params).shape)
        return cls(name, env, params, obs_shape, _action_space(env.action_space(params)))

    @property
    def max_episode_steps(self) -> int:
        """Agent steps after which an episode is truncated."""
        return int(self.params.max_steps_in_episode)

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset(key, self.params)
        return jnp.asarray(obs, jnp.float32), state

    def _env_action(self, action: jax.Array) -> jax.Array:
        if self.action_space.discrete:
            return action
        low = jnp.asarray(self.action_space.low).reshape(self.action_space.shape)
        high = jnp.asarray(self.action_space.high).reshape(self.action_space.shape)
        return jnp.clip(action, low, high)

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, self._env_action(action), self.params
        )
        terminated, truncated = jnp.asarray(terminated, bool), jnp.asarray(truncated, bool)
        return StepResult(
            obs=jnp.asarray(obs, jnp.float32),
            state=state,
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            terminated=terminated.reshape(()),
            # gymnax sets truncated at the time limit even when the step also terminated (DeepSea-bsuite):
            # truncated means a time-limit end that is *not* terminal (done and every result are unchanged)
            truncated=jnp.logical_and(truncated, jnp.logical_not(terminated)).reshape(()),
            final_obs=jnp.asarray(info["final_observation"], jnp.float32),
            info={},
        )
