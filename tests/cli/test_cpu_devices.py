"""``--cpu-devices 2`` with ``--seeds-per-batch`` fixed trains every seed bit for bit as one device does.

What the ``--cpu-devices`` help and docs/guides/many-seeds.md promise: with a fixed block width each seed
runs in a vmapped program of the same width whatever the device count, so every metric of every seed and
every seed's final parameters are bit-identical (TRPO, whose conjugate gradient and line search amplify
any rounding difference; 3 seeds, so both layouts pad). Without ``--seeds-per-batch`` the width is the
seeds per device and only the distribution across seeds is the same (not checked here: that needs many
seeds and a full budget). Each run is its own process, since XLA reads the device count once.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from purejaxrl_ppo.runs.policy_files import load_policy

TINY_TRPO = ["train", "--algo", "trpo", "--env", "CartPole-v1", "--num-seeds", "3", "--seeds-per-batch", "2",
             "--num-envs", "2", "--num-steps", "16", "--total-timesteps", "256", "--hidden-sizes", "8",
             "--chunk-updates", "4", "--quiet"]


def _train(out, *extra: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "purejaxrl_ppo", *TINY_TRPO, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.heavy  # two interpreters and compiles (~25 s): make test-all; make test checks the library level
def test_two_cpu_devices_with_fixed_blocks_equal_one_device_bit_for_bit(tmp_path):  # (tests/launch/test_layout.py)
    one, two = tmp_path / "one", tmp_path / "two"
    _train(one)
    _train(two, "--cpu-devices", "2")
    with np.load(one / "metrics.npz") as a, np.load(two / "metrics.npz") as b:
        assert sorted(a.files) == sorted(b.files) and "episode_return" in a.files
        for name in a.files:
            assert a[name].shape[0] == 3, name
            np.testing.assert_array_equal(b[name], a[name], err_msg=name)  # NaN == NaN, every bit otherwise
    params = [load_policy(run / "policy.msgpack")[0] for run in (one, two)]
    leaves = [jax.tree_util.tree_leaves(p) for p in params]
    assert jax.tree_util.tree_structure(params[0]) == jax.tree_util.tree_structure(params[1]) and leaves[0]
    for want, got in zip(*leaves):
        assert np.asarray(want).shape[0] == 3
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
