"""Memory-based policies: learning on partially observed tasks, and throughput.

``learning``: PPO and TRPO with the MLP, GRU and attention policies on tasks an MLP cannot
solve: CartPole-v1 with its velocities masked (``CartPole-v1?mask=velocity``) and bsuite's
MemoryChain (a context bit shown at the first step, to be recalled at the last: an MLP is at
chance, expected reward 0). Every configuration trains ``--seeds`` seeds in one program
(:func:`purejaxrl_ppo.train_seeds`); per seed, the final return is the mean over the last
updates (``analysis.stats.final_returns``) and the sample efficiency the area under the
learning curve (``analysis.study.area_under_curve``: the mean return over training); the table
gives the IQM of each with a 95% stratified-bootstrap CI (rliable), the wall time (compile
included), and for each task and policy P(PPO > TRPO) on both scores. Per-seed curves go to
``curves.npz``.

``throughput``: env-steps/s of PPO with a GRU at PureJaxRL's ``ppo_rnn.py`` configuration
(CartPole-v1, 4 envs × 128 steps, GRU 128, 4 epochs × 4 minibatches) at 1 / 16 / 64 seeds, with
TRPO-GRU, attention and the MLP beside it; compile time measured apart. Each point runs
``--updates`` updates after compiling (steady state; a CPU cannot run the full budget at 64 seeds).

    PYTHONPATH=$PWD python benchmarks/memory.py learning --seeds 16 --out benchmarks/results/memory
    PYTHONPATH=$PWD python benchmarks/memory.py throughput --seeds 1 16 64 --out benchmarks/results/memory

Both write JSON (and the learning part a Markdown table) with the command, machine and versions.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import numpy as np

from purejaxrl_ppo.analysis import study as ss
from purejaxrl_ppo.analysis.stats import final_returns
from purejaxrl_ppo.runs.provenance import machine_description

#: Network sizes of the learning study (CPU-sized): the MLP as the library default, memory nets one encoder layer.
POLICIES = {
    "mlp": dict(policy="mlp", hidden_sizes=(64, 64)),
    "gru": dict(policy="gru", hidden_sizes=(64,), rnn_hidden_size=64),
    "attention": dict(policy="attention", hidden_sizes=(64,), embed_dim=32, num_heads=2, context_len=8),
}
#: Rollout and update shape shared by every run: 16 envs × 32 steps; 4 minibatches (of 4 whole env sequences).
COMMON = dict(num_envs=16, num_steps=32)
ALGO_FIELDS = {
    "ppo": dict(num_minibatches=4, update_epochs=4),
    "trpo": dict(critic_minibatches=4, critic_epochs=5),
}
#: task -> (env name, env steps per seed, which policies, which algorithms)
TASKS = {
    "memory_chain": ("MemoryChain-bsuite", 50_000, ("mlp", "gru", "attention"), ("ppo", "trpo")),
    "masked_cartpole": ("CartPole-v1?mask=velocity", 200_000, ("mlp", "gru", "attention"), ("ppo", "trpo")),
}


def make_config(algo: str, env: str, budget: int, policy: str) -> pjp.BaseConfig:
    cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    return cls(env_name=env, total_timesteps=budget, **COMMON, **ALGO_FIELDS[algo], **POLICIES[policy])


def provenance(argv: list[str]) -> dict[str, Any]:
    versions = {name: metadata.version(name) for name in ("jax", "flax", "optax", "gymnax")}
    return {
        "command": "python benchmarks/memory.py " + " ".join(shlex.quote(a) for a in argv),
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions,
    }


def run_learning(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    results, curves = [], {}
    for task in args.tasks:
        env, budget, policies, algos = TASKS[task]
        budget = int(budget * args.budget_scale)
        for algo in (a for a in algos if a in args.algos):
            for policy in (p for p in policies if p in args.policies):
                config = make_config(algo, env, budget, policy)
                start = time.perf_counter()
                out = pjp.train_seeds(config, args.seeds, jax.random.PRNGKey(args.seed))
                returns = np.asarray(jax.device_get(out.metrics["episode_return"]))
                wall = time.perf_counter() - start
                finals = final_returns(returns)
                auc = ss.area_under_curve(returns)
                curves[f"{task}/{algo}/{policy}"] = returns
                points, intervals = ss.aggregate_estimates({"final": finals[:, None], "auc": auc[:, None]}, reps=2000)
                row = {
                    "task": task, "env": env, "algo": algo, "policy": policy, "seeds": args.seeds,
                    "env_steps_per_seed": config.num_updates * config.batch_size,
                    "final_return_iqm": points["final"]["iqm"], "final_return_iqm_ci95": intervals["final"]["iqm"],
                    "auc_iqm": points["auc"]["iqm"], "auc_iqm_ci95": intervals["auc"]["iqm"],
                    "auc_per_seed": [float(x) for x in auc],
                    "final_return_median": float(np.nanmedian(finals)),
                    "final_return_per_seed": [float(x) for x in finals],
                    "curve_median": [float(x) for x in np.nanmedian(returns, axis=0)],
                    "wall_seconds": wall,
                    "env_steps_per_second": args.seeds * config.num_updates * config.batch_size / wall,
                    "config": config.to_dict(),
                }
                results.append(row)
                low, high = row["final_return_iqm_ci95"]
                print(f"{task} {algo} {policy}: IQM {row['final_return_iqm']:.1f} [{low:.1f}, {high:.1f}] "
                      f"({wall:.0f} s)", flush=True)
                partial = {"kind": "learning", **provenance(argv), "results": results, "complete": False}
                (args.out / "learning.json").write_text(json.dumps(partial, indent=1) + "\n")  # survives a stop
    np.savez_compressed(args.out / "curves.npz", **curves)
    return {"kind": "learning", **provenance(argv), "results": results, "ppo_vs_trpo": ppo_vs_trpo(results),
            "complete": True}


def ppo_vs_trpo(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """P(PPO > TRPO) with a 95% CI, on final return and on AUC, for each task and policy run by both."""
    rows = {(r["task"], r["policy"], r["algo"]): r for r in results}
    out = []
    for (task, policy, algo), ppo in rows.items():
        trpo = rows.get((task, policy, "trpo"))
        if algo != "ppo" or trpo is None:
            continue
        entry = {"task": task, "policy": policy}
        for score in ("final_return_per_seed", "auc_per_seed"):
            x, y = np.asarray(ppo[score])[:, None], np.asarray(trpo[score])[:, None]
            entry[score.replace("_per_seed", "")] = ss.probability_of_improvement(x, y)
        out.append(entry)
    return out


def describe(machine: dict[str, Any]) -> str:
    """One line from :func:`machine_description`."""
    return f"{machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs, jax backend {machine.get('jax_backend', '?')}"


def learning_table(report: dict[str, Any]) -> str:
    lines = [
        f"Command: `{report['command']}`  ",
        f"Machine: {describe(report['machine'])}; {report['date']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        "| task | algo | policy | seeds | env steps/seed | final return IQM [95% CI] | AUC IQM [95% CI] "
        "| wall s (compile incl.) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        low, high = r["final_return_iqm_ci95"]
        a_low, a_high = r["auc_iqm_ci95"]
        lines.append(f"| {r['task']} | {r['algo'].upper()} | {r['policy']} | {r['seeds']} | {r['env_steps_per_seed']:,} "
                     f"| {r['final_return_iqm']:.1f} [{low:.1f}, {high:.1f}] | {r['auc_iqm']:.1f} [{a_low:.1f}, {a_high:.1f}] "
                     f"| {r['wall_seconds']:.0f} |")
    lines += ["", "| task | policy | P(PPO > TRPO), final return | P(PPO > TRPO), AUC |", "|---|---|---|---|"]
    for e in report.get("ppo_vs_trpo", []):
        cells = [f"{e[k][0]:.2f} [{e[k][1][0]:.2f}, {e[k][1][1]:.2f}]" for k in ("final_return", "auc")]
        lines.append(f"| {e['task']} | {e['policy']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


#: PureJaxRL ppo_rnn.py's configuration (CartPole-v1, GRU 128), and the same shape for the other policies.
THROUGHPUT = {
    ("ppo", "gru"): dict(policy="gru", rnn_hidden_size=128, hidden_sizes=(128,)),
    ("trpo", "gru"): dict(policy="gru", rnn_hidden_size=128, hidden_sizes=(128,)),
    ("ppo", "attention"): dict(policy="attention", embed_dim=128, num_heads=4, context_len=16, hidden_sizes=(128,)),
    ("ppo", "mlp"): dict(policy="mlp", hidden_sizes=(64, 64)),
}


def run_throughput(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    results = []
    for (algo, policy), fields in THROUGHPUT.items():
        for seeds in args.seeds_list:
            shape = dict(env_name="CartPole-v1", num_envs=4, num_steps=128, total_timesteps=4 * 128 * args.updates)
            extra = dict(num_minibatches=4, update_epochs=4) if algo == "ppo" else dict(critic_minibatches=4)
            cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
            config = cls(**shape, **extra, **fields)
            train = jax.jit(jax.vmap(pjp.make_train(config)))
            keys = jax.random.split(jax.random.PRNGKey(0), seeds)
            start = time.perf_counter()
            compiled = train.lower(keys).compile()
            compile_seconds = time.perf_counter() - start
            start = time.perf_counter()
            jax.block_until_ready(compiled(keys))
            run_seconds = time.perf_counter() - start
            rate = seeds * config.num_updates * config.batch_size / run_seconds
            results.append({"algo": algo, "policy": policy, "seeds": seeds, "updates": config.num_updates,
                            "compile_seconds": compile_seconds, "run_seconds": run_seconds,
                            "env_steps_per_second": rate, "config": config.to_dict()})
            print(f"{algo} {policy} {seeds} seeds: {rate:,.0f} env-steps/s, compile {compile_seconds:.1f} s", flush=True)
    return {"kind": "throughput", **provenance(argv), "results": results}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    learning = sub.add_parser("learning")
    learning.add_argument("--seeds", type=int, default=16)
    learning.add_argument("--seed", type=int, default=0)
    learning.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    learning.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    learning.add_argument("--algos", nargs="+", choices=list(ALGO_FIELDS), default=list(ALGO_FIELDS))
    learning.add_argument("--budget-scale", type=float, default=1.0, help="multiplies each task's env steps per seed")
    learning.add_argument("--out", type=Path, required=True)
    throughput = sub.add_parser("throughput")
    throughput.add_argument("--seeds", dest="seeds_list", type=int, nargs="+", default=[1, 16, 64])
    throughput.add_argument("--updates", type=int, default=2, help="updates timed per point (after compiling)")
    throughput.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part == "learning":
        report = run_learning(args, argv)
        (args.out / "learning.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out / "learning.md").write_text(learning_table(report))
        print(learning_table(report))
    else:
        report = run_throughput(args, argv)
        (args.out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
