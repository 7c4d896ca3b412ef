"""Host-side driver: train many seeds in compiled chunks with progress, then save.

The training program is the same pure ``init_train_state`` + ``train_updates``
scan that :func:`purejaxrl_ppo.make_train` composes; running it as ``k`` chunks
of updates only lets the host report progress between chunks (results are
bit-identical to the single scan, see ``tests/test_train.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from purejaxrl_ppo.config import BaseConfig
from purejaxrl_ppo.evaluation import POLICY_FILE, save_policy
from purejaxrl_ppo.stats import FINAL_RETURN_WINDOW, final_returns, summarize
from purejaxrl_ppo.train import TrainState, init_train_state, train_updates


@dataclasses.dataclass
class RunResult:
    """Metrics of a multi-seed run (``[seeds, num_updates]`` NumPy arrays) and its timings."""

    config: BaseConfig
    num_seeds: int
    seed: int
    metrics: dict[str, np.ndarray]
    final_state: TrainState
    compile_seconds: float
    run_seconds: float

    @property
    def env_steps_per_second(self) -> float:
        """Environment steps of all seeds per second of (compiled) run time."""
        steps = self.num_seeds * self.config.num_updates * self.config.batch_size
        return steps / self.run_seconds

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: final-return statistics across seeds and timings."""
        finals = final_returns(self.metrics["episode_return"])
        return {
            "algo": self.config.algo_name,
            "env_name": self.config.env_name,
            "num_seeds": self.num_seeds,
            "seed": self.seed,
            "total_timesteps_per_seed": int(self.config.num_updates * self.config.batch_size),
            "final_return": summarize(finals),
            "final_return_per_seed": [None if np.isnan(x) else float(x) for x in finals],
            "final_return_window_updates": FINAL_RETURN_WINDOW,
            "env_steps_per_second": self.env_steps_per_second,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
            "machine": machine_description(),
            "config": self.config.to_dict(),
        }


def machine_description() -> dict[str, str]:
    """Where a figure was measured: host, CPU count, jax backend and versions."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "jax_backend": jax.default_backend(),
        "devices": ", ".join(d.device_kind for d in jax.devices()),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def chunk_plan(num_updates: int, target_chunks: int = 20) -> list[int]:
    """Split ``num_updates`` into equal chunks (at most two distinct sizes to compile).

    Prefers a divisor of ``num_updates`` giving between ``target_chunks // 4`` and
    ``target_chunks`` chunks; otherwise equal chunks plus one remainder chunk.
    """
    if num_updates <= target_chunks:
        return [1] * num_updates
    for count in range(target_chunks, max(target_chunks // 4, 1) - 1, -1):
        if num_updates % count == 0:
            return [num_updates // count] * count
    size = -(-num_updates // target_chunks)
    plan = [size] * (num_updates // size)
    if num_updates % size:
        plan.append(num_updates % size)
    return plan


def train_seeds_chunked(
    config: BaseConfig,
    num_seeds: int,
    seed: int = 0,
    target_chunks: int = 20,
    on_chunk: Callable[[int, dict[str, np.ndarray], float], None] | None = None,
) -> RunResult:
    """Train ``num_seeds`` seeds of ``config`` with one vmapped program, in chunks.

    ``on_chunk(updates_done, metrics_so_far, run_seconds_so_far)`` is called
    after each chunk with NumPy metrics ``[seeds, updates_done]``. Compile time (ahead-of-time, every
    distinct chunk size) is measured separately from run time.
    """
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    plan = chunk_plan(config.num_updates, target_chunks)

    init_fn = jax.jit(jax.vmap(lambda k: init_train_state(config, k)))
    start = time.perf_counter()
    init_compiled = init_fn.lower(keys).compile()
    state_shape = jax.eval_shape(init_fn, keys)
    chunk_fns = {}
    for size in sorted(set(plan)):
        fn = jax.jit(jax.vmap(lambda s, n=size: train_updates(config, s, n)), donate_argnums=0)
        chunk_fns[size] = fn.lower(state_shape).compile()
    compile_seconds = time.perf_counter() - start

    start = time.perf_counter()
    state = init_compiled(keys)
    pieces: list[dict[str, np.ndarray]] = []
    done = 0
    for size in plan:
        state, metrics = chunk_fns[size](state)
        pieces.append(jax.device_get(metrics))  # waits for the chunk; tiny [seeds, size] arrays
        done += size
        if on_chunk is not None:
            on_chunk(done, _concat(pieces), time.perf_counter() - start)
    jax.block_until_ready(state)
    run_seconds = time.perf_counter() - start
    return RunResult(config, num_seeds, seed, _concat(pieces), state, compile_seconds, run_seconds)


def _concat(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(p[k]) for p in pieces], axis=1) for k in pieces[0]}


def save_run(result: RunResult, out_dir: Path, command: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``metrics.npz``, ``summary.json``, ``config.json``, ``policy.msgpack`` and ``learning_curve.png``.

    ``policy.msgpack`` holds every seed's final params (and observation
    statistics when normalised): what ``render`` and ``evaluate`` need.

    Returns the summary written and the paths of the files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / "metrics.npz",
        "summary": out_dir / "summary.json",
        "config": out_dir / "config.json",
        "plot": out_dir / "learning_curve.png",
        "policy": out_dir / POLICY_FILE,
    }
    normalizer = result.final_state.normalizer
    obs_stats = normalizer.obs if result.config.normalize_observations else None
    save_policy(paths["policy"], result.final_state.algo_state.params, obs_stats)
    np.savez_compressed(paths["metrics"], **result.metrics)
    summary = result.summary()
    if command is not None:
        summary["command"] = command
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    paths["config"].write_text(json.dumps(result.config.to_dict(), indent=2) + "\n")
    plot_learning_curves([(f"{result.config.algo_name.upper()}", result.metrics)], paths["plot"],
                         title=f"{result.config.env_name}: {result.num_seeds} seeds")
    return summary, paths


def plot_learning_curves(runs: list[tuple[str, dict[str, np.ndarray]]], path: Path, title: str = "") -> None:
    """Median episode return across seeds with an interquartile band, vs env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, metrics in runs:
        returns = np.asarray(metrics["episode_return"], dtype=np.float64)
        steps = np.asarray(metrics["env_steps"])[0]
        with warnings.catch_warnings():  # all-NaN columns (no episode ended yet) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(returns, axis=0)
            low, high = np.nanpercentile(returns, [25, 75], axis=0)
        ax.plot(steps, median, label=f"{label} (median)")
        ax.fill_between(steps, low, high, alpha=0.25, label=f"{label} (25–75%)")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

