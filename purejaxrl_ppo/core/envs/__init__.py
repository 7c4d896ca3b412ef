"""Environments behind one interface, and the registry that builds them by name.

``make_env(name)`` returns an :class:`Env` already wrapped with
:class:`EpisodeStatistics`. Names select the suite: gymnax ids
(``"CartPole-v1"``, ``"Pendulum-v1"``, ``"Breakout-MinAtar"``, ...) or
``"brax/<env>"`` for any Brax environment, optionally with options
``"brax/hopper?backend=generalized&episode_length=1000&action_repeat=2"``
(see :mod:`purejaxrl_ppo.core.envs.brax_env`), your own env as ``"module:function"`` (a factory
returning an :class:`Env`) or a name given to :func:`register_env`, a partially observed gymnax
env ``"CartPole-v1?mask=velocity"`` (see :mod:`purejaxrl_ppo.core.envs.masked`), or
a name in one of the optional suites (``"playground/..."``, ``"craftax/..."``,
``"jumanji/..."``, ``"navix/..."``, ``"xland/..."``, ``"popgym_arcade/..."``: see
:mod:`purejaxrl_ppo.core.envs.suites`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from typing import Callable

import jax

from purejaxrl_ppo.core.config import ConfigError

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace, Env, StepResult, is_structured, observation_spec
from purejaxrl_ppo.core.envs.brax_env import PREFIX as BRAX_PREFIX
from purejaxrl_ppo.core.envs.brax_env import BraxEnv, BraxEnvState, brax_env_ids, make_brax_env, parse_brax_name
from purejaxrl_ppo.core.envs.gymnax_env import GymnaxEnv, import_gymnax
from purejaxrl_ppo.core.envs.masked import ObservationMask, is_masked_name, make_masked_env, masked_env_names
from purejaxrl_ppo.core.envs.masked import parse_masked_name
from purejaxrl_ppo.core.envs.suites import SUITES, check_suite_name, make_suite_env, suite_env_names, suite_of
from purejaxrl_ppo.core.envs.wrappers import EpisodeStatistics, EpisodeStatisticsState


#: Environments registered in this process with :func:`register_env`: name -> factory.
_REGISTERED: dict[str, Callable[[], Env]] = {}


def register_env(name: str, factory: Callable[[], Env]) -> None:
    """Make ``name`` build ``factory()`` (an unwrapped :class:`Env`) everywhere a name is accepted
    (configs, ``make_env``, evaluation), in this process. A name may not shadow a built-in one.

    For runs started from the shell (or resumed later) use a ``"module:function"`` name instead:
    it needs no registration, since the name itself says where the factory lives.
    """
    if not isinstance(name, str) or not name or "?" in name or ":" in name:
        raise ValueError(f"an environment name must be a non-empty string without '?' or ':', got {name!r}")
    if name in _REGISTERED and _REGISTERED[name] is not factory:
        raise ValueError(f"an environment named {name!r} is already registered")
    if is_brax_name(name) or suite_of(name) is not None or name in _gymnax_names():
        raise ValueError(f"{name!r} is a built-in environment name; register your environment under another")
    _REGISTERED[name] = factory
    make_env.cache_clear()


def is_factory_name(name: str) -> bool:
    """``name`` is ``"module:function"`` (an importable factory returning an :class:`Env`)."""
    return ":" in name and not is_brax_name(name) and suite_of(name) is None


def _factory(name: str) -> Callable[[], Env]:
    """The factory a ``"module:function"`` name points to; ``ValueError`` saying what is wrong."""
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"environment {name!r}: cannot import module {module_name!r} ({err}); the module must be "
                         f"importable from the working directory or PYTHONPATH") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"environment {name!r}: module {module_name!r} has no callable {attr!r}")
    return factory


def _gymnax_names() -> tuple[str, ...]:
    """gymnax's registered ids (gymnax is imported on first use: :func:`~purejaxrl_ppo.core.envs.gymnax_env.import_gymnax`)."""
    return tuple(import_gymnax().registered_envs)


def registered_env_names() -> tuple[str, ...]:
    """Every environment name :func:`make_env` accepts (Brax names without options, the masked names, then
    the names of every optional suite that is installed)."""
    suites = tuple(name for suite in SUITES for name in suite_env_names(suite))
    return _gymnax_names() + tuple(BRAX_PREFIX + env_id for env_id in brax_env_ids()) + masked_env_names() + suites


def is_brax_name(name: str) -> bool:
    """``name`` selects the Brax suite (``"brax/..."``)."""
    return name.startswith(BRAX_PREFIX)


def check_env_name(name: str) -> None:
    """Raise ``ValueError`` naming the problem unless :func:`make_env` accepts ``name``."""
    if name in _REGISTERED:
        return
    if is_brax_name(name):
        parse_brax_name(name)
    elif suite_of(name) is not None:
        check_suite_name(name)
    elif is_factory_name(name):
        _factory(name)
    elif is_masked_name(name):
        parse_masked_name(name)
    elif name not in _gymnax_names():  # Brax is not imported for this message: only a brax/ name needs it
        known = _gymnax_names() + masked_env_names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        suites = ", ".join(f"{suite.prefix}<env>" for suite in SUITES)
        raise ValueError(f"unknown environment {name!r}{hint}; known: {', '.join(known)}, {BRAX_PREFIX}<env> for "
                         f"a Brax environment, and the optional suites {suites} "
                         f"(pjp.registered_env_names() lists them)")


@functools.lru_cache(maxsize=None)
def make_env(name: str) -> Env:
    """Build the environment ``name`` with episode statistics. Cached: envs are immutable.

    Built under ``jax.ensure_compile_time_eval`` so that the arrays an env holds
    (gymnax default params, a Brax system) are concrete even when the first call
    happens inside a ``jit`` trace; otherwise the cache would keep leaked tracers.
    """
    check_env_name(name)
    with jax.ensure_compile_time_eval():
        if name in _REGISTERED:
            inner = _REGISTERED[name]()
        elif is_factory_name(name):
            inner = _factory(name)()
        elif is_brax_name(name):
            inner = make_brax_env(name)
        elif suite_of(name) is not None:
            inner = make_suite_env(name)
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
    "ACTION_MASK",
    "SUITES",
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
    "is_factory_name",
    "register_env",
    "is_structured",
    "observation_spec",
    "make_env",
    "registered_env_names",
]
