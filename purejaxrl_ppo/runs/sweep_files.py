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
The summary table (its statistics) and the final files are written by :mod:`purejaxrl_ppo.driver.outputs`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.run_files import read_run_file, split_run_dict, write_run_file

#: The run-file key holding a sweep's grid: ``{field: [values]}``.
SWEEP_KEY = "sweep"
#: Where each grid point's logs go (``points/<setting>/``).
POINTS_DIR = "points"
#: The files a finished sweep has (:func:`purejaxrl_ppo.driver.outputs.save_sweep`), before ``timing.csv`` and
#: ``complete.json``.
SWEEP_FINAL_FILES = ("metrics.npz", "summary.json", "summary.csv", "learning_curves.png")
#: Everything a sweep writes into its run directory (``--overwrite`` removes exactly these).
SWEEP_OWNED = (rundir.CONFIG_FILE, rundir.RUN_FILE, rundir.COMPLETE_FILE, "checkpoints", "corrupt_checkpoints",
               POINTS_DIR, *SWEEP_FINAL_FILES, "timing.csv")


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
