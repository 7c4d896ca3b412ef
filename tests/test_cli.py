"""The command line end to end on a tiny budget, in a subprocess (as a user runs it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = ["--num-envs", "2", "--num-steps", "16", "--total-timesteps", "256", "--hidden-sizes", "8"]


def run_cli(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "purejaxrl_ppo", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_train_writes_metrics_summary_and_plot(tmp_path: Path, algo: str):
    out = tmp_path / "run"
    extra = ["--num-minibatches", "2"] if algo == "ppo" else ["--critic-minibatches", "2"]
    proc = run_cli("train", "--algo", algo, "--env", "CartPole-v1", "--num-seeds", "3", "--out", str(out), *TINY, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Training summary" in proc.stderr and "median" in proc.stderr and "env-steps/s" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == algo and summary["num_seeds"] == 3
    assert summary["config"]["num_envs"] == 2 and summary["config"]["hidden_sizes"] == [8]
    assert summary["compile_seconds"] > 0 and summary["env_steps_per_second"] > 0
    assert summary["command"].startswith(f"python -m purejaxrl_ppo train --algo {algo}")
    assert summary["machine"]["jax_backend"] == "cpu" and len(summary["final_return_per_seed"]) == 3
    with np.load(out / "metrics.npz") as metrics:
        assert metrics["episode_return"].shape == (3, 8)
        np.testing.assert_array_equal(metrics["env_steps"][0], np.arange(1, 9) * 32)
    png = (out / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000

    again = run_cli("train", "--algo", algo, "--num-seeds", "1", "--out", str(out), *TINY, *extra)
    assert again.returncode == 2 and "--overwrite" in again.stderr

    compare = run_cli("compare", str(out), str(out), "--plot", str(tmp_path / "cmp.png"))
    assert compare.returncode == 0, compare.stderr
    assert algo.upper() in compare.stdout and (tmp_path / "cmp.png").exists()


def test_bad_flags_give_clear_errors(tmp_path: Path):
    proc = run_cli("train", "--algo", "ppo", "--num-minibatches", "3", "--out", str(tmp_path / "x"), *TINY)
    assert proc.returncode == 2
    assert "not divisible by num_minibatches = 3" in proc.stderr
    proc = run_cli("train", "--algo", "ppo", "--max-kl", "0.1", "--out", str(tmp_path / "y"), *TINY)
    assert proc.returncode == 2 and "--max-kl" in proc.stderr and "trpo" not in proc.stderr.split("--algo")[0]
    proc = run_cli("train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "z"), *TINY)
    assert proc.returncode == 2 and "CartPole-v1" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_console_script_is_installed():
    scripts = Path(sys.executable).parent
    assert (scripts / "purejaxrl-ppo").exists()
