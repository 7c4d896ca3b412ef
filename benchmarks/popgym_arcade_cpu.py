"""What POPGym Arcade costs on this machine, and so why its learning result needs an accelerator.

Two measurements, each after compiling:

* **env alone**: env-steps/s of each game in ``--games`` (uniform-random actions through the vmapped
  ``reset``/``step``, 16 envs per seed, ``--env-steps`` steps, at each of ``--seeds`` seeds; the function
  ``benchmarks/suites.py`` times every suite with). A step renders a full RGB frame.
* **the CNN**: seconds per gradient of the library's IMPALA CNN (``cnn_channels`` (16, 32, 32), the
  default) on ``--batch`` frames per seed, at each ``SIZE:SEEDS`` point of ``--cnn`` (frame size, seeds;
  several seeds are vmapped with one parameter set per seed, as ``train_seeds`` runs them: XLA:CPU lowers a
  convolution whose kernel carries the seed axis to a grouped convolution).

From the CNN figure the JSON derives an estimate of one PPO update of the suites' configuration (16 envs
x 64 steps, 4 epochs, separate actor and critic CNNs: 2 x 4 x 1024 frame-gradients per seed at the measured
cost per frame-gradient; the rollout's forward passes not counted) and of 100k env steps per seed.

    PYTHONPATH=$PWD python benchmarks/popgym_arcade_cpu.py --seeds 1 --env-steps 16 \
        --out benchmarks/results/suites/popgym_arcade_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suites import env_only_rate  # noqa: E402

from purejaxrl_ppo.core.networks.encoders import ImpalaCNN  # noqa: E402
from purejaxrl_ppo.runs.provenance import machine_description  # noqa: E402

GAMES = ("CartPoleEasy", "SkittlesEasy", "CountRecallEasy", "NavigatorEasy", "MineSweeperEasy", "BattleShipEasy")
#: The PPO update of ``benchmarks/suites.py``: 16 envs x 64 steps, 4 epochs, actor and critic CNNs.
FRAMES_PER_UPDATE, EPOCHS, NETWORKS = 16 * 64, 4, 2


def cnn_point(text: str) -> tuple[int, int]:
    """``"SIZE:SEEDS"`` -> ``(size, seeds)``."""
    size, seeds = text.split(":")
    return int(size), int(seeds)


def cnn_gradient_seconds(size: int, seeds: int, batch: int, repeats: int) -> tuple[float, float]:
    """``(compile seconds, median seconds per call)`` of the gradient of the default IMPALA CNN on
    ``[seeds, batch, size, size, 3]`` frames, one parameter set per seed (vmapped)."""
    cnn = ImpalaCNN(pjp.PPOConfig().cnn_channels)
    frames = jax.random.uniform(jax.random.PRNGKey(1), (seeds, batch, size, size, 3))
    params = jax.vmap(lambda k: cnn.init(k, frames[0, :1]))(jax.random.split(jax.random.PRNGKey(0), seeds))
    grad = jax.jit(jax.vmap(jax.grad(lambda p, x: jnp.mean(cnn.apply(p, x) ** 2))))
    start = time.perf_counter()
    compiled = grad.lower(params, frames).compile()
    compile_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, frames))
        times.append(time.perf_counter() - start)
    return compile_seconds, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=list(GAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--env-steps", type=int, default=32, help="steps per env of the env-alone measurement")
    parser.add_argument("--cnn", type=cnn_point, nargs="+", default=[(128, 1), (32, 1), (32, 8)],
                        help="SIZE:SEEDS points of the CNN measurement (frame size, seeds)")
    parser.add_argument("--batch", type=int, default=64, help="frames per seed in one CNN gradient")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    doc: dict[str, Any] = {
        "kind": "popgym_arcade_cpu",
        "command": "python benchmarks/popgym_arcade_cpu.py " + " ".join(shlex.quote(a) for a in argv),
        "machine": machine_description(), "date": time.strftime("%Y-%m-%d"),
        "versions": {n: metadata.version(n) for n in ("jax", "flax", "popgym-arcade", "gymnax")},
        "env_alone": [], "cnn": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for game in args.games:
        for seeds in args.seeds:
            compile_s, rate = env_only_rate(f"popgym_arcade/{game}", 16, seeds, args.env_steps)
            doc["env_alone"].append({"game": game, "seeds": seeds, "envs_per_seed": 16, "steps_per_env": args.env_steps,
                                     "compile_seconds": compile_s, "env_steps_per_second": rate})
            print(f"{game} {seeds} seed(s): {rate:,.0f} env-steps/s alone (compile {compile_s:.1f} s)", flush=True)
            args.out.write_text(json.dumps({**doc, "complete": False}, indent=1) + "\n")
    for size, seeds in args.cnn:
        compile_s, seconds = cnn_gradient_seconds(size, seeds, args.batch, args.repeats)
        per_frame = seconds / (seeds * args.batch)
        update = per_frame * NETWORKS * EPOCHS * FRAMES_PER_UPDATE * seeds
        doc["cnn"].append({
            "frame_size": size, "seeds": seeds, "batch_per_seed": args.batch, "compile_seconds": compile_s,
            "seconds_per_gradient": seconds, "seconds_per_frame_gradient": per_frame,
            "update_estimate_seconds": update,
            "hours_for_100k_steps_per_seed_estimate": update * 100_000 / FRAMES_PER_UPDATE / 3600})
        print(f"CNN {size}x{size}, {seeds} seed(s): {seconds:.3f} s per gradient of {args.batch} frames per seed; "
              f"a PPO update of {seeds} seed(s) about {update:.0f} s", flush=True)
        args.out.write_text(json.dumps({**doc, "complete": False}, indent=1) + "\n")
    args.out.write_text(json.dumps({**doc, "complete": True}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
