"""Adapter for every Brax environment (``brax.envs.get_environment``).

Names select the suite: ``"brax/<env>"`` with optional query options,
``"brax/hopper?backend=generalized&episode_length=1000&action_repeat=1"``.
Everything that defines the MDP lives in the name, so a config's ``env_name``
alone rebuilds the environment (for training, evaluation and rendering).

Episode length, truncation and auto-reset are done here rather than with
Brax's ``EpisodeWrapper``/``AutoResetWrapper`` so that ``final_obs``,
``terminated`` and ``truncated`` mean exactly what the gymnax adapter reports:
a time-limit end that is not also a termination is ``truncated`` and
bootstraps from the true last observation; a reset draws a fresh initial
state from the step's key (Brax's own auto-reset replays the first state).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import re
import sys
import warnings
from typing import Any, Iterator
from urllib.parse import parse_qsl

import jax
import jax.numpy as jnp
from flax import struct

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult

PREFIX = "brax/"
BACKENDS = ("mjx", "generalized", "positional", "spring")
OPTIONS = ("backend", "episode_length", "action_repeat")
#: Physics backend when the name gives none (Brax's own env default), for every env.
#: Measured on this project's 2-core CPU with our training program (brax_preset, 1 seed,
#: ``benchmarks/brax_backends.py``; process CPU seconds, compile / env-steps per CPU second):
#: inverted_pendulum generalized 30 s / 28k, mjx 43 s / 26k, positional 39 s / 20k;
#: hopper generalized 66 s / 5.2k, mjx 73 s / 2.9k, positional 82 s / 10k. ``generalized``
#: compiles fastest on both and runs fastest on inverted_pendulum; ``mjx`` (mujoco-mjx, a
#: Brax dependency) is not cheaper on either; ``positional`` runs hopper faster once
#: compiled, so choose it (``?backend=positional``) for long hopper runs.
DEFAULT_BACKEND = "generalized"
DEFAULT_EPISODE_LENGTH = 1000


#: What importing Brax or building a Brax system says that is no business of a user of this package:
#: mujoco-mjx's prints about its optional GPU backend (warp), and two notices about maintenance.
_WARP_PRINT = re.compile(r"^Failed to import (warp|mujoco_warp): .*\n?", re.MULTILINE)
_QUIET_WARNINGS = (
    (r"Brax System, piplines and environments are not actively being maintained", UserWarning),  # brax.io.mjcf
    (r"JAXopt is no longer maintained", DeprecationWarning),  # jaxopt, imported by brax
)


@contextlib.contextmanager
def quiet_brax() -> Iterator[None]:
    """Import Brax or build a Brax environment without its notices (and nothing else hidden).

    mujoco-mjx ``print``s ``Failed to import warp: ...`` and ``Failed to import mujoco_warp: ...``
    when its optional GPU backend is absent (it is not a dependency here), and Brax warns on every
    system it builds that it is not actively maintained. Inside this block, standard output is
    collected and given back without those two lines, and those two warnings (matched by message
    and category) are ignored; every other line and warning passes through.
    """
    captured = io.StringIO()
    try:
        with warnings.catch_warnings():
            for message, category in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            with contextlib.redirect_stdout(captured):
                yield
    finally:
        rest = _WARP_PRINT.sub("", captured.getvalue())
        if rest:
            sys.stdout.write(rest)


def import_brax_envs():
    """``brax.envs``, imported on first use (only when a Brax environment is asked for), quietly."""
    with quiet_brax():
        from brax import envs
    return envs


def brax_env_ids() -> tuple[str, ...]:
    """Environment ids Brax's ``envs.get_environment`` knows, without the prefix."""
    return tuple(sorted(import_brax_envs()._envs))  # the registry has no public listing


@dataclasses.dataclass(frozen=True)
class BraxSpec:
    """A parsed ``brax/<env>?...`` name."""

    env_id: str
    backend: str = DEFAULT_BACKEND
    episode_length: int = DEFAULT_EPISODE_LENGTH
    action_repeat: int = 1


def parse_brax_name(name: str) -> BraxSpec:
    """Parse ``"brax/<env>[?backend=..&episode_length=..&action_repeat=..]"``.

    Raises ``ValueError`` naming the bad part and what would be valid.
    """
    if not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a Brax name (expected {PREFIX}<env>)")
    env_id, _, query = name[len(PREFIX):].partition("?")
    known = brax_env_ids()
    if env_id not in known:
        raise ValueError(f"unknown Brax environment {env_id!r} in {name!r}; known: {', '.join(known)}")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} in {name!r}; valid options: {', '.join(OPTIONS)}")
    backend = options.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r} in {name!r}")
    ints = {}
    for key, default in (("episode_length", DEFAULT_EPISODE_LENGTH), ("action_repeat", 1)):
        raw = options.get(key, str(default))
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{key} must be a positive integer, got {raw!r} in {name!r}")
        ints[key] = int(raw)
    return BraxSpec(env_id, backend, **ints)


@struct.dataclass
class BraxEnvState:
    """Brax's ``State`` plus the step count of the current episode (int32 scalar)."""

    brax_state: Any
    steps: jax.Array


@dataclasses.dataclass(frozen=True)
class BraxEnv:
    """A Brax environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    Actions live in ``[-1, 1]`` (Brax scales them to actuator ranges) and are
    clipped there before stepping. ``action_repeat`` applies each action that
    many physics steps (rewards summed, as Brax does); an episode is cut after
    ``episode_length`` physics steps, so ``episode_length / action_repeat``
    agent steps.
    """

    spec: BraxSpec
    env: Any = dataclasses.field(repr=False)
    observation_shape: tuple[int, ...]
    action_space: ActionSpace

    @classmethod
    def make(cls, name: str) -> "BraxEnv":
        spec = parse_brax_name(name)
        envs = import_brax_envs()
        with quiet_brax():
            env = envs.get_environment(spec.env_id, backend=spec.backend)
        if not isinstance(env.observation_size, int):
            raise ValueError(f"Brax env {spec.env_id!r} has dict observations; only flat vectors are supported")
        size = int(env.action_size)
        space = ActionSpace(discrete=False, shape=(size,), low=(-1.0,) * size, high=(1.0,) * size)
        return cls(spec, env, (int(env.observation_size),), space)

    @property
    def name(self) -> str:
        return PREFIX + self.spec.env_id

    @property
    def max_episode_steps(self) -> int:
        """Agent steps after which an episode is truncated: ⌈episode_length / action_repeat⌉."""
        return -(-self.spec.episode_length // self.spec.action_repeat)

    def reset(self, key: jax.Array) -> tuple[jax.Array, BraxEnvState]:
        state = self.env.reset(key)
        return jnp.asarray(state.obs, jnp.float32), BraxEnvState(state, jnp.int32(0))

    def _physics_steps(self, state: Any, action: jax.Array) -> tuple[Any, jax.Array]:
        """``action_repeat`` Brax steps; returns the last state and the summed reward."""
        return repeat_action(self.env.step, state, action, self.spec.action_repeat)

    def step(self, key: jax.Array, state: BraxEnvState, action: jax.Array) -> StepResult:
        next_state, reward = self._physics_steps(state.brax_state, jnp.clip(action, -1.0, 1.0))
        steps = state.steps + self.spec.action_repeat
        terminated = next_state.done > 0
        truncated = jnp.logical_and(steps >= self.spec.episode_length, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        final_obs = jnp.asarray(next_state.obs, jnp.float32)

        reset_obs, reset_state = self.reset(key)
        after = BraxEnvState(next_state.replace(done=jnp.zeros_like(next_state.done)), steps)
        new_state = jax.tree_util.tree_map(lambda r, a: jnp.where(done, r, a), reset_state, after)
        return StepResult(
            obs=jnp.where(done, reset_obs, final_obs),
            state=new_state,
            reward=jnp.asarray(reward, jnp.float32).reshape(()),
            terminated=terminated.reshape(()),
            truncated=truncated.reshape(()),
            final_obs=final_obs,
            info={},
        )

    def pipeline_state(self, state: BraxEnvState) -> Any:
        """The physics state (for Brax's HTML renderer)."""
        return state.brax_state.pipeline_state

    @property
    def sys(self) -> Any:
        """The Brax ``System`` (for Brax's HTML renderer)."""
        return self.env.sys


def repeat_action(step: Any, state: Any, action: jax.Array, repeats: int) -> tuple[Any, jax.Array]:
    """``repeats`` calls of a Brax-style ``step(state, action) -> state`` (with ``.reward``) in a scan:
    the last state and the summed reward (as Brax's action repeat does)."""

    def body(state, _):
        state = step(state, action)
        return state, state.reward

    state, rewards = jax.lax.scan(body, state, None, length=repeats)
    return state, rewards.sum()


@functools.lru_cache(maxsize=None)
def make_brax_env(name: str) -> BraxEnv:
    """Build (cached) the Brax env that ``name`` describes."""
    return BraxEnv.make(name)
