"""Environments behind one interface, and the registry that builds them by name.

``make_env(name)`` returns an :class:`Env` already wrapped with
:class:`EpisodeStatistics`. Names select the suite: gymnax ids
(``"CartPole-v1"``, ``"Pendulum-v1"``, ``"Breakout-MinAtar"``, ...) or
``"brax/<env>"`` for any Brax environment, optionally with options
``"brax/hopper?backend=generalized&episode_length=1000&action_repeat=2"``
(see :mod:`purejaxrl_ppo.core.envs.brax_env`), or a partially observed gymnax
env ``"CartPole-v1?mask=velocity"`` (see :mod:`purejaxrl_ppo.core.envs.masked`).
"""

from __future__ import annotations

import difflib
import functools

import jax

from purejaxrl_ppo.core.config import ConfigError

from purejaxrl_ppo.core.envs.base import ActionSpace, Env, StepResult
from purejaxrl_ppo.core.envs.brax_env import PREFIX as BRAX_PREFIX
from purejaxrl_ppo.core.envs.brax_env import BraxEnv, BraxEnvState, brax_env_ids, make_brax_env, parse_brax_name
from purejaxrl_ppo.core.envs.gymnax_env import GymnaxEnv, import_gymnax
from purejaxrl_ppo.core.envs.masked import ObservationMask, is_masked_name, make_masked_env, masked_env_names
from purejaxrl_ppo.core.envs.masked import parse_masked_name
from purejaxrl_ppo.core.envs.wrappers import EpisodeStatistics, EpisodeStatisticsState


def _gymnax_names() -> tuple[str, ...]:
    """gymnax's registered ids (gymnax is imported on first use: :func:`~purejaxrl_ppo.core.envs.gymnax_env.import_gymnax`)."""
    return tuple(import_gymnax().registered_envs)


def registered_env_names() -> tuple[str, ...]:
    """Every environment name :func:`make_env` accepts (Brax names without options, then the masked names)."""
    return _gymnax_names() + tuple(BRAX_PREFIX + env_id for env_id in brax_env_ids()) + masked_env_names()


def is_brax_name(name: str) -> bool:
    """``name`` selects the Brax suite (``"brax/..."``)."""
    return name.startswith(BRAX_PREFIX)


def check_env_name(name: str) -> None:
    """Raise ``ValueError`` naming the problem unless :func:`make_env` accepts ``name``."""
    if is_brax_name(name):
        parse_brax_name(name)
    elif is_masked_name(name):
        parse_masked_name(name)
    elif name not in _gymnax_names():  # Brax is not imported for this message: only a brax/ name needs it
        known = _gymnax_names() + masked_env_names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown environment {name!r}{hint}; known: {', '.join(known)}, and {BRAX_PREFIX}<env> for "
                         f"a Brax environment (pjp.registered_env_names() lists them)")


@functools.lru_cache(maxsize=None)
def make_env(name: str) -> Env:
    """Build the environment ``name`` with episode statistics. Cached: envs are immutable.

    Built under ``jax.ensure_compile_time_eval`` so that the arrays an env holds
    (gymnax default params, a Brax system) are concrete even when the first call
    happens inside a ``jit`` trace; otherwise the cache would keep leaked tracers.
    """
    check_env_name(name)
    with jax.ensure_compile_time_eval():
        if is_brax_name(name):
            inner = make_brax_env(name)
        elif is_masked_name(name):
            inner = make_masked_env(name)
        else:
            inner = GymnaxEnv.make(name)
    return EpisodeStatistics(inner)


#: Environments that fetch data on first use: what to do where that download is impossible.
DOWNLOADS = {
    "MNISTBandit-bsuite": (
        "it needs a one-time download of MNIST: gymnax fetches train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/ into /tmp/mnist; run once with network access "
        "or copy those four files there"
    ),
}


class EnvBuildError(ConfigError):
    """An environment could not be built; the one-line message says why and what to do."""


def build_env(name: str) -> Env:
    """:func:`make_env`, with any failure turned into a one-line :class:`EnvBuildError` (or ``ValueError``).

    Run before anything is written for a run, so a bad environment leaves nothing behind.
    """
    check_env_name(name)
    try:
        return make_env(name)
    except Exception as err:  # gymnax/brax raise anything (URLError for a failed download, ImportError, ...)
        text = str(err).strip()
        first = text.splitlines()[0][:300] if text else ""
        hint = DOWNLOADS.get(name)
        cause = f"{type(err).__name__}: {first}" if first else type(err).__name__
        raise EnvBuildError(f"environment {name!r} cannot be built: " + (f"{hint} ({cause})" if hint else cause)) from err


__all__ = [
    "DOWNLOADS",
    "EnvBuildError",
    "build_env",
    "ActionSpace",
    "BraxEnv",
    "BraxEnvState",
    "Env",
    "EpisodeStatistics",
    "EpisodeStatisticsState",
    "GymnaxEnv",
    "ObservationMask",
    "StepResult",
    "check_env_name",
    "is_brax_name",
    "make_env",
    "registered_env_names",
]
