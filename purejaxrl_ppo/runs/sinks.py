"""Where per-update metrics go on the host: CSV, JSON lines, TensorBoard, Weights & Biases.

Every sink receives whole chunks, ``write(metrics)`` with ``{name: [seeds, n]}``
NumPy arrays that include ``env_steps`` (already on the host: logging never
adds a device round-trip). Each update is written per seed and aggregated
across seeds (:func:`aggregate`: median, IQM and a bootstrap 95% CI of the
IQM of ``episode_return``).

Files in the run directory:

* ``metrics.csv``            one row per (update, seed): ``update, seed, <metrics...>``
* ``metrics_aggregate.csv``  one row per update: ``update, env_steps, <metric>/median, <metric>/iqm, ...``
* ``metrics.jsonl``          one JSON object per update: ``{"update", "env_steps", "per_seed": {...}, "aggregate": {...}}``
* ``tensorboard/``           (``--tensorboard``) one event-file run per logged seed plus ``aggregate``
* ``wandb/``                 (``--wandb``) one W&B run; set ``WANDB_MODE=offline`` to log without network
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from purejaxrl_ppo.analysis.stats import nan_iqm

#: Bootstrap resamples for the IQM confidence interval (fixed resampling: identical logs on resume).
BOOTSTRAP_SAMPLES = 200
CI_METRIC = "episode_return"


class MetricSink(Protocol):
    def write(self, metrics: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


def _bootstrap_indices(num_seeds: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, num_seeds, size=(BOOTSTRAP_SAMPLES, num_seeds))


def aggregate(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Across-seed statistics per update: ``{"<name>/median", "<name>/iqm"}: [n]`` for every float metric,
    plus ``episode_return/iqm_ci_low`` and ``/iqm_ci_high`` (95% percentile bootstrap over seeds)."""
    out: dict[str, np.ndarray] = {}
    for name, values in metrics.items():
        if name == "env_steps":
            continue
        values = np.asarray(values, np.float64)  # [seeds, n]
        with _quiet():
            out[f"{name}/median"] = np.nanmedian(values, axis=0)
        out[f"{name}/iqm"] = nan_iqm(values.T)
        if name == CI_METRIC:
            resampled = values[_bootstrap_indices(values.shape[0])]  # [B, seeds, n]
            iqms = nan_iqm(np.moveaxis(resampled, 1, -1))  # [B, n]
            with _quiet():
                low, high = np.nanpercentile(iqms, [2.5, 97.5], axis=0)
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
    """TensorBoard event files: ``tensorboard/aggregate`` (``<metric>/median``, ``/iqm``, CI) and
    ``tensorboard/seed_<i>`` for the first ``log_seeds`` seeds; x-axis = env steps per seed.

    ``purge_step`` (on resume) makes TensorBoard drop events at or after that env step from the
    interrupted run, so a curve is never drawn twice.
    """

    def __init__(self, run_dir: Path, num_seeds: int, log_seeds: int, purge_step: int | None = None):
        from tensorboardX import SummaryWriter

        root = run_dir / "tensorboard"
        self.aggregate_writer = SummaryWriter(str(root / "aggregate"), purge_step=purge_step)
        self.seed_writers = [
            SummaryWriter(str(root / f"seed_{i}"), purge_step=purge_step) for i in range(min(num_seeds, log_seeds))
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

    def close(self) -> None:
        for w in (self.aggregate_writer, *self.seed_writers):
            w.close()


class WandbSink:
    """One Weights & Biases run: ``<metric>/median``, ``/iqm`` (+ CI) and ``seed_<i>/<metric>`` for the
    first ``log_seeds`` seeds, W&B step = update index. ``run_id`` resumes the same W&B run."""

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

    def close(self) -> None:
        self.run.finish()
