"""Throughput of two source trees of this package, measured alternately in one invocation.

For a refactor that must not change speed: each point (algorithm, seed count) runs the
public ``jax.jit(jax.vmap(pjp.make_train(config)))`` program (or, with ``--program durable``,
a whole run as ``train`` runs it: ``pjp.train_durable`` with its chunks, logs and checkpoints; with ``--program rlhf``, a
tiny ``rlhf`` run, RL responses per second) of tree A and tree B in
separate child processes (``PYTHONPATH`` set to the tree), in the order A B B A repeated,
so slow drifts of a shared machine hit both trees alike. Each child compiles, runs once
to warm up, then times ``--calls`` steady-state calls and reports the best.

    git worktree add /tmp/before <old commit>
    python benchmarks/ab_trees.py --a /tmp/before --b . --out benchmarks/results/refactor/throughput_ab.json

The JSON holds every measurement, the per-point median env-steps/s of each tree and the
ratio B / A, each tree's final-return summary across seeds (to see what a change did to
learning; ``--set FIELD=VALUE`` configures both trees alike), the machine, and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def point(spec: dict) -> dict:
    """One measurement in this process (the tree comes from ``PYTHONPATH``)."""
    import purejaxrl_ppo as pjp  # first: applies the XLA:CPU workaround

    import jax

    if spec.get("program") == "rlhf":
        return rlhf_point(spec)
    values = {"algo": spec["algo"], "env_name": spec["env"], "total_timesteps": spec["total"], **spec.get("set", {})}
    config = pjp.config_from_dict(values)
    if spec.get("program") == "durable":
        return durable_point(spec, config)
    keys = jax.random.split(jax.random.PRNGKey(0), spec["seeds"])
    train = jax.jit(jax.vmap(pjp.make_train(config)))
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_seconds = time.perf_counter() - start
    out = jax.block_until_ready(compiled(keys))
    finals = pjp.final_returns(jax.device_get(out.metrics["episode_return"]))
    best = float("inf")
    for _ in range(spec["calls"]):
        start = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        best = min(best, time.perf_counter() - start)
    steps = spec["seeds"] * config.num_updates * config.batch_size
    return {**spec, "package": pjp.__file__, "compile_seconds": compile_seconds, "seconds": best,
            "env_steps_per_second": steps / best, "final_return": pjp.summarize(finals),
            "final_return_per_seed": [float(x) for x in finals]}


def durable_point(spec: dict, config) -> dict:
    """One ``train`` run as the command runs it (``pjp.train_durable``: chunks, logs and a checkpoint after each
    chunk) in a temporary run directory; env-steps/s of its run time (compile excluded), host work included."""
    import tempfile

    import purejaxrl_ppo as pjp

    with tempfile.TemporaryDirectory() as tmp:
        result = pjp.train_durable(Path(tmp) / "run", config, pjp.RunOptions(num_seeds=spec["seeds"]))
    finals = pjp.final_returns(result.metrics["episode_return"])
    return {**spec, "package": pjp.__file__, "compile_seconds": result.compile_seconds, "seconds": result.run_seconds,
            "env_steps_per_second": result.env_steps_per_second, "final_return": pjp.summarize(finals),
            "final_return_per_seed": [float(x) for x in finals]}


#: The RLHF run of ``--program rlhf``: the tests' tiny model and task (tests/cli/test_rlhf_cli.py), more iterations.
RLHF_POINT = dict(vocab_size=8, prompt_len=3, response_len=5, base_mean_length=3, d_model=16, num_layers=1,
                  num_heads=2, sft_steps=20, rm_steps=20, rm_train_pairs=64, rollout_batch=8, num_minibatches=2,
                  eval_size=16)


def rlhf_point(spec: dict) -> dict:
    """One ``rlhf`` run as the command runs it (SFT, reward model, RL in chunks with checkpoints and logs) in a
    temporary directory; the rate is RL responses generated per second of RL run time (compile excluded), the
    unit the RLHF logs count as env steps; the "final return" is the gold score after RL, per seed."""
    import tempfile

    import purejaxrl_ppo as pjp
    from purejaxrl_ppo.core.rlhf.config import RLHFConfig

    if (Path(pjp.__file__).parent / "driver" / "rlhf.py").is_file():
        from purejaxrl_ppo.driver.rlhf import run_rlhf
    else:  # a tree from before the one durable-run driver (its editable install would find this checkout's driver)
        from purejaxrl_ppo.launch.rlhf import run_rlhf
    cfg = RLHFConfig(**{**RLHF_POINT, "algo": spec["algo"], "num_iterations": spec["total"], **spec.get("set", {})})
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_rlhf(cfg, Path(tmp) / "run", num_seeds=spec["seeds"], chunk_iterations=max(1, spec["total"] // 4))
    rl = summary["stages"]["rl"]
    responses = spec["seeds"] * cfg.num_iterations * cfg.rollout_batch
    gold = [float(x) for x in summary["per_seed"]["gold_score"]]
    return {**spec, "package": pjp.__file__, "compile_seconds": rl["compile_seconds"], "seconds": rl["run_seconds"],
            "env_steps_per_second": responses / rl["run_seconds"], "final_return": pjp.summarize(gold),
            "final_return_per_seed": gold}


def _child(tree: Path, spec: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--point", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd="/")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"child failed for {tree}: {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(lines[-1])


def tree_version(tree: Path) -> str:
    """``<commit>`` of a tree's git checkout, ``+ uncommitted changes`` where its package differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=60).stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "not a git checkout"
    return commit[:12] + (" + uncommitted changes" if git("status", "--porcelain", "--", "purejaxrl_ppo") else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", type=Path, help="tree A (e.g. a worktree of the old commit)")
    parser.add_argument("--b", type=Path, help="tree B (e.g. this checkout)")
    parser.add_argument("--algos", nargs="+", default=["ppo", "trpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--total", type=int, default=100_352, help="env steps per seed")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per child (best reported)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config fields for both trees (values parsed as JSON, else strings)")
    parser.add_argument("--repeats", type=int, default=2, help="A B B A blocks per point")
    parser.add_argument("--program", choices=("scan", "durable", "rlhf"), default="scan",
                        help="scan: jit(vmap(make_train)) (best of --calls); durable: one run as `train` runs it "
                             "(pjp.train_durable: chunks, logs, checkpoints; --calls ignored); rlhf: one `rlhf` run "
                             "of a tiny model (--total = RL iterations; rate = RL responses/s; --env ignored)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(point(json.loads(args.point))), flush=True)
        return 0
    if args.a is None or args.b is None or args.out is None:
        parser.error("--a, --b and --out are required")

    overrides = {}
    for item in args.set:
        name, _, text = item.partition("=")
        try:
            overrides[name] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name] = text
    results, summary = [], []
    for algo in args.algos:
        for seeds in args.seeds:
            spec = {"algo": algo, "env": args.env, "seeds": seeds, "total": args.total, "calls": args.calls,
                    "set": overrides, "program": args.program}
            measured: dict[str, list[float]] = {"a": [], "b": []}
            for _ in range(args.repeats):
                for label in ("a", "b", "b", "a"):
                    row = {**_child(getattr(args, label), spec, args.timeout), "tree": label}
                    results.append(row)
                    measured[label].append(row["env_steps_per_second"])
            a, b = statistics.median(measured["a"]), statistics.median(measured["b"])
            finals = {label: next(r["final_return"] for r in results[::-1] if r["tree"] == label and
                                  r["algo"] == algo and r["seeds"] == seeds) for label in ("a", "b")}
            summary.append({"algo": algo, "seeds": seeds, "a_env_steps_per_second": a,
                            "b_env_steps_per_second": b, "ratio_b_over_a": b / a,
                            "a_final_return": finals["a"], "b_final_return": finals["b"]})
            print(f"{algo} {seeds:>3} seeds: A {a:,.0f}  B {b:,.0f}  B/A {b / a:.3f}   final return IQM "
                  f"A {finals['a']['iqm']:.1f}  B {finals['b']['iqm']:.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python " + " ".join(shlex.quote(x) for x in [sys.argv[0], *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "a": str(args.a), "b": str(args.b), "a_version": tree_version(args.a), "b_version": tree_version(args.b),
        "rate": "RL responses/s" if args.program == "rlhf" else "env-steps/s",
        "outcome": "gold score after RL" if args.program == "rlhf" else "final return",
        "summary": summary, "measurements": results,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
