"""``python -m purejaxrl_ppo sweep``: a grid of numeric hyperparameters × seeds, durable like ``train``.

``--set FIELD=V1,V2,...`` (repeatable) sweeps a numeric field of the config, several ``--set`` their
Cartesian product; every ``train`` flag applies (``--algo``, ``--env``, ``--num-seeds``, ``--config FILE``,
``--out DIR``, ``--resume DIR``, ...), and a run file's ``sweep:`` mapping gives a grid too (``--set``
replaces that field's values). Only numeric hyperparameters sweep (``HYPERPARAMETERS`` of the config
class: they are traced leaves of one compiled program); anything structural is refused with the list of
sweepable fields, as :func:`purejaxrl_ppo.sweep` refuses it.

The sweep runs through the durable driver of ``train``
(:func:`~purejaxrl_ppo.driver.control.train_durable` with ``kind="sweep"``): chunks with a progress bar,
verified checkpoints, ``--resume``, one writer, an atomic finish, divergence and Ctrl-C handled alike.
At the end it prints the table per setting (the final return's median, IQM and the IQM's 95% bootstrap CI,
and the seeds covered) and writes the run directory of :mod:`purejaxrl_ppo.runs.sweep_files`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from purejaxrl_ppo.core.config import ConfigError

EXAMPLE = "--set clip_eps=0.1,0.2,0.3"


def add_sweep_parser(sub: Any, train: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``sweep`` subcommand's parser: every flag of ``train`` (its parser, as a parent) plus ``--set``."""
    parser = sub.add_parser(
        "sweep", parents=[train], add_help=False, allow_abbrev=False,
        help="train a grid of numeric hyperparameters x seeds in one program per chunk (resumable, logged)",
        description=__doc__.split("\n")[0].replace("``", ""),
    )
    parser.add_argument("--set", dest="grid_values", action="append", default=[], metavar="FIELD=V1,V2,...",
                        help=f"sweep a numeric config field over these values ({EXAMPLE}); repeat it for a grid "
                             "(the Cartesian product, one axis per field in the order given); a run file's `sweep:` "
                             "mapping is read too, and --set replaces a field's values from it")
    return parser


def parse_sets(items: list[str]) -> dict[str, list[float]]:
    """``["clip_eps=0.1,0.2", ...]`` -> ``{"clip_eps": [0.1, 0.2], ...}`` (``-`` in a name reads as ``_``).

    A one-line :class:`ConfigError` for anything else: no ``=``, an empty name or value, a value that is
    not a finite number, a field given twice.
    """
    grid: dict[str, list[float]] = {}
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or not name or not text.strip():
            raise ConfigError(f"--set {item!r}: expected FIELD=V1,V2,... (e.g. {EXAMPLE})")
        values = []
        for part in text.split(","):
            try:
                value = float(part)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ConfigError(f"--set {item!r}: {part.strip()!r} is not a finite number; expected "
                                  f"FIELD=V1,V2,... (e.g. {EXAMPLE})")
            values.append(value)
        if name in grid:
            raise ConfigError(f"--set {name} is given twice; give all its values at once: --set {name}=V1,V2,...")
        grid[name] = values
    return grid


def sweep_table(summary: dict[str, Any]):
    """The rich table of a sweep summary (:func:`~purejaxrl_ppo.driver.outputs.sweep_summary`): one row per
    setting, the best IQM in bold (:func:`table_note` says what the numbers are)."""
    from rich.table import Table

    from purejaxrl_ppo.driver.outputs import SUMMARY_CONFIDENCE

    rows = summary["settings"]
    table = Table(title=f"Sweep: {summary['algo'].upper()} on {summary['env_name']}, {len(rows)} settings × "
                        f"{summary['num_seeds']} seeds")
    for name in summary["grid"]:
        table.add_column(name, justify="right")
    for column in ("seeds", "median", "IQM", f"IQM {SUMMARY_CONFIDENCE:.0%} CI"):
        table.add_column(column, justify="right")
    iqms = [row["final_return"]["iqm"] for row in rows]
    best = max(range(len(rows)), key=lambda i: -math.inf if math.isnan(iqms[i]) else iqms[i])
    for i, row in enumerate(rows):
        stats = row["final_return"]
        low, high = stats["iqm_ci"]
        table.add_row(*(f"{value:g}" for value in row["setting"].values()),
                      str(stats["of"]) if stats["seeds"] == stats["of"] else f"{stats['seeds']}/{stats['of']}",
                      _fmt(stats["median"]), _fmt(stats["iqm"]), f"[{_fmt(low)}, {_fmt(high)}]",
                      style="bold" if i == best and not math.isnan(iqms[i]) else None)
    return table


def table_note(summary: dict[str, Any]) -> str:
    """What the table's numbers are (one paragraph), and the sweep's budget and speed."""
    from purejaxrl_ppo.cli.commands import final_return_caption  # (that module imports this one)
    from purejaxrl_ppo.driver.outputs import SUMMARY_BOOTSTRAP_SAMPLES

    partial = any(row["final_return"]["seeds"] != row["final_return"]["of"] for row in summary["settings"])
    statistics = ("median and IQM across seeds; CI: percentile bootstrap of the IQM over seeds "
                  f"({SUMMARY_BOOTSTRAP_SAMPLES} resamples)")
    return (final_return_caption(partial, summary.get("final_return_metric") == "eval_return", statistics)
            + f". {summary['total_timesteps_per_seed']:,} env steps per seed; {summary['env_steps_per_second']:,.0f} "
              f"env-steps/s (all settings); compile {summary['compile_seconds']:.1f} s")


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:,.1f}"


class _SweepProgress:
    """A progress bar for a sweep (one line per chunk when not on a terminal), updated once per chunk."""

    def __init__(self, console, labels: list[str]):
        from purejaxrl_ppo.cli.commands import progress_bar

        self.console, self.labels = console, labels
        self.bar = progress_bar(console, "updates")
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def compiling(self) -> None:
        """Called when compiling starts (not for a resumed sweep that is already finished)."""
        self.console.print(f"compiling ({len(self.labels)} settings in one program) ...")

    def __call__(self, report) -> None:
        import numpy as np

        from purejaxrl_ppo.analysis.stats import nan_iqm, run_final_returns

        points, seeds, done = report.metrics["env_steps"].shape
        batch = int(report.metrics["env_steps"][0, 0, 0])  # env steps per update per seed (update 1's count)
        if self.task is None:
            self.task = self.bar.add_task("sweeping", total=report.total_updates, info="")
        iqms = nan_iqm(run_final_returns(report.metrics)[0])  # [points]: the summary's IQM, so far
        steps = report.updates_run * batch * seeds * points
        best = ""
        if np.isfinite(iqms).any():
            i = int(np.nanargmax(iqms))
            best = f"best IQM {_fmt(float(iqms[i]))} ({self.labels[i] if i < len(self.labels) else f'point {i}'}) · "
        info = f"{best}{steps / max(report.run_seconds, 1e-9):,.0f} env-steps/s"
        self.bar.update(self.task, completed=done, info=info)
        if not self.console.is_terminal:  # a live bar only renders on a terminal: log a line per chunk
            self.console.print(f"update {done}/{report.total_updates} · {info} · {report.run_seconds:.0f} s")


def _resolve(args: argparse.Namespace):
    """``(config, options, grid)``: defaults, the ``--config`` file (and its ``sweep:`` grid), then the flags and
    ``--set``; the grid checked against the config (one-line :class:`ConfigError`)."""
    from purejaxrl_ppo.cli.commands import resolve_run
    from purejaxrl_ppo.launch.sweep import check_grid
    from purejaxrl_ppo.runs.run_files import read_run_file
    from purejaxrl_ppo.runs.sweep_files import pop_grid

    values = read_run_file(args.config) if args.config is not None else {}
    grid = pop_grid(values, str(args.config)) or {}
    grid.update(parse_sets(args.grid_values))
    config, options = resolve_run(args, values)
    if not grid:
        raise ConfigError(f"sweep needs a grid: {EXAMPLE} (or a `sweep:` mapping in --config); sweepable fields "
                          f"of {type(config).__name__}: {type(config).HYPERPARAMETERS}")
    return config, options, check_grid(config, grid)


def _check_resumable(out: Path) -> None:
    """The resume errors that name ``sweep`` (a directory stopped before ``run.json`` was written), then those it
    shares with ``train`` (:func:`~purejaxrl_ppo.cli.commands.check_resumable`)."""
    from purejaxrl_ppo.cli.commands import check_resumable
    from purejaxrl_ppo.runs import rundir

    if out.is_dir() and (out / rundir.CONFIG_FILE).is_file() and not (out / rundir.RUN_FILE).is_file():
        rundir.require_run_dir(out, "sweep")  # never advises --overwrite where progress would be lost
    check_resumable(out, "sweep")


def _saved_grid(out: Path) -> dict[str, list[float]] | None:
    """The grid of a sweep directory to resume (for the progress bar), None where it has no run file."""
    from purejaxrl_ppo.runs.sweep_files import load_existing

    return load_existing(out, "sweep")[2] if out.is_dir() and (out / "config.yaml").is_file() else None


def _progress(console, grid) -> _SweepProgress:
    from purejaxrl_ppo.launch.sweep import grid_settings, setting_label

    return _SweepProgress(console, [] if grid is None else [setting_label(s) for s in grid_settings(grid)])


def _finish(result, out: Path, command: str, console) -> Path:
    from purejaxrl_ppo.cli.commands import written_files  # (that module imports this one)

    summary, files = written_files(out)
    console.print(sweep_table(summary))
    console.print(table_note(summary), style="dim")
    console.print(f"wrote {', '.join(map(str, files))} and per-setting logs in {out / 'points'}")
    return out / "summary.json"


def _write_file(path: Path, config, options, grid) -> None:
    from purejaxrl_ppo.runs.sweep_files import write_sweep_file

    write_sweep_file(path, config, options, grid)


def _default_out(config) -> Path:
    return Path("runs") / f"sweep-{config.algo_name}-{config.env_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_sweep(args: argparse.Namespace) -> int:
    from purejaxrl_ppo.cli.commands import DurableCommand, run_durable_command  # (that module imports this one)

    kind = DurableCommand(name="sweep", noun="sweep", resolve=_resolve, write_file=_write_file,
                          default_out=_default_out, progress=_progress, saved_grid=_saved_grid, finish=_finish,
                          logs=lambda out: out / "points", resume_flags=(("--set", "grid_values"),),
                          check_resume=_check_resumable)
    return run_durable_command(args, kind)
