"""Fault injection for ``python -m purejaxrl_ppo sweep``: kills while checkpointing and finishing, a damaged
checkpoint, two writers, an interrupted finish (the rule and the kill points of tests/driver/test_faults.py).

The rule: after a fault, ``sweep --resume`` ends with the uninterrupted sweep's results bit for bit (every
point's logs in ``points/*/``, ``metrics.npz``, ``summary.csv``, ``learning_curves.png``, ``summary.json``
without its timings, the final checkpoint's state and history), or exits non-zero with one ``error:`` line;
never exit 0 with a different result.

Kill points are the renames of an uninterrupted sweep (``run.json``, orbax's commits, each checkpoint's manifest
and rename, the deletions of old checkpoints, the final files, ``complete.json``), recorded while the reference
runs and sorted into phases by where they write (:func:`kill_points`); no count is hard-coded. The sweep is
tests/launch/test_sweep_cli.py's (the same compiled program), whose kill tests crash while saving checkpoint 6's
items, SIGKILL at a deletion and crash before the first final file (CI's kill per phase of a sweep). Here CI
adds a crash before the first checkpoint's manifest (a resume from update 0), a damaged newest checkpoint, a
second writer (then a resume after a crash before the first final file) and a finish interrupted twice (every
final file written but no ``complete.json``, then halfway through rewriting them); ``heavy`` crashes and
SIGKILLs at every rename.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import (
    Reference,
    RenameHook,
    SWEEP_RUN_FILE,
    SWEEP_SETS,
    assert_same_checkpoint,
    assert_same_npz,
    crash,
    every_rename,
    flip_byte,
    one_error_line,
    resume_outcome,
    run_killed,
    without_timings,
    write_run_file,
)
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.runs import rundir

RUN_FILE, SETS = SWEEP_RUN_FILE, SWEEP_SETS  # tests/launch/test_sweep_cli.py's sweep: one program in the compile cache
#: The sweep's final files equal byte for byte (timing.csv holds wall times).
SAME_BYTES = ("summary.csv", "learning_curves.png")
PHASES = ("start", "first checkpoint", "later checkpoints", "finishing")
VISIBLE_CHECKPOINT = re.compile(r"^checkpoints/\d+$")


def cli(*argv: str) -> tuple[int, str]:
    """``main(argv)`` in this process: its exit code and stderr."""
    err = io.StringIO()  # (module fixtures cannot use capsys)
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def sweep_argv(run_file: Path, out: Path) -> list[str]:
    return ["sweep", "--config", str(run_file), *SETS, "--out", str(out), "--quiet"]


def resume(out: Path) -> tuple[int, str]:
    return cli("sweep", "--resume", str(out), "--quiet")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    return write_run_file(tmp_path_factory, RUN_FILE)


@pytest.fixture(scope="module")
def reference(run_file, tmp_path_factory) -> Reference:
    """The uninterrupted sweep, and the destination of each of its renames."""
    out = tmp_path_factory.mktemp("sweep-reference") / "sweep"
    with pytest.MonkeyPatch.context() as patch:
        hook = RenameHook(patch, out)
        code, err = cli(*sweep_argv(run_file, out))
    assert code == 0, err
    return Reference(out, tuple(hook.destinations))


def kill_points(renames: tuple[str, ...]) -> dict[str, list[int]]:
    """``{phase: [k, ...]}``: each rename's 1-based index, by phase (:data:`PHASES`), from where it writes."""
    phases: dict[str, list[int]] = {phase: [] for phase in PHASES}
    first_checkpoint = False
    for k, where in enumerate(renames, 1):
        if where.split("/")[0] == "checkpoints":
            phases["later checkpoints" if first_checkpoint else "first checkpoint"].append(k)
            first_checkpoint = first_checkpoint or bool(VISIBLE_CHECKPOINT.match(where))
        else:
            phases["finishing" if first_checkpoint else "start"].append(k)
    return phases


@pytest.fixture(scope="module")
def points(reference) -> dict[str, int]:
    """The representative kill points (1-based rename indices of the reference sweep)."""
    phases, renames = kill_points(reference.renames), reference.renames
    finishing = phases["finishing"]
    return {
        "first checkpoint": next(k for k in phases["first checkpoint"]  # staged, before its manifest
                                 if renames[k - 1].endswith("/checksums.json")),
        "finishing": finishing[len(finishing) // 2],  # halfway through the final files
        "first final file": finishing[0],
        "marker": finishing[-1],  # every final file written, no complete.json
    }


def test_the_kill_points_cover_every_phase(reference, points):
    phases, renames = kill_points(reference.renames), reference.renames
    assert sorted(k for ks in phases.values() for k in ks) == list(range(1, len(renames) + 1))
    for phase in PHASES:
        assert phases[phase], (phase, renames)
    assert rundir.RUN_FILE in [renames[k - 1] for k in phases["start"]]
    visible = [where for where in renames if VISIBLE_CHECKPOINT.match(where)]
    assert visible == ["checkpoints/2", "checkpoints/4", "checkpoints/6", "checkpoints/8"]
    assert any(where.startswith("checkpoints/.trash-") for where in renames)  # old checkpoints deleted
    finishing = [renames[k - 1] for k in phases["finishing"]]
    assert {"metrics.npz", "summary.json", *SAME_BYTES} <= set(finishing) and finishing[-1] == rundir.COMPLETE_FILE
    assert len(set(points.values())) == len(points)


def assert_same_sweep(run: Path, reference: Path) -> None:
    """Finished, intact, and every result equal to the reference's bit for bit (timings aside)."""
    assert rundir.finished_problem(run) is None
    assert_same_npz(run / "metrics.npz", reference / "metrics.npz")
    for name in SAME_BYTES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    ours, theirs = (without_timings(json.loads((d / "summary.json").read_text())) for d in (run, reference))
    assert ours == theirs
    # the run file (its first lines name the directory it was written in)
    ours, theirs = ([line for line in (d / rundir.CONFIG_FILE).read_text().splitlines() if not line.startswith("#")]
                    for d in (run, reference))
    assert ours == theirs
    logs = sorted(p.relative_to(reference) for p in (reference / "points").rglob("*") if p.is_file())
    assert logs and logs == sorted(p.relative_to(run) for p in (run / "points").rglob("*") if p.is_file())
    for name in logs:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    steps = sorted(int(p.name) for p in (reference / "checkpoints").iterdir() if p.name.isdigit())
    assert_same_checkpoint(run / "checkpoints" / str(steps[-1]), reference / "checkpoints" / str(steps[-1]))


def _outcome(out: Path, reference: Path) -> str:
    """``--resume`` after a fault: ``"resumed"`` (equal to the reference) or its one ``error:`` line."""
    return resume_outcome(resume, assert_same_sweep, out, reference)


# ----------------------------------------------------------------------------- kills
def test_crash_before_the_first_checkpoint_then_resume_from_update_0_equals_the_uninterrupted_sweep(
        run_file, reference, points, tmp_path):
    out = tmp_path / "sweep"
    crash(sweep_argv(run_file, out), out, k=points["first checkpoint"])
    assert [p.name for p in (out / "checkpoints").iterdir()] == [".staging"]  # staged, none visible
    assert _outcome(out, reference.out) == "resumed"


# ----------------------------------------------------------------------------- stopped before finishing
@pytest.fixture(scope="module")
def stopped_template(run_file, points, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep-stopped") / "sweep"
    crash(sweep_argv(run_file, out), out, k=points["first final file"])
    return out


@pytest.fixture
def stopped(stopped_template, tmp_path) -> Path:
    """A sweep crashed just before its first final file: checkpoints 6 and 8 on disk, no final file."""
    run = tmp_path / "sweep"
    shutil.copytree(stopped_template, run)
    return run


def test_a_damaged_newest_checkpoint_is_quarantined_and_resume_falls_back(stopped, reference):
    assert sorted(int(p.name) for p in (stopped / "checkpoints").iterdir() if p.name.isdigit()) == [6, 8]
    files = [p for p in (stopped / "checkpoints" / "8" / "state").rglob("*") if p.is_file()]
    flip_byte(max(files, key=lambda p: p.stat().st_size))
    code, err = resume(stopped)
    assert code == 0, err
    assert "warning: checkpoint step 8 is unusable" in err and "checksum mismatch" in err, err
    assert [p.name.split("-")[0] for p in (stopped / "corrupt_checkpoints").iterdir()] == ["8"]
    assert_same_sweep(stopped, reference.out)


def _listing(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_second_writer_is_refused_naming_the_first(stopped, run_file, reference):
    with rundir.locked(stopped, "the first writer"):
        before = _listing(stopped)
        one_error_line(*resume(stopped), "in use", f"pid {os.getpid()}", "the first writer")
        one_error_line(*cli(*sweep_argv(run_file, stopped), "--overwrite"), "in use", f"pid {os.getpid()}")
        assert _listing(stopped) == before  # nothing written, nothing removed (--overwrite), nothing recorded
    assert _outcome(stopped, reference.out) == "resumed"  # the lock is free again


def test_an_interrupted_finish_resumes_to_the_same_result(stopped, reference, points):
    renames = reference.renames
    crash(["sweep", "--resume", str(stopped), "--quiet"], stopped, at=renames[points["marker"] - 1])
    final = [renames[k - 1] for k in kill_points(renames)["finishing"][:-1]]
    assert all((stopped / name).is_file() for name in final)  # every final file, no complete.json
    assert "has not finished" in rundir.finished_problem(stopped)
    one_error_line(*cli("compare", str(stopped)), "has not finished", "--resume")
    crash(["sweep", "--resume", str(stopped), "--quiet"], stopped, at=renames[points["finishing"] - 1])  # again
    assert _outcome(stopped, reference.out) == "resumed"


def test_compare_names_the_command_that_finishes_an_unfinished_sweep(stopped):
    """It used to advise `train --resume`, which refuses a sweep directory."""
    line = one_error_line(*cli("compare", str(stopped)), "has not finished")
    assert f"sweep --resume {stopped}" in line, line


# ----------------------------------------------------------------------------- every rename (make test-all)
def _every_rename(reference: Reference, tmp_path: Path, fault) -> None:
    every_rename(reference, tmp_path, fault, lambda out: _outcome(out, reference.out),
                 kill_points(reference.renames)["start"])


@pytest.mark.heavy
@pytest.mark.timeout(1800)
def test_crash_at_every_rename(run_file, reference, tmp_path):
    _every_rename(reference, tmp_path, lambda k, out: crash(sweep_argv(run_file, out), out, k=k))


@pytest.mark.heavy
@pytest.mark.timeout(3600)
def test_sigkill_at_every_rename(run_file, reference, tmp_path):
    _every_rename(reference, tmp_path, lambda k, out: run_killed(sweep_argv(run_file, out), k=k))
