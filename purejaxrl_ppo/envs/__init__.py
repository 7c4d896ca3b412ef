"""Environments behind one interface, and the registry that builds them by name.

``make_env(name)`` returns an :class:`Env` already wrapped with
:class:`EpisodeStatistics`. Names are gymnax ids (``"CartPole-v1"``,
``"Pendulum-v1"``, ``"Breakout-MinAtar"``, ...).
"""

from __future__ import annotations

import functools

import gymnax

from purejaxrl_ppo.envs.base import ActionSpace, Env, StepResult
from purejaxrl_ppo.envs.gymnax_env import GymnaxEnv
from purejaxrl_ppo.envs.wrappers import EpisodeStatistics, EpisodeStatisticsState


def registered_env_names() -> tuple[str, ...]:
    """Every environment name :func:`make_env` accepts."""
    return tuple(gymnax.registered_envs)


@functools.lru_cache(maxsize=None)
def make_env(name: str) -> Env:
    """Build the environment ``name`` with episode statistics. Cached: envs are immutable."""
    if name not in registered_env_names():
        raise ValueError(f"unknown environment {name!r}; known: {', '.join(registered_env_names())}")
    return EpisodeStatistics(GymnaxEnv.make(name))


__all__ = [
    "ActionSpace",
    "Env",
    "EpisodeStatistics",
    "EpisodeStatisticsState",
    "GymnaxEnv",
    "StepResult",
    "make_env",
    "registered_env_names",
]
