"""Mean episode return of the uniform-random policy: the 0 of the study's normalised scores.

    PYTHONPATH=$PWD python benchmarks/random_policy_scores.py CartPole-v1 Acrobot-v1 Pendulum-v1

Runs ``--episodes`` complete episodes per environment with actions drawn
uniformly from the action space (continuous actions within their bounds;
discrete ones uniformly among the actions the observation's mask allows, per
factor for a multi-discrete space) and prints the mean return and its standard
error.
"""

from __future__ import annotations

import argparse

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.envs.base import ACTION_MASK, ActionSpace
from purejaxrl_ppo.core.networks.base import MultiCategorical, mask_logits


def random_action_sampler(space: ActionSpace):
    """``sample(key, obs) -> action`` of the uniform-random policy on ``space``: continuous actions uniform
    within their bounds, discrete ones uniform among the actions ``obs[ACTION_MASK]`` allows (per factor
    for a multi-discrete space), through the masking and distributions the policy uses."""

    def sample_action(key, obs):
        if space.discrete:  # uniform logits, masked like the policy's, through the policy's own distribution
            logits = jnp.zeros((space.num_actions,), jnp.float32)
            if space.masked:
                logits = mask_logits(logits, obs[ACTION_MASK])
            if space.multi:
                return MultiCategorical(logits, space.nvec).sample_and_log_prob(seed=key)[0]
            return jax.random.categorical(key, logits)
        return jax.random.uniform(key, space.shape, minval=jnp.asarray(space.low).reshape(space.shape),
                                  maxval=jnp.asarray(space.high).reshape(space.shape))

    return sample_action


def random_returns(env_name: str, episodes: int, seed: int = 0, max_steps: int = 10_000) -> np.ndarray:
    """Returns ``[episodes]`` of the uniform-random policy (one vmapped env per episode)."""
    env = pjp.make_env(env_name)
    sample_action = random_action_sampler(env.action_space)

    def episode(key):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key)

        def body(carry):
            obs, state, key, total, done, t = carry
            key, act_key, step_key = jax.random.split(key, 3)
            out = env.step(step_key, state, sample_action(act_key, obs))
            return out.obs, out.state, key, total + out.reward, jnp.logical_or(out.terminated, out.truncated), t + 1

        def cond(carry):
            return jnp.logical_and(~carry[4], carry[5] < max_steps)

        init = (obs, state, key, jnp.float32(0), jnp.bool_(False), 0)
        _, _, _, total, _, _ = jax.lax.while_loop(cond, body, init)
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
