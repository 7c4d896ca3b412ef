"""Damaged or foreign files a new user may hand the CLI: one ``error:`` line and exit 2, never a traceback.

Every check here happens before anything is compiled. The train runs are copies of the session's tiny finished
run (tests/cli/conftest.py); the rlhf run directories are written by hand (``config.json``, ``run.json``, and for
``compare`` a summary and metrics), so no RLHF stage is trained.
"""

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest

from purejaxrl_ppo.cli import main
from purejaxrl_ppo.cli.rlhf import OPTION_DEFAULTS
from purejaxrl_ppo.core.rlhf.config import RLHFConfig

BINARY = bytes(range(128, 256)) * 4  # not UTF-8 from its first byte


def _one_error_line(capsys, argv, *expected: str) -> str:
    """Run ``main(argv)``; assert exit 2 and exactly one ``error:`` line holding every ``expected`` text."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, (text, err)
    return err


def _copy(finished_run, tmp_path, name="run"):
    run = tmp_path / name
    shutil.copytree(finished_run, run)
    (run / "complete.json").unlink()  # unfinished: --resume goes on to read its files
    return run


def _rlhf_dir(tmp_path, name="rlhf"):
    """A hand-written rlhf run directory: its config.json and run.json as ``rlhf`` writes them."""
    run = tmp_path / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(RLHFConfig())))
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in OPTION_DEFAULTS.items()}
    (run / "run.json").write_text(json.dumps({"algo_name": "rlhf", "options": options}))
    return run


@pytest.mark.timeout(60)
def test_binary_config_file_is_one_line(tmp_path, finished_run, capsys):
    config = tmp_path / "binary.yaml"
    config.write_bytes(BINARY)
    _one_error_line(capsys, ["train", "--config", config, "--out", tmp_path / "new"], "binary.yaml", "not a text file")
    assert not (tmp_path / "new").exists()
    run = _copy(finished_run, tmp_path)
    (run / "config.yaml").write_bytes(BINARY)
    _one_error_line(capsys, ["train", "--resume", run], "config.yaml", "not a text file")


@pytest.mark.timeout(60)
def test_run_json_without_plan_is_one_line(tmp_path, finished_run, capsys):
    run = _copy(finished_run, tmp_path)
    info = json.loads((run / "run.json").read_text())
    del info["plan"]
    (run / "run.json").write_text(json.dumps(info))
    err = _one_error_line(capsys, ["train", "--resume", run], "run.json", "chunk plan")
    assert "--overwrite" not in err  # never advise deleting the checkpoints that are there
    info["plan"] = [0, "x"]
    (run / "run.json").write_text(json.dumps(info))
    _one_error_line(capsys, ["train", "--resume", run], "run.json", "damaged chunk plan")
    (run / "run.json").write_bytes(BINARY)
    _one_error_line(capsys, ["train", "--resume", run], "run.json", "not valid JSON")


def _add_unknown_config_key(run):
    values = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**values, "env_name": "CartPole-v1"}))


def _add_unknown_option(run):
    info = json.loads((run / "run.json").read_text())
    info["options"]["num_envs"] = 4
    (run / "run.json").write_text(json.dumps(info))


def _bad_option_type(run):
    info = json.loads((run / "run.json").read_text())
    info["options"]["sweep_kl_coefs"] = 0.1
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage, named", [
    pytest.param(lambda run: (run / "config.json").write_bytes(BINARY), "config.json", id="binary-config"),
    pytest.param(lambda run: (run / "config.json").write_text("{\"d_model\": "), "config.json", id="truncated-config"),
    pytest.param(_add_unknown_config_key, "env_name", id="unknown-config-key"),
    pytest.param(lambda run: (run / "config.json").write_text("{\"d_model\": \"wide\"}"), "d_model", id="bad-value"),
    pytest.param(lambda run: (run / "run.json").write_text("[1, 2]"), "run.json", id="run-json-a-list"),
    pytest.param(lambda run: (run / "run.json").write_text("{\"options\""), "run.json", id="truncated-run-json"),
    pytest.param(_add_unknown_option, "num_envs", id="unknown-option"),
    pytest.param(_bad_option_type, "sweep_kl_coefs", id="bad-option-type"),
])
def test_damaged_rlhf_run_files_are_one_line(tmp_path, capsys, damage, named):
    run = _rlhf_dir(tmp_path)
    damage(run)
    _one_error_line(capsys, ["rlhf", "--resume", run], "cannot resume", named)


@pytest.mark.timeout(60)
def test_resume_with_the_other_command_names_the_right_one(tmp_path, finished_run, capsys):
    _one_error_line(capsys, ["rlhf", "--resume", finished_run], "holds a train run",
                    f"python -m purejaxrl_ppo train --resume {finished_run}")
    rlhf = _rlhf_dir(tmp_path)
    _one_error_line(capsys, ["train", "--resume", rlhf], "holds an rlhf run", "rlhf --resume")


@pytest.mark.timeout(60)
def test_compare_refuses_an_rlhf_run_in_one_line(tmp_path, finished_run, capsys):
    run = _rlhf_dir(tmp_path)  # finished, as far as complete.json tells
    (run / "summary.json").write_text(json.dumps({"algo": "ppo", "num_seeds": 4, "sft_loss": 1.0}))
    np.savez(run / "metrics.npz", gold_score=np.zeros((4, 3)), kl_to_reference=np.zeros((4, 3)))
    files = {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in ("summary.json", "metrics.npz")}
    (run / "complete.json").write_text(json.dumps({"files": files}))
    _one_error_line(capsys, ["compare", finished_run, run], "rlhf run", "summary.json")
