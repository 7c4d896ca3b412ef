"""Act with a trained policy outside training: load a run (or an exported file) and play a few episodes.

    python -m purejaxrl_ppo train --env CartPole-v1 --num-seeds 4 --out runs/cartpole
    python examples/act.py runs/cartpole                      # a run directory written by `train`
    python -m purejaxrl_ppo export --run runs/cartpole --out cartpole.msgpack --seed-index 0
    python examples/act.py cartpole.msgpack --episodes 5      # the exported file alone

Each episode runs the deterministic policy (argmax or mean: the actions ``pjp.evaluate`` scores)
one step at a time from Python, the way a policy is used outside a training loop; memory
policies (``policy="gru"`` or ``"attention"``) carry their state from step to step.
"""

from __future__ import annotations

import argparse
import time

import jax

import purejaxrl_ppo as pjp  # first: it applies the platform workarounds before any jax computation


def play_episode(policy: pjp.Policy, params: pjp.PolicyParams, key: jax.Array, step, env_step, env_reset):
    """``(return, length)`` of one episode: the policy acts on one env until it terminates or is truncated."""
    reset_key, key = jax.random.split(key)
    obs, state = env_reset(reset_key)
    carry = policy.initial_carry()  # () for a feed-forward policy; the GRU state / attention window otherwise
    total, length = 0.0, 0
    while True:
        carry, action = step(params, carry, obs)  # deterministic by default: no key needed
        key, step_key = jax.random.split(key)
        result = env_step(step_key, state, action)
        total, length = total + float(result.reward), length + 1
        if bool(result.terminated) or bool(result.truncated):
            return total, length
        obs, state = result.obs, result.state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="run directory written by `train`, or a file written by `export`")
    parser.add_argument("--episodes", type=int, default=3, help="episodes to play [default: 3]")
    parser.add_argument("--seed-index", type=int, default=0, help="which trained seed acts [default: 0]")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the episodes [default: 0]")
    args = parser.parse_args(argv)

    policy = pjp.load_run(args.policy)
    params = policy.params_of(args.seed_index)
    print(f"{policy.config.algo_name} on {policy.config.env_name}: {policy.num_seeds} seed(s), policy "
          f"{policy.config.policy!r}, observations {list(policy.observation_shape)}; acting with seed "
          f"{policy.seed_indices[args.seed_index]}")
    step = jax.jit(policy.step)  # pure: (params, carry, obs) -> (carry, action), compiled once
    env_step, env_reset = jax.jit(policy.env.step), jax.jit(policy.env.reset)
    for episode, key in enumerate(jax.random.split(jax.random.PRNGKey(args.seed), args.episodes)):
        start = time.perf_counter()
        total, length = play_episode(policy, params, key, step, env_step, env_reset)
        print(f"episode {episode}: return {total:.1f} in {length} steps ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
