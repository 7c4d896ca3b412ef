"""Your own environment in one file: a pure-JAX corridor, checked with ``check_env``, trained with PPO and TRPO.

    python examples/custom_env.py        # CPU-sized: about 25 s of CPU time, compilation included

The environment follows the env protocol (docs/guides/custom-env.md): a frozen dataclass with
``observation_shape``, ``action_space`` and ``max_episode_steps``, and pure ``reset``/``step`` functions
of one (unbatched) environment that ``jax.jit`` and ``jax.vmap`` can transform. ``step`` resets by itself
when an episode ends and reports ``terminated`` (the goal: no bootstrap) apart from ``truncated`` (the
time limit: bootstrap from ``final_obs``).

The shell takes the same environment as ``"module:function"`` (from the repository root):

    python -m purejaxrl_ppo check-env --env examples.custom_env:Corridor
    python -m purejaxrl_ppo train --env examples.custom_env:Corridor --total-timesteps 20000 --num-seeds 4
"""

from __future__ import annotations

import dataclasses

import purejaxrl_ppo as pjp  # first: it applies the platform workarounds before any jax computation

import jax
import jax.numpy as jnp
from flax import struct

from purejaxrl_ppo.core.envs import ActionSpace, StepResult


@struct.dataclass
class CorridorState:
    position: jax.Array  # int32 scalar: the cell, 0 .. length - 1 (the goal)
    time: jax.Array  # int32 scalar: steps taken in this episode


@dataclasses.dataclass(frozen=True)
class Corridor:
    """Walk left (action 0) or right (action 1) along ``length`` cells to the goal at the right end.

    Start: a random cell in the left half. Reward: +1 on reaching the goal (the episode terminates),
    -0.01 for every other step; the episode is truncated after ``max_episode_steps`` steps.
    Observation: float32 ``[length]``, the one-hot position.
    """

    length: int = 8
    max_episode_steps: int = 32
    action_space: ActionSpace = ActionSpace(discrete=True, num_actions=2)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return (self.length,)

    def observe(self, state: CorridorState) -> jax.Array:
        return jax.nn.one_hot(state.position, self.length, dtype=jnp.float32)

    def reset(self, key: jax.Array) -> tuple[jax.Array, CorridorState]:
        state = CorridorState(jax.random.randint(key, (), 0, self.length // 2), jnp.int32(0))
        return self.observe(state), state

    def step(self, key: jax.Array, state: CorridorState, action: jax.Array) -> StepResult:
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1)
        state = CorridorState(position, state.time + 1)
        terminated = position == self.length - 1
        truncated = (state.time >= self.max_episode_steps) & ~terminated  # a time limit that is not terminal
        final_obs = self.observe(state)
        # Auto-reset: where the episode ended, continue from a fresh start drawn with this step's key.
        done = terminated | truncated
        reset_obs, reset_state = self.reset(key)
        return StepResult(
            obs=jnp.where(done, reset_obs, final_obs),
            state=jax.tree_util.tree_map(lambda new, old: jnp.where(done, new, old), reset_state, state),
            reward=jnp.where(terminated, 1.0, -0.01).astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=final_obs,
            info={},
        )


def main() -> None:
    env = Corridor()
    pjp.check_env(env)  # raises EnvCheckError, one line per problem, if the env breaks the protocol
    print("check_env: ok")

    pjp.register_env("Corridor", Corridor)  # now "Corridor" works wherever an env name does
    keys = jax.random.split(jax.random.PRNGKey(0), 4)  # 4 seeds
    common = dict(env_name="Corridor", total_timesteps=20_000, num_envs=8, num_steps=32, hidden_sizes=(32,))
    for config in (pjp.PPOConfig(**common), pjp.TRPOConfig(**common)):
        out = jax.jit(jax.vmap(pjp.make_train(config)))(keys)
        finals = pjp.final_returns(out.metrics["episode_return"])
        print(f"{config.algo_name.upper()}: final return per seed {finals.round(2).tolist()} "
              f"(the best policy averages 0.955)")


if __name__ == "__main__":
    main()
