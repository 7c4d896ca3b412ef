"""Where per-update metrics go on the host: CSV, JSON lines, TensorBoard, Weights & Biases.

Every sink receives whole chunks, ``write(metrics)`` with ``{name: [seeds, n]}``
NumPy arrays that include ``env_steps`` (already on the host: logging never
adds a device round-trip). Each update is written per seed and aggregated
across seeds (:func:`aggregate`: median, IQM and a bootstrap 95% CI of the
IQM of the return curve). A control run's sinks sit behind one :class:`SinkGroup`,
which adds the derived ``return_curve`` metric (:data:`RETURN_CURVE`: each seed's
``episode_return`` carried forward over updates where no episode ended, the curve
the final return is read from, :mod:`purejaxrl_ppo.analysis.stats`), so an aggregate
never drops the seeds that stopped failing.

Files in the run directory:

* ``metrics.csv``            one row per (update, seed): ``update, seed, <metrics...>``
* ``metrics_aggregate.csv``  one row per update: ``update, env_steps, <metric>/median, <metric>/iqm, ...``
* ``metrics.jsonl``          one JSON object per update: ``{"update", "env_steps", "per_seed": {...}, "aggregate": {...}}``
* ``tensorboard/``           (``--tensorboard``) one event-file run per logged seed plus ``aggregate``
* ``wandb/``                 (``--wandb``) one W&B run; set ``WANDB_MODE=offline`` to log without network
* ``timing.csv``             one row per chunk: ``update, env_steps, wall_seconds, env_steps_per_second``
  (:class:`WallClock`; written with the final files when the run finishes)

Wall time is kept apart from the per-update metrics: a resumed run's metrics and the three log
files above equal the uninterrupted run's bit for bit, and wall time cannot. :class:`WallClock`
measures it per chunk; TensorBoard and W&B get it as ``time/wall_seconds`` and
``time/env_steps_per_second`` (:meth:`SinkGroup.write_timing`), the checkpoints keep it so that a
resume continues the clock, and ``timing.csv`` holds it once the run has finished.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from purejaxrl_ppo.analysis.stats import forward_fill, iqm_bootstrap_ci, nan_iqm

#: Bootstrap resamples for the IQM confidence interval (fixed resampling: identical logs on resume).
BOOTSTRAP_SAMPLES = 200
#: The derived per-seed metric :class:`SinkGroup` adds: ``episode_return`` carried forward.
RETURN_CURVE = "return_curve"
#: The metric whose across-seed IQM gets a bootstrap confidence interval.
CI_METRIC = RETURN_CURVE
#: A finished run's wall-clock file (:class:`WallClock`), listed in ``complete.json``.
TIMING_FILE = "timing.csv"
#: Its columns, one row per chunk.
TIMING_COLUMNS = ("update", "env_steps", "wall_seconds", "env_steps_per_second")


class MetricSink(Protocol):
    def write(self, metrics: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


class SinkGroup:
    """Several sinks written together, with the derived :data:`RETURN_CURVE` metric added to each chunk.

    Chunks must arrive in update order (a resume writes the restored history first); the last
    carried-forward return of each seed is kept between chunks.
    """

    def __init__(self, sinks: list[MetricSink]):
        self.sinks = list(sinks)
        self._carry: np.ndarray | None = None  # [seeds] last value of the return curve so far

    def append(self, sink: MetricSink) -> None:
        """Add a sink that sees the chunks written from now on."""
        self.sinks.append(sink)

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        """Add ``return_curve`` (when ``episode_return`` is present) and write ``metrics`` to every sink."""
        if "episode_return" in metrics:
            curve = forward_fill(metrics["episode_return"], self._carry)
            self._carry = curve[:, -1]
            metrics = {**metrics, RETURN_CURVE: curve.astype(np.asarray(metrics["episode_return"]).dtype)}
        for sink in self.sinks:
            sink.write(metrics)

    def write_timing(self, row: dict[str, float]) -> None:
        """Pass a chunk's :meth:`WallClock.record` row to the sinks that plot wall time (TensorBoard, W&B)."""
        for sink in self.sinks:
            if hasattr(sink, "write_timing"):
                sink.write_timing(row)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def aggregate(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Across-seed statistics per update: ``{"<name>/median", "<name>/iqm"}: [n]`` for every float metric,
    plus ``<CI_METRIC>/iqm_ci_low`` and ``/iqm_ci_high`` (95% percentile bootstrap over seeds) when that
    metric is present."""
    out: dict[str, np.ndarray] = {}
    for name, values in metrics.items():
        if name == "env_steps":
            continue
        values = np.asarray(values, np.float64)  # [seeds, n]
        with _quiet():
            out[f"{name}/median"] = np.nanmedian(values, axis=0)
        out[f"{name}/iqm"] = nan_iqm(values.T)
        if name == CI_METRIC:  # fixed resamples (seed 0): the same logs on resume
            low, high = iqm_bootstrap_ci(values, BOOTSTRAP_SAMPLES, seed=0)
            out[f"{name}/iqm_ci_low"], out[f"{name}/iqm_ci_high"] = low, high
    return out


@contextlib.contextmanager
def _quiet():
    """Silence NumPy's all-NaN warnings (no episode ended yet in some update)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _update_index(metrics: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    return np.asarray(metrics["env_steps"])[0] // batch_size


def _names(metrics: dict[str, np.ndarray]) -> list[str]:
    return sorted(k for k in metrics if k != "env_steps")


class CSVSink:
    """``metrics.csv`` (per seed) and ``metrics_aggregate.csv`` (across seeds) in ``run_dir``.

    ``append=False`` starts the files afresh (a new run, or a resume rewriting the history).
    """

    def __init__(self, run_dir: Path, batch_size: int, append: bool = False):
        self.paths = (run_dir / "metrics.csv", run_dir / "metrics_aggregate.csv")
        self.batch_size = batch_size
        self._files = [open(p, "a" if append else "w", newline="") for p in self.paths]
        self._writers: list[Any] = [None, None]
        self._append = append and all(p.stat().st_size > 0 for p in self.paths)

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        names = _names(metrics)
        agg = aggregate(metrics)
        updates = _update_index(metrics, self.batch_size)
        steps = np.asarray(metrics["env_steps"])[0]
        if self._writers[0] is None:
            self._writers = [csv.writer(f) for f in self._files]
            if not self._append:
                self._writers[0].writerow(["update", "seed", "env_steps", *names])
                self._writers[1].writerow(["update", "env_steps", *agg])
        seeds = np.asarray(metrics["env_steps"]).shape[0]
        for j, update in enumerate(updates):
            for s in range(seeds):
                self._writers[0].writerow([int(update), s, int(steps[j]), *(_fmt(metrics[n][s, j]) for n in names)])
            self._writers[1].writerow([int(update), int(steps[j]), *(_fmt(v[j]) for v in agg.values())])
        for f in self._files:
            f.flush()

    def close(self) -> None:
        for f in self._files:
            f.close()


def _fmt(x: Any) -> str:
    """Shortest text that reads back to the same value (float32 stays exact)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return str(x.dtype.type(x))  # NumPy prints the shortest round-tripping digits ("nan" for NaN)
    return str(x.item())


class JSONLSink:
    """``metrics.jsonl``: one object per update with every seed's values and the aggregates (NaN -> null)."""

    def __init__(self, run_dir: Path, batch_size: int, append: bool = False):
        self.path = run_dir / "metrics.jsonl"
        self.batch_size = batch_size
        self._file = open(self.path, "a" if append else "w")

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        names = _names(metrics)
        agg = aggregate(metrics)
        updates = _update_index(metrics, self.batch_size)
        steps = np.asarray(metrics["env_steps"])[0]
        for j, update in enumerate(updates):
            record = {
                "update": int(update),
                "env_steps": int(steps[j]),
                "per_seed": {n: [_json(v) for v in np.asarray(metrics[n])[:, j]] for n in names},
                "aggregate": {k: _json(v[j]) for k, v in agg.items()},
            }
            self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _json(x: Any) -> Any:
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return None if np.isnan(x) else float(_fmt(x))
    return x.item()


class TensorBoardSink:
    """TensorBoard event files: ``tensorboard/aggregate`` (``<metric>/median``, ``/iqm``, CI, and the
    ``time/`` scalars of :meth:`write_timing`) and ``tensorboard/seed_<i>`` for the first ``log_seeds``
    seeds; x-axis = env steps per seed.

    ``purge_step`` (on resume) makes TensorBoard drop events at or after that env step from the
    interrupted run, so a curve is never drawn twice.
    """

    def __init__(self, run_dir: Path, num_seeds: int, log_seeds: int, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        root = run_dir / "tensorboard"
        # Event files are named by the second they were opened in; a resume within the same second would
        # truncate the interrupted run's file. A nanosecond suffix keeps both, in the order they were written.
        suffix = f".{time.time_ns()}"
        self.aggregate_writer = SummaryWriter(str(root / "aggregate"), purge_step=purge_step, filename_suffix=suffix)
        self.seed_writers = [
            SummaryWriter(str(root / f"seed_{i}"), purge_step=purge_step, filename_suffix=suffix)
            for i in range(min(num_seeds, log_seeds))
        ]

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        names = _names(metrics)
        agg = aggregate(metrics)
        steps = np.asarray(metrics["env_steps"])[0]
        for j, step in enumerate(steps):
            for tag, values in agg.items():
                if not np.isnan(values[j]):
                    self.aggregate_writer.add_scalar(tag, float(values[j]), int(step))
            for s, writer in enumerate(self.seed_writers):
                for n in names:
                    value = float(metrics[n][s, j])
                    if not math.isnan(value):
                        writer.add_scalar(n, value, int(step))
        for w in (self.aggregate_writer, *self.seed_writers):
            w.flush()

    def write_timing(self, row: dict[str, float]) -> None:
        """``time/wall_seconds`` and ``time/env_steps_per_second`` (:class:`WallClock`) in ``aggregate``,
        at the chunk's last env step."""
        for name in ("wall_seconds", "env_steps_per_second"):
            self.aggregate_writer.add_scalar(f"time/{name}", float(row[name]), int(row["env_steps"]))
        self.aggregate_writer.flush()

    def close(self) -> None:
        for w in (self.aggregate_writer, *self.seed_writers):
            w.close()


class WandbSink:
    """One Weights & Biases run: ``<metric>/median``, ``/iqm`` (+ CI), ``seed_<i>/<metric>`` for the
    first ``log_seeds`` seeds and the ``time/`` scalars of :meth:`write_timing`; W&B step = update index. ``run_id`` resumes the same W&B run."""

    def __init__(self, run_dir: Path, project: str, run_id: str, name: str, config: dict[str, Any],
                 num_seeds: int, log_seeds: int, batch_size: int):
        import wandb

        self.batch_size = batch_size
        self.log_seeds = min(num_seeds, log_seeds)
        self.run = wandb.init(project=project, id=run_id, name=name, dir=str(run_dir), config=config,
                              resume="allow", reinit="finish_previous")

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        names = _names(metrics)
        agg = aggregate(metrics)
        updates = _update_index(metrics, self.batch_size)
        for j, update in enumerate(updates):
            row: dict[str, float] = {"env_steps": int(metrics["env_steps"][0, j])}
            row.update({k: float(v[j]) for k, v in agg.items() if not np.isnan(v[j])})
            for s in range(self.log_seeds):
                for n in names:
                    value = float(metrics[n][s, j])
                    if not math.isnan(value):
                        row[f"seed_{s}/{n}"] = value
            self.run.log(row, step=int(update))

    def write_timing(self, row: dict[str, float]) -> None:
        """``time/wall_seconds`` and ``time/env_steps_per_second`` (:class:`WallClock`) at the chunk's last update."""
        self.run.log({f"time/{name}": float(row[name]) for name in ("wall_seconds", "env_steps_per_second")},
                     step=int(row["update"]))

    def close(self) -> None:
        self.run.finish()


# ---------------------------------------------------------------------- wall time
class WallClock:
    """Seconds of training per chunk, continued across resumes: ``timing.csv`` and the ``time/`` scalars.

    One row per chunk (:data:`TIMING_COLUMNS`):

    * ``update``: updates done at the end of the chunk; ``env_steps``: env steps per seed by then;
    * ``wall_seconds``: seconds of training since the run started, the run time of every process that
      trained it added up (each from just before its first chunk to the end of this chunk: compile time
      excluded, logging and checkpoints included); a resume continues from its checkpoint's value, so
      time spent on updates that a kill threw away does not count;
    * ``env_steps_per_second``: the env steps of all seeds in this chunk over the seconds since the
      previous chunk ended.

    ``start_update`` is where this process starts (a resume: the checkpoint's updates done) and
    ``saved`` that checkpoint's ``meta["timing"]``, which :meth:`checkpoint_timing` filled. A checkpoint
    written before the clock existed has no rows: the time before it is unknown and :meth:`table` is None.
    """

    def __init__(self, num_seeds: int, batch_size: int, start_update: int = 0, saved: dict[str, Any] | None = None):
        self.num_seeds, self.batch_size = num_seeds, batch_size
        saved = saved or {}
        chunks = saved.get("chunks")
        self.rows: list[dict[str, float]] | None = []
        self.offset = 0.0
        if start_update > 0:  # older checkpoints knew only their own process's run time
            self.offset = float(saved.get("wall_seconds", saved.get("run_seconds", 0.0)))
            known = isinstance(chunks, list) and chunks and chunks[-1][0] == start_update
            self.rows = [dict(zip(TIMING_COLUMNS, row)) for row in chunks] if known else None
        self.wall_seconds = self.offset  # at the end of the last chunk recorded (or the checkpoint's)
        self._last_update, self._last_seconds = start_update, 0.0

    def record(self, updates_done: int, run_seconds: float) -> dict[str, float]:
        """The row of the chunk that ended after ``updates_done`` updates, ``run_seconds`` after this
        process's first chunk started (:attr:`~purejaxrl_ppo.launch.chunked.ChunkReport.run_seconds`)."""
        seconds = run_seconds - self._last_seconds
        steps = (updates_done - self._last_update) * self.batch_size * self.num_seeds
        row = {"update": int(updates_done), "env_steps": int(updates_done * self.batch_size),
               "wall_seconds": self.offset + float(run_seconds), "env_steps_per_second": steps / max(seconds, 1e-9)}
        self._last_update, self._last_seconds = updates_done, float(run_seconds)
        if self.rows is not None:
            self.rows.append(row)
        self.wall_seconds = row["wall_seconds"]
        return row

    def checkpoint_timing(self) -> dict[str, Any]:
        """What a checkpoint's ``meta["timing"]`` keeps so that a resume continues the clock (JSON)."""
        out: dict[str, Any] = {"wall_seconds": self.wall_seconds}
        if self.rows is not None:
            out["chunks"] = [[row[c] for c in TIMING_COLUMNS] for row in self.rows]
        return out

    def table(self) -> dict[str, np.ndarray] | None:
        """``{column: [chunks]}`` since update 1, or None where the time before a resume is unknown."""
        if self.rows is None:
            return None
        return {c: np.array([row[c] for row in self.rows], np.int64 if c in ("update", "env_steps") else np.float64)
                for c in TIMING_COLUMNS}


def timing_csv(table: dict[str, np.ndarray]) -> bytes:
    """``timing.csv``'s bytes: a header of :data:`TIMING_COLUMNS`, then one row per chunk."""
    lines = [",".join(TIMING_COLUMNS)]
    for i in range(len(table["update"])):
        lines.append(f"{int(table['update'][i])},{int(table['env_steps'][i])},"
                     f"{float(table['wall_seconds'][i])!r},{float(table['env_steps_per_second'][i])!r}")
    return ("\n".join(lines) + "\n").encode()


def read_timing(path: Path) -> dict[str, np.ndarray]:
    """``{column: [chunks]}`` of a ``timing.csv``; ValueError (saying what is wrong) if it is not one."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != TIMING_COLUMNS:
        raise ValueError(f"{path} does not start with the header {','.join(TIMING_COLUMNS)}")
    try:
        table = {c: np.array([row[i] for row in rows[1:]], np.int64 if i < 2 else np.float64)
                 for i, c in enumerate(TIMING_COLUMNS)}
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path} has a malformed row ({err})") from None
    if not len(table["update"]) or np.any(np.diff(table["update"]) <= 0) or table["update"][0] < 1:
        raise ValueError(f"{path} has no rows or its updates do not increase")
    return table


def wall_seconds_per_update(table: dict[str, np.ndarray], num_updates: int) -> np.ndarray:
    """``[num_updates]`` seconds of training at the end of each update (update 1 first).

    ``timing.csv`` has one row per chunk; inside a chunk the updates run in one compiled program at a
    steady rate, so the time of each update is interpolated linearly between the chunk's start (the
    previous row; 0 s before update 1) and its end. ValueError if the table does not reach ``num_updates``.
    """
    updates = np.asarray(table["update"])
    if updates[-1] != num_updates:
        raise ValueError(f"the timing ends at update {updates[-1]}, the metrics at update {num_updates}")
    return np.interp(np.arange(1, num_updates + 1), np.concatenate([[0], updates]),
                     np.concatenate([[0.0], np.asarray(table["wall_seconds"], np.float64)]))
