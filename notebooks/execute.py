"""Execute notebooks in place, so the stored outputs are what the documentation shows (``make notebooks``).

    python notebooks/execute.py [NOTEBOOK.ipynb ...]      # default: every notebooks/*.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel with ``notebooks/`` as its working
directory (as nbmake runs it in ``make test``), and is written back with its outputs and, in its metadata
under ``purejaxrl_ppo``, a stamp: the SHA-256 of its code cells (:func:`code_sha256`), the date, the
machine and package versions, and the code version of this checkout
(:func:`purejaxrl_ppo.runs.provenance.code_version`). ``tests/test_notebooks.py`` fails when a
notebook's code differs from what its outputs were made by, or when its outputs are not one complete,
error-free run; the docs render the stored outputs (``nb_execution_mode = "off"`` in ``docs/conf.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
#: Seconds any one cell may run (the longest, rlhf.ipynb's pipeline cell, took 2.5 minutes on the 2-core VM).
CELL_TIMEOUT = 1800
STAMP = "purejaxrl_ppo"


def code_sha256(nb) -> str:
    """SHA-256 of a notebook's code cells' sources, in order (what its outputs depend on; not the prose)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode())
            digest.update(b"\0")
    return digest.hexdigest()


def execute(path: Path) -> float:
    """Run the notebook at ``path`` and write it back with outputs and stamp; returns the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    from purejaxrl_ppo.runs.provenance import code_version, machine_description, versions

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    seconds = time.perf_counter() - start
    machine = {k: v for k, v in machine_description().items() if k != "code"}
    nb.metadata[STAMP] = {"code_sha256": code_sha256(nb), "executed": time.strftime("%Y-%m-%d"),
                          "seconds": round(seconds, 1), "machine": machine, "versions": versions(),
                          "code": code_version(), "command": f"python notebooks/execute.py {path.name}"}
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute [default: notebooks/*.ipynb]")
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        print(f"{path.name}: {execute(path):.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
