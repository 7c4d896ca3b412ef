"""Every optional suite trains with PPO and TRPO, feed-forward and GRU policies, through the Python API; and
from the shell as a durable run (checkpoints included) for one environment of each suite.

Heavy (``make test-all``): each case compiles a suite's physics or game logic into a training program, tens of
seconds to minutes on a 2-core CPU; the default run checks every adapter with ``check_env`` instead.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import purejaxrl_ppo as pjp
import jax

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900)]

#: One small environment per suite, and the package it needs.
SUITE_ENVS = {
    "navix": "navix/Navix-Empty-5x5-v0?max_steps=20",
    "xminigrid": "xland/MiniGrid-Empty-5x5?max_steps=20",
    "jumanji": "jumanji/Snake-v1?time_limit=20",
    "craftax": "craftax/Craftax-Classic-Symbolic-v1?max_timesteps=20",
    "popgym_arcade": "popgym_arcade/CountRecallEasy",
    "mujoco_playground": "playground/CartpoleBalance?episode_length=20",
}
CASES = [pytest.param(package, algo, policy, id=f"{package}-{algo}-{policy}")
         for package in SUITE_ENVS for algo in ("ppo", "trpo") for policy in ("mlp", "gru")]


def _needs(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")


@pytest.mark.parametrize("package,algo,policy", CASES)
def test_each_suite_trains_with_each_algorithm_and_policy(package, algo, policy):
    _needs(package)
    config_cls, minibatches = (pjp.PPOConfig, "num_minibatches") if algo == "ppo" else (pjp.TRPOConfig,
                                                                                        "critic_minibatches")
    config = config_cls(env_name=SUITE_ENVS[package], total_timesteps=64, num_envs=4, num_steps=8, policy=policy,
                        hidden_sizes=(16,), rnn_hidden_size=8, cnn_channels=(4,), normalize_observations=True,
                        **{minibatches: 2})  # a memory policy's minibatches are groups of whole env sequences
    out = jax.jit(jax.vmap(pjp.make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    for name in ("entropy", "explained_variance"):
        assert np.asarray(out.metrics[name]).shape == (2, config.num_updates)
    assert np.isfinite(np.asarray(out.metrics["entropy"])).all()
    leaves = jax.tree_util.tree_leaves(out.params)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)


@pytest.mark.parametrize("package", list(SUITE_ENVS))
def test_each_suite_trains_from_the_shell_with_checkpoints(tmp_path: Path, package):
    """A durable CLI run: chunks, a checkpoint per chunk (MJX states hold zero-size arrays), summary."""
    _needs(package)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "purejaxrl_ppo", "train", "--algo", "ppo", "--env", SUITE_ENVS[package], "--out",
         str(out), "--num-seeds", "2", "--num-envs", "2", "--num-steps", "8", "--total-timesteps", "64",
         "--chunk-updates", "2", "--hidden-sizes", "16", "--cnn-channels", "4"],
        capture_output=True, text=True, timeout=850, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and (out / "complete.json").is_file()
