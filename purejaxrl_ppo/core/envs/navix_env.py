"""Adapter for Navix, MiniGrid re-implemented in JAX (``pip install navix``).

Names are ``"navix/<id>"`` with navix's registered ids, e.g. ``"navix/Navix-Empty-5x5-v0"``,
``"navix/Navix-DoorKey-5x5-v0?observation=symbolic_first_person&max_steps=250"``.

Observations are one array (no dict): navix's default, the fully observed symbolic grid
(object, colour, state per cell), as int32 ``[H, W, 3]``; ``?observation=`` picks another of
navix's observation functions (categorical views get a trailing channel axis; RGB views are
uint8 ``[H, W, 3]``). Actions are navix's 7 MiniGrid actions (left, right, forward, pick up,
drop, toggle, done).

navix resets on the step *after* an episode ends and reports the end as a step type
(TRANSITION / TRUNCATION / TERMINATION). Here the adapter steps navix's ``_step`` (no auto-reset)
and resets itself, so ``obs`` is the next episode's first observation and ``final_obs`` the
true last one, like every other env of this package.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult, auto_reset

OPTIONS = ("observation", "max_steps")
#: navix's observation functions (``navix.observations.<name>``) selectable with ``?observation=``.
OBSERVATIONS = (
    "symbolic",
    "symbolic_first_person",
    "categorical",
    "categorical_first_person",
    "rgb",
    "rgb_first_person",
)
DEFAULT_OBSERVATION = "symbolic"
#: ``navix.make``'s own default time limit, the same for every id.
DEFAULT_MAX_STEPS = 100

# navix's StepType values (navix.environments.environment.StepType).
_TRUNCATION = 1
_TERMINATION = 2


def import_navix():
    """The ``navix`` module, imported on first use (it builds jax arrays at import)."""
    with jax.ensure_compile_time_eval():
        import navix
    return navix


def env_ids() -> tuple[str, ...]:
    """navix's registered environment ids."""
    return tuple(sorted(import_navix().registry()))


def _positive_int(options: dict[str, str], key: str, default: int, env_id: str) -> int:
    raw = options.get(key, str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{key} must be a positive integer, got {raw!r} for navix/{env_id}")
    return int(raw)


@dataclasses.dataclass(frozen=True)
class NavixEnv:
    """A navix environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    The state is navix's ``Timestep``. ``max_episode_steps``: navix's ``max_steps``, after which
    an episode is truncated. ``observation``: the navix observation function's name;
    RGB images stay uint8, navix's symbols are cast to int32. Equality and hashing use the id and
    options, not navix's environment (its spaces hold jax arrays).
    """

    env_id: str
    observation: str
    max_episode_steps: int
    env: Any = dataclasses.field(repr=False, compare=False)
    observation_spec: jax.ShapeDtypeStruct
    action_space: ActionSpace

    @classmethod
    def make(cls, env_id: str, options: dict[str, str]) -> "NavixEnv":
        navix = import_navix()
        observation = options.get("observation", DEFAULT_OBSERVATION)
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {', '.join(OBSERVATIONS)}; got {observation!r} "
                             f"for navix/{env_id}")
        max_steps = _positive_int(options, "max_steps", DEFAULT_MAX_STEPS, env_id)
        env = navix.make(env_id, max_steps=max_steps, observation_fn=getattr(navix.observations, observation))
        space = ActionSpace(discrete=True, num_actions=len(env.action_set))
        probe = cls(env_id, observation, int(env.max_steps), env, jax.ShapeDtypeStruct((), jnp.int32), space)
        obs, _ = jax.eval_shape(probe.reset, jax.random.PRNGKey(0))
        return dataclasses.replace(probe, observation_spec=jax.ShapeDtypeStruct(obs.shape, obs.dtype))

    @property
    def observation_shape(self) -> None:
        """``None``: observations are integer grids or uint8 images, never flat float32 vectors."""
        return None

    def _observation(self, obs: jax.Array) -> jax.Array:
        if obs.ndim == 2:  # categorical views are [H, W]
            obs = obs[..., None]
        return obs.astype(jnp.uint8 if self.observation.startswith("rgb") else jnp.int32)

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        timestep = self.env.reset(key)
        return self._observation(timestep.observation), timestep

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        # navix's own step would reset on the *next* call; _step is one transition, no reset.
        next_timestep = self.env._step(state, jnp.asarray(action, jnp.int32))
        terminated = next_timestep.step_type == _TERMINATION
        truncated = next_timestep.step_type == _TRUNCATION
        done = jnp.logical_or(terminated, truncated)
        final_obs = self._observation(next_timestep.observation)

        reward = next_timestep.reward
        return auto_reset(done, self.reset(key), final_obs, next_timestep, reward, terminated, truncated)


def make(env_id: str, options: dict[str, str]) -> NavixEnv:
    """The navix env ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return NavixEnv.make(env_id, options)
