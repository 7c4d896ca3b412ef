"""Provenance: where and with what a run or a measurement was made (one place for the package)."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VERSIONED = (
    "purejaxrl_ppo", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "brax", "numpy",
    "orbax-checkpoint", "tensorboardX", "wandb",
)


def versions() -> dict[str, str]:
    """Installed versions of Python and the packages a run depends on (absent ones omitted)."""
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


#: The repository paths whose content :func:`code_version` records (stored results under
#: ``benchmarks/results`` are data, not code, and are left out).
CODE_PATHS = ("purejaxrl_ppo", "benchmarks", "examples", "Makefile", "pyproject.toml")
_NOT_CODE = "benchmarks/results/"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout


@functools.lru_cache(maxsize=None)
def code_version(root: Path | None = None) -> dict[str, Any]:
    """The code that ran: ``{"commit": HEAD's SHA, "modified": {path: git blob SHA}}``, or ``{"commit": None}``.

    ``modified`` maps every file under :data:`CODE_PATHS` that differs from the commit (changed, added or
    untracked; deleted files map to ``None``) to the git blob hash of its content at this moment, so a
    measurement made on an uncommitted tree still names exactly the code it measured
    (``benchmarks/results_docs.py --check`` compares it with the code of today). ``root`` defaults to the
    git checkout this package was imported from; outside a git checkout (an installed wheel) the commit is
    ``None``. Computed once per process (the code does not change under a running process).
    """
    root = Path(__file__).resolve().parents[2] if root is None else Path(root)
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    changed, deleted = [], []
    entries = status.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":  # a rename's original path follows; the new path is what exists now
            i += 1
        if path.startswith(_NOT_CODE):
            continue
        (deleted if "D" in code else changed).append(path)
    blobs = _git(root, "hash-object", "--", *changed).split() if changed else []
    modified: dict[str, str | None] = {p: b for p, b in zip(changed, blobs)}
    modified.update({p: None for p in deleted})
    return {"commit": commit, "modified": dict(sorted(modified.items()))}


def machine_description() -> dict[str, Any]:
    """Where a figure was measured: host, CPU count, jax backend and versions, and the code
    (:func:`code_version`)."""
    import jax  # here, not at import: code_version needs no jax (benchmark parents load this file alone)

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "jax_backend": jax.default_backend(),
        "devices": ", ".join(d.device_kind for d in jax.devices()),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "code": code_version(),
    }


