"""Brax's notices stay out of a user's terminal: mujoco-mjx's ``Failed to import warp`` /
``mujoco_warp`` prints and Brax's maintenance warning, with a typo'd gymnax name (which does not
import Brax at all) and with a Brax run; other output and other warnings still pass."""

import os
import subprocess
import sys
import warnings

import pytest

from purejaxrl_ppo.core.envs.brax_env import quiet_brax

NOISE = ("Failed to import warp", "Failed to import mujoco_warp", "mujoco_warp", "not actively being maintained",
         "JAXopt is no longer maintained")


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _assert_quiet(proc: subprocess.CompletedProcess) -> None:
    for text in (proc.stdout, proc.stderr):
        assert not [n for n in NOISE if n in text], text


def test_a_typo_in_a_gymnax_name_is_one_line_and_imports_no_brax():
    code = ("import sys; from purejaxrl_ppo.cli import main\n"
            "code = main(['train', '--env', 'CartPol-v1', '--dump-config', '/nonexistent/never.yaml'])\n"
            "print('brax imported:', 'brax' in sys.modules, 'exit', code)")
    proc = _run("-c", code)
    _assert_quiet(proc)
    assert "brax imported: False exit 2" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "(did you mean 'CartPole-v1'?)" in proc.stderr, proc.stderr


def test_quiet_brax_drops_only_its_notices(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_brax():
            print("Failed to import warp: No module named 'warp'")
            print("a line of the user's")
            print("Failed to import mujoco_warp: No module named 'warp'")
            warnings.warn("Brax System, piplines and environments are not actively being maintained. Please see MJX",
                          UserWarning)
            warnings.warn("JAXopt is no longer maintained. See https://docs.jax.dev", DeprecationWarning)
            warnings.warn("something else", UserWarning)
    assert capsys.readouterr().out == "a line of the user's\n"
    assert [str(w.message) for w in caught] == ["something else"]


@pytest.mark.heavy  # a Brax compile in a fresh interpreter (~30 s): make test-all; the filter is tested above
def test_a_brax_run_prints_none_of_brax_notices(tmp_path):
    proc = _run("-m", "purejaxrl_ppo", "train", "--env", "brax/inverted_pendulum?episode_length=16", "--num-seeds", "1",
                "--total-timesteps", "16", "--num-envs", "2", "--num-steps", "8", "--num-minibatches", "1",
                "--update-epochs", "1", "--hidden-sizes", "8", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    _assert_quiet(proc)
    assert "Training summary" in proc.stderr
