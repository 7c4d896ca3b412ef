"""The durable-run driver: what every run in a run directory shares, whatever it trains.

A run is a sequence of stages in one run directory. The driver owns, for every kind of run:

* **the directory and its lock** (:func:`open_run`): a new run refuses a non-empty directory unless it may
  overwrite (and then removes only what its kind writes), a file standing in the way is one line, a full or
  read-only disk is one line (:func:`~purejaxrl_ppo.runs.rundir.disk_errors`); one writer at a time, the lock
  held until the run has finished (``complete.json`` written), so nothing can slip in while a run finishes;
* **chunked stages** (:func:`run_chunked_stage`: control training, a sweep, each RLHF RL group): the chunk
  loop (:func:`~purejaxrl_ppo.launch.chunked.run_chunks`), a checkpoint with a manifest after every
  ``checkpoint_every`` chunks, resume from the newest checkpoint that verifies (damaged ones quarantined, the
  checkpoint's config/plan checked against the run's), ``--restart`` (start again from update 0), the logs
  after every chunk (rewritten from the checkpoint's history on a resume), divergence (the logs end with the
  update that diverged, the last verified checkpoint named);
* **one-shot stages** (:func:`output_stage`: RLHF's SFT model and reward model): outputs written under the
  stage's directory with a manifest last; on a resume reused only when they verify
  (:func:`quarantine_damaged_outputs`), else quarantined and computed again;
* **the atomic finish** (:func:`finish`): ``complete.json`` (the SHA-256 of every final file and log) last.

The clients say what differs: their state, programs, metrics and outputs
(:mod:`purejaxrl_ppo.driver.control` for ``train`` and ``sweep``, :mod:`purejaxrl_ppo.driver.rlhf` for
``rlhf``). Process groups: the control client runs this in process 0 and hands its decisions to the others
(:mod:`purejaxrl_ppo.launch.distributed`); ``rlhf`` runs in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from purejaxrl_ppo.launch.chunked import ChunkReport, ChunksRun, Programs, StartPoint, TrainingDiverged, run_chunks
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.checkpoint import CHECKSUMS, Checkpointer, CheckpointError, CorruptCheckpointWarning, \
    move_to_quarantine, remove_tree, verify_manifest, write_manifest
from purejaxrl_ppo.runs.rundir import RunDirError


# ----------------------------------------------------------------------------- the directory
def make_run_dir(run_dir: Path) -> None:
    """Create a new run's directory; a one-line :class:`RunDirError` where a file stands in the way."""
    blocking = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        what = "it" if blocking == run_dir else f"{blocking}"
        raise RunDirError(f"run directory {run_dir} cannot be created: {what} is a file; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def open_run(run_dir: Path, command: str, *, new: bool, overwrite: bool = False,
             owned: tuple[str, ...] = rundir.OWNED) -> Iterator[Path]:
    """Hold ``run_dir`` for one writer until the block ends (the run finished, or stopped).

    ``new``: create the directory (refusing a non-empty one unless ``overwrite``, which removes only the
    ``owned`` names); else it must exist (the client has checked what it holds). Disk errors inside the
    block (full, read-only) become one-line :class:`RunDirError`.
    """
    with rundir.disk_errors(run_dir):
        if new:
            make_run_dir(run_dir)
        elif not run_dir.is_dir():
            raise RunDirError(f"cannot resume: run directory {run_dir} does not exist")
        with rundir.locked(run_dir, command):
            if new:
                rundir.prepare_new(run_dir, overwrite, owned)
            yield run_dir


def drop_progress(run_dir: Path, *checkpoint_dirs: Path) -> None:
    """For ``--restart``: remove the completion marker and the checkpoints (the logs are rewritten from 0)."""
    (run_dir / rundir.COMPLETE_FILE).unlink(missing_ok=True)
    for checkpoints in checkpoint_dirs:
        if checkpoints.is_dir():
            remove_tree(checkpoints, checkpoints.with_name(f".{checkpoints.name}-dropped"))


def finish(run_dir: Path, names: Sequence[str], log_dirs: Sequence[str] = ("",)) -> None:
    """The last write of a run: ``complete.json`` with the SHA-256 of the final files ``names`` and of the logs
    in each of ``log_dirs`` (relative to ``run_dir``), so a damaged or truncated one makes the run unfinished."""
    logs = tuple(name for under in log_dirs for name in rundir.logs_present(run_dir, under))
    rundir.mark_complete(run_dir, (*names, *logs))


# ----------------------------------------------------------------------------- chunked stages
class Sinks(Protocol):
    """Where a chunked stage's metrics go after every chunk (:class:`~purejaxrl_ppo.runs.sinks.SinkGroup`)."""

    def write(self, metrics: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class ChunkedStage:
    """What a client gives :func:`run_chunked_stage`.

    name:             the stage in messages ("train", "sweep", "rl:main")
    programs:         its compiled programs (:class:`~purejaxrl_ppo.launch.chunked.Programs`)
    plan:             chunk sizes (updates or iterations), summing to the stage's total
    init:             ``() -> placed fresh state``
    abstract_state:   ``ShapeDtypeStruct`` tree of the ``[rows, ...]`` state, to restore a checkpoint into
    meta:             what its checkpoints are written with and must match to be resumed (config, plan, ...)
    checkpoints:      the checkpoint directory
    keep:             checkpoints kept (the newest)
    checkpoint_every: a checkpoint after every that many chunks, and after the last
    repair:           the command line that starts the stage again from 0 (``--restart``), for messages
    quarantine:       where damaged checkpoints go (default: ``corrupt_checkpoints/`` beside ``checkpoints``)
    upgrade_saved:    ``saved meta -> meta`` before comparing (fields added since the checkpoint: defaults)
    diverged:         ``(update, metric, row, metrics) -> exception`` to stop on a non-finite metric; None: go on
    """

    name: str
    programs: Programs
    plan: list[int]
    init: Callable[[], Any]
    abstract_state: Any
    meta: dict[str, Any]
    checkpoints: Path
    keep: int = 3
    checkpoint_every: int = 1
    repair: str = ""
    quarantine: Path | None = None
    upgrade_saved: Callable[[dict[str, Any]], dict[str, Any]] = lambda saved: saved  # noqa: E731
    diverged: Callable[[int, str, int, dict[str, np.ndarray]], Exception] | None = None


@dataclasses.dataclass
class StageRun:
    """A chunked stage's result: :class:`~purejaxrl_ppo.launch.chunked.ChunksRun` and the timings stored in the
    checkpoint it resumed from (``None`` for a fresh start; a finished stage resumed runs no update)."""

    chunks: ChunksRun
    start: StartPoint | None
    saved_timing: dict[str, Any] | None


def _differences(saved: Any, current: Any) -> str:
    """``key: saved -> current`` for the keys of two dicts that differ (or the values themselves)."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return f"{saved} -> {current}"
    keys = sorted(set(saved) | set(current), key=str)
    return ", ".join(f"{k}: {saved.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}"
                     for k in keys if saved.get(k, "(absent)") != current.get(k, "(absent)"))


def restore_stage(stage: ChunkedStage, checkpointer: Checkpointer, source: str
                  ) -> tuple[StartPoint | None, dict[str, Any] | None]:
    """The newest intact checkpoint of ``stage`` as a :class:`StartPoint` and its stored timings, or
    ``(None, None)`` where none was ever written. Damaged checkpoints are quarantined (warnings); when every one
    was, a one-line error names ``stage.repair``. A checkpoint written with other ``meta`` (``source`` names the
    run file it is compared with) or off the plan's chunk boundaries is refused (:class:`RunDirError`)."""
    quarantine = stage.quarantine or stage.checkpoints.parent / "corrupt_checkpoints"
    try:
        restored = checkpointer.restore_latest(stage.abstract_state, quarantine)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; every checkpoint was quarantined to {quarantine}; to start again from "
                              f"update 0: {stage.repair}") from None
    if restored is None:
        if quarantine.is_dir() and any(p.name.split("-")[0].isdigit() for p in quarantine.iterdir()):
            raise RunDirError(f"{stage.checkpoints.parent} has no usable checkpoint: every one was quarantined to "
                              f"{quarantine}; to start again from update 0: {stage.repair}")
        return None, None
    saved = stage.upgrade_saved(dict(restored.meta))
    where = stage.checkpoints / str(restored.step)
    for name in stage.meta:
        if saved.get(name) != stage.meta[name]:
            raise RunDirError(f"checkpoint {where} was written with a different {name} than {source} "
                              f"({_differences(saved.get(name), stage.meta[name])}); restore the run file or start "
                              "a new run")
    if restored.step not in np.cumsum([0, *stage.plan]):
        raise RunDirError(f"checkpoint {where} is not at a chunk boundary of the plan {stage.plan}")
    return StartPoint(restored.step, restored.state, restored.history), restored.meta.get("timing")


def run_chunked_stage(stage: ChunkedStage, *, resume: bool, source: str,
                      open_sinks: Callable[[StartPoint | None], Sinks],
                      timing: Callable[[ChunkReport], dict[str, Any]], on_start: Callable[..., None] | None = None,
                      on_logged: Callable[[ChunkReport], None] | None = None,
                      on_chunk: Callable[[ChunkReport], None] | None = None,
                      on_compile: Callable[[], None] | None = None) -> StageRun:
    """Run (or continue) one chunked stage with checkpoints and logs; see the module docstring.

    ``open_sinks(start)`` opens the stage's logs (writing ``start``'s history first, if any); ``timing(report)``
    gives the timings a checkpoint stores (under ``meta["timing"]``); ``on_start(start, saved_timing)`` runs once
    the start point is known, before compiling (process 0 hands it to the others there); ``on_logged(report)``
    after each chunk's logs, before its checkpoint (what it records goes into that checkpoint); ``on_chunk(report)``
    after the checkpoint. A :class:`~purejaxrl_ppo.launch.chunked.TrainingDiverged` leaves
    the logs ending with the update that diverged and names the last verified checkpoint
    (``err.last_checkpoint``).
    """
    checkpointer = Checkpointer(stage.checkpoints, keep=stage.keep)
    try:
        start, saved_timing = restore_stage(stage, checkpointer, source) if resume else (None, None)
        if on_start is not None:
            on_start(start, saved_timing)
        sinks = open_sinks(start)
        logged = 0 if start is None else start.updates_done
        total = sum(stage.plan)

        def after_chunk(report: ChunkReport) -> None:
            nonlocal logged
            sinks.write(report.chunk_metrics)
            logged = report.updates_done
            if on_logged is not None:
                on_logged(report)
            if (report.index + 1) % stage.checkpoint_every == 0 or report.updates_done == total:
                checkpointer.save(report.updates_done, report.state, report.metrics,
                                  {**stage.meta, "timing": timing(report)})
            if on_chunk is not None:
                on_chunk(report)

        try:
            chunks = run_chunks(stage.programs, stage.plan, init=stage.init, start=start, on_chunk=after_chunk,
                                on_compile=on_compile if start is None or start.updates_done < total else None,
                                diverged=stage.diverged)
        except TrainingDiverged as err:
            sinks.write({k: v[..., logged:err.update] for k, v in err.metrics.items()})  # up to the bad update
            err.last_checkpoint = checkpointer.last_verified()
            raise
        finally:
            sinks.close()
    finally:
        checkpointer.close()
    return StageRun(chunks, start, saved_timing)


# ----------------------------------------------------------------------------- one-shot stages
def quarantine_damaged_outputs(run_dir: Path, stages: Sequence[str], required: str) -> list[str]:
    """Check each finished one-shot stage ``run_dir/<stage>`` against its manifest; move a damaged one (or one
    whose ``required`` file is there without a manifest: it cannot be trusted) to
    ``run_dir/corrupt_checkpoints/<stage>-<time>`` with a :class:`CorruptCheckpointWarning`, so that it is
    computed again. A stage stopped before its files were written is simply done again. Returns those moved."""
    moved = []
    for name in stages:
        directory = run_dir / name
        if not directory.is_dir():
            continue
        if not (directory / CHECKSUMS).is_file() and not (directory / required).is_file():
            continue  # stopped while computing or saving it: done again
        try:
            verify_manifest(directory)
            continue
        except CheckpointError as err:
            problem = str(err)
        target = move_to_quarantine(directory, run_dir / "corrupt_checkpoints", name)
        warnings.warn(f"stage {name} is unusable: {problem}; moved it to {target} and computing it again",
                      CorruptCheckpointWarning, stacklevel=2)
        moved.append(name)
    return moved


def output_stage(directory: Path, *, load: Callable[[Path], Any], produce: Callable[[], tuple[dict[str, bytes], Any]]
                 ) -> tuple[Any, bool]:
    """A one-shot stage whose outputs are files in ``directory``: ``(value, reused)``.

    Done before (its manifest is there; :func:`quarantine_damaged_outputs` verified it): ``load(directory)``.
    Else ``produce()`` gives ``({file name: bytes}, value)``; the files are written atomically and the manifest
    (``checksums.json``) last: the stage is done once it exists, and is checked before any reuse.
    """
    if (directory / CHECKSUMS).is_file():
        return load(directory), True
    files, value = produce()
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        rundir.write_atomic(directory / name, data)
    write_manifest(directory)
    return value, False
