"""Checkpoints of a multi-seed run with orbax: atomic, verified, the newest K kept.

A checkpoint at step ``s`` (= updates done) is the directory ``<directory>/<s>/``
holding three items written together by one orbax composite save:

* ``state``:   the full :class:`~purejaxrl_ppo.core.types.TrainState` of every seed as a
  generic pytree (params, optimiser state, env state, RNG keys, update counter and
  whatever else the train state carries), leaves ``[seeds, ...]``;
* ``history``: every per-update metric so far, ``{name: [seeds, s]}``;
* ``meta``:    JSON: the config, the run options, the chunk plan, ``step``, timings;

and ``checksums.json``, the SHA-256 of every other file. A save writes all of it,
manifest included, into ``<directory>/.staging/<s>/`` and only then renames that
directory to ``<directory>/<s>``: a checkpoint is visible only when complete, and a
checkpoint without a manifest (or whose files do not match it) is never trusted.
:meth:`Checkpointer.restore_latest` quarantines such a checkpoint with a warning and
falls back to the newest one that verifies and reads back.

The state is restored into the structure of ``jax.eval_shape`` of the run's
init, so nothing here knows the train state's fields.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxrl_ppo.core.types import is_key
from purejaxrl_ppo.runs.rundir import RunDirError, sha256_file, write_atomic

CHECKSUMS = "checksums.json"


class CheckpointError(RuntimeError):
    """No checkpoint could be restored; the message names the files and why."""


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint was unreadable and an older one was used instead."""


class Restored(NamedTuple):
    """A checkpoint read back: step (updates done), state, metrics history and meta."""

    step: int
    state: Any
    history: dict[str, np.ndarray]
    meta: dict[str, Any]


def _is_empty(shape: tuple[int, ...]) -> bool:
    return math.prod(shape) == 0


def to_host(tree: Any) -> Any:
    """NumPy copies of every leaf; typed PRNG keys as their raw ``uint32`` data. A zero-size leaf (MJX
    states hold several, e.g. ``data.act`` of a model without activations) becomes a one-element
    placeholder, since orbax refuses to save zero-size arrays; :func:`from_host` rebuilds it."""

    def leaf(x):
        x = np.asarray(jax.random.key_data(x) if is_key(x) else x)
        return np.zeros((1,), x.dtype) if _is_empty(x.shape) else x

    return jax.tree_util.tree_map(leaf, tree)


def host_template(abstract: Any) -> Any:
    """Zero NumPy arrays shaped like ``abstract`` (``ShapeDtypeStruct`` leaves) to restore into
    (zero-size leaves as :func:`to_host`'s placeholders)."""

    def leaf(x):
        if is_key(x):
            return np.zeros(jax.eval_shape(jax.random.key_data, x).shape, np.uint32)
        return np.zeros((1,) if _is_empty(x.shape) else x.shape, x.dtype)

    return jax.tree_util.tree_map(leaf, abstract)


def from_host(restored: Any, abstract: Any) -> Any:
    """Device arrays, re-wrapping typed PRNG keys and rebuilding zero-size leaves from ``abstract``."""

    def leaf(x, a):
        if is_key(a):
            # the key implementation is part of the dtype (``key<fry>``); eval_shape keeps the dtype
            return jax.random.wrap_key_data(x, impl=a.dtype._impl)
        if _is_empty(a.shape):
            return jax.numpy.zeros(a.shape, a.dtype)
        return jax.device_put(x)

    return jax.tree_util.tree_map(leaf, restored, abstract)


def _is_step_name(name: str) -> bool:
    """``name`` is a step as :meth:`Checkpointer.save` writes it: digits, no leading zero (``09`` is not step 9)."""
    return name.isdigit() and str(int(name)) == name


def _files(step_dir: Path) -> list[Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_tree(path: Path, trash: Path) -> None:
    """Delete a directory by renaming it to ``trash`` first: never a half-deleted checkpoint in place."""
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def move_to_quarantine(path: Path, quarantine: Path, name: str) -> Path:
    """Move ``path`` (a damaged checkpoint or stage) to ``quarantine/<name>-<time>`` (``-1`` appended while that
    is taken), out of the way of new saves and kept for inspection; returns where it went."""
    quarantine.mkdir(parents=True, exist_ok=True)
    target = quarantine / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    while target.exists():
        target = target.with_name(target.name + "-1")
    shutil.move(str(path), str(target))
    return target


def write_manifest(step_dir: Path) -> None:
    """Write ``checksums.json`` (SHA-256 of every other file under ``step_dir``), atomically."""
    sums = {str(p.relative_to(step_dir)): sha256_file(p) for p in _files(step_dir)}
    write_atomic(step_dir / CHECKSUMS, json.dumps(sums, indent=1).encode())


def verify_manifest(step_dir: Path) -> None:
    """Raise :class:`CheckpointError` naming the first file under ``step_dir`` that is missing, changed or not
    in its manifest (``checksums.json``, :func:`write_manifest`), or saying that there is no manifest."""
    manifest = step_dir / CHECKSUMS
    if not manifest.is_file():
        raise CheckpointError(f"{step_dir} has no {CHECKSUMS}: its save did not complete, it cannot be trusted")
    try:
        sums = json.loads(manifest.read_text())
        if not isinstance(sums, dict) or not sums:
            raise ValueError("not a non-empty JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{manifest} is corrupt ({err})") from None
    for name, digest in sums.items():
        path = step_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"{path} is corrupt (checksum mismatch)")


class Checkpointer:
    """Save and restore a run's checkpoints under ``directory`` (orbax composite checkpoints).

    ``keep``: how many of the newest checkpoints to keep (older ones are deleted).
    """

    STAGING = ".staging"

    def __init__(self, directory: Path | str, keep: int = 3):
        import orbax.checkpoint as ocp

        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._ocp = ocp
        self.keep = keep
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise RunDirError(f"{self.directory} is a file, not the checkpoint directory; move it away and run the "
                              "command again")
        self.directory.mkdir(parents=True, exist_ok=True)
        # Several processes (jax.distributed): process 0 alone saves and restores (the state is gathered to
        # the host first), so orbax's barriers must not wait for the others.
        # Every handler gets the options: one left at the default would wait in a barrier for every process.
        only_this = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                       active_processes={jax.process_index()})
        handler = ocp.CompositeCheckpointHandler(
            composite_options=ocp.CompositeOptions(multiprocessing_options=only_this),
            state=ocp.StandardCheckpointHandler(multiprocessing_options=only_this),
            history=ocp.StandardCheckpointHandler(multiprocessing_options=only_this),
            meta=ocp.JsonCheckpointHandler(multiprocessing_options=only_this),
        )
        self._orbax = ocp.Checkpointer(handler, multiprocessing_options=only_this)
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """Remove what an interrupted save or deletion left behind (never a visible checkpoint)."""
        for path in self.directory.iterdir():
            if path.name == self.STAGING or path.name.startswith(".trash-"):
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ save
    def save(self, step: int, state: Any, history: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` with its manifest, then make it visible by one rename; returns its directory.

        Blocking. Older checkpoints beyond the newest ``keep`` are deleted afterwards.
        """
        ocp = self._ocp
        step = int(step)
        staging = self.directory / self.STAGING
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        staged = staging / str(step)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(to_host(state)),
            history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()}),
            meta=ocp.args.JsonSave({**meta, "step": step}),
        )
        self._orbax.save(staged, args=args)
        write_manifest(staged)
        _fsync_dir(staged)
        target = self.directory / str(step)
        if target.exists():  # a step written again (e.g. after --restart): replace it whole
            remove_tree(target, self.directory / f".trash-{step}")
        os.rename(staged, target)  # the checkpoint becomes visible complete, manifest included
        _fsync_dir(self.directory)
        shutil.rmtree(staging, ignore_errors=True)
        for old in self.steps()[: -self.keep]:
            remove_tree(self.directory / str(old), self.directory / f".trash-{old}")
        return target

    # ------------------------------------------------------------------ restore
    def steps(self) -> list[int]:
        """Visible checkpoint steps, oldest first (staged or half-deleted ones are not steps, nor a directory whose
        name is no step as :meth:`save` writes it, such as ``09``: see :meth:`strays`)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.is_dir() and _is_step_name(p.name))

    def strays(self) -> list[Path]:
        """Entries of the directory that no save wrote (left alone: they may be someone's)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir()
                      if not (p.is_dir() and _is_step_name(p.name)) and p.name != self.STAGING
                      and not p.name.startswith(".trash-"))

    def verify(self, step: int) -> None:
        """Raise :class:`CheckpointError` naming the first file that is missing or changed."""
        verify_manifest(self.directory / str(step))

    def restore(self, step: int, abstract_state: Any) -> Restored:
        """Checkpoint ``step`` restored into the structure of ``abstract_state`` (from ``jax.eval_shape``)."""
        self.verify(step)
        ocp = self._ocp
        try:
            out = self._orbax.restore(
                self.directory / str(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(host_template(abstract_state)),
                    history=ocp.args.StandardRestore(),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as err:  # orbax/tensorstore raise many types for unreadable or mismatched data
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{self.directory / str(step)} cannot be read: {first_line[:500]}") from err
        state = from_host(out.state, abstract_state)
        history = {k: np.asarray(v) for k, v in dict(out.history).items()}
        return Restored(int(step), state, history, dict(out.meta))

    def restore_latest(self, abstract_state: Any, quarantine: Path | None = None) -> Restored | None:
        """The newest checkpoint that restores intact, or ``None`` if there is none.

        An unreadable checkpoint triggers a :class:`CorruptCheckpointWarning`
        naming the file and is moved to ``quarantine`` (default
        ``<directory>/../corrupt_checkpoints``), so new saves can reuse its step.
        Raises :class:`CheckpointError` if checkpoints exist but none restores.
        """
        quarantine = quarantine or self.directory.parent / "corrupt_checkpoints"
        for stray in self.strays():
            warnings.warn(f"{stray} is not a checkpoint (checkpoints are directories named by their step, such as "
                          f"{self.directory / '8'}); ignoring it", CorruptCheckpointWarning, stacklevel=2)
        errors = []
        for step in reversed(self.steps()):
            try:
                return self.restore(step, abstract_state)
            except CheckpointError as err:
                errors.append(str(err))
                target = move_to_quarantine(self.directory / str(step), quarantine, str(step))
                warnings.warn(
                    f"checkpoint step {step} is unusable: {err}; moved it to {target} and "
                    "falling back to an older checkpoint",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
        if errors:
            raise CheckpointError("no checkpoint could be restored: " + "; ".join(errors))
        return None

    def last_verified(self) -> Path | None:
        """The newest checkpoint whose files match its manifest (not read back), or ``None``."""
        for step in reversed(self.steps()):
            try:
                self.verify(step)
            except CheckpointError:
                continue
            return self.directory / str(step)
        return None

    def close(self) -> None:
        self._orbax.close()
