"""Checkpoints of a multi-seed run with orbax: atomic, the newest K kept, verified on restore.

A checkpoint at step ``s`` (= updates done) holds three items written together
by one orbax ``CheckpointManager.save``:

* ``state``:   the full :class:`~purejaxrl_ppo.core.types.TrainState` of every seed as a
  generic pytree (params, optimiser state, env state, RNG keys, update counter and
  whatever else the train state carries), leaves ``[seeds, ...]``;
* ``history``: every per-update metric so far, ``{name: [seeds, s]}``;
* ``meta``:    JSON: the config, the run options, the chunk plan, ``step``.

Orbax writes a step into ``<step>.orbax-checkpoint-tmp`` and renames it only
once complete, so a crash mid-write leaves the previous checkpoint untouched.
After the rename we add ``checksums.json`` (SHA-256 of every file), so that a
file damaged later is named on restore, and :meth:`Checkpointer.restore_latest`
falls back to the newest checkpoint that reads back intact.

The state is restored into the structure of ``jax.eval_shape`` of the run's
init, so nothing here knows the train state's fields.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

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


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_host(tree: Any) -> Any:
    """NumPy copies of every leaf; typed PRNG keys as their raw ``uint32`` data."""
    return jax.tree_util.tree_map(lambda x: np.asarray(jax.random.key_data(x) if _is_key(x) else x), tree)


def _template(abstract: Any) -> Any:
    """Zero NumPy arrays shaped like ``abstract`` (``ShapeDtypeStruct`` leaves) to restore into."""

    def leaf(x):
        if _is_key(x):
            return np.zeros(jax.eval_shape(jax.random.key_data, x).shape, np.uint32)
        return np.zeros(x.shape, x.dtype)

    return jax.tree_util.tree_map(leaf, abstract)


def _from_host(restored: Any, abstract: Any) -> Any:
    """Device arrays, re-wrapping typed PRNG keys."""

    def leaf(x, a):
        if _is_key(a):
            # the key implementation is part of the dtype (``key<fry>``); eval_shape keeps the dtype
            return jax.random.wrap_key_data(x, impl=a.dtype._impl)
        return jax.device_put(x)

    return jax.tree_util.tree_map(leaf, restored, abstract)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(step_dir: Path) -> list[Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS)


class Checkpointer:
    """Save and restore a run's checkpoints under ``directory`` (orbax ``CheckpointManager``).

    ``keep``: how many of the newest checkpoints to keep (older ones are deleted).
    """

    def __init__(self, directory: Path | str, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # ------------------------------------------------------------------ save
    def save(self, step: int, state: Any, history: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` (blocking; atomic) and its checksums; returns its directory."""
        ocp = self._ocp
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_to_host(state)),
            history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()}),
            meta=ocp.args.JsonSave({**meta, "step": int(step)}),
        )
        self._manager.save(int(step), args=args, force=True)
        self._manager.wait_until_finished()
        step_dir = self.directory / str(int(step))
        sums = {str(p.relative_to(step_dir)): _sha256(p) for p in _files(step_dir)}
        tmp = step_dir / (CHECKSUMS + ".tmp")
        tmp.write_text(json.dumps(sums, indent=1))
        os.replace(tmp, step_dir / CHECKSUMS)  # atomic: the manifest is whole or absent
        return step_dir

    # ------------------------------------------------------------------ restore
    def steps(self) -> list[int]:
        """Committed checkpoint steps, oldest first (unfinished ``*-tmp`` writes are not steps)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def verify(self, step: int) -> None:
        """Raise :class:`CheckpointError` naming the first file that is missing or changed."""
        step_dir = self.directory / str(step)
        manifest = step_dir / CHECKSUMS
        if not manifest.is_file():
            return  # written by a run that stopped between the commit and the manifest: orbax decides
        for name, digest in json.loads(manifest.read_text()).items():
            path = step_dir / name
            if not path.is_file():
                raise CheckpointError(f"{path} is missing")
            if _sha256(path) != digest:
                raise CheckpointError(f"{path} is corrupt (checksum mismatch)")

    def restore(self, step: int, abstract_state: Any) -> Restored:
        """Checkpoint ``step`` restored into the structure of ``abstract_state`` (from ``jax.eval_shape``)."""
        self.verify(step)
        ocp = self._ocp
        try:
            out = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_template(abstract_state)),
                    history=ocp.args.StandardRestore(),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as err:  # orbax/tensorstore raise many types for unreadable or mismatched data
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{self.directory / str(step)} cannot be read: {first_line[:500]}") from err
        state = _from_host(out.state, abstract_state)
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
        errors = []
        for step in reversed(self.steps()):
            try:
                return self.restore(step, abstract_state)
            except CheckpointError as err:
                errors.append(str(err))
                quarantine.mkdir(parents=True, exist_ok=True)
                target = quarantine / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
                shutil.move(str(self.directory / str(step)), str(target))
                self._manager.reload()  # forget the moved step, so a new save may reuse its number
                warnings.warn(
                    f"checkpoint step {step} is unusable: {err}; moved it to {target} and "
                    "falling back to the previous checkpoint",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
        if errors:
            raise CheckpointError("no checkpoint could be restored: " + "; ".join(errors))
        return None

    def close(self) -> None:
        self._manager.close()
