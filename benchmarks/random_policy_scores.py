"""Mean episode return of the uniform-random policy: the 0 of the study's normalised scores.

    PYTHONPATH=$PWD python benchmarks/random_policy_scores.py CartPole-v1 Acrobot-v1 Pendulum-v1

Runs ``--episodes`` complete episodes per environment with actions drawn
uniformly from the action space (continuous actions within their bounds) and
prints the mean return and its standard error.
"""

from __future__ import annotations

import argparse

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np


def random_returns(env_name: str, episodes: int, seed: int = 0, max_steps: int = 10_000) -> np.ndarray:
    """Returns ``[episodes]`` of the uniform-random policy (one vmapped env per episode)."""
    env = pjp.make_env(env_name)
    space = env.action_space

    def sample_action(key):
        if space.discrete:
            return jax.random.randint(key, (), 0, space.num_actions)
        return jax.random.uniform(key, space.shape, minval=jnp.asarray(space.low).reshape(space.shape),
                                  maxval=jnp.asarray(space.high).reshape(space.shape))

    def episode(key):
        reset_key, key = jax.random.split(key)
        _, state = env.reset(reset_key)

        def body(carry):
            state, key, total, done, t = carry
            key, act_key, step_key = jax.random.split(key, 3)
            out = env.step(step_key, state, sample_action(act_key))
            return out.state, key, total + out.reward, jnp.logical_or(out.terminated, out.truncated), t + 1

        def cond(carry):
            return jnp.logical_and(~carry[3], carry[4] < max_steps)

        _, _, total, _, _ = jax.lax.while_loop(cond, body, (state, key, jnp.float32(0), jnp.bool_(False), 0))
        return total

    return np.asarray(jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(seed), episodes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("envs", nargs="+")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    for name in args.envs:
        r = random_returns(name, args.episodes)
        print(f"{name}: mean {r.mean():.2f} ± {r.std(ddof=1) / np.sqrt(r.size):.2f} (s.e.) over {r.size} episodes")


if __name__ == "__main__":
    main()
