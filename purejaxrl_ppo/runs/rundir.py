"""A run directory: what a run writes, so that it can be inspected, reproduced and resumed.

::

    runs/<name>/
      config.yaml            the resolved config and run options (loadable with --config)
      run.json               versions, machine, chunk plan, every command line that ran in it
      checkpoints/<step>/    orbax checkpoints (the newest K), step = updates done
      metrics.csv, metrics_aggregate.csv, metrics.jsonl, tensorboard/, wandb/   logs
      metrics.npz, summary.json, config.json, policy.msgpack, learning_curve.png  when finished
      timing.csv             when finished: seconds of training per chunk (runs.sinks.WallClock)
      complete.json          written last: the final files and their SHA-256 (the run is finished)
      .lock                  who is writing (pid, host); one writer at a time

The directory and its metadata are written before the first compile, so even
a run killed in its first chunk records what was started and how. A run is
finished only when ``complete.json`` exists and every final file matches it
(:func:`finished_problem`); each final file is written under a temporary name
and renamed, and the marker last, so a crash while finishing never looks finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.provenance import machine_description, versions
from purejaxrl_ppo.runs.run_files import load_run_file, saved_run_kind, write_run_file

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
COMPLETE_FILE = "complete.json"
LOCK_FILE = ".lock"
#: The files a finished run has (written by :func:`purejaxrl_ppo.driver.outputs.save_run`).
FINAL_FILES = ("metrics.npz", "summary.json", "config.json", "policy.msgpack", "learning_curve.png")
#: The per-update logs (:mod:`purejaxrl_ppo.runs.sinks`); ``complete.json`` covers those a run wrote.
LOG_FILES = ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl")
#: Everything this package writes into a run directory (``--overwrite`` removes exactly these).
OWNED = (
    CONFIG_FILE, RUN_FILE, COMPLETE_FILE, "checkpoints", "corrupt_checkpoints", "tensorboard", "wandb",
    "metrics.csv", "metrics_aggregate.csv", "metrics.jsonl", *FINAL_FILES, "timing.csv", "video.gif", "video.mp4",
)


#: Everything ``python -m purejaxrl_ppo rlhf`` writes into its run directory (``--overwrite`` removes exactly these;
#: see :mod:`purejaxrl_ppo.driver.rlhf`).
RLHF_OWNED = (
    RUN_FILE, COMPLETE_FILE, "config.json", "checkpoints", "sweep_checkpoints", "corrupt_checkpoints", "sft", "rm",
    "metrics.csv", "metrics_aggregate.csv", "metrics.jsonl", "metrics.npz", "summary.json", "samples.md",
    "rlhf_curves.png", "overoptimisation.png", "sweep.json", "sweep_metrics.npz",
)


class RunDirError(ConfigError):
    """The run directory cannot be used as asked (exists, missing, not a run, mismatched, in use)."""


# ---------------------------------------------------------------------- one writer at a time
def _holder(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(since {holder.get('since', '?')}: {holder.get('command', '?')})")


def _open_lock(run_dir: Path, path: Path) -> int:
    """The lock file's descriptor; a :class:`RunDirError` (one line) where it cannot be opened."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except IsADirectoryError:
        raise RunDirError(f"{path} is a directory, not the run's lock file; if nothing of yours is in it, "
                          f"remove it (rmdir {shlex.quote(str(path))}) and run the command again") from None
    except FileNotFoundError:
        raise RunDirError(f"run directory {run_dir} does not exist") from None
    except NotADirectoryError:
        raise RunDirError(f"run directory {run_dir} is not a directory") from None
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        raise disk_error(err, run_dir) from None


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # released cleanly: no holder to report
    except OSError:
        pass
    finally:
        os.close(fd)  # also releases the flock


@contextlib.contextmanager
def locked(run_dir: Path, command: str = "") -> Iterator[None]:
    """Hold the run directory's advisory lock (``.lock``: pid, host, command) while the block runs.

    ``fcntl.flock`` on ``run_dir/.lock``: the kernel releases it when the holder
    exits, however it dies, so a lock left by a killed process is taken over
    (and said so). A second writer gets a :class:`RunDirError` naming the holder.
    Where the file system has no ``flock`` (some network mounts), the pid/host in
    the file decide: a live holder on this host, or any holder on another host, blocks.
    """
    path = run_dir / LOCK_FILE
    fd = _open_lock(run_dir, path)
    try:
        _acquire(fd, run_dir, path, command)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        _release(fd)


def _acquire(fd: int, run_dir: Path, path: Path, command: str) -> None:
    previous = _holder(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunDirError(
            f"run directory {run_dir} is in use by {_describe(previous)}; wait for it to finish or stop it "
            "(one train or --resume at a time)"
        ) from None
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        same_host = previous.get("host") == socket.gethostname()
        if previous and (not same_host or _pid_alive(int(previous.get("pid", -1)))):
            raise RunDirError(f"run directory {run_dir} is in use by {_describe(previous)} (no flock here: "
                              f"if that process is gone, delete {path})") from None
    if previous.get("pid") not in (None, os.getpid()):
        print(f"note: {run_dir} was last locked by {_describe(previous)}, which has stopped; taking over",
              file=sys.stderr, flush=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
          "command": command}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
    except OSError as err:
        raise disk_error(err, run_dir) from None


# ---------------------------------------------------------------------- a disk that refuses writes
#: ``errno`` values of a write the disk refused: full, read-only, over quota, not permitted.
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM)


def disk_error(err: OSError, run_dir: Path) -> RunDirError:
    """``err`` (a refused write) as one line naming the file and the cause, and how to go on."""
    where = f" ({err.filename})" if err.filename else ""
    cause = (err.strerror or os.strerror(err.errno)) if err.errno else str(err)
    return RunDirError(f"cannot write in {run_dir}: {cause}{where}; what was written before is kept: make room "
                       f"(or make it writable) and continue with --resume {shlex.quote(str(run_dir))}")


@contextlib.contextmanager
def disk_errors(run_dir: Path) -> Iterator[None]:
    """Turn a write the disk refuses (:data:`DISK_ERRNOS`: ENOSPC, EROFS, ...) into a one-line :class:`RunDirError`."""
    try:
        yield
    except RunDirError:
        raise
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        raise disk_error(err, run_dir) from None


# ---------------------------------------------------------------------- finished or not
def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name, fsync and rename: whole or absent."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def logs_present(run_dir: Path, under: str = "") -> tuple[str, ...]:
    """The :data:`LOG_FILES` in ``run_dir/under`` (names relative to ``run_dir``), for :func:`mark_complete`."""
    prefix = f"{under}/" if under else ""
    return tuple(prefix + name for name in LOG_FILES if (run_dir / prefix / name).is_file())


def mark_complete(run_dir: Path, names: tuple[str, ...] = FINAL_FILES) -> None:
    """Write ``complete.json`` (the SHA-256 of the final files ``names``, paths relative to ``run_dir``), the last
    file of a finished run."""
    files = {name: sha256_file(run_dir / name) for name in names}
    marker = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    write_atomic(run_dir / COMPLETE_FILE, (json.dumps(marker, indent=2) + "\n").encode())


def _legacy_problem(run_dir: Path) -> str | None:
    """For runs finished before ``complete.json`` existed: are the final files there and readable?"""
    import numpy as np

    for name in FINAL_FILES[:3]:
        path = run_dir / name
        if not path.is_file():
            return f"{path} is missing"
        try:
            if name.endswith(".json"):
                json.loads(path.read_text())
            else:
                with np.load(path) as data:
                    list(data.keys())
        except Exception as err:  # noqa: BLE001 - any failure to read means damaged
            return f"{path} is unreadable ({type(err).__name__})"
    return None


def _writes_marker(run_dir: Path) -> bool:
    """Whether the run was started by a version that writes ``complete.json`` (``run.json`` says so)."""
    try:
        return bool(json.loads((run_dir / RUN_FILE).read_text()).get(COMPLETE_FILE))
    except (OSError, ValueError, AttributeError):
        return True  # no readable run.json: trust nothing but the marker


def finished_problem(run_dir: Path) -> str | None:
    """``None`` if ``run_dir`` is a finished run with intact final files; else what is wrong (one line).

    Finished means ``complete.json`` exists and every file it lists matches its
    SHA-256. Runs started before the marker existed (their ``run.json`` does not
    announce it) count as finished when their final files are present and readable.
    """
    if not run_dir.is_dir():
        return f"{run_dir} is not a directory" if run_dir.exists() else f"{run_dir} does not exist"
    marker = run_dir / COMPLETE_FILE
    if not marker.is_file():
        if not (run_dir / CONFIG_FILE).is_file() and not (run_dir / "summary.json").is_file():
            return f"{run_dir} is not a run directory written by `train`"
        if _writes_marker(run_dir):
            return f"{run_dir} has not finished (no {COMPLETE_FILE})"
        return _legacy_problem(run_dir)
    try:
        files = json.loads(marker.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{marker} is damaged"
    for name, digest in files.items():
        path = run_dir / name
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != digest:
            return f"{path} is damaged (checksum mismatch)"
    return None


def require_finished(run_dir: Path) -> None:
    """Raise :class:`RunDirError` (one line: what is wrong, and the command that repairs it) unless finished."""
    problem = finished_problem(run_dir)
    if problem is None:
        return
    if (run_dir / CONFIG_FILE).is_file() and (run_dir / RUN_FILE).is_file():
        problem += (f"; finish or repair it with: python -m purejaxrl_ppo {saved_run_kind(run_dir) or 'train'} --resume "
                    f"{shlex.quote(str(run_dir))}")
    raise RunDirError(problem)


def prepare_new(run_dir: Path, overwrite: bool, owned: tuple[str, ...] = OWNED) -> None:
    """Create ``run_dir`` for a new run; refuse a non-empty one unless ``overwrite``.

    ``overwrite`` removes only what a run writes (``owned``: :data:`OWNED` for ``train``,
    :data:`RLHF_OWNED` for ``rlhf``); other files stay.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a directory")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"run directory {run_dir} exists and is not empty; pass --resume {run_dir} to continue it, "
                "--overwrite to start it afresh, or choose another --out"
            )
        for name in owned:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_metadata(run_dir: Path, config: BaseConfig, options: RunOptions, plan: list[int], command: str,
                   grid: dict[str, list[float]] | None = None) -> dict:
    """Write ``config.yaml`` and ``run.json`` for a new run; returns the run info.

    ``grid``: a sweep's ``{field: values}``, written into ``config.yaml`` as its ``sweep`` mapping
    (:mod:`purejaxrl_ppo.runs.sweep_files`).
    """
    if grid is None:
        write_run_file(run_dir / CONFIG_FILE, config, options,
                       header=f"Resolved config of this run; rerun with:\n  python -m purejaxrl_ppo train --config {run_dir / CONFIG_FILE}")
    else:
        from purejaxrl_ppo.runs.sweep_files import write_sweep_file  # (it builds on this module)

        write_sweep_file(run_dir / CONFIG_FILE, config, options, grid,
                         header=f"Resolved config and grid of this sweep; rerun with:\n  python -m purejaxrl_ppo sweep --config {run_dir / CONFIG_FILE}")
    info = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "machine": machine_description(),
        "num_updates": config.num_updates,
        "plan": plan,
        "wandb_id": f"{run_dir.name}-{os.urandom(4).hex()}",
        COMPLETE_FILE: True,  # this run writes the completion marker (older runs did not)
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


def require_run_dir(run_dir: Path, command: str = "train") -> None:
    """Raise :class:`RunDirError` (what is missing, what is there, and what to do) unless ``run_dir`` holds a run
    to resume. Where the directory holds checkpoints or logs, the advice never deletes them."""
    if not run_dir.is_dir():
        if run_dir.exists():
            raise RunDirError(f"cannot resume {run_dir}: it is a file, not a run directory")
        raise RunDirError(f"cannot resume: run directory {run_dir} does not exist")
    missing = [name for name in (CONFIG_FILE, RUN_FILE) if not (run_dir / name).is_file()]
    if not missing:
        return
    kept = saved_progress(run_dir)
    has = f"it has no {' or '.join(missing)}"
    if kept:
        config = run_dir / CONFIG_FILE
        restart = (f"; or start the same run again in a new directory, leaving this one as it is: python -m "
                   f"purejaxrl_ppo {command} --config {shlex.quote(str(config))} --out NEW_DIR"
                   if config.is_file() else "")
        raise RunDirError(f"cannot resume {run_dir}: {has}, but it holds {kept}; nothing was deleted (do not use "
                          f"--overwrite: it would delete them): restore {' and '.join(missing)} from a backup and "
                          f"run --resume again{restart}")
    if (run_dir / CONFIG_FILE).is_file():
        hint = (f"it was stopped before training started; start it again with: python -m purejaxrl_ppo {command} "
                f"--config {shlex.quote(str(run_dir / CONFIG_FILE))} --out {shlex.quote(str(run_dir))} --overwrite")
    else:
        hint = "it is not a run directory written by purejaxrl_ppo"
    raise RunDirError(f"cannot resume {run_dir}: {has}; {hint}")


def saved_progress(run_dir: Path) -> str:
    """What of a run's progress ``run_dir`` holds ("checkpoints at updates 6, 8 and logs"), "" if nothing."""
    parts = []
    checkpoints = run_dir / "checkpoints"
    steps = sorted(int(p.name) for p in checkpoints.iterdir()
                   if p.is_dir() and p.name.isdigit() and str(int(p.name)) == p.name) if checkpoints.is_dir() else []
    if steps:
        parts.append(f"checkpoints at updates {', '.join(map(str, steps))} ({checkpoints})")
    if logs_present(run_dir) or (run_dir / "points").is_dir():
        parts.append("logs")
    finals = [name for name in (*FINAL_FILES, COMPLETE_FILE) if (run_dir / name).is_file()]
    if finals:
        parts.append(f"final files ({', '.join(finals)})")
    return " and ".join(parts)


def load_existing(run_dir: Path) -> tuple[BaseConfig, RunOptions, dict[str, Any]]:
    """``(config, options, run info)`` of a run directory to resume."""
    require_run_dir(run_dir)
    config, options = load_run_file(run_dir / CONFIG_FILE)
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except json.JSONDecodeError as err:
        raise RunDirError(f"cannot resume {run_dir}: {run_dir / RUN_FILE} is not valid JSON ({err})") from None
    return config, options, info


def _write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())  # never a half-written run.json
