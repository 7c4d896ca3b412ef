"""A run directory: what a run writes, so that it can be inspected, reproduced and resumed.

::

    runs/<name>/
      config.yaml            the resolved config and run options (loadable with --config)
      run.json               versions, machine, chunk plan, every command line that ran in it
      checkpoints/<step>/    orbax checkpoints (the newest K), step = updates done
      metrics.csv, metrics_aggregate.csv, metrics.jsonl, tensorboard/, wandb/   logs
      metrics.npz, summary.json, config.json, learning_curve.png                 when finished

The directory and its metadata are written before the first compile, so even
a run killed in its first chunk records what was started and how.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.provenance import machine_description, versions
from purejaxrl_ppo.runs.run_files import load_run_file, write_run_file

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
#: Everything this package writes into a run directory (``--overwrite`` removes exactly these).
OWNED = (
    CONFIG_FILE, RUN_FILE, "checkpoints", "corrupt_checkpoints", "tensorboard", "wandb", "metrics.csv",
    "metrics_aggregate.csv", "metrics.jsonl", "metrics.npz", "summary.json", "config.json", "learning_curve.png",
)
class RunDirError(ConfigError):
    """The run directory cannot be used as asked (exists, missing, not a run, mismatched)."""


def prepare_new(run_dir: Path, overwrite: bool) -> None:
    """Create ``run_dir`` for a new run; refuse a non-empty one unless ``overwrite``.

    ``overwrite`` removes only what a run writes (:data:`OWNED`); other files stay.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"run directory {run_dir} exists and is not empty; pass --resume {run_dir} to continue it, "
                "--overwrite to start it afresh, or choose another --out"
            )
        for name in OWNED:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_metadata(run_dir: Path, config: BaseConfig, options: RunOptions, plan: list[int], command: str) -> dict:
    """Write ``config.yaml`` and ``run.json`` for a new run; returns the run info."""
    write_run_file(run_dir / CONFIG_FILE, config, options,
                   header=f"Resolved config of this run; rerun with:\n  python -m purejaxrl_ppo train --config {run_dir / CONFIG_FILE}")
    info = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "machine": machine_description(),
        "num_updates": config.num_updates,
        "plan": plan,
        "wandb_id": f"{run_dir.name}-{os.urandom(4).hex()}",
        "commands": [{"command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_at_update": None}],
    }
    _write_json(run_dir / RUN_FILE, info)
    return info


def record_resume(run_dir: Path, info: dict, command: str, updates_done: int) -> dict:
    """Append a resume's command line (and current versions) to ``run.json``."""
    info = dict(info)
    info["commands"] = [*info.get("commands", []), {
        "command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_at_update": updates_done,
        "versions": versions(),
    }]
    _write_json(run_dir / RUN_FILE, info)
    return info


def load_existing(run_dir: Path) -> tuple[BaseConfig, RunOptions, dict[str, Any]]:
    """``(config, options, run info)`` of a run directory to resume."""
    if not run_dir.is_dir():
        raise RunDirError(f"cannot resume: run directory {run_dir} does not exist")
    missing = [name for name in (CONFIG_FILE, RUN_FILE) if not (run_dir / name).is_file()]
    if missing:
        raise RunDirError(f"cannot resume {run_dir}: it has no {' or '.join(missing)} (not a run directory "
                          "written by this version of purejaxrl_ppo)")
    config, options = load_run_file(run_dir / CONFIG_FILE)
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except json.JSONDecodeError as err:
        raise RunDirError(f"cannot resume {run_dir}: {run_dir / RUN_FILE} is not valid JSON ({err})") from None
    return config, options, info


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)  # never a half-written run.json
