"""Fault injection for ``python -m purejaxrl_ppo rlhf``: kills in every phase, a damaged RL checkpoint, two
writers, an interrupted finish (the rule and the kill points of tests/driver/test_faults.py, for ``rlhf``).

The rule: after a fault, ``rlhf --resume`` ends with the uninterrupted run's results bit for bit (summary and
stage metrics without their timings, metrics.npz, the sweep files, samples and plots, the SFT and reward-model
params, the logs, the final RL checkpoint of every group), or exits non-zero with one ``error:`` line; never
exit 0 with a different result.

Kill points are the renames of an uninterrupted run (each file written atomically, the stage manifests, orbax's
commits, every checkpoint's own rename, the final files, ``complete.json``), recorded while the reference runs
and sorted into phases by where they write (:func:`kill_points`); no count is hard-coded. The run is tiny
(tests/cli/test_rlhf_cli.py's model and task, so its programs are in the session's compile cache there too) with
one ``--sweep-kl-coefs`` setting: two RL groups (``checkpoints/`` and ``sweep_checkpoints/ppo/``) of two chunks,
a checkpoint after each.

CI runs one scenario (``faulted``; each test checks a part of it), which costs one run plus the resumes'
set-up: the run crashes (in-process :class:`~helpers.Crash`) just before the SFT stage's manifest, then each
``--resume`` stops just before the reference's rename to the file of the next phase's kill point: the reward
model's params, the main group's last checkpoint after its first (by a real SIGKILL), the next group's first
checkpoint (between the groups), ``complete.json`` (every final file written: an interrupted finish). On the way
a second writer arrives while the lock is held, and the main group's newest checkpoint is damaged before the
finishing step, which falls back to the older one; a last ``--resume`` must equal the reference. ``heavy``:
every rename, each from a fresh run, in-process and by SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers import (
    Reference,
    RenameHook,
    assert_same_checkpoint,
    assert_same_npz,
    crash,
    every_rename,
    flip_byte,
    one_error_line,
    resume_outcome,
    run_killed,
    without_timings,
)
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.runs import rundir

#: tests/cli/test_rlhf_cli.py's tiny pipeline (same programs: the session's compile cache holds them), with one
#: β of a PPO sweep: a second RL group of the main program's shape.
TINY = ["--vocab-size", "8", "--prompt-len", "3", "--response-len", "5", "--base-mean-length", "3", "--d-model", "16",
        "--num-layers", "1", "--num-heads", "2", "--sft-steps", "20", "--rm-steps", "20", "--rm-train-pairs", "64",
        "--num-iterations", "4", "--rollout-batch", "8", "--num-minibatches", "2", "--eval-size", "16",
        "--num-seeds", "2", "--chunk-iterations", "2", "--max-kl", "0.02", "--sweep-kl-coefs", "0"]
#: The results equal byte for byte.
SAME_BYTES = ("config.json", "samples.md", "sweep.json", "rlhf_curves.png", "overoptimisation.png", "metrics.csv",
              "metrics_aggregate.csv", "metrics.jsonl", "sft/params.msgpack", "rm/params.msgpack")
#: The results equal as JSON without their timings (and the command line).
SAME_JSON = ("summary.json", "sft/metrics.json", "rm/metrics.json")
#: The phases of a run, in order, that the kill points must cover.
PHASES = ("start", "sft", "rm", "main group, first checkpoint", "main group, after its first checkpoint",
          "between groups", "other groups", "finishing")
VISIBLE_CHECKPOINT = re.compile(r"^(checkpoints|sweep_checkpoints/[^/]+)/\d+$")


def rlhf(*argv: str) -> tuple[int, str]:
    """``main(["rlhf", *argv])`` in this process: its exit code and stderr."""
    err = io.StringIO()  # (module fixtures cannot use capsys)
    with contextlib.redirect_stderr(err):
        code = main(["rlhf", *argv])
    return code, err.getvalue()


def resume(out: Path) -> tuple[int, str]:
    return rlhf("--resume", str(out), "--quiet")


def resume_argv(out: Path) -> list[str]:
    return ["rlhf", "--resume", str(out), "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Reference:
    """The uninterrupted run, and the destination of each of its renames."""
    out = tmp_path_factory.mktemp("rlhf-reference") / "run"
    with pytest.MonkeyPatch.context() as patch:
        hook = RenameHook(patch, out)
        code, err = rlhf(*TINY, "--out", str(out), "--quiet")
    assert code == 0, err
    return Reference(out, tuple(hook.destinations))


def kill_points(renames: tuple[str, ...]) -> dict[str, list[int]]:
    """``{phase: [k, ...]}``: each rename's 1-based index, by phase (:data:`PHASES`), from where it writes."""
    phases: dict[str, list[int]] = {phase: [] for phase in PHASES}
    first_main_checkpoint = other_group = False
    for k, where in enumerate(renames, 1):
        top = where.split("/")[0]
        if top in ("sft", "rm"):
            phase = top
        elif top == "checkpoints":
            phase = "main group, after its first checkpoint" if first_main_checkpoint else \
                "main group, first checkpoint"
            first_main_checkpoint = first_main_checkpoint or bool(VISIBLE_CHECKPOINT.match(where))
        elif top == "sweep_checkpoints":
            phase = "other groups" if other_group else "between groups"  # the first: no other group has a file
            other_group = True
        else:
            phase = "finishing" if first_main_checkpoint else "start"
        phases[phase].append(k)
    return phases


@pytest.fixture(scope="module")
def points(reference) -> dict[str, int]:
    """The representative kill point of each phase (a 1-based rename index of the reference run)."""
    phases, renames = kill_points(reference.renames), reference.renames
    main_checkpoints = [k for k in phases["main group, after its first checkpoint"]
                        if VISIBLE_CHECKPOINT.match(renames[k - 1])]
    return {
        "sft": phases["sft"][-1],  # before its manifest: params and metrics there, not yet trusted
        "rm": phases["rm"][0],
        "main group, after its first checkpoint": main_checkpoints[-1],  # staged and manifested, not yet visible
        "between groups": phases["between groups"][0],  # the main group done, the next one without a checkpoint
        "finishing": phases["finishing"][-1],  # every final file written, no complete.json
    }


def test_the_kill_points_cover_every_phase(reference, points):
    phases, renames = kill_points(reference.renames), reference.renames
    assert sorted(k for ks in phases.values() for k in ks) == list(range(1, len(renames) + 1))
    for phase in PHASES:
        assert phases[phase], (phase, renames)
    assert rundir.RUN_FILE in [renames[k - 1] for k in phases["start"]]
    assert {renames[k - 1] for k in phases["sft"]} >= {"sft/params.msgpack", "sft/checksums.json"}
    assert {renames[k - 1] for k in phases["rm"]} >= {"rm/params.msgpack", "rm/checksums.json"}
    # two checkpoints per group (so the main group is interrupted after its first), two groups
    visible = [renames[k - 1] for k in range(1, len(renames) + 1) if VISIBLE_CHECKPOINT.match(renames[k - 1])]
    assert visible == ["checkpoints/2", "checkpoints/4", "sweep_checkpoints/ppo/2", "sweep_checkpoints/ppo/4"]
    finishing = [renames[k - 1] for k in phases["finishing"]]
    assert {"metrics.npz", "summary.json", "sweep.json", "sweep_metrics.npz"} <= set(finishing)
    assert finishing[-1] == rundir.COMPLETE_FILE
    assert len(set(points.values())) == len(points)  # a different rename for each


def _newest_checkpoint(group: Path) -> Path:
    return max((p for p in group.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def assert_same_run(run: Path, reference: Path) -> None:
    """Finished, intact, and every result equal to the reference's bit for bit (timings aside)."""
    assert rundir.finished_problem(run) is None
    for name in ("metrics.npz", "sweep_metrics.npz"):
        assert_same_npz(run / name, reference / name)
    for name in SAME_BYTES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for name in SAME_JSON:
        ours, theirs = (without_timings(json.loads((d / name).read_text())) for d in (run, reference))
        assert ours == theirs, name
    for group in (reference / "checkpoints", *sorted((reference / "sweep_checkpoints").iterdir())):
        last = _newest_checkpoint(group)
        where = run / last.relative_to(reference)
        assert where.is_dir(), where
        assert_same_checkpoint(where, last)


# ----------------------------------------------------------------------------- one fault in every phase
class Faulted(NamedTuple):
    out: Path
    stderr: dict[str, str]  # what each step printed
    seen: dict[str, object]  # what each step left on disk
    refused: tuple[tuple[int, str], tuple[int, str]]  # a second writer's --resume and --overwrite, while locked
    code: int  # the last --resume's exit code
    difference: str | None  # how the resumed run differs from the reference (assert_same_run), None if it does not


def _listing(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def faulted(reference, points, tmp_path_factory) -> Faulted:
    """One run through a fault in every phase: it crashes at the SFT stage's kill point, then ``--resume`` after
    ``--resume`` stops at the next phase's, each just before the reference's rename to the same file (the main
    group's by a real SIGKILL), and a last ``--resume`` goes to the end. On the way a second writer arrives while
    the lock is held, and the main group's newest checkpoint is damaged. Each step's stderr and what it left on
    disk are recorded for the tests."""
    out = tmp_path_factory.mktemp("rlhf-faulted") / "run"
    renames, stderr, seen = reference.renames, {}, {}
    final = [renames[k - 1] for k in kill_points(renames)["finishing"][:-1]]  # without the marker

    def record(step: str) -> None:
        seen[step] = {"final files": [name for name in final if (out / name).is_file()], "of": final,
                      "unfinished": rundir.finished_problem(out)}

    stderr["sft"] = crash(["rlhf", *TINY, "--out", str(out), "--quiet"], out, k=points["sft"])
    stderr["rm"] = crash(resume_argv(out), out, at=renames[points["rm"] - 1])
    run_killed(resume_argv(out), root=out, at=renames[points["main group, after its first checkpoint"] - 1])
    seen["main group"] = sorted(p.name for p in (out / "checkpoints").iterdir())
    err = io.StringIO()  # a second writer while the lock is held: refused, nothing written
    with contextlib.redirect_stderr(err), rundir.locked(out, "the first writer"):
        before = _listing(out)
        refused = (resume(out), rlhf(*TINY, "--out", str(out), "--overwrite", "--quiet"))
        seen["second writer"] = _listing(out) == before
    stderr["lock"] = err.getvalue()
    stderr["between groups"] = crash(resume_argv(out), out, at=renames[points["between groups"] - 1])
    newest = _newest_checkpoint(out / "checkpoints")  # one bit of the main group's newest checkpoint flipped
    flip_byte(max((p for p in (newest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size))
    seen["damaged"] = newest.name
    stderr["finishing"] = crash(resume_argv(out), out, at=renames[points["finishing"] - 1])
    record("finishing")
    code, stderr["last"] = resume(out)
    try:
        assert_same_run(out, reference.out)
        difference = None
    except AssertionError as err:
        difference = f"{err!r}"[:3000]
    return Faulted(out, stderr, seen, refused, code, difference)


@pytest.mark.slow  # (the scenario SIGKILLs a process)
@pytest.mark.timeout(600)
def test_kills_in_every_phase_resume_to_the_uninterrupted_run(faulted, reference):
    assert faulted.code == 0, faulted.stderr["last"]
    assert faulted.difference is None, faulted.difference
    # the SFT stage, stopped before its manifest, was not trusted but computed again
    assert "warning: stage sft is unusable" in faulted.stderr["rm"] and "no checksums.json" in faulted.stderr["rm"]
    # the SIGKILL left checkpoint 4 staged, not visible, and its lock to be taken over
    assert faulted.seen["main group"] == [".staging", "2"]
    assert "taking over" in faulted.stderr["lock"]
    commands = json.loads((faulted.out / rundir.RUN_FILE).read_text())["commands"]
    assert [c["resumed"] for c in commands] == [False] + [True] * 5  # the refused writers recorded nothing


@pytest.mark.slow  # (the scenario SIGKILLs a process)
@pytest.mark.timeout(600)
def test_a_second_writer_is_refused_naming_the_first(faulted):
    (code, err), (code_new, err_new) = faulted.refused
    one_error_line(code, err, "in use", f"pid {os.getpid()}", "the first writer")
    one_error_line(code_new, err_new, "in use", f"pid {os.getpid()}")
    assert faulted.seen["second writer"]  # nothing written, nothing removed (--overwrite), nothing recorded


@pytest.mark.slow  # (the scenario SIGKILLs a process)
@pytest.mark.timeout(600)
def test_a_damaged_newest_checkpoint_is_quarantined_and_resume_falls_back(faulted, reference):
    assert faulted.seen["damaged"] == "4"
    err = faulted.stderr["finishing"]  # the resume after the damage
    assert "warning: checkpoint step 4 is unusable" in err and "checksum mismatch" in err, err
    assert "falling back to an older checkpoint" in err
    quarantined = sorted(p.name.split("-")[0] for p in (faulted.out / "corrupt_checkpoints").iterdir())
    assert quarantined == ["4", "sft"]
    assert faulted.code == 0, faulted.stderr["last"]
    assert faulted.difference is None, faulted.difference


@pytest.mark.slow  # (the scenario SIGKILLs a process)
@pytest.mark.timeout(600)
def test_an_interrupted_finish_resumes_to_the_same_result(faulted, reference):
    # stopped with every final file written but no complete.json
    assert faulted.seen["finishing"]["final files"] == faulted.seen["finishing"]["of"]
    assert {"metrics.npz", "summary.json", "samples.md", "sweep.json"} <= set(faulted.seen["finishing"]["of"])
    assert "has not finished" in faulted.seen["finishing"]["unfinished"]
    assert faulted.code == 0, faulted.stderr["last"]
    assert faulted.difference is None, faulted.difference


# ----------------------------------------------------------------------------- every rename (make test-all)
def _outcome(out: Path, reference: Path) -> str:
    """``--resume`` after a fault: ``"resumed"`` (equal to the reference) or its one ``error:`` line."""
    return resume_outcome(resume, assert_same_run, out, reference)


def _every_rename(reference: Reference, tmp_path: Path, fault) -> None:
    every_rename(reference, tmp_path, fault, lambda out: _outcome(out, reference.out),
                 kill_points(reference.renames)["start"])


@pytest.mark.heavy
@pytest.mark.timeout(3600)
def test_crash_at_every_rename(reference, tmp_path):
    _every_rename(reference, tmp_path, lambda k, out: crash(["rlhf", *TINY, "--out", str(out), "--quiet"], out, k=k))


@pytest.mark.heavy
@pytest.mark.timeout(7200)
def test_sigkill_at_every_rename(reference, tmp_path):
    _every_rename(reference, tmp_path, lambda k, out: run_killed(["rlhf", *TINY, "--out", out, "--quiet"], k=k))
