"""Adapter for Craftax, the JAX open-ended Minecraft-like benchmark (``pip install craftax``).

Names are ``"craftax/<id>"`` with one of Craftax's four ids: ``"craftax/Craftax-Classic-Symbolic-v1"``,
``"craftax/Craftax-Classic-Pixels-v1"``, ``"craftax/Craftax-Symbolic-v1"``, ``"craftax/Craftax-Pixels-v1"``;
``?max_timesteps=N`` shortens the episode limit (Craftax's ``EnvParams.max_timesteps``: 10 000 for
Classic, 100 000 for Craftax), e.g. ``"craftax/Craftax-Classic-Symbolic-v1?max_timesteps=1000"``.

Observations are one array. Symbolic: Craftax's flat float32 vector (``observation_shape`` set:
1345 for Classic, 8268 for Craftax). Pixels: uint8 ``[H, W, 3]`` (Classic ``[63, 63, 3]``,
Craftax ``[130, 110, 3]``). Craftax renders float pixels and divides them by 255; its textures
are integers, but alpha blending (player, mobs) and the night-time darkening make some pixels
fractional, so the adapter rounds ``255 * obs`` to the nearest integer: each pixel is within
0.5 / 255 of Craftax's own. Actions: ``Discrete(17)`` (Classic) or ``Discrete(43)`` (Craftax).

Episode ends. The adapter drives Craftax's ``...NoAutoReset`` env through ``step_env`` and
``reset_env`` and resets itself, so ``final_obs`` is the true last observation. Craftax ends an
episode when the player dies (Classic: also in lava; Craftax: also on beating the final boss) or
when ``state.timestep`` reaches ``max_timesteps``. The first are ``terminated``; the time limit
alone is ``truncated`` (``terminated`` is Craftax's terminal test with the time limit removed,
so a death on the last step is still a termination).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace, StepResult, auto_reset

OPTIONS = ("max_timesteps",)
ENV_IDS = ("Craftax-Classic-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Pixels-v1", "Craftax-Symbolic-v1")
#: ``max_timesteps`` in the params used for the terminal test without the time limit.
_NO_LIMIT = 2**31 - 1


def env_ids() -> tuple[str, ...]:
    """Craftax's four environment ids (``craftax.craftax_env.make_craftax_env_from_name``)."""
    return ENV_IDS


def _make_craftax(env_id: str) -> Any:
    """Craftax's env without auto-reset, imported on first use (importing Craftax loads its textures)."""
    with jax.ensure_compile_time_eval():
        from craftax.craftax_env import make_craftax_env_from_name

        return make_craftax_env_from_name(env_id, auto_reset=False)


@dataclasses.dataclass(frozen=True)
class CraftaxEnv:
    """A Craftax environment behind the :class:`~purejaxrl_ppo.core.envs.base.Env` interface.

    The state is Craftax's ``EnvState``. ``pixels``: observations are uint8 images, else float32 vectors.
    """

    env_id: str
    env: Any = dataclasses.field(repr=False)
    params: Any = dataclasses.field(repr=False)
    observation_spec: jax.ShapeDtypeStruct
    action_space: ActionSpace
    pixels: bool

    @classmethod
    def make(cls, env_id: str, options: dict[str, str]) -> "CraftaxEnv":
        env = _make_craftax(env_id)
        params = env.default_params
        if "max_timesteps" in options:
            raw = options["max_timesteps"]
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"max_timesteps must be a positive integer, got {raw!r} for craftax/{env_id}")
            params = params.replace(max_timesteps=int(raw))
        space = ActionSpace(discrete=True, num_actions=int(env.action_space(params).n))
        shape = tuple(int(s) for s in env.observation_space(params).shape)
        pixels = "Pixels" in env_id
        spec = jax.ShapeDtypeStruct(shape, jnp.uint8 if pixels else jnp.float32)
        return cls(env_id, env, params, spec, space, pixels)

    @property
    def observation_shape(self) -> tuple[int, ...] | None:
        """The flat observation's shape (Symbolic), ``None`` for uint8 images (Pixels)."""
        return None if self.pixels else tuple(self.observation_spec.shape)

    @property
    def max_episode_steps(self) -> int:
        """Agent steps after which an episode is truncated (``max_timesteps``)."""
        return int(self.params.max_timesteps)

    def _observation(self, obs: jax.Array) -> jax.Array:
        if self.pixels:  # Craftax's pixels are its renderer's 0..255 values divided by 255
            return jnp.round(jnp.clip(obs * 255.0, 0.0, 255.0)).astype(jnp.uint8)
        return jnp.asarray(obs, jnp.float32)

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset_env(key, self.params)
        return self._observation(obs), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepResult:
        step_key, reset_key = jax.random.split(key)
        action = jnp.asarray(action, jnp.int32)
        obs, next_state, reward, done, _ = self.env.step_env(step_key, state, action, self.params)
        done = jnp.asarray(done, bool).reshape(())
        without_limit = self.params.replace(max_timesteps=_NO_LIMIT)
        terminated = jnp.asarray(self.env.is_terminal(next_state, without_limit), bool).reshape(())
        truncated = jnp.logical_and(done, jnp.logical_not(terminated))
        final_obs = self._observation(obs)

        return auto_reset(done, self.reset(reset_key), final_obs, next_state, reward, terminated, truncated)


def make(env_id: str, options: dict[str, str]) -> CraftaxEnv:
    """The Craftax env ``env_id`` (already checked against :func:`env_ids`) with ``options``."""
    return CraftaxEnv.make(env_id, options)
