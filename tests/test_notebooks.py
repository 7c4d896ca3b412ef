"""The notebooks' stored outputs (what the documentation shows) come from their current code.

Each notebook must have been executed by ``notebooks/execute.py`` (``make notebooks``) after its code
cells last changed: one complete run in a fresh kernel (execution counts 1, 2, ... in order, every code
cell run), no error output, and a stamp whose code hash matches. ``make test`` also executes the
quickstart and RLHF notebooks with nbmake, so their code still runs against the package.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers import load_script

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
REFRESH = "run `make notebooks` (or python notebooks/execute.py notebooks/{name}) and commit the outputs"


execute = load_script("notebooks/execute.py", "notebooks_execute")


def test_the_three_notebooks_are_checked():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "rlhf.ipynb", "trpo_vs_ppo.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_one_run_of_the_current_code(path):
    nb = nbformat.read(path, as_version=4)
    refresh = REFRESH.format(name=path.name)
    stamp = nb.metadata.get(execute.STAMP)
    assert stamp, f"{path.name} has no outputs stamp; {refresh}"
    assert stamp["code_sha256"] == execute.code_sha256(nb), f"{path.name}'s code changed after its outputs; {refresh}"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name} is not one top-to-bottom run {counts}; {refresh}"
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} stores an error output; {refresh}"
    assert any(cell.outputs for cell in code), path.name
    assert stamp["versions"]["jax"] and stamp["machine"]["processor"]


def test_a_code_change_is_caught_and_prose_is_not():
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    before = execute.code_sha256(nb)
    prose = next(c for c in nb.cells if c.cell_type == "markdown")
    prose.source += " More words."
    assert execute.code_sha256(nb) == before
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\nprint('changed')"
    assert execute.code_sha256(nb) != before
