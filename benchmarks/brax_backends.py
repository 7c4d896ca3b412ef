"""Compile time and env-steps/s of our training program per Brax physics backend.

    PYTHONPATH=. python benchmarks/brax_backends.py --env inverted_pendulum hopper \
        --backend mjx generalized positional

For each (env, backend), in a fresh subprocess so compile caches do not carry
over: build the ``brax_preset`` PPO config (1 seed), compile ``train_updates``
for ``--updates`` updates ahead of time, run it once to warm up, then time a
second run. Reports wall-clock and process CPU seconds (all threads) for both
the compile and the steady-state run; on a shared machine CPU time is the
fairer comparison. Writes ``benchmarks/results/brax_backends.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import purejaxrl_ppo as pjp  # first: applies the XLA:CPU workaround
import jax
from purejaxrl_ppo.core.loop import init_train_state, train_updates

env, backend, updates = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = f"brax/{env}?backend={backend}"
config = pjp.PPOConfig(env_name=name, **pjp.brax_preset("ppo", name))
state = jax.block_until_ready(jax.jit(lambda k: init_train_state(config, k))(jax.random.PRNGKey(0)))
run = jax.jit(lambda s: train_updates(config, s, updates))
wall, cpu = time.perf_counter(), time.process_time()
compiled = run.lower(state).compile()
compile_wall, compile_cpu = time.perf_counter() - wall, time.process_time() - cpu
state, _ = jax.block_until_ready(run(state))  # warm-up
wall, cpu = time.perf_counter(), time.process_time()
jax.block_until_ready(run(state))
run_wall, run_cpu = time.perf_counter() - wall, time.process_time() - cpu
steps = updates * config.batch_size
print(json.dumps({
    "env": env, "backend": backend, "num_envs": config.num_envs, "num_steps": config.num_steps,
    "updates": updates, "env_steps": steps,
    "compile_wall_s": compile_wall, "compile_cpu_s": compile_cpu,
    "run_wall_s": run_wall, "run_cpu_s": run_cpu,
    "env_steps_per_wall_s": steps / run_wall, "env_steps_per_cpu_s": steps / run_cpu,
}))
"""


def measure(env: str, backend: str, updates: int, timeout: float) -> dict:
    """One (env, backend) in a fresh interpreter; ``{"error": ...}`` on failure or timeout."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, env, backend, str(updates)],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"env": env, "backend": backend, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        return {"env": env, "backend": backend, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", nargs="+", default=["inverted_pendulum", "hopper"])
    parser.add_argument("--backend", nargs="+", default=["mjx", "generalized", "positional"])
    parser.add_argument("--updates", type=int, default=8, help="updates per timed run")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per (env, backend)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "brax_backends.json")
    args = parser.parse_args()

    import purejaxrl_ppo  # noqa: F401  (machine_description imports jax: flag first)
    from purejaxrl_ppo.runs.provenance import machine_description

    result = {"machine": machine_description(), "command": " ".join(sys.argv), "runs": []}
    for env in args.env:
        for backend in args.backend:
            start = time.perf_counter()
            row = measure(env, backend, args.updates, args.timeout)
            row["total_wall_s"] = time.perf_counter() - start
            result["runs"].append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each: a timeout loses nothing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
