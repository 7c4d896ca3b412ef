"""PPO on a Brax locomotion task: this library vs Brax's own PPO trainer, same env-step budget.

    PYTHONPATH=. python benchmarks/brax_locomotion.py --env hopper --steps 200000

Both train on ``brax.envs.get_environment(env, backend=...)`` with episodes of
1000 steps and the same hyperparameters, all taken from our ``brax_preset``
(:func:`brax_kwargs` maps them): rollout size (Brax: ``num_envs``,
``unroll_length``, ``batch_size * num_minibatches`` envs per update), epochs and
minibatches, γ, λ, learning rate (constant: ``anneal_lr`` off), clip ε,
gradient-norm clip, entropy and value coefficients, observation
normalisation, and the network widths and activation. What cannot be matched:
Brax's tanh-normal policy has a softplus scale per action (ours: a
state-independent log-std), and Brax scales rewards by a constant
(``reward_scaling=1``) where our locomotion preset divides by a running
return std (``scale_rewards``). Each run ends with a deterministic evaluation
over ``--eval-episodes`` episodes (ours: :func:`purejaxrl_ppo.evaluate`;
Brax: its own evaluator's ``eval/episode_reward``). Writes
``benchmarks/results/brax_<env>.json``. Seconds include compilation (reported
separately for ours); CPU seconds are the process's, all threads.

The script imports :mod:`purejaxrl_ppo` before Brax or jax so the XLA:CPU
deadlock workaround is in place for both trainers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import purejaxrl_ppo as pjp  # first: applies the XLA:CPU workaround

import jax
import numpy as np

from purejaxrl_ppo.runs.provenance import machine_description


def make_config(env: str, backend: str, steps: int) -> pjp.PPOConfig:
    """Our PPO config: the Brax preset at ``steps`` env steps, constant learning rate (as Brax)."""
    name = f"brax/{env}?backend={backend}"
    return pjp.PPOConfig(env_name=name, **{**pjp.brax_preset("ppo", name), "total_timesteps": steps, "anneal_lr": False})


def brax_kwargs(config: pjp.PPOConfig, eval_episodes: int, seed: int) -> dict:
    """``brax.training.agents.ppo.train`` arguments with ``config``'s hyperparameters."""
    minibatch_envs = config.num_envs // config.num_minibatches  # Brax's batch_size counts envs of unroll_length
    return dict(
        num_timesteps=config.total_timesteps, episode_length=1000, action_repeat=1, num_envs=config.num_envs,
        unroll_length=config.num_steps, batch_size=minibatch_envs, num_minibatches=config.num_minibatches,
        num_updates_per_batch=config.update_epochs, discounting=config.gamma, gae_lambda=config.gae_lambda,
        learning_rate=config.learning_rate, clipping_epsilon=config.clip_eps, max_grad_norm=config.max_grad_norm,
        entropy_cost=config.ent_coef, vf_loss_coefficient=config.vf_coef,
        normalize_observations=config.normalize_observations, reward_scaling=1.0, num_evals=2,
        deterministic_eval=True, num_eval_envs=eval_episodes, seed=seed,
    )


def run_ours(env: str, backend: str, steps: int, eval_episodes: int, seed: int) -> dict:
    config = make_config(env, backend, steps)
    train = jax.jit(pjp.make_train(config))
    key = jax.random.PRNGKey(seed)
    start, cpu = time.perf_counter(), time.process_time()
    compiled = train.lower(key).compile()
    compile_s, compile_cpu = time.perf_counter() - start, time.process_time() - cpu
    out = jax.block_until_ready(compiled(key))
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    evaluate = jax.jit(lambda p, s, k: pjp.evaluate(config, p, k, eval_episodes, s))
    returns = np.asarray(evaluate(out.params, out.state.normalizer.obs, jax.random.PRNGKey(seed + 1)))
    return {
        "config": config.to_dict(),
        "env_steps": config.num_updates * config.batch_size,
        "compile_seconds": compile_s,
        "compile_cpu_seconds": compile_cpu,
        "train_seconds_incl_compile": train_s,
        "train_cpu_seconds_incl_compile": train_cpu,
        "eval_return_mean": float(returns.mean()),
        "eval_returns": returns.tolist(),
        "train_episode_return_last": float(np.nanmean(np.asarray(out.metrics["episode_return"])[-5:])),
    }


def _restore_device_put_replicated() -> None:
    """Brax 0.14.2's ``ppo.train`` calls ``jax.device_put_replicated``, which jax 0.10 removed
    (AttributeError "jax.device_put_replicated is deprecated"). Put back the one-device case it
    needs here: a leading device axis of size 1 for ``pmap``."""
    if "device_put_replicated" in vars(jax):
        return

    def device_put_replicated(tree, devices):
        if len(devices) != 1:
            raise ValueError(f"this benchmark runs Brax's trainer on one device; got {len(devices)} (set e.g. CUDA_VISIBLE_DEVICES=0)")
        return jax.tree_util.tree_map(lambda x: jax.device_put(jax.numpy.asarray(x)[None], devices[0]), tree)

    jax.device_put_replicated = device_put_replicated


def run_brax(env: str, backend: str, steps: int, eval_episodes: int, seed: int) -> dict:
    import functools

    from brax import envs
    from brax.training.agents.ppo import networks as brax_networks
    from brax.training.agents.ppo import train as brax_ppo

    _restore_device_put_replicated()
    config = make_config(env, backend, steps)
    kwargs = brax_kwargs(config, eval_episodes, seed)
    network_factory = functools.partial(
        brax_networks.make_ppo_networks, policy_hidden_layer_sizes=config.hidden_sizes,
        value_hidden_layer_sizes=config.hidden_sizes, activation=getattr(jax.nn, config.activation),
    )
    evals = []
    start, cpu = time.perf_counter(), time.process_time()

    def progress(step, metrics):
        evals.append((int(step), float(metrics["eval/episode_reward"]), time.perf_counter() - start))
        print(f"brax step {step}: eval {evals[-1][1]:.1f} at {evals[-1][2]:.0f} s", flush=True)

    brax_ppo.train(environment=envs.get_environment(env, backend=backend), progress_fn=progress,
                   network_factory=network_factory, **kwargs)
    return {
        "kwargs": {**kwargs, "hidden_sizes": list(config.hidden_sizes), "activation": config.activation},
        "env_steps": evals[-1][0],
        "train_seconds_incl_compile": time.perf_counter() - start,
        "train_cpu_seconds_incl_compile": time.process_time() - cpu,
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
    result = {"env": args.env, "backend": args.backend, "steps": args.steps, "machine": machine_description(),
              "command": " ".join(["python", *sys.argv])}
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
