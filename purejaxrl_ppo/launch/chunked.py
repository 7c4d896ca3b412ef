"""Train many seeds in compiled chunks of updates, with the host acting between chunks.

The training program is the same pure ``init_train_state`` + ``train_updates``
scan that :func:`purejaxrl_ppo.make_train` composes; running it as ``k`` chunks
of updates (the same compiled chunk reused) only lets the host act between
chunks: show progress, write logs, save a checkpoint, stop on NaN. Results are
bit-identical to the single scan (``tests/core/test_loop.py``), and a resumed run
to the uninterrupted one (``tests/driver/test_durable.py``).

A sweep (``grid``: numeric hyperparameters × seeds, :mod:`purejaxrl_ppo.launch.sweep`) runs through the same
loop: only its programs (:class:`~purejaxrl_ppo.launch.programs.GridPrograms`) and the leading axes of its
states and metrics (``[points, seeds, ...]`` instead of ``[seeds, ...]``) differ.

:func:`run_chunks` is the loop every chunked run shares (:func:`train_seeds_chunked` in memory; the durable-run
driver's chunked stages, :mod:`purejaxrl_ppo.driver.run`, in a run directory with checkpoints and logs: ``train``,
``sweep`` and each RLHF RL group).
"""

from __future__ import annotations

import dataclasses
import time
import math
from typing import Any, Callable, Mapping, Protocol, Sequence

import jax
import numpy as np

from purejaxrl_ppo.analysis.stats import FINAL_RETURN_WINDOW, run_final_returns, summarize
from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.types import TrainState
from purejaxrl_ppo.launch.layout import seed_layout
from purejaxrl_ppo.launch.programs import SeedPrograms
from purejaxrl_ppo.launch.sweep import check_grid, grid_programs, grid_settings, setting_label


@dataclasses.dataclass
class RunResult:
    """Metrics of a multi-seed run (``[seeds, num_updates]`` NumPy arrays) and its timings.

    For a sweep, ``grid`` holds the swept values (``{field: [values]}``, points in C order of the fields) and the
    metrics and final state have a leading ``[points]`` axis: ``[points, seeds, ...]``; ``None`` for a run of seeds.
    """

    config: BaseConfig
    num_seeds: int
    seed: int
    metrics: dict[str, np.ndarray]
    final_state: TrainState
    compile_seconds: float
    run_seconds: float
    updates_run: int | None = None  # updates run by this process (fewer than num_updates after a resume)
    grid: dict[str, list[float]] | None = None  # a sweep's grid (metrics [points, seeds, updates]); None: seeds only
    #: ``{"update", "env_steps", "wall_seconds", "env_steps_per_second": [chunks]}`` since update 1, the
    #: run directory's ``timing.csv`` (:class:`~purejaxrl_ppo.runs.sinks.WallClock`; set by ``train_durable``)
    wall_clock: dict[str, np.ndarray] | None = None

    @property
    def env_steps_per_second(self) -> float:
        """Environment steps of all seeds (of every grid point) per second of (compiled) run time, this process only."""
        updates = self.config.num_updates if self.updates_run is None else self.updates_run
        points = math.prod(len(v) for v in self.grid.values()) if self.grid else 1
        return points * self.num_seeds * updates * self.config.batch_size / max(self.run_seconds, 1e-9)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary: final-return statistics across seeds and timings.

        ``final_return`` summarises the per-seed final returns (:mod:`purejaxrl_ppo.analysis.stats`: the
        return curve carried forward, averaged over the last ``final_return_window_updates`` updates, read
        from ``final_return_metric``); its ``seeds`` says how many seeds it covers, of ``num_seeds``.
        """
        finals, metric = run_final_returns(self.metrics)
        return {
            "algo": self.config.algo_name,
            "env_name": self.config.env_name,
            "num_seeds": self.num_seeds,
            "seed": self.seed,
            "total_timesteps_per_seed": int(self.config.num_updates * self.config.batch_size),
            "final_return": summarize(finals),
            "final_return_per_seed": [None if np.isnan(x) else float(x) for x in finals],
            "final_return_window_updates": FINAL_RETURN_WINDOW,
            "final_return_metric": metric,
            "env_steps_per_second": self.env_steps_per_second,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
            "config": self.config.to_dict(),
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
    ``seed`` the first seed affected (in a sweep, ``point`` names its grid point, e.g.
    ``"clip_eps=0.3"``); ``metrics`` holds every metric up to and including the chunk
    that diverged (``[seeds, updates]``, a sweep's ``[points, seeds, updates]``).
    """

    def __init__(self, update: int, metric: str, seed: int, metrics: dict[str, np.ndarray], point: str | None = None):
        where = f"seed {seed}" if point is None else f"{point}, seed {seed}"
        super().__init__(f"{metric} is not finite at update {update} ({where})")
        self.update, self.metric, self.seed, self.metrics, self.point = update, metric, seed, metrics, point


def first_non_finite(metrics: dict[str, np.ndarray], offset: int = 0) -> tuple[int, str, int] | None:
    """``(update, metric, seed)`` of the earliest non-finite value, or ``None``.

    ``metrics``: ``{name: [seeds, n]}`` of updates ``offset + 1 .. offset + n``; names in
    :data:`NAN_ALLOWED` are skipped. Ties at one update report the alphabetically first metric.
    A sweep's ``[points, seeds, n]`` metrics report ``point * seeds + seed`` in place of the seed.
    """
    found = None
    for name in sorted(metrics):
        values = np.asarray(metrics[name])
        if name in NAN_ALLOWED or values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values.reshape(-1, values.shape[-1]))
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
    chunk_metrics: ``{name: [seeds, size]}`` of this chunk (a sweep's: ``[points, seeds, size]``)
    metrics:       ``{name: [seeds, updates_done]}`` since update 1 (resumed history included; a sweep's:
                   ``[points, seeds, updates_done]``)
    run_seconds:   seconds since the first chunk of this process started (the host's work between chunks
                   included: logs, checkpoints)
    compile_seconds: this process's compile time (ahead of the first chunk)
    device_seconds: seconds of this process inside the chunks (each compiled call and the transfer of its metrics
                   to the host), the host's work between them excluded
    """

    index: int
    updates_done: int
    state: TrainState
    chunk_metrics: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    run_seconds: float
    updates_run: int
    total_updates: int
    compile_seconds: float = 0.0
    device_seconds: float = 0.0


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
    on_compile: Callable[[], None] | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> RunResult:
    """Train ``num_seeds`` seeds of ``config`` with one vmapped program, in chunks.

    The seeds are split over ``devices`` (default: every local device) exactly
    as :func:`purejaxrl_ppo.train_seeds` splits them, in sequential blocks of
    ``seeds_per_batch`` per device if given
    (:class:`~purejaxrl_ppo.launch.layout.SeedLayout`). ``start``, the reports and
    the result hold ``[num_seeds, ...]`` arrays whatever the device count, so a
    run checkpointed on 4 devices resumes on 1.

    ``plan`` (default :func:`chunk_plan`) lists the chunk sizes; each distinct size is
    compiled once and reused. ``start`` continues from a restored state (it must
    sit on a chunk boundary of ``plan``). ``on_chunk(report)`` runs after each chunk.
    With ``stop_on_nan``, a non-finite metric (outside :data:`NAN_ALLOWED`) raises
    :class:`TrainingDiverged` before ``on_chunk`` sees that chunk. Compile time
    (ahead-of-time, every distinct chunk size) is measured apart from run time;
    ``on_compile()`` runs just before compiling starts.

    With ``jax.distributed`` (the default devices then span every process) every process
    calls this with the same arguments; metrics, reports and the result are gathered to
    every process, so ``on_chunk`` must be given on all processes or on none.

    ``grid`` (``{field: values}`` of numeric hyperparameters) trains every grid point × seed instead
    (:func:`~purejaxrl_ppo.launch.sweep.grid_programs`; ``seeds_per_batch`` is not supported): states,
    metrics, ``start`` and the result then have leading ``[points, seeds]`` axes, points in C order of
    the fields, and seed ``i`` of every point starts from the same key.
    """
    layout = seed_layout(num_seeds, devices, seeds_per_batch)
    if grid is None:
        programs: Any = SeedPrograms(config, layout)
    else:
        if seeds_per_batch is not None:
            raise ValueError("sweeps run every seed of a device at once; seeds_per_batch is not supported")
        grid = check_grid(config, grid)
        programs = grid_programs(config, grid, layout)
    plan = list(plan or chunk_plan(config.num_updates, target_chunks))
    if sum(plan) != config.num_updates:
        raise ValueError(f"chunk plan {plan} sums to {sum(plan)}, not num_updates = {config.num_updates}")

    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    out = run_chunks(programs, plan, init=lambda: programs.init(keys), start=start, on_chunk=on_chunk,
                     on_compile=on_compile, diverged=divergence(num_seeds, grid) if stop_on_nan else None)
    return RunResult(config, num_seeds, seed, out.metrics, out.state, out.compile_seconds, out.run_seconds,
                     out.updates_run, grid=grid)


def divergence(num_seeds: int, grid: Mapping[str, Sequence[float]] | None = None
               ) -> Callable[[int, str, int, dict[str, np.ndarray]], TrainingDiverged]:
    """``(update, metric, row, metrics) -> TrainingDiverged`` for :func:`run_chunks`: a sweep's rows are
    ``point * num_seeds + seed`` and name their grid point."""
    def diverged(update: int, metric: str, row: int, metrics: dict[str, np.ndarray]) -> TrainingDiverged:
        if grid is None:
            return TrainingDiverged(update, metric, row, metrics=metrics)
        point, seed_index = divmod(row, num_seeds)
        return TrainingDiverged(update, metric, seed_index, metrics=metrics,
                                point=setting_label(grid_settings(grid)[point]))

    return diverged


class Programs(Protocol):
    """What :func:`run_chunks` runs: compiled chunk programs over a batch of rows (seeds, grid points × seeds,
    RLHF rows), e.g. :class:`~purejaxrl_ppo.launch.programs.SeedPrograms`,
    :class:`~purejaxrl_ppo.launch.programs.GridPrograms`,
    :class:`~purejaxrl_ppo.launch.rlhf.RLGroupPrograms`."""

    def compile(self, sizes: Sequence[int], fresh: bool) -> None: ...  # every chunk size (and init if fresh)

    def chunk(self, size: int, state: Any, first_update: int) -> tuple[Any, dict[str, Any]]: ...

    def put(self, state: Any) -> Any: ...  # [rows, ...] -> placed

    def take(self, tree: Any) -> Any: ...  # placed -> [rows, ...]

    def host(self, tree: Any) -> Any: ...  # placed -> [rows, ...] NumPy on every process


@dataclasses.dataclass
class ChunksRun:
    """What :func:`run_chunks` returns: the final state ``[rows, ...]`` (taken from the devices), every metric
    ``{name: [rows, updates]}`` (resumed history included), this process's compile and run seconds (and its
    seconds inside the chunks, :attr:`ChunkReport.device_seconds`) and the updates it ran."""

    state: Any
    metrics: dict[str, np.ndarray]
    compile_seconds: float
    run_seconds: float
    updates_run: int
    device_seconds: float = 0.0


def run_chunks(programs: Programs, plan: Sequence[int], *, init: Callable[[], Any], start: StartPoint | None = None,
               on_chunk: Callable[[ChunkReport], None] | None = None, on_compile: Callable[[], None] | None = None,
               diverged: Callable[[int, str, int, dict[str, np.ndarray]], Exception] | None = None) -> ChunksRun:
    """The chunk loop every chunked run shares (control runs, sweeps, RLHF's RL groups).

    Compiles every chunk size still to run (``on_compile()`` just before), starts from ``init()`` (placed
    fresh states) or from ``start`` (its ``[rows, ...]`` state placed with ``programs.put``), then runs
    ``plan``'s chunks from the one after ``start.updates_done``, bringing each chunk's metrics ``{name: [rows,
    size]}`` to the host. With ``diverged``, the earliest non-finite metric (outside :data:`NAN_ALLOWED`) raises
    ``diverged(update, metric, row, metrics so far)`` before ``on_chunk`` sees that chunk. ``on_chunk`` gets a
    :class:`ChunkReport` after every chunk (its ``state`` is valid until it returns: the next chunk donates it).
    """
    done = 0 if start is None else start.updates_done
    first = _chunk_index(list(plan), done)
    total = int(sum(plan))
    if on_compile is not None:
        on_compile()
    compile_start = time.perf_counter()
    programs.compile(sorted(set(plan[first:])), fresh=start is None)
    compile_seconds = time.perf_counter() - compile_start

    run_start = time.perf_counter()
    state = init() if start is None else programs.put(start.state)
    pieces: list[dict[str, np.ndarray]] = [] if start is None or not start.metrics else [start.metrics]
    device_seconds = 0.0
    for index in range(first, len(plan)):
        size = plan[index]
        chunk_start = time.perf_counter()
        state, metrics = programs.chunk(size, state, done)
        chunk = programs.host(metrics)  # waits for the chunk; tiny [rows, size] arrays (gathered from every process)
        device_seconds += time.perf_counter() - chunk_start
        pieces.append(chunk)
        if diverged is not None and (bad := first_non_finite(chunk, offset=done)) is not None:
            raise diverged(*bad, _concat(pieces))
        done += size
        if on_chunk is not None:
            report = ChunkReport(index, done, programs.take(state), chunk, _concat(pieces),
                                 time.perf_counter() - run_start, done - (0 if start is None else start.updates_done),
                                 total, compile_seconds, device_seconds)
            on_chunk(report)
    jax.block_until_ready(state)
    run_seconds = time.perf_counter() - run_start
    updates_run = done - (0 if start is None else start.updates_done)
    return ChunksRun(programs.take(state), _concat(pieces) if pieces else {}, compile_seconds, run_seconds,
                     updates_run, device_seconds)


def _chunk_index(plan: list[int], updates_done: int) -> int:
    """Index of the chunk that starts after ``updates_done`` updates."""
    boundaries = np.cumsum([0, *plan])
    matches = np.flatnonzero(boundaries == updates_done)
    if not matches.size:
        raise ValueError(f"{updates_done} updates done is not a chunk boundary of the plan {plan}")
    return int(matches[0])


def _concat(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([np.asarray(p[k]) for p in pieces], axis=-1) for k in pieces[0]}
