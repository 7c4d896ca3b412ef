"""Host-side driver: train many seeds in compiled chunks, checkpoint, log, resume, save.

The training program is the same pure ``init_train_state`` + ``train_updates``
scan that :func:`purejaxrl_ppo.make_train` composes; running it as ``k`` chunks
of updates (the same compiled chunk reused) only lets the host act between
chunks: show progress, write logs, save a checkpoint, stop on NaN. Results are
bit-identical to the single scan (``tests/test_train.py``), and a resumed run
to the uninterrupted one (``tests/test_durable.py``).

:func:`train_seeds_chunked` is the loop; :func:`train_durable` runs it in a run
directory (:mod:`purejaxrl_ppo.rundir`) with checkpoints
(:mod:`purejaxrl_ppo.checkpoint`) and logs (:mod:`purejaxrl_ppo.logging_sinks`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from purejaxrl_ppo.config import BaseConfig
from purejaxrl_ppo.evaluation import POLICY_FILE, save_policy
from purejaxrl_ppo.sharding import SeedLayout, seed_layout
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
    updates_run: int | None = None  # updates run by this process (fewer than num_updates after a resume)

    @property
    def env_steps_per_second(self) -> float:
        """Environment steps of all seeds per second of (compiled) run time, this process only."""
        updates = self.config.num_updates if self.updates_run is None else self.updates_run
        return self.num_seeds * updates * self.config.batch_size / max(self.run_seconds, 1e-9)

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


def chunk_plan(num_updates: int, target_chunks: int = 20, chunk_updates: int = 0) -> list[int]:
    """Split ``num_updates`` into equal chunks (at most two distinct sizes to compile).

    With ``chunk_updates`` > 0: chunks of that many updates plus one remainder chunk.
    Otherwise prefers a divisor of ``num_updates`` giving between ``target_chunks // 4``
    and ``target_chunks`` chunks; else equal chunks plus one remainder chunk.
    """
    if chunk_updates > 0:
        size = min(chunk_updates, num_updates)
    elif num_updates <= target_chunks:
        return [1] * num_updates
    else:
        for count in range(target_chunks, max(target_chunks // 4, 1) - 1, -1):
            if num_updates % count == 0:
                return [num_updates // count] * count
        size = -(-num_updates // target_chunks)
    plan = [size] * (num_updates // size)
    if num_updates % size:
        plan.append(num_updates % size)
    return plan


#: Metrics that are NaN by design (no episode ended in the rollout; targets without variance; no evaluation).
NAN_ALLOWED = frozenset({"episode_return", "episode_length", "explained_variance", "eval_return"})


class TrainingDiverged(RuntimeError):
    """A metric became NaN or infinite; training stopped before saving that state.

    ``update`` is 1-based (the update that produced it), ``metric`` its name,
    ``seed`` the first seed affected; ``metrics`` holds every metric up to and
    including the chunk that diverged (``[seeds, updates]``).
    """

    def __init__(self, update: int, metric: str, seed: int, metrics: dict[str, np.ndarray]):
        super().__init__(f"{metric} is not finite at update {update} (seed {seed})")
        self.update, self.metric, self.seed, self.metrics = update, metric, seed, metrics


def first_non_finite(metrics: dict[str, np.ndarray], offset: int = 0) -> tuple[int, str, int] | None:
    """``(update, metric, seed)`` of the earliest non-finite value, or ``None``.

    ``metrics``: ``{name: [seeds, n]}`` of updates ``offset + 1 .. offset + n``; names in
    :data:`NAN_ALLOWED` are skipped. Ties at one update report the alphabetically first metric.
    """
    found = None
    for name in sorted(metrics):
        values = np.asarray(metrics[name])
        if name in NAN_ALLOWED or values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            update = int(np.argmax(bad.any(axis=0)))
            if found is None or update < found[0]:
                found = (update, name, int(np.argmax(bad[:, update])))
    return None if found is None else (offset + found[0] + 1, found[1], found[2])


@dataclasses.dataclass
class ChunkReport:
    """What ``on_chunk`` sees after each compiled chunk (all on the host except ``state``).

    updates_run:   updates run by this process (fewer than ``updates_done`` after a resume)

    state:         the train state after the chunk (device arrays; valid until the callback returns,
                   the next chunk donates its buffers)
    chunk_metrics: ``{name: [seeds, size]}`` of this chunk
    metrics:       ``{name: [seeds, updates_done]}`` since update 1 (resumed history included)
    """

    index: int
    updates_done: int
    state: TrainState
    chunk_metrics: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    run_seconds: float
    updates_run: int
    total_updates: int


@dataclasses.dataclass
class StartPoint:
    """Where a resumed run continues: the restored state after ``updates_done`` updates and the history."""

    updates_done: int
    state: TrainState
    metrics: dict[str, np.ndarray]


def train_seeds_chunked(
    config: BaseConfig,
    num_seeds: int,
    seed: int = 0,
    target_chunks: int = 20,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    *,
    plan: list[int] | None = None,
    start: StartPoint | None = None,
    stop_on_nan: bool = True,
    devices: Sequence[jax.Device] | None = None,
    seeds_per_batch: int | None = None,
) -> RunResult:
    """Train ``num_seeds`` seeds of ``config`` with one vmapped program, in chunks.

    The seeds are split over ``devices`` (default: every local device) exactly
    as :func:`purejaxrl_ppo.train_seeds` splits them, in sequential blocks of
    ``seeds_per_batch`` per device if given
    (:class:`~purejaxrl_ppo.sharding.SeedLayout`). ``start``, the reports and
    the result hold ``[num_seeds, ...]`` arrays whatever the device count, so a
    run checkpointed on 4 devices resumes on 1.

    ``plan`` (default :func:`chunk_plan`) lists the chunk sizes; each distinct size is
    compiled once and reused. ``start`` continues from a restored state (it must
    sit on a chunk boundary of ``plan``). ``on_chunk(report)`` runs after each chunk.
    With ``stop_on_nan``, a non-finite metric (outside :data:`NAN_ALLOWED`) raises
    :class:`TrainingDiverged` before ``on_chunk`` sees that chunk. Compile time
    (ahead-of-time, every distinct chunk size) is measured apart from run time.
    """
    layout = seed_layout(num_seeds, devices, seeds_per_batch)
    plan = list(plan or chunk_plan(config.num_updates, target_chunks))
    if sum(plan) != config.num_updates:
        raise ValueError(f"chunk plan {plan} sums to {sum(plan)}, not num_updates = {config.num_updates}")
    done = 0 if start is None else start.updates_done
    first = _chunk_index(plan, done)

    compile_start = time.perf_counter()
    init_compiled = _compiled_init(config, layout) if start is None else None
    chunk_fns = {size: _compiled_chunk(config, layout, size) for size in sorted(set(plan[first:]))}
    compile_seconds = time.perf_counter() - compile_start

    run_start = time.perf_counter()
    if start is None:
        state = init_compiled(layout.put(jax.random.split(jax.random.PRNGKey(seed), num_seeds)))
    else:
        state = layout.put(start.state)
    pieces: list[dict[str, np.ndarray]] = [] if start is None or not start.metrics else [start.metrics]
    for index in range(first, len(plan)):
        size = plan[index]
        state, metrics = chunk_fns[size](state, np.int32(done))
        chunk = layout.take(jax.device_get(metrics))  # waits for the chunk; tiny [seeds, size] arrays
        pieces.append(chunk)
        if stop_on_nan and (bad := first_non_finite(chunk, offset=done)) is not None:
            raise TrainingDiverged(*bad, metrics=_concat(pieces))
        done += size
        if on_chunk is not None:
            report = ChunkReport(index, done, layout.take(state), chunk, _concat(pieces),
                                 time.perf_counter() - run_start, done - (0 if start is None else start.updates_done),
                                 config.num_updates)
            on_chunk(report)
    jax.block_until_ready(state)
    run_seconds = time.perf_counter() - run_start
    updates_run = done - (0 if start is None else start.updates_done)
    return RunResult(config, num_seeds, seed, _concat(pieces) if pieces else {}, layout.take(state),
                     compile_seconds, run_seconds, updates_run)


def abstract_train_state(config: BaseConfig, num_seeds: int) -> TrainState:
    """``ShapeDtypeStruct`` tree of the ``[num_seeds, ...]`` train state (no computation)."""
    return jax.eval_shape(jax.vmap(lambda k: init_train_state(config, k)), _abstract_keys(num_seeds))


def _abstract_keys(num_seeds: int) -> jax.ShapeDtypeStruct:
    return jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), num_seeds))


# Compiled programs are cached per (config, seed layout, chunk size): a second run of the same
# config in one process (a notebook, a resume in the tests) does not compile again.
# Each is compiled ahead of time (so compile time is measured apart from run time) and
# the *jitted* function is returned: its first call hits jax's compile cache. Calling the
# AOT ``Compiled`` object itself fails in jax 0.10 when the program closes over large
# constants (a Brax system): "compiled for 312 inputs but called with 84".
@functools.lru_cache(maxsize=16)
def _compiled_init(config: BaseConfig, layout: SeedLayout):
    fn = layout.map(lambda k: init_train_state(config, k))
    fn.lower(layout.abstract(_abstract_keys(layout.num_seeds))).compile()
    return fn


@functools.lru_cache(maxsize=16)
def _compiled_chunk(config: BaseConfig, layout: SeedLayout, size: int):
    # The update offset is shared (not batched), so periodic evaluation stays a branch (train_updates).
    fn = layout.map(lambda s, first: train_updates(config, s, size, first), donate=True)
    fn.lower(layout.abstract(abstract_train_state(config, layout.num_seeds)), jax.ShapeDtypeStruct((), np.int32)).compile()
    return fn


def _chunk_index(plan: list[int], updates_done: int) -> int:
    """Index of the chunk that starts after ``updates_done`` updates."""
    boundaries = np.cumsum([0, *plan])
    matches = np.flatnonzero(boundaries == updates_done)
    if not matches.size:
        raise ValueError(f"{updates_done} updates done is not a chunk boundary of the plan {plan}")
    return int(matches[0])


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



# ---------------------------------------------------------------------------- durable runs


def train_durable(
    run_dir: Path,
    config: BaseConfig | None = None,
    options: Any = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str = "",
    on_chunk: Callable[[ChunkReport], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> RunResult:
    """Train in ``run_dir`` with checkpoints and logs after every chunk; resumable.

    New run (``resume=False``): ``config`` and ``options``
    (:class:`~purejaxrl_ppo.config_files.RunOptions`) are required; ``run_dir`` must be
    absent or empty unless ``overwrite``. Resume: config, options and chunk plan are read
    from ``run_dir`` and training continues from the newest intact checkpoint (from
    update 0 if none was written); the metrics, logs and final state equal those of an
    uninterrupted run bit for bit. A non-finite metric raises
    :class:`TrainingDiverged` after logging it; the last good checkpoint is kept.
    The seeds are split over ``devices`` (default: every local device);
    checkpoints hold unsharded ``[num_seeds, ...]`` arrays, so a run may resume
    on a different number of devices.
    """
    from purejaxrl_ppo import rundir
    from purejaxrl_ppo.checkpoint import Checkpointer
    from purejaxrl_ppo.config_files import RunOptions

    if resume:
        config, options, info = rundir.load_existing(run_dir)
        plan = [int(n) for n in info["plan"]]
    else:
        if config is None:
            raise TypeError("train_durable needs a config for a new run")
        options = options or RunOptions()
        plan = chunk_plan(config.num_updates, options.progress_chunks, options.chunk_updates)
        rundir.prepare_new(run_dir, overwrite)
        info = rundir.write_metadata(run_dir, config, options, plan, command)

    checkpointer = Checkpointer(run_dir / "checkpoints", keep=options.keep_checkpoints)
    meta = {"config": config.to_dict(), "options": options.to_dict(), "plan": plan}
    start = _restore_start(checkpointer, config, options, meta) if resume else None
    if resume:
        info = rundir.record_resume(run_dir, info, command, 0 if start is None else start.updates_done)
    sinks = _open_sinks(run_dir, config, options, info, start)
    logged = 0 if start is None else start.updates_done

    def after_chunk(report: ChunkReport) -> None:
        nonlocal logged
        for sink in sinks:
            sink.write(report.chunk_metrics)
        logged = report.updates_done
        if (report.index + 1) % options.checkpoint_every == 0 or report.updates_done == config.num_updates:
            checkpointer.save(report.updates_done, report.state, report.metrics, meta)
        if on_chunk is not None:
            on_chunk(report)

    try:
        return train_seeds_chunked(config, options.num_seeds, options.seed, on_chunk=after_chunk, plan=plan,
                                   start=start, devices=devices, seeds_per_batch=options.seeds_per_batch or None)
    except TrainingDiverged as err:
        tail = {k: v[:, logged:] for k, v in err.metrics.items()}
        for sink in sinks:  # show the run up to the NaN; its state is not checkpointed
            sink.write(tail)
        steps = checkpointer.steps()
        err.last_checkpoint = run_dir / "checkpoints" / str(steps[-1]) if steps else None
        raise
    finally:
        for sink in sinks:
            sink.close()
        checkpointer.close()


def _restore_start(checkpointer, config: BaseConfig, options, meta: dict[str, Any]) -> StartPoint | None:
    """The newest intact checkpoint as a :class:`StartPoint`, checked against the run's config."""
    from purejaxrl_ppo.rundir import RunDirError

    restored = checkpointer.restore_latest(abstract_train_state(config, options.num_seeds))
    if restored is None:
        return None
    saved = dict(restored.meta)
    if isinstance(saved.get("options"), dict):  # options added since the checkpoint was written: their defaults
        saved["options"] = {**type(options)().to_dict(), **saved["options"]}
    for name in ("config", "options", "plan"):
        if saved.get(name) != meta[name]:
            raise RunDirError(
                f"checkpoint {checkpointer.directory / str(restored.step)} was written with a different {name} "
                f"than {checkpointer.directory.parent / 'config.yaml'} / run.json: {saved.get(name)} != {meta[name]}"
            )
    return StartPoint(restored.step, restored.state, restored.history)


def _open_sinks(run_dir: Path, config: BaseConfig, options, info: dict[str, Any], start: StartPoint | None) -> list:
    """CSV and JSONL always; TensorBoard and W&B if asked. A resume rewrites CSV/JSONL from the history."""
    from purejaxrl_ppo import logging_sinks as ls

    sinks: list = [ls.CSVSink(run_dir, config.batch_size), ls.JSONLSink(run_dir, config.batch_size)]
    if start is not None and start.metrics:
        for sink in sinks:
            sink.write(start.metrics)
    purge = None if start is None else (start.updates_done + 1) * config.batch_size
    if options.tensorboard:
        sinks.append(ls.TensorBoardSink(run_dir, options.num_seeds, options.log_seeds, purge_step=purge))
    if options.wandb:
        from purejaxrl_ppo.config_files import run_dict

        sinks.append(ls.WandbSink(run_dir, options.wandb_project, info["wandb_id"], run_dir.name,
                                  run_dict(config, options), options.num_seeds, options.log_seeds, config.batch_size))
    return sinks
