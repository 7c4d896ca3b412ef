"""Environment wrappers: each takes an Env and is an Env."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from purejaxrl_ppo.core.envs.base import ActionSpace, Env, StepResult


@struct.dataclass
class EpisodeStatisticsState:
    """Inner env state plus the running return and length of the current episode."""

    env_state: Any
    episode_return: jax.Array  # float32 scalar
    episode_length: jax.Array  # int32 scalar


@dataclasses.dataclass(frozen=True)
class Wrapper:
    """Base of the wrappers: holds the inner env and forwards its spaces and episode limit."""

    env: Env

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.env.observation_shape

    @property
    def observation_spec(self) -> Any:
        """The inner env's ``observation_spec`` (``None`` where it has only ``observation_shape``)."""
        return getattr(self.env, "observation_spec", None)

    @property
    def action_space(self) -> ActionSpace:
        return self.env.action_space

    @property
    def max_episode_steps(self) -> int:
        return self.env.max_episode_steps


@dataclasses.dataclass(frozen=True)
class EpisodeStatistics(Wrapper):
    """Track undiscounted episode return and length.

    ``step`` adds to ``info``: ``episode_done`` (bool, an episode ended at this
    step, by termination or truncation), ``episode_return`` and ``episode_length``
    (the finished episode's totals where ``episode_done``, else 0).
    """

    def reset(self, key: jax.Array) -> tuple[jax.Array, EpisodeStatisticsState]:
        obs, env_state = self.env.reset(key)
        return obs, EpisodeStatisticsState(env_state, jnp.float32(0.0), jnp.int32(0))

    def step(self, key: jax.Array, state: EpisodeStatisticsState, action: jax.Array) -> StepResult:
        result = self.env.step(key, state.env_state, action)
        done = jnp.logical_or(result.terminated, result.truncated)
        ret = state.episode_return + result.reward
        length = state.episode_length + 1
        info = {
            **result.info,
            "episode_done": done,
            "episode_return": jnp.where(done, ret, 0.0),
            "episode_length": jnp.where(done, length, 0),
        }
        new_state = EpisodeStatisticsState(
            result.state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length)
        )
        return result._replace(state=new_state, info=info)
