"""PPO on a Brax locomotion task: this library vs Brax's own PPO trainer, same env-step budget.

    PYTHONPATH=. python benchmarks/brax_locomotion.py --env hopper --steps 200000

Both train on ``brax.envs.get_environment(env, backend=...)`` with episodes of
1000 steps, observation normalisation, γ 0.97, learning rate 3e-4, 4 epochs
of 8 minibatches of 256 transitions per 128 envs × 16 steps (Brax:
``unroll_length=16, batch_size=16, num_minibatches=8, num_updates_per_batch=4``).
Each run ends with a deterministic evaluation over ``--eval-episodes``
episodes (ours: :func:`purejaxrl_ppo.evaluate`; Brax: its own evaluator's
``eval/episode_reward``). Writes ``benchmarks/results/brax_<env>.json``.
Seconds include compilation, reported separately for ours.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import purejaxrl_ppo as pjp  # first: applies the XLA:CPU workaround

import jax
import numpy as np

from purejaxrl_ppo.runner import machine_description


def run_ours(env: str, backend: str, steps: int, eval_episodes: int, seed: int) -> dict:
    name = f"brax/{env}?backend={backend}"
    config = pjp.PPOConfig(env_name=name, **{**pjp.brax_preset("ppo", name), "total_timesteps": steps})
    train = jax.jit(pjp.make_train(config))
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    compiled = train.lower(key).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(key))
    train_s = time.perf_counter() - start
    evaluate = jax.jit(lambda p, s, k: pjp.evaluate(config, p, k, eval_episodes, s))
    returns = np.asarray(evaluate(out.params, out.state.normalizer.obs, jax.random.PRNGKey(seed + 1)))
    return {
        "config": config.to_dict(),
        "env_steps": config.num_updates * config.batch_size,
        "compile_seconds": compile_s,
        "train_seconds_incl_compile": train_s,
        "eval_return_mean": float(returns.mean()),
        "eval_returns": returns.tolist(),
        "train_episode_return_last": float(np.nanmean(np.asarray(out.metrics["episode_return"])[-5:])),
    }


def run_brax(env: str, backend: str, steps: int, eval_episodes: int, seed: int) -> dict:
    from brax import envs
    from brax.training.agents.ppo import train as brax_ppo

    kwargs = dict(
        num_timesteps=steps, episode_length=1000, action_repeat=1, num_envs=128, unroll_length=16,
        batch_size=16, num_minibatches=8, num_updates_per_batch=4, discounting=0.97, learning_rate=3e-4,
        entropy_cost=0.0, normalize_observations=True, reward_scaling=1.0, num_evals=2, deterministic_eval=True,
        num_eval_envs=eval_episodes, seed=seed,
    )
    evals = []
    start = time.perf_counter()
    _, _, metrics = brax_ppo.train(
        environment=envs.get_environment(env, backend=backend),
        progress_fn=lambda step, m: evals.append((int(step), float(m["eval/episode_reward"]))),
        **kwargs,
    )
    seconds = time.perf_counter() - start
    return {
        "kwargs": kwargs,
        "env_steps": evals[-1][0],
        "train_seconds_incl_compile": seconds,
        "eval_return_mean": evals[-1][1],
        "evals": evals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--backend", default="generalized")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--which", choices=("both", "ours", "brax"), default="both")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"brax_{args.env}.json"
    result = {"env": args.env, "backend": args.backend, "steps": args.steps, "machine": machine_description()}
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = {"ours": ("purejaxrl_ppo", run_ours), "brax": ("brax_ppo", run_brax)}
    for which, (key, run) in runs.items():
        if args.which not in ("both", which):
            continue
        result[key] = run(args.env, args.backend, args.steps, args.eval_episodes, args.seed)
        print(which, json.dumps({k: v for k, v in result[key].items() if k not in ("config", "kwargs")}), flush=True)
        out.write_text(json.dumps(result, indent=2) + "\n")  # after each part: a slow compile loses nothing
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
