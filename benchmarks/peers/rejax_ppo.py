"""rejax 0.1.3 PPO on CartPole-v1 at PureJaxRL's config, vmapped over seeds.

Runs inside its own virtual environment (rejax 0.1.3 needs gymnax < 1.0);
``benchmarks/throughput.py`` creates it and calls this script as a subprocess.
Prints one JSON line: first-call and steady-state timings, final returns.

    python rejax_ppo.py --num-seeds 16 --total-timesteps 500000
"""

import argparse
import json
import resource
import time

import jax
import numpy as np
from rejax import PPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-seeds", type=int, default=1)
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    args = parser.parse_args()
    algo = PPO.create(
        env="CartPole-v1",
        num_envs=4,
        num_steps=128,
        num_epochs=4,
        num_minibatches=4,
        total_timesteps=args.total_timesteps,
        learning_rate=2.5e-4,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        eval_freq=args.total_timesteps,  # one evaluation, at the end
        skip_initial_evaluation=True,
    )
    train = jax.jit(jax.vmap(algo.train))
    keys = jax.random.split(jax.random.PRNGKey(0), args.num_seeds)
    start = time.perf_counter()
    jax.block_until_ready(train(keys))
    first = time.perf_counter() - start
    start = time.perf_counter()
    _, (lengths, returns) = jax.block_until_ready(train(keys))
    steady = time.perf_counter() - start
    finals = np.asarray(returns)[:, -1].mean(axis=-1)  # [seeds]: mean over 128 eval episodes
    steps = args.num_seeds * args.total_timesteps
    print(json.dumps({
        "peer": "rejax PPO",
        "num_seeds": args.num_seeds,
        "env_steps": steps,
        "first_call_seconds": first,
        "steady_seconds": steady,
        "env_steps_per_second": steps / steady,
        "final_return_median": float(np.median(finals)),
        "final_return_kind": "mean of 128 evaluation episodes at the end (rejax evaluate)",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {"jax": jax.__version__, "rejax": "0.1.3"},
    }))


if __name__ == "__main__":
    main()
