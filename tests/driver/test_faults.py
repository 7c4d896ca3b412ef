"""Fault injection for durable runs: kills while saving and finishing, damaged checkpoints and final
files, two writers, every checkpoint quarantined, an env that cannot be built, divergence.

The rule every test checks: after a fault, either ``train --resume`` ends with results (metrics,
logs, final state, policy file) byte-identical to the uninterrupted run's, or a command exits
non-zero with a one-line message naming the problem; never exit 0 with a different result.

Kill points are the file renames and replacements of a run (the moments its files on disk
change state: orbax's commits, checkpoint manifests, the checkpoint's own rename, deletions of
old checkpoints, every final file, the completion marker). In-process, a :class:`Crash` (not an
``Exception``: nothing catches it) is raised just before the chosen rename; in a subprocess the
process sends itself ``SIGKILL`` there instead. CI runs the in-process sweep over the last
checkpoint and the finishing phase plus two real kills; ``heavy`` sweeps every point both ways.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from helpers import (
    KILL_DRIVER,
    assert_same_results,
    checkpoint_states,
    cli_reference_run,
    leaves_equal,
    RUN_FILE,
    write_run_file,
)
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.checkpoint import CHECKSUMS, Checkpointer, CorruptCheckpointWarning

FINAL_UPDATE = 8
LOG_FILES = rundir.LOG_FILES
#: Renames of the final files: policy.msgpack, metrics.npz, summary.json, config.json, learning_curve.png,
#: timing.csv.
FINAL_FILE_RENAMES = 6
#: Renames of an uninterrupted run of RUN_FILE: run.json, 4 checkpoints × (3 orbax items + orbax's commit +
#: manifest + our rename), 2 deletions of old checkpoints, the final files and the completion marker.
NUM_RENAMES = 1 + 4 * 6 + 2 + FINAL_FILE_RENAMES + 1
#: The deletion of checkpoint 2 after checkpoint 6 was saved: from there on, the CI sweep (the last
#: checkpoint's save starts at LAST_SAVE + 1).
LAST_SAVE = 1 + 3 * 6 + 1


class Crash(BaseException):
    """A simulated kill: raised just before a rename; being no ``Exception``, nothing handles it."""


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    return write_run_file(tmp_path_factory, RUN_FILE)


@pytest.fixture(scope="module")
def reference(run_file, tmp_path_factory) -> Path:
    """The uninterrupted run, trained by the CLI."""
    return cli_reference_run(run_file, tmp_path_factory)


def train(run_file: Path, out: Path) -> int:
    return main(["train", "--config", str(run_file), "--out", str(out), "--quiet"])


def resume(out: Path, *extra: str) -> int:
    return main(["train", "--resume", str(out), "--quiet", *extra])


class crash_at:
    """Context manager: raise :class:`Crash` just before the ``k``-th (1-based) ``os.rename``/``os.replace``."""

    def __init__(self, monkeypatch, k: int):
        self.count, self.k = 0, k
        for name in ("rename", "replace"):
            real = getattr(os, name)

            def hooked(*args, _real=real, **kwargs):
                self.count += 1
                if self.count == self.k:
                    raise Crash(f"crash before rename {self.k}: {args}")
                return _real(*args, **kwargs)

            monkeypatch.setattr(os, name, hooked)


def final_state(run_dir: Path):
    return checkpoint_states(run_dir, [FINAL_UPDATE])[FINAL_UPDATE].state


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Finished, intact, and byte-identical to the reference in every result (timings aside)."""
    assert_same_results(run_dir, reference, (*LOG_FILES, "policy.msgpack", "config.json"))
    ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert ours["final_return"] == theirs["final_return"]
    leaves_equal(final_state(run_dir), final_state(reference))


def assert_one_line_error(code: int, capsys, *needles: str) -> str:
    """Exit code 2 or 3 and one ``error:`` line on stderr containing every needle."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code in (2, 3), (code, err)
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def resume_to_the_end(run_dir: Path, reference: Path, capsys) -> str:
    """``--resume`` after a fault: equal to the reference, or a one-line error (then never a finished run)."""
    capsys.readouterr()
    code = resume(run_dir)
    if code == 0:
        assert_same_run(run_dir, reference)
        return "resumed"
    line = assert_one_line_error(code, capsys)
    assert rundir.finished_problem(run_dir) is not None, line
    return line


# ----------------------------------------------------------------------------- kills
def test_the_rename_count_is_what_the_kill_points_assume(run_file, tmp_path, monkeypatch):
    hook = crash_at(monkeypatch, k=10**9)
    assert train(run_file, tmp_path / "run") == 0
    assert hook.count == NUM_RENAMES


def _crash_then_resume(k, run_file, reference, tmp_path, monkeypatch, capsys) -> str:
    out = tmp_path / f"crash-{k}"
    with monkeypatch.context() as patch:
        crash_at(patch, k)
        with pytest.raises(Crash):
            train(run_file, out)
    return resume_to_the_end(out, reference, capsys)


@pytest.mark.parametrize("k", range(LAST_SAVE, NUM_RENAMES + 1))
def test_crash_while_saving_the_last_checkpoint_or_finishing(k, run_file, reference, tmp_path, monkeypatch, capsys):
    assert _crash_then_resume(k, run_file, reference, tmp_path, monkeypatch, capsys) == "resumed"


@pytest.mark.heavy
@pytest.mark.parametrize("k", range(1, LAST_SAVE))
def test_crash_at_every_earlier_rename(k, run_file, reference, tmp_path, monkeypatch, capsys):
    outcome = _crash_then_resume(k, run_file, reference, tmp_path, monkeypatch, capsys)
    if k == 1:  # before run.json exists: not resumable, and the error says how to start it again
        assert "--overwrite" in outcome
    else:
        assert outcome == "resumed"


def test_crash_before_run_json_is_a_clear_error(run_file, reference, tmp_path, monkeypatch, capsys):
    outcome = _crash_then_resume(1, run_file, reference, tmp_path, monkeypatch, capsys)
    assert "run.json" in outcome and "--overwrite" in outcome




def _kill_then_resume(k, run_file, reference, tmp_path, capsys) -> str:
    out = tmp_path / f"kill-{k}"
    proc = subprocess.run([sys.executable, "-c", KILL_DRIVER, str(k), "train", "--config", str(run_file), "--out",
                           str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return resume_to_the_end(out, reference, capsys)


@pytest.mark.slow  # before the manifest's rename; before the marker in make test-all (sweep and rlhf have theirs)
@pytest.mark.parametrize("k", [LAST_SAVE + 5, pytest.param(NUM_RENAMES, marks=pytest.mark.heavy)])
def test_sigkill_while_saving_or_finishing(k, run_file, reference, tmp_path, capsys):
    assert _kill_then_resume(k, run_file, reference, tmp_path, capsys) == "resumed"


@pytest.mark.heavy
@pytest.mark.parametrize("k", range(2, NUM_RENAMES + 1))
def test_sigkill_at_every_rename(k, run_file, reference, tmp_path, capsys):
    assert _kill_then_resume(k, run_file, reference, tmp_path, capsys) == "resumed"


# ----------------------------------------------------------------------------- damaged checkpoints
@pytest.fixture
def stopped(run_file, tmp_path, monkeypatch) -> Path:
    """A run killed just before finishing: checkpoints 6 and 8 on disk, no final files."""
    out = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        crash_at(patch, NUM_RENAMES - FINAL_FILE_RENAMES)  # the first final file
        with pytest.raises(Crash):
            train(run_file, out)
    assert Checkpointer(out / "checkpoints").steps() == [6, 8]
    return out


def _flip_bit(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x10
    path.write_bytes(bytes(data))


def _checkpoint_files(run_dir: Path, step: int) -> list[Path]:
    step_dir = run_dir / "checkpoints" / str(step)
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size > 0)


def _damage(kind: str, path: Path) -> None:
    if kind == "flip":
        _flip_bit(path)
    elif kind == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()


def _resume_expecting_a_fallback(run_dir, reference, capsys) -> None:
    """``--resume`` warns that checkpoint 8 is unusable, quarantines it and ends equal to the reference."""
    assert resume_to_the_end(run_dir, reference, capsys) == "resumed"
    assert "warning: checkpoint step 8 is unusable" in capsys.readouterr().err
    assert [p.name.split("-")[0] for p in (run_dir / "corrupt_checkpoints").iterdir()] == ["8"]


@pytest.mark.parametrize(("kind", "which"), [("flip", "state"), ("truncate", "state"), ("delete", "state"),
                                            ("flip", "meta"), ("flip", CHECKSUMS), ("delete", CHECKSUMS)])
def test_damaged_newest_checkpoint_falls_back_and_equals_the_uninterrupted_run(kind, which, stopped, reference,
                                                                               capsys):
    files = [p for p in _checkpoint_files(stopped, 8) if which in p.relative_to(stopped / "checkpoints" / "8").parts
             or p.name == which]
    target = max(files, key=lambda p: p.stat().st_size)
    _damage(kind, target)
    _resume_expecting_a_fallback(stopped, reference, capsys)


@pytest.mark.heavy
@pytest.mark.parametrize("kind", ["flip", "truncate"])
def test_any_damaged_checkpoint_file_falls_back(kind, run_file, reference, tmp_path, monkeypatch, capsys):
    stopped_dir = tmp_path / "template"
    with monkeypatch.context() as patch:
        crash_at(patch, NUM_RENAMES - FINAL_FILE_RENAMES)
        with pytest.raises(Crash):
            train(run_file, stopped_dir)
    for i, path in enumerate(_checkpoint_files(stopped_dir, 8)):
        copy = tmp_path / f"copy-{i}"
        subprocess.run(["cp", "-a", str(stopped_dir), str(copy)], check=True)
        _damage(kind, copy / path.relative_to(stopped_dir))
        _resume_expecting_a_fallback(copy, reference, capsys)


def test_checkpoint_without_manifest_is_not_trusted_even_when_its_data_is_damaged(stopped, reference, capsys):
    """The old failure: a manifest-less checkpoint was accepted and a bit flip changed a seed's result."""
    step_dir = stopped / "checkpoints" / "8"
    (step_dir / CHECKSUMS).unlink()
    state_files = [p for p in _checkpoint_files(stopped, 8) if "state" in p.relative_to(step_dir).parts]
    _flip_bit(max(state_files, key=lambda p: p.stat().st_size))
    _resume_expecting_a_fallback(stopped, reference, capsys)


def test_every_checkpoint_quarantined_refuses_until_restart(stopped, reference, capsys):
    for step in (6, 8):
        (stopped / "checkpoints" / str(step) / CHECKSUMS).unlink()
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptCheckpointWarning)
        assert_one_line_error(resume(stopped), capsys, "--restart")
        # the second try used to restart from update 0 without a word
        assert_one_line_error(resume(stopped), capsys, "--restart", "quarantined")
    assert rundir.finished_problem(stopped) is not None
    assert resume(stopped, "--restart") == 0
    assert_same_run(stopped, reference)
    commands = json.loads((stopped / rundir.RUN_FILE).read_text())["commands"]
    assert commands[-1]["resumed_at_update"] == 0 and "--restart" in commands[-1]["command"]


def test_restart_needs_resume(capsys, tmp_path):
    assert_one_line_error(main(["train", "--restart", "--out", str(tmp_path / "x")]), capsys, "--resume")


# ----------------------------------------------------------------------------- final files
@pytest.mark.parametrize(("name", "kind"), [
    ("summary.json", "truncate"), ("summary.json", "delete"), ("metrics.npz", "truncate"),
    ("policy.msgpack", "truncate"), ("learning_curve.png", "delete"), ("config.json", "truncate"),
    ("timing.csv", "truncate"),
    (rundir.COMPLETE_FILE, "truncate"), (rundir.COMPLETE_FILE, "delete"),
])
def test_damaged_final_file_is_refused_by_compare_and_render_and_repaired_by_resume(name, kind, reference, tmp_path,
                                                                                    capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-a", str(reference), str(run)], check=True)
    if kind == "truncate":
        (run / name).write_bytes((run / name).read_bytes()[:10])
    else:
        (run / name).unlink()
    capsys.readouterr()
    assert_one_line_error(main(["compare", str(run)]), capsys, "--resume", str(run))
    assert_one_line_error(main(["render", "--run", str(run)]), capsys, "--resume")
    assert main(["train", "--resume", str(run)]) == 0  # not --quiet: what does it say?
    err = capsys.readouterr().err
    assert "rewriting its final files" in err and "compiling" not in err  # nothing to compile or train
    assert_same_run(run, reference)
    assert main(["compare", str(run), str(reference)]) == 0


def test_resume_of_an_intact_finished_run_does_nothing(reference, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-a", str(reference), str(run)], check=True)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert resume(run) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.is_file()} == before


def test_unfinished_run_is_refused_by_compare(stopped, capsys):
    capsys.readouterr()
    assert_one_line_error(main(["compare", str(stopped)]), capsys, "has not finished", "--resume")


# ----------------------------------------------------------------------------- one writer at a time
def test_second_writer_gets_a_clear_error_naming_the_first(reference, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-a", str(reference), str(run)], check=True)
    (run / rundir.COMPLETE_FILE).unlink()  # so that --resume has something to do
    records = len(json.loads((run / rundir.RUN_FILE).read_text())["commands"])
    with rundir.locked(run, "the first writer"):
        capsys.readouterr()
        assert_one_line_error(resume(run), capsys, "in use", f"pid {os.getpid()}", "the first writer")
        assert_one_line_error(main(["train", "--out", str(run), "--overwrite", "--num-envs", "2", "--num-steps", "16"]),
                              capsys, "in use")
    assert len(json.loads((run / rundir.RUN_FILE).read_text())["commands"]) == records  # nothing recorded
    assert resume(run) == 0  # the lock is free again
    assert_same_run(run, reference)


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from purejaxrl_ppo.runs import rundir
    with rundir.locked(Path(sys.argv[1]), "held by a test"):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.mark.slow
def test_lock_of_a_killed_process_is_taken_over(reference, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-a", str(reference), str(run)], check=True)
    (run / rundir.COMPLETE_FILE).unlink()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert_one_line_error(resume(run), capsys, "in use", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait(timeout=60)
    capsys.readouterr()
    assert resume(run) == 0
    assert "taking over" in capsys.readouterr().err
    assert_same_run(run, reference)


# ----------------------------------------------------------------------------- env that cannot be built
def test_env_that_cannot_be_built_fails_before_the_run_directory_exists(tmp_path, monkeypatch, capsys):
    from urllib.error import URLError

    from gymnax.utils import load_mnist

    def no_network(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(load_mnist, "_download", no_network)
    out = tmp_path / "mnist"
    for _ in range(2):  # the same command again gives the same one-line error (no "exists and is not empty")
        capsys.readouterr()
        code = main(["train", "--env", "MNISTBandit-bsuite", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: environment 'MNISTBandit-bsuite'"), err
        assert "download" in err and "/tmp/mnist" in err
        assert "compiling" not in err and not out.exists()


# ----------------------------------------------------------------------------- divergence from the CLI
def test_divergence_exits_3_naming_the_update_and_the_last_verified_checkpoint(run_file, tmp_path, capsys):
    out = tmp_path / "nan"
    capsys.readouterr()
    code = main(["train", "--config", str(run_file), "--learning-rate", "1e19", "--no-anneal-lr",
                 "--out", str(out), "--quiet"])
    line = assert_one_line_error(code, capsys, "is not finite at update")
    assert code == 3 and rundir.finished_problem(out) is not None and not (out / "summary.json").exists()
    update = int(line.split("end with update ")[1])
    last = Checkpointer(out / "checkpoints").last_verified()
    assert (f"the last verified checkpoint is {last}" in line) if last else ("no verified checkpoint exists" in line)
    assert last is None or int(last.name) < update
    assert len((out / "metrics_aggregate.csv").read_text().splitlines()) == 1 + update
