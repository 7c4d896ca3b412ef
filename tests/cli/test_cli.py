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


@pytest.mark.parametrize("algo", ["ppo", pytest.param("trpo", marks=pytest.mark.heavy)])
def test_train_writes_metrics_summary_and_plot(tmp_path: Path, algo: str):
    out = tmp_path / "run"
    extra = ["--num-minibatches", "2"] if algo == "ppo" else ["--critic-minibatches", "2"]
    proc = run_cli("train", "--algo", algo, "--env", "CartPole-v1", "--num-seeds", "3", "--out", str(out), *TINY, *extra,
                   "--cpu-devices", "2")  # 3 seeds over 2 CPU devices: padded to 4, the padding dropped
    assert proc.returncode == 0, proc.stderr
    assert "Training summary" in proc.stderr and "median" in proc.stderr and "env-steps/s" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == algo and summary["num_seeds"] == 3
    assert summary["config"]["num_envs"] == 2 and summary["config"]["hidden_sizes"] == [8]
    assert summary["compile_seconds"] > 0 and summary["env_steps_per_second"] > 0
    assert summary["command"].startswith(f"python -m purejaxrl_ppo train --algo {algo}")
    assert summary["machine"]["jax_backend"] == "cpu" and len(summary["final_return_per_seed"]) == 3
    assert summary["machine"]["devices"] == "cpu, cpu"
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


def test_bad_cpu_devices_is_a_clear_error(tmp_path: Path, capsys):
    from purejaxrl_ppo.cli import main

    # In this process: the value is refused before anything would touch jax's (already started) backend.
    assert main(["train", "--cpu-devices", "two", "--out", str(tmp_path / "w"), *TINY]) == 2
    assert "--cpu-devices" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_console_script_is_installed():
    scripts = Path(sys.executable).parent
    assert (scripts / "purejaxrl-ppo").exists()


TINY_RUN = """\
algo: ppo
env_name: CartPole-v1
num_envs: 2
num_steps: 16
total_timesteps: 960   # 30 updates
hidden_sizes: [8]
num_minibatches: 2
update_epochs: 1
num_seeds: 2
seed: 5
chunk_updates: 1       # a checkpoint after every update
keep_checkpoints: 2
"""


def run_cli_env(extra_env: dict, *args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    return subprocess.run([sys.executable, "-m", "purejaxrl_ppo", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def committed_steps(run_dir: Path) -> list[int]:
    directory = run_dir / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


@pytest.mark.heavy  # in CI: tests/driver/test_faults.py (two real SIGKILLs and every kill point in-process)
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path: Path):
    import signal
    import time

    import jax

    from purejaxrl_ppo.runs.checkpoint import Checkpointer
    from purejaxrl_ppo.runs.run_files import load_run_file
    from purejaxrl_ppo.launch.programs import abstract_train_state

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(TINY_RUN)
    env = {}  # the session's compilation cache (conftest) is shared by the three processes
    whole = run_cli_env(env, "train", "--config", str(config_file), "--out", str(tmp_path / "whole"), "--quiet")
    assert whole.returncode == 0, whole.stderr

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "purejaxrl_ppo", "train", "--config", str(config_file), "--out",
                             str(killed_dir), "--quiet"], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not committed_steps(killed_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # a real kill, wherever the run is: between chunks or mid-write
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert 30 not in committed_steps(killed_dir) and not (killed_dir / "summary.json").exists()

    resumed = run_cli_env(env, "train", "--resume", str(killed_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    with np.load(tmp_path / "whole" / "metrics.npz") as a, np.load(killed_dir / "metrics.npz") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (killed_dir / name).read_bytes(), name
    config, options = load_run_file(config_file)
    abstract = abstract_train_state(config, options.num_seeds)
    final_a = Checkpointer(tmp_path / "whole" / "checkpoints").restore(30, abstract).state
    final_b = Checkpointer(killed_dir / "checkpoints").restore(30, abstract).state
    for x, y in zip(jax.tree_util.tree_leaves(final_a), jax.tree_util.tree_leaves(final_b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    commands = json.loads((killed_dir / "run.json").read_text())["commands"]
    assert len(commands) == 2 and commands[1]["command"].endswith(f"--resume {killed_dir} --quiet")
    assert committed_steps(killed_dir) == [29, 30]  # keep_checkpoints: 2

    # NaN: a diverging learning rate stops with the update and metric, exit code 3, last good checkpoint kept
    nan_dir = tmp_path / "nan"
    diverged = run_cli_env(env, "train", "--config", str(config_file), "--learning-rate", "1e18", "--no-anneal-lr",
                           "--out", str(nan_dir), "--quiet")
    assert diverged.returncode == 3, diverged.stderr
    assert "is not finite at update" in diverged.stderr and "last verified checkpoint" in diverged.stderr
    assert not (nan_dir / "summary.json").exists()


@pytest.mark.slow  # four interpreter starts: about a minute on a loaded 2-core machine
def test_config_file_flags_override_and_bad_input(tmp_path: Path):
    from purejaxrl_ppo.runs.run_files import load_run_file

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(TINY_RUN)
    dumped = tmp_path / "resolved.toml"
    proc = run_cli("train", "--config", str(config_file), "--num-seeds", "3", "--clip-eps", "0.1",
                   "--dump-config", str(dumped))
    assert proc.returncode == 0, proc.stderr
    config, options = load_run_file(dumped)
    assert (options.num_seeds, config.clip_eps, config.num_envs, options.seed) == (3, 0.1, 2, 5)

    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_RUN + "num_env: 4\n")
    proc = run_cli("train", "--config", str(bad), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and str(bad) in proc.stderr and "num_env" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x").exists()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(TINY_RUN)
    proc = run_cli("train", "--resume", str(run_dir), "--num-seeds", "4")
    assert proc.returncode == 2 and "--num-seeds cannot be combined" in proc.stderr
    proc = run_cli("train", "--resume", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
