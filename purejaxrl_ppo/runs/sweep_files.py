"""A sweep's run directory (``python -m purejaxrl_ppo sweep``): its run file, per-point logs and final files.

::

    runs/<name>/
      config.yaml            the base config, the run options and the grid (a ``sweep:`` mapping of field ->
                             values): ``sweep --config`` reruns it, ``sweep --resume`` continues it
      run.json, checkpoints/, corrupt_checkpoints/, .lock
                             as for ``train`` (:mod:`~purejaxrl_ppo.runs.rundir`); checkpoints hold the
                             ``[points, seeds, ...]`` state and the ``[points, seeds, updates]`` history
      points/<setting>/      each grid point's logs, as a ``train`` run writes them: metrics.csv,
                             metrics_aggregate.csv, metrics.jsonl (tensorboard/ with --tensorboard);
                             ``<setting>`` is e.g. ``clip_eps=0.1`` (several fields: ``clip_eps=0.1,ent_coef=0.0``)
      metrics.npz            every metric ``[*grid sizes, seed, update]`` (axes in summary.json)
      summary.json           per setting the final return (IQM with its 95% bootstrap CI, median, mean, min,
                             max, the seeds it covers) and every seed's; the axes, coordinates and files
      summary.csv            the same table, one row per setting
      learning_curves.png    the return curves of every setting (IQM across seeds, 95% bootstrap CI band)
      timing.csv             wall time per chunk (where the driver recorded it)
      complete.json          written last: the final files and their SHA-256 (the sweep is finished)

The grid in ``config.yaml`` keeps a plain run file from being mistaken for this one: ``train --config`` and
``train --resume`` refuse a file or directory with a ``sweep`` mapping, ``sweep --resume`` a directory without.

**The summary table.** Per setting (grid point), each seed's final return is the one definition of
:mod:`purejaxrl_ppo.analysis.stats` (its return curve carried forward, averaged over the last
``FINAL_RETURN_WINDOW`` updates; :func:`~purejaxrl_ppo.analysis.stats.run_final_returns`); the table gives their
median and IQM across the seeds that have one (``seeds`` of ``of``) and a 95% percentile-bootstrap CI of the
IQM (:func:`~purejaxrl_ppo.analysis.stats.iqm_bootstrap_ci`: :data:`SUMMARY_BOOTSTRAP_SAMPLES` resamples of the
seeds with replacement, generator seed 0, the same resampled seeds for every setting). With one task this is
rliable's stratified bootstrap (Agarwal et al. 2021), computed in NumPy: rliable is not a core dependency.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from purejaxrl_ppo.analysis.plots import plot_learning_curves
from purejaxrl_ppo.analysis.stats import FINAL_RETURN_WINDOW, iqm_bootstrap_ci, run_final_returns, summarize
from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.provenance import machine_description
from purejaxrl_ppo.runs.run_files import read_run_file, split_run_dict, write_run_file

#: The run-file key holding a sweep's grid: ``{field: [values]}``.
SWEEP_KEY = "sweep"
#: Where each grid point's logs go (``points/<setting>/``).
POINTS_DIR = "points"
#: The files a finished sweep has (:func:`save_sweep`), before ``timing.csv`` and ``complete.json``.
SWEEP_FINAL_FILES = ("metrics.npz", "summary.json", "summary.csv", "learning_curves.png")
#: Everything a sweep writes into its run directory (``--overwrite`` removes exactly these).
SWEEP_OWNED = (rundir.CONFIG_FILE, rundir.RUN_FILE, rundir.COMPLETE_FILE, "checkpoints", "corrupt_checkpoints",
               POINTS_DIR, *SWEEP_FINAL_FILES, "timing.csv")
#: Bootstrap resamples of the IQM's confidence interval in the summary table (rliable's default).
SUMMARY_BOOTSTRAP_SAMPLES = 2000
#: The CI's confidence level.
SUMMARY_CONFIDENCE = 0.95


# ---------------------------------------------------------------------------- run files with a grid
def pop_grid(values: dict[str, Any], source: str | None = None) -> dict[str, list[Any]] | None:
    """Remove and return the ``sweep`` mapping of a run file's values (``None`` if it has none).

    Only the form is checked here (field names to lists of values); the fields and values are checked
    against the config by :func:`~purejaxrl_ppo.launch.sweep.check_grid`.
    """
    if SWEEP_KEY not in values:
        return None
    grid = values.pop(SWEEP_KEY)
    prefix = f"{source}: " if source else ""
    example = "e.g. sweep: {clip_eps: [0.1, 0.2, 0.3]}"
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{prefix}{SWEEP_KEY} must map numeric config fields to lists of values ({example}), "
                          f"got {grid!r}")
    for name, field_values in grid.items():
        if not isinstance(field_values, list):
            raise ConfigError(f"{prefix}{SWEEP_KEY}.{name} must be a list of values ({example}), got {field_values!r}")
    return {str(name): list(field_values) for name, field_values in grid.items()}


def write_sweep_file(path: Path | str, config: BaseConfig, options: RunOptions, grid: Mapping[str, Sequence[float]],
                     header: str = "") -> Path:
    """Write a run file (:func:`~purejaxrl_ppo.runs.run_files.write_run_file`, YAML or TOML by suffix) with the
    grid as its last entry, a ``sweep`` mapping; :func:`read_sweep_file` gives them back."""
    path = write_run_file(path, config, options, header=header)
    grid = {name: [float(v) for v in values] for name, values in grid.items()}
    if path.suffix == ".toml":
        import tomli_w

        text = tomli_w.dumps({SWEEP_KEY: grid})
    else:
        import yaml

        text = yaml.safe_dump({SWEEP_KEY: grid}, sort_keys=False, default_flow_style=None)
    with path.open("a") as f:
        f.write(text)
    return path


def read_sweep_file(path: Path | str) -> tuple[BaseConfig, RunOptions, dict[str, list[Any]] | None]:
    """``(config, options, grid)`` of a run file; ``grid`` is ``None`` when it has no ``sweep`` mapping."""
    values = read_run_file(path)
    grid = pop_grid(values, str(path))
    config, options = split_run_dict(values, source=str(path))
    return config, options, grid


def load_existing(run_dir: Path, kind: str) -> tuple[BaseConfig, RunOptions, dict[str, list[Any]] | None, dict]:
    """``(config, options, grid, run info)`` of a run directory to resume as ``kind`` (``"train"`` or ``"sweep"``).

    Raises :class:`~purejaxrl_ppo.runs.rundir.RunDirError` naming the right command when the directory holds
    the other kind of run (a sweep's ``config.yaml`` has a ``sweep`` mapping, a train run's has none).
    """
    rundir.require_run_dir(run_dir, kind)
    values = read_run_file(run_dir / rundir.CONFIG_FILE)
    holds = "sweep" if SWEEP_KEY in values else "train"
    if holds != kind:
        raise rundir.RunDirError(f"{run_dir} holds a {holds} run, not a {kind}; continue it with: python -m "
                                 f"purejaxrl_ppo {holds} --resume {shlex.quote(str(run_dir))}")
    if kind == "train":
        config, options, info = rundir.load_existing(run_dir)
        return config, options, None, info
    grid = pop_grid(values, str(run_dir / rundir.CONFIG_FILE))
    config, options = split_run_dict(values, source=str(run_dir / rundir.CONFIG_FILE))
    try:
        info = json.loads((run_dir / rundir.RUN_FILE).read_text())
    except json.JSONDecodeError as err:
        raise rundir.RunDirError(f"cannot resume {run_dir}: {run_dir / rundir.RUN_FILE} is not valid JSON "
                                 f"({err})") from None
    return config, options, grid, info


# ---------------------------------------------------------------------------- logs, one sink group per point
class PointSinks:
    """One sink group per grid point (``points/<setting>/``), written together from ``[points, seeds, n]`` chunks.

    ``open_group(directory, i)`` opens grid point ``i``'s sinks in ``directory`` (on a resume, with that
    point's restored history); ``labels``: the points' directory names, in the order of the points axis.
    """

    def __init__(self, run_dir: Path, labels: Sequence[str], open_group: Callable[[Path, int], Any]):
        self.groups = []
        for i, label in enumerate(labels):
            directory = run_dir / POINTS_DIR / label
            directory.mkdir(parents=True, exist_ok=True)
            self.groups.append(open_group(directory, i))

    def write(self, metrics: Mapping[str, np.ndarray]) -> None:
        """Write each point's ``[seeds, n]`` slice of ``metrics`` (``{name: [points, seeds, n]}``) to its sinks."""
        for i, group in enumerate(self.groups):
            group.write({k: np.asarray(v)[i] for k, v in metrics.items()})

    def write_timing(self, row: dict[str, float]) -> None:
        """A chunk's wall-clock row, to every point's sinks (each point's TensorBoard shows the sweep's)."""
        for group in self.groups:
            group.write_timing(row)

    def close(self) -> None:
        for group in self.groups:
            group.close()


# ---------------------------------------------------------------------------- the finished sweep's files
def setting_rows(metrics: Mapping[str, np.ndarray], settings: Sequence[Mapping[str, float]]) -> tuple[list[dict], str]:
    """The summary table: ``(one row per setting, the metric final returns were read from)``.

    metrics: ``{name: [points, seeds, updates]}``, points in the order of ``settings``. Each row:
    ``{"setting": {field: value}, "final_return": {median, iqm, iqm_ci: [low, high], mean, min, max, seeds, of},
    "final_return_per_seed": [seeds]}`` (see the module docstring for the definitions).
    """
    finals, metric = run_final_returns(metrics)  # [points, seeds]
    rows = []
    for setting, per_seed in zip(settings, finals):
        low, high = iqm_bootstrap_ci(per_seed[:, None], SUMMARY_BOOTSTRAP_SAMPLES, 0, SUMMARY_CONFIDENCE)
        stats = summarize(per_seed)
        stats = {"median": stats["median"], "iqm": stats["iqm"], "iqm_ci": [float(low[0]), float(high[0])],
                 **{k: v for k, v in stats.items() if k not in ("median", "iqm")}}
        rows.append({"setting": dict(setting), "final_return": stats,
                     "final_return_per_seed": [None if np.isnan(x) else float(x) for x in per_seed]})
    return rows, metric


def sweep_summary(result: Any) -> dict[str, Any]:
    """JSON-serialisable summary of a finished sweep (a :class:`~purejaxrl_ppo.launch.chunked.RunResult` with a grid).

    ``kind`` is ``"sweep"``; ``axes``/``shape`` describe ``metrics.npz``; ``settings`` is the table of
    :func:`setting_rows`; timings as a ``train`` summary's, ``env_steps_per_second`` counting every point's seeds.
    """
    from purejaxrl_ppo.launch.sweep import grid_settings  # (launch/ is above runs/: imported on use)

    grid = result.grid
    rows, metric = setting_rows(result.metrics, grid_settings(grid))
    shape = [*(len(v) for v in grid.values()), result.num_seeds, result.config.num_updates]
    return {
        "kind": "sweep",
        "algo": result.config.algo_name,
        "env_name": result.config.env_name,
        "num_seeds": result.num_seeds,
        "seed": result.seed,
        "total_timesteps_per_seed": int(result.config.num_updates * result.config.batch_size),
        "grid": {name: list(values) for name, values in grid.items()},
        "axes": [*grid, "seed", "update"],
        "shape": shape,
        "layout": (f"metrics.npz: every metric [{', '.join([*grid, 'seed', 'update'])}] = {shape}; settings: one per "
                   "grid point in C order of the swept fields; seed i of every setting trains with the same key "
                   f"(split(PRNGKey(seed), num_seeds)[i]); per-point logs in {POINTS_DIR}/<setting>/"),
        "settings": rows,
        "final_return_metric": metric,
        "final_return_window_updates": FINAL_RETURN_WINDOW,
        "iqm_ci": {"confidence": SUMMARY_CONFIDENCE, "method": "percentile bootstrap over seeds",
                   "samples": SUMMARY_BOOTSTRAP_SAMPLES, "rng_seed": 0},
        "env_steps_per_second": result.env_steps_per_second,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "machine": machine_description(),
        "config": result.config.to_dict(),
    }


def summary_csv(summary: Mapping[str, Any]) -> bytes:
    """``summary.csv``: one row per setting: the swept fields, then the final return's statistics."""
    columns = ("seeds", "of", "median", "iqm", "iqm_ci_low", "iqm_ci_high", "mean", "min", "max")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*summary["grid"], *columns])
    for row in summary["settings"]:
        stats = row["final_return"]
        values = {**stats, "iqm_ci_low": stats["iqm_ci"][0], "iqm_ci_high": stats["iqm_ci"][1]}
        writer.writerow([*(repr(v) for v in row["setting"].values()), *(values[c] for c in columns)])
    return buffer.getvalue().encode()


def save_sweep(result: Any, out_dir: Path, command: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write a finished sweep's files (:data:`SWEEP_FINAL_FILES`, and ``timing.csv`` where the result has its
    ``wall_clock``), each atomically, then ``complete.json`` (their SHA-256, and the logs' in ``points/``) last.
    A write the disk refuses (full, read-only) raises a one-line :class:`~purejaxrl_ppo.runs.rundir.RunDirError`.

    ``result``: the driver's :class:`~purejaxrl_ppo.launch.chunked.RunResult` of a sweep (``grid`` set,
    metrics ``[points, seeds, updates]``). Returns the summary written and the paths of the files.
    """
    with rundir.disk_errors(out_dir):
        return _save_sweep(result, out_dir, command)


def _save_sweep(result: Any, out_dir: Path, command: str | None) -> tuple[dict[str, Any], dict[str, Path]]:
    from purejaxrl_ppo.launch.sweep import grid_settings, setting_label

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = dict(zip(("metrics", "summary", "table", "plot"), (out_dir / name for name in SWEEP_FINAL_FILES)))
    summary = sweep_summary(result)
    if command is not None:
        summary["command"] = command
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v).reshape(summary["shape"]) for k, v in result.metrics.items()})
    rundir.write_atomic(paths["metrics"], buffer.getvalue())
    rundir.write_atomic(paths["summary"], (json.dumps(summary, indent=2) + "\n").encode())
    rundir.write_atomic(paths["table"], summary_csv(summary))
    settings = grid_settings(result.grid)
    point_metrics = [(", ".join(f"{name}={value:g}" for name, value in s.items()),
                      {k: np.asarray(v)[i] for k, v in result.metrics.items()}) for i, s in enumerate(settings)]
    tmp_plot = out_dir / ".learning_curves.tmp.png"
    plot_learning_curves(point_metrics, tmp_plot, title=f"{result.config.env_name}, {result.config.algo_name.upper()}: "
                                                        f"{len(settings)} settings × {result.num_seeds} seeds")
    os.replace(tmp_plot, paths["plot"])
    if getattr(result, "wall_clock", None) is not None:  # wall time stays out of metrics.npz (not bit-identical)
        paths["timing"] = out_dir / ls.TIMING_FILE
        rundir.write_atomic(paths["timing"], ls.timing_csv(result.wall_clock))
    logs = [name for s in settings for name in rundir.logs_present(out_dir, f"{POINTS_DIR}/{setting_label(s)}")]
    rundir.mark_complete(out_dir, (*(p.name for p in paths.values()), *logs))
    return summary, paths
