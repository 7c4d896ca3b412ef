"""Adapter for MuJoCo Playground's DM Control Suite environments on MJX (``pip install playground``).

Names are ``"playground/<env>"`` with a Playground registry name, optionally with options:
``"playground/CartpoleBalance"``, ``"playground/CheetahRun?episode_length=500&action_repeat=2"``.

Only the DM Control Suite (``mujoco_playground.dm_control_suite``: CartpoleBalance, PendulumSwingup,
CheetahRun, HumanoidWalk, ...) is listed: its models ship inside the package. The locomotion and
manipulation environments (Go1JoystickFlatTerrain, PandaPickCube, ...) load robot models from
mujoco_menagerie, which Playground ``git clone``s into its own install folder on first use; where that
cannot happen (no network) building one fails with ``CalledProcessError: Command '['git', 'clone']'
returned non-zero exit status 128``, after creating an empty ``external_deps/`` folder in the package;
so this adapter never builds them.

Observations are float32: one vector, or a dict of float32 arrays under Playground's own keys (e.g.
``{"state": ..., "privileged_state": ...}``) for an env whose observation is a dict. Actions are
float32 vectors in ``[-1, 1]`` (``action_size`` entries; every listed env's actuators have control
range ``[-1, 1]``), clipped there before stepping.

Episode length, action repeat, truncation and auto-reset are done here exactly as the Brax adapter
(:mod:`purejaxrl_ppo.core.envs.brax_env`) does them, and with the same meaning as Playground's own
``wrap_for_brax_training`` (Brax's ``EpisodeWrapper``): each action is applied ``action_repeat`` env
steps (rewards summed); an episode is cut after ``episode_length`` env steps, i.e.
``⌈episode_length / action_repeat⌉`` agent steps, and that cut is ``truncated`` unless the env's
``done`` (DM Control: a NaN in the physics state) makes it ``terminated``; the reset after an end
draws a fresh initial state from the step's key. Defaults come from the env's default config
(``episode_length`` 1000, ``action_repeat`` 1 for every DM Control env).

MJX runs in plain JAX (``impl="jax"``), overriding the ``"warp"`` (NVIDIA Warp) of Playground's default
configs: on this project's 2-core CPU, warp ran CartpoleBalance (16 envs × 200 steps, Playground's own
``reset``/``step``) at 2.7k env steps/s against ~390k with jax, and this adapter's step (which resets
inside ``jit(vmap(step))``) fails with warp: ``UnexpectedTracerError: Encountered an unexpected tracer``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult, auto_reset
from purejaxrl_ppo.core.envs.brax_env import quiet_brax, repeat_action

PREFIX = "playground/"
OPTIONS = ("episode_length", "action_repeat")
#: MJX's implementation (Playground's config key ``impl``): plain JAX (see the module docstring).
IMPL = "jax"


def import_playground():
    """``mujoco_playground``, imported on first use (it imports Brax and MJX), quietly."""
    with quiet_brax():
        import mujoco_playground
    return mujoco_playground


def env_ids() -> tuple[str, ...]:
    """The Playground environments this adapter builds: the DM Control Suite (see the module docstring)."""
    return tuple(sorted(import_playground().dm_control_suite.ALL_ENVS))


def _positive_int(options: Mapping[str, str], key: str, default: int, env_id: str) -> int:
    raw = options.get(key, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{key} must be a positive integer, got {raw!r} for {PREFIX}{env_id}")
    return int(raw)


@dataclasses.dataclass(frozen=True)
class PlaygroundSpec:
    """A parsed ``playground/<env>?...`` name."""

    env_id: str
    episode_length: int
    action_repeat: int


def parse_options(env_id: str, options: Mapping[str, str]) -> PlaygroundSpec:
    """The spec of ``env_id`` with ``options``; defaults from the env's default config.

    Raises ``ValueError`` naming the bad option and what would be valid.
    """
    config = import_playground().registry.get_default_config(env_id)
    return PlaygroundSpec(
        env_id,
        episode_length=_positive_int(options, "episode_length", int(config.episode_length), env_id),
        action_repeat=_positive_int(options, "action_repeat", int(config.get("action_repeat", 1)), env_id),
    )


def _as_float32(obs: Any) -> Any:
    """A Playground observation (an array or a dict of arrays) as float32, keys kept."""
    if isinstance(obs, Mapping):
        return {key: jnp.asarray(value, jnp.float32) for key, value in obs.items()}
    return jnp.asarray(obs, jnp.float32)


@struct.dataclass
class PlaygroundEnvState:
    """Playground's ``State`` plus the env-step count of the current episode (int32 scalar)."""

    mjx_state: Any
    steps: jax.Array


@dataclasses.dataclass(frozen=True)
class PlaygroundEnv:
    """A Playground (MJX) environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface."""

    spec: PlaygroundSpec
    env: Any = dataclasses.field(repr=False)
    observation_spec: Any  # jax.ShapeDtypeStruct, or a dict of them
    action_space: ActionSpace

    @classmethod
    def make(cls, env_id: str, options: Mapping[str, str]) -> "PlaygroundEnv":
        if env_id not in env_ids():
            raise ValueError(f"unknown Playground environment {env_id!r}; known: {', '.join(env_ids())}")
        spec = parse_options(env_id, options)
        playground = import_playground()
        with quiet_brax():
            env = playground.registry.load(env_id, config_overrides={"impl": IMPL})
        return cls.wrap(spec, env)

    @classmethod
    def wrap(cls, spec: PlaygroundSpec, env: Any) -> "PlaygroundEnv":
        """Adapt a built Playground env (anything with ``reset(rng)``, ``step(state, action)`` and
        ``action_size``, whose states have ``obs``, ``reward`` and ``done``)."""
        size = int(env.action_size)
        space = ActionSpace(discrete=False, shape=(size,), low=(-1.0,) * size, high=(1.0,) * size)
        probe = cls(spec, env, None, space)
        obs, _ = jax.eval_shape(probe.reset, jax.random.PRNGKey(0))
        obs_spec = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), obs)
        return dataclasses.replace(probe, observation_spec=obs_spec)

    @property
    def name(self) -> str:
        return PREFIX + self.spec.env_id

    @property
    def observation_shape(self) -> tuple[int, ...] | None:
        """The shape of the observation when it is one float32 array; ``None`` for a dict."""
        if isinstance(self.observation_spec, jax.ShapeDtypeStruct):
            return tuple(self.observation_spec.shape)
        return None

    @property
    def max_episode_steps(self) -> int:
        """Agent steps after which an episode is truncated: ⌈episode_length / action_repeat⌉."""
        return -(-self.spec.episode_length // self.spec.action_repeat)

    def reset(self, key: jax.Array) -> tuple[Any, PlaygroundEnvState]:
        state = self.env.reset(key)
        return _as_float32(state.obs), PlaygroundEnvState(state, jnp.int32(0))

    def _env_steps(self, state: Any, action: jax.Array) -> tuple[Any, jax.Array]:
        """``action_repeat`` Playground steps; returns the last state and the summed reward."""
        return repeat_action(self.env.step, state, action, self.spec.action_repeat)

    def step(self, key: jax.Array, state: PlaygroundEnvState, action: jax.Array) -> StepResult:
        next_state, reward = self._env_steps(state.mjx_state, jnp.clip(action, -1.0, 1.0))
        steps = state.steps + self.spec.action_repeat
        terminated = next_state.done > 0
        truncated = jnp.logical_and(steps >= self.spec.episode_length, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        final_obs = _as_float32(next_state.obs)

        after = PlaygroundEnvState(next_state.replace(done=jnp.zeros_like(next_state.done)), steps)
        return auto_reset(done, self.reset(key), final_obs, after, reward, terminated, truncated)


def make(env_id: str, options: dict[str, str]) -> PlaygroundEnv:
    """The Playground env ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return PlaygroundEnv.make(env_id, options)
