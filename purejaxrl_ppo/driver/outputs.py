"""A finished run's files, written inside the run's lock before ``complete.json``: a ``train`` run's
(:func:`save_run`) and a sweep's (:func:`save_sweep`). The file layouts are :mod:`purejaxrl_ppo.runs.rundir`'s and
:mod:`purejaxrl_ppo.runs.sweep_files`'.

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
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from purejaxrl_ppo.analysis.plots import plot_learning_curves
from purejaxrl_ppo.analysis.stats import FINAL_RETURN_WINDOW, iqm_bootstrap_ci, run_final_returns, summarize
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.driver.run import finish
from purejaxrl_ppo.launch.chunked import RunResult
from purejaxrl_ppo.launch.sweep import grid_settings, setting_label
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.policy_files import POLICY_FILE, save_policy
from purejaxrl_ppo.runs.provenance import machine_description
from purejaxrl_ppo.runs.sweep_files import POINTS_DIR, SWEEP_FINAL_FILES

#: Bootstrap resamples of the IQM's confidence interval in the summary table (rliable's default).
SUMMARY_BOOTSTRAP_SAMPLES = 2000
#: The CI's confidence level.
SUMMARY_CONFIDENCE = 0.95


# ----------------------------------------------------------------------------- a finished run
def save_run(result: RunResult, out_dir: Path, command: str | None = None,
             options: RunOptions | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``metrics.npz``, ``summary.json``, ``config.json``, ``policy.msgpack``, ``learning_curve.png``,
    ``timing.csv`` (where the result has its
    :attr:`~purejaxrl_ppo.launch.chunked.RunResult.wall_clock`), then ``complete.json``.

    Each file goes to a temporary name and is renamed into place; ``complete.json``
    (the SHA-256 of each) comes last, so a crash while finishing leaves a run that
    is visibly unfinished (:func:`~purejaxrl_ppo.runs.rundir.finished_problem`) and
    that ``--resume`` finishes. ``policy.msgpack`` holds every seed's final params
    (and observation statistics when normalised): what ``render`` and ``evaluate`` need.
    With ``options.video`` (default: the run directory's ``config.yaml``) it also writes
    ``video.gif`` or ``video.mp4`` of seed 0's deterministic episode, covered by ``complete.json``
    (:func:`~purejaxrl_ppo.analysis.render.finish_run_video`: a note instead where it cannot).
    ``complete.json`` also covers the logs (``metrics.csv``, ``metrics_aggregate.csv``, ``metrics.jsonl``), so a
    truncated log makes the run unfinished and ``--resume`` rewrites it. A write the disk refuses (full,
    read-only) raises a one-line :class:`~purejaxrl_ppo.runs.rundir.RunDirError`.

    Returns the summary written and the paths of the files.
    """
    with rundir.disk_errors(out_dir):
        return _save_run(result, out_dir, command, options)


def _save_run(result: RunResult, out_dir: Path, command: str | None, options: RunOptions | None
              ) -> tuple[dict[str, Any], dict[str, Path]]:
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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **result.metrics)
    rundir.write_atomic(paths["metrics"], buffer.getvalue())
    summary = result.summary()
    summary = {**{k: v for k, v in summary.items() if k != "config"}, "machine": machine_description(),
               "config": summary["config"]}
    if command is not None:
        summary["command"] = command
    rundir.write_atomic(paths["summary"], (json.dumps(summary, indent=2) + "\n").encode())
    rundir.write_atomic(paths["config"], (json.dumps(result.config.to_dict(), indent=2) + "\n").encode())
    tmp_plot = out_dir / ".learning_curve.tmp.png"
    plot_learning_curves([(f"{result.config.algo_name.upper()}", result.metrics)], tmp_plot,
                         title=f"{result.config.env_name}: {result.num_seeds} seeds")
    os.replace(tmp_plot, paths["plot"])
    if result.wall_clock is not None:  # wall time stays out of metrics.npz and the logs (not bit-identical)
        paths["timing"] = out_dir / ls.TIMING_FILE
        rundir.write_atomic(paths["timing"], ls.timing_csv(result.wall_clock))
    video = _run_video(result, out_dir, options)
    if video is not None:
        paths["video"] = video
    finish(out_dir, [p.name for p in paths.values()])
    return summary, paths


def _run_video(result: RunResult, out_dir: Path, options: RunOptions | None) -> Path | None:
    """The evaluation video ``options.video`` asks for (options from ``out_dir/config.yaml`` when not given)."""
    from purejaxrl_ppo.analysis.render import finish_run_video
    from purejaxrl_ppo.core.acting import Policy, PolicyParams
    from purejaxrl_ppo.runs.run_files import load_run_file

    if options is None:
        try:
            options = load_run_file(out_dir / rundir.CONFIG_FILE)[1]
        except (ConfigError, OSError):
            options = RunOptions()
    normalizer = result.final_state.normalizer
    obs_stats = normalizer.obs if result.config.normalize_observations else None
    params = PolicyParams(result.final_state.algo_state.params, obs_stats)
    return finish_run_video(Policy(result.config, params, tuple(range(result.num_seeds))), out_dir, options.video)


# ----------------------------------------------------------------------------- a finished sweep
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
    finish(out_dir, [p.name for p in paths.values()], [f"{POINTS_DIR}/{setting_label(s)}" for s in settings])
    return summary, paths
