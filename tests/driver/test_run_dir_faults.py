"""Run-directory faults of issue 30 (round-2 findings 1, 3, 4, 9 and the run-directory part of 10):
a second writer arriving while a run finishes, damaged logs, a follower started with other flags,
a run directory that lost its run.json, and paths, lock files, stray checkpoints and disks that refuse.

The rule of tests/driver/test_faults.py holds here too: after a fault, a command either ends with the
uninterrupted run's results or exits non-zero with one ``error:`` line; never a traceback. One small run
(the config of test_faults.py, so its programs are in the compile cache) is trained once for the module;
the other tests copy it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import RUN_FILE, write_run_file
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.launch import distributed
from purejaxrl_ppo.driver import control as durable
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.run_files import load_run_file, run_dict

TINY_FLAGS = ["--num-envs", "2", "--num-steps", "16", "--total-timesteps", "64", "--hidden-sizes", "8",
              "--num-seeds", "1", "--quiet"]
LOG_FILES = rundir.LOG_FILES
RESULTS = ("metrics.npz", "policy.msgpack", "config.json", *LOG_FILES)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    return write_run_file(tmp_path_factory, RUN_FILE)


@pytest.fixture(scope="module")
def finished(run_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--config", str(run_file), "--out", str(out), "--quiet"]) == 0
    return out


def copy_of(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run, target, symlinks=True)
    return target


def one_error_line(code: int, capsys, *needles: str) -> str:
    """Exit code 2 and one ``error: ...`` line on stderr, the last, holding every needle (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (code, err)
    assert [line for line in err if line.startswith("error: ")] == err[-1:] and "Traceback" not in str(err), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    return err[-1]


def same_results(run: Path, reference: Path) -> None:
    assert rundir.finished_problem(run) is None
    for name in RESULTS:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


# ----------------------------------------------------------------------------- finding 1: finishing under the lock
@pytest.mark.timeout(300)
def test_a_second_writer_arriving_while_the_run_finishes_is_refused(run_file, finished, tmp_path, monkeypatch,
                                                                    capsys):
    """The finish (final files, complete.json) happened after the lock was released: a --resume or --overwrite
    arriving then got in, and the directory mixed two runs."""
    out = tmp_path / "run"
    real_save_run, arrivals = durable.save_run, []

    def save_run_with_a_visitor(*args, **kwargs):
        if not arrivals:  # once: the visitor's own run (without the fix) finishes through here too
            arrivals.append("arriving")
            for argv in (["train", "--resume", str(out), "--quiet"],
                         ["train", "--config", str(run_file), "--out", str(out), "--overwrite", "--quiet"]):
                capsys.readouterr()
                code = main(argv)
                arrivals.append((code, capsys.readouterr().err))
        return real_save_run(*args, **kwargs)

    monkeypatch.setattr(durable, "save_run", save_run_with_a_visitor)
    assert main(["train", "--config", str(run_file), "--out", str(out), "--quiet"]) == 0
    for code, err in arrivals[1:]:
        assert code == 2 and "is in use by" in err and err.count("\n") == 1, (code, err)
    commands = json.loads((out / rundir.RUN_FILE).read_text())["commands"]
    assert len(commands) == 1  # the visitors recorded nothing
    same_results(out, finished)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # and the lock is free once the command ended


# ----------------------------------------------------------------------------- finding 3: logs covered
@pytest.mark.parametrize("name", ["metrics.csv", "metrics.jsonl"])
def test_a_truncated_log_is_refused_and_resume_rewrites_it(name, finished, tmp_path, capsys):
    marker = json.loads((finished / rundir.COMPLETE_FILE).read_text())["files"]
    assert set(LOG_FILES) <= set(marker)
    run = copy_of(finished, tmp_path)
    log = run / name
    log.write_bytes(log.read_bytes()[: log.stat().st_size // 2])
    assert rundir.finished_problem(run) == f"{log} is damaged (checksum mismatch)"
    capsys.readouterr()
    one_error_line(main(["compare", str(run)]), capsys, name, "--resume")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    same_results(run, finished)


# ----------------------------------------------------------------------------- finding 9: run.json lost
def test_resume_without_run_json_keeps_the_checkpoints_and_never_advises_overwrite(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    for name in (rundir.RUN_FILE, rundir.COMPLETE_FILE):
        (run / name).unlink()
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    capsys.readouterr()
    line = one_error_line(main(["train", "--resume", str(run), "--quiet"]), capsys, "no run.json",
                          "checkpoints at updates 6, 8", "logs", "nothing was deleted", "--out NEW_DIR")
    assert "start it again with" not in line and "do not use --overwrite" in line
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before


def test_a_directory_with_config_yaml_only_still_gets_the_overwrite_hint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.CONFIG_FILE).write_text(RUN_FILE)
    one_error_line(main(["train", "--resume", str(run)]), capsys, "stopped before training started", "--overwrite")


# ----------------------------------------------------------------------------- finding 10: the run directory
def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    for out in (a_file, a_file / "run"):
        capsys.readouterr()
        one_error_line(main(["train", *TINY_FLAGS, "--out", str(out)]), capsys, "is a file")
        one_error_line(main(["train", "--resume", str(out)]), capsys, "cannot resume")
    assert a_file.read_text() == "mine\n"


def test_lock_that_is_a_directory_is_one_line(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    (run / rundir.COMPLETE_FILE).unlink()
    (run / rundir.LOCK_FILE).unlink(missing_ok=True)
    (run / rundir.LOCK_FILE).mkdir()
    capsys.readouterr()
    one_error_line(main(["train", "--resume", str(run), "--quiet"]), capsys, ".lock is a directory", "rmdir")


@pytest.mark.timeout(300)
def test_a_stray_checkpoint_name_is_named_and_left_alone(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    (run / rundir.COMPLETE_FILE).unlink()
    stray = run / "checkpoints" / "09"
    stray.mkdir()
    (stray / "notes.txt").write_text("not a checkpoint\n")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {stray} is not a checkpoint" in err and "Traceback" not in err, err
    assert (stray / "notes.txt").is_file() and not (run / "corrupt_checkpoints").exists()
    same_results(run, finished)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_disk_that_refuses_writes_is_one_line(code, finished, tmp_path, monkeypatch, capsys):
    """At the start of a new run (run.json) and while finishing one (its final files): one line each, and what
    was written before is kept for --resume."""
    real, refused = rundir.write_atomic, []

    def refusing(path, data):
        if Path(path).name in refused:
            raise OSError(code, os.strerror(code), str(path))
        return real(path, data)

    monkeypatch.setattr(rundir, "write_atomic", refusing)
    refused[:] = ["run.json"]
    capsys.readouterr()
    one_error_line(main(["train", *TINY_FLAGS, "--out", str(tmp_path / "new")]), capsys, "cannot write in",
                   os.strerror(code), "run.json")
    run = copy_of(finished, tmp_path)
    (run / rundir.COMPLETE_FILE).unlink()
    refused[:] = ["metrics.npz"]
    one_error_line(main(["train", "--resume", str(run), "--quiet"]), capsys, os.strerror(code), "metrics.npz",
                   f"--resume {run}")
    assert rundir.finished_problem(run) is not None
    refused.clear()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    same_results(run, finished)


# ----------------------------------------------------------------------------- finding 4: a follower's flags
def _process_0_setup(run_file: Path, out: Path, resume: bool = False) -> dict:
    """What process 0 broadcasts to the others before training a new run (durable._Announcer.ready)."""
    config, options = load_run_file(run_file)
    return json.loads(json.dumps({"error": None, "run": run_dict(config, options), "plan": [2, 2, 2, 2],
                                  "timing": None, "step": None, "history": None, "grid": None, "out": str(out),
                                  "resume": resume}))


class Trained(Exception):
    """Raised instead of training: the follower accepted process 0's run."""


@pytest.fixture
def follower(monkeypatch):
    """This process as process 1 of 2, receiving ``sent[0]`` from process 0 (no real process group)."""
    sent = []
    monkeypatch.setattr(distributed, "is_primary", lambda: False)
    monkeypatch.setattr(distributed, "process_index", lambda: 1)
    monkeypatch.setattr(distributed, "broadcast_json", lambda value: sent[0])

    def train(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(durable, "train_seeds_chunked", train)
    return sent


def test_a_follower_started_with_other_flags_refuses_naming_them(follower, run_file, tmp_path):
    config, options = load_run_file(run_file)
    follower.append(_process_0_setup(run_file, tmp_path / "run"))
    with pytest.raises(Trained):  # the same flags: it trains process 0's run
        durable.train_durable(tmp_path / "run", config, options)
    with pytest.raises(ConfigError) as err:
        durable.train_durable(tmp_path / "elsewhere", config.replace(learning_rate=1e-3),
                              RunOptions(**{**options.to_dict(), "num_seeds": 4}))
    line = str(err.value)
    assert "\n" not in line and line.startswith("process 1 was started with other flags than process 0")
    for needle in ("--num-seeds: 2 in process 0, 4 here", "--learning-rate: 0.00025 in process 0, 0.001 here",
                   f"--out: {tmp_path / 'run'} in process 0, {tmp_path / 'elsewhere'} here"):
        assert needle in line, (needle, line)
    with pytest.raises(ConfigError, match="--resume: absent in process 0, given here"):
        durable.train_durable(tmp_path / "run", resume=True)
    with pytest.raises(ConfigError, match=r"--set: None in process 0, \[\['clip_eps', \[0.1, 0.2\]\]\] here"):
        durable.train_durable(tmp_path / "run", config, options, kind="sweep", grid={"clip_eps": [0.1, 0.2]})
    follower[0] = True  # process 0 ran the --resume command line's "finished?" broadcast instead
    with pytest.raises(ConfigError, match="other flags than process 0"):
        durable.train_durable(tmp_path / "run", config, options)


def test_default_run_names_stamped_a_second_apart_are_the_same_run(follower, run_file, tmp_path):
    config, options = load_run_file(run_file)
    follower.append(_process_0_setup(run_file, Path("runs/ppo-CartPole-v1-20260101-120000")))
    with pytest.raises(Trained):
        durable.train_durable(Path("runs/ppo-CartPole-v1-20260101-120001"), config, options)


def test_process_0_sends_its_run_directory_and_resume(monkeypatch, run_file, tmp_path):
    config, options = load_run_file(run_file)
    sent = []
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    monkeypatch.setattr(distributed, "broadcast_json", sent.append)
    durable._Announcer(tmp_path / "run", True).ready(config, options, [2, 2, 2, 2], None, None)
    assert sent[0]["out"] == str(tmp_path / "run") and sent[0]["resume"] is True
