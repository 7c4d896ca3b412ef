"""RLHF on the synthetic language: the default pipeline's wall time, the β / δ grid with CIs, and tokens/s.

``pipeline``: ``python -m purejaxrl_ppo rlhf`` at its defaults (the CPU-sized pipeline), once with
``--algo ppo`` and once with ``--algo trpo``, each a fresh process (compile included): wall time and
the pinned summary (SFT held-out loss and its floor, reward-model accuracy, gold / proxy / KL before
and after RL, medians over the 4 seeds).

``grid``: reusing the PPO pipeline's SFT and reward model, RL with PPO for every β of ``--kl-coefs``
(one vmapped program for all β × seeds) and TRPO for every δ of ``--max-kls`` (β at its default),
``--seeds`` seeds each. Per setting: the final gold score, proxy score and KL to the reference on the
fixed held-out prompts, as IQM and mean with 95% stratified-bootstrap CIs (rliable, ``--reps``).
The run directory's ``overoptimisation.png`` (gold and proxy against KL for every setting) is copied.

``throughput``: tokens/s of generation alone (KV-cached sampling, ``generate.sample``), of one
iteration's scoring (full forward passes of policy, reference, value and reward model) and of the
PPO and TRPO updates, at the default sizes and ``--seeds`` seeds vmapped; compile times apart.

    PYTHONPATH=$PWD python benchmarks/rlhf.py pipeline grid throughput --seeds 8 --out benchmarks/results/rlhf

Writes ``rlhf.json`` (with the command, machine, date and versions) and ``rlhf.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import purejaxrl_ppo  # noqa: F401,I001  (first: applies the XLA:CPU workaround)

import jax
import numpy as np

from purejaxrl_ppo.analysis import study as ss
from purejaxrl_ppo.core.rlhf import generate, model, rl
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.task import make_task, sample_prompts
from purejaxrl_ppo.driver.rlhf import run_rlhf
from purejaxrl_ppo.runs.provenance import machine_description, versions

PINNED = ("sft_loss", "sft_entropy_floor", "rm_accuracy", "rm_gold_accuracy", "gold_score_initial", "gold_score",
          "proxy_score_initial", "proxy_score", "kl_to_reference")


def run_pipeline(work: Path) -> dict[str, Any]:
    """The default CLI pipeline for PPO and TRPO, each in a fresh process."""
    results = {}
    for algo in ("ppo", "trpo"):
        out = work / f"default-{algo}"
        command = [sys.executable, "-m", "purejaxrl_ppo", "rlhf", "--algo", algo, "--out", str(out), "--quiet"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
        results[algo] = {"command": " ".join(shlex.quote(c) for c in command[1:]), "process_wall_seconds": wall,
                         **{k: summary[k] for k in PINNED}, "stages": summary["stages"]}
        print(f"pipeline {algo}: {wall:.0f} s", flush=True)
    return results


def interval(values: np.ndarray, reps: int) -> dict[str, Any]:
    """IQM and mean with their 95% CIs over seeds (``values [seeds]``)."""
    points, intervals = ss.aggregate_estimates({"x": np.asarray(values, np.float64)[:, None]}, reps=reps)
    return {"iqm": points["x"]["iqm"], "iqm_ci95": intervals["x"]["iqm"],
            "mean": points["x"]["mean"], "mean_ci95": intervals["x"]["mean"]}


def run_grid(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """PPO at every β and TRPO at every δ, from the PPO pipeline's SFT and reward model."""
    source = work / "default-ppo"
    if not (source / "rm" / "params.msgpack").is_file():
        raise SystemExit(f"grid reuses {source}'s SFT and reward model: run the pipeline part first")
    cfg = RLHFConfig()
    kl_coefs = tuple(b for b in args.kl_coefs if b != cfg.kl_coef)  # the run's own β is the main group
    out = work / "grid"
    start = time.perf_counter()
    run_rlhf(cfg, out, num_seeds=args.seeds, sft_from=source, rm_from=source, overwrite=True,
             sweep_kl_coefs=kl_coefs, sweep_max_kls=tuple(args.max_kls))
    wall = time.perf_counter() - start
    sweep = json.loads((out / "sweep.json").read_text())
    settings = []
    for setting in sweep["settings"]:
        row = {k: setting[k] for k in ("label", "algo", "kl_coef", "max_kl")}
        for name in ("gold_score", "proxy_score", "kl_to_reference"):
            row[name] = interval(np.asarray(setting["per_seed"][name]), args.reps)
        settings.append(row)
    shutil.copy(out / "overoptimisation.png", args.out / "overoptimisation.png")
    print(f"grid: {wall:.0f} s", flush=True)
    return {"seeds": args.seeds, "wall_seconds": wall, "initial": sweep["initial"], "settings": settings}


def timed(fn, *inputs, reps: int) -> tuple[float, float]:
    """(compile seconds, seconds per call) of a jitted ``fn``."""
    start = time.perf_counter()
    compiled = fn.lower(*inputs).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(*inputs))
    start = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(compiled(*inputs))
    return compile_seconds, (time.perf_counter() - start) / reps


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Tokens/s of generation, scoring and both updates at the default sizes, ``--seeds`` seeds vmapped."""
    results = {}
    for algo in ("ppo", "trpo"):
        cfg = RLHFConfig(algo=algo)
        task = make_task(cfg)
        ref = model.init_lm(jax.random.PRNGKey(0), cfg)
        rm = model.scalar_model_from(ref, jax.random.PRNGKey(1), cfg, zero_head=False)
        keys = jax.random.split(jax.random.PRNGKey(2), args.seeds)
        states = jax.vmap(lambda k: rl.rl_init(cfg, ref, rm, k))(keys)
        tokens = args.seeds * cfg.rollout_batch * cfg.response_len  # response positions per call

        def sample_only(state, key, cfg=cfg, task=task):
            prompts = sample_prompts(task, cfg, key, cfg.rollout_batch)
            return generate.sample(state.policy, cfg, prompts, key, cfg.temperature)

        def rollout(state, key, cfg=cfg, task=task):
            return rl.rollout(cfg, task, ref, rm, state, key)[0]

        batches = jax.jit(jax.vmap(rollout))(states, keys)
        update = rl.UPDATES[algo]
        row = {}
        for name, fn, inputs in (
            ("generation", jax.jit(jax.vmap(sample_only)), (states, keys)),
            ("rollout", jax.jit(jax.vmap(rollout)), (states, keys)),
            ("update", jax.jit(jax.vmap(lambda s, b, k, cfg=cfg, update=update: update(cfg, s, b, k))),
             (states, batches, keys)),
        ):
            compile_seconds, seconds = timed(fn, *inputs, reps=args.throughput_reps)
            row[name] = {"compile_seconds": compile_seconds, "seconds_per_call": seconds,
                         "tokens_per_second": tokens / seconds}
            print(f"throughput {algo} {name}: {tokens / seconds:,.0f} tokens/s", flush=True)
        results[algo] = row
    return {"seeds": args.seeds, "tokens_per_call": tokens, **results}


def _ci(x: dict[str, Any]) -> str:
    low, high = x["iqm_ci95"]
    return f"{x['iqm']:.2f} [{low:.2f}, {high:.2f}]"


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``rlhf.md``."""
    lines = [f"# RLHF on the synthetic language\n\nMeasured {report['date']} on {report['machine_text']}. "
             "Each part below names the command that measured it (from the repository root, `PYTHONPATH=$PWD`).\n"]
    if "pipeline" in report:
        lines += ["## The default pipeline (`python -m purejaxrl_ppo rlhf`, 4 seeds, medians)\n",
                  f"`{report['pipeline']['command']}`\n",
                  "| algo | wall (process) | SFT loss (floor) | RM acc. (vs gold) | gold before → after | "
                  "proxy before → after | KL to ref. (nats) |", "|---|---:|---:|---:|---:|---:|---:|"]
        for algo, r in ((a, report["pipeline"][a]) for a in ("ppo", "trpo")):
            lines.append(f"| {algo.upper()} | {r['process_wall_seconds']:.0f} s | {r['sft_loss']:.3f} "
                         f"({r['sft_entropy_floor']:.3f}) | {r['rm_accuracy']:.3f} ({r['rm_gold_accuracy']:.3f}) | "
                         f"{r['gold_score_initial']:.2f} → {r['gold_score']:.2f} | {r['proxy_score_initial']:.2f} → "
                         f"{r['proxy_score']:.2f} | {r['kl_to_reference']:.2f} |")
        lines.append("")
    if "grid" in report:
        grid = report["grid"]
        lines += [f"## Gold and proxy score against KL ({grid['seeds']} seeds each; IQM [95% CI])\n",
                  f"`{grid['command']}`\n",
                  f"Before RL (the SFT policy): gold {grid['initial']['gold_score']:.2f}, proxy "
                  f"{grid['initial']['proxy_score']:.2f}.\n",
                  "| setting | KL to ref. (nats) | gold score | proxy score |", "|---|---:|---:|---:|"]
        for s in grid["settings"]:
            lines.append(f"| {s['label']} | {_ci(s['kl_to_reference'])} | {_ci(s['gold_score'])} | "
                         f"{_ci(s['proxy_score'])} |")
        lines += ["", "![gold and proxy against KL](overoptimisation.png)", ""]
    if "throughput" in report:
        t = report["throughput"]
        lines += [f"## Tokens/s ({t['seeds']} seeds vmapped, {t['tokens_per_call']} response tokens per call)\n",
                  f"`{t['command']}`\n",
                  "| algo | generation (KV cache) | rollout (generate + score) | update | compile: gen / rollout / "
                  "update |", "|---|---:|---:|---:|---:|"]
        for algo in ("ppo", "trpo"):
            r = t[algo]
            lines.append(f"| {algo.upper()} | {r['generation']['tokens_per_second']:,.0f} | "
                         f"{r['rollout']['tokens_per_second']:,.0f} | {r['update']['tokens_per_second']:,.0f} | "
                         f"{r['generation']['compile_seconds']:.1f} / {r['rollout']['compile_seconds']:.1f} / "
                         f"{r['update']['compile_seconds']:.1f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("parts", nargs="+", choices=("pipeline", "grid", "throughput"))
    parser.add_argument("--seeds", type=int, default=8, help="seeds per grid setting and vmapped for throughput")
    parser.add_argument("--kl-coefs", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.1, 0.3])
    parser.add_argument("--max-kls", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the CIs")
    parser.add_argument("--throughput-reps", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None, help="where the run directories go (default: a temp dir)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="rlhf-bench-"))
    report_path = args.out / "rlhf.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    machine = machine_description()
    command = "python benchmarks/rlhf.py " + " ".join(shlex.quote(a) for a in argv)
    report.update(date=time.strftime("%Y-%m-%d"), machine=machine, versions=versions(),
                  machine_text=f"a {machine.get('cpu_count', '?')}-core {machine.get('processor', 'CPU')} CPU VM, no GPU, "
                               f"jax {jax.__version__}")
    today = time.strftime("%Y-%m-%d")  # each part keeps its own date: a later run may redo one part only
    if "pipeline" in args.parts:
        report["pipeline"] = {**run_pipeline(work), "command": command, "date": today}
    if "grid" in args.parts:
        report["grid"] = {**run_grid(work, args), "command": command, "date": today}
    if "throughput" in args.parts:
        report["throughput"] = {**run_throughput(args), "command": command, "date": today}
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "rlhf.md").write_text(markdown(report))
    print(f"wrote {report_path} and {args.out / 'rlhf.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
