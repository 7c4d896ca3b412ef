"""Seed layouts (launch/layout.py), train_seeds (launch/seeds.py) and the chunked runner on 4 forced
CPU devices against the unsharded runs, and the shared compile cache (launch/programs.py).

With a fixed block width (``seeds_per_batch``) results are bit-identical on any
device count: every leaf is compared with ``np.array_equal``, including a
checkpoint written on 4 devices and resumed on 1 (and the reverse). Without it,
each device vmaps its own share of seeds and XLA:CPU may round float leaves
differently for a different vmap width (about 1e-9 in the parameters): integer
and boolean leaves (step counters, keys, episode counts) and the episode
statistics must match exactly, float leaves to float32 rounding.

The device-count flag must be in XLA_FLAGS before jax starts its CPU backend,
so each check runs in a fresh subprocess (which also appends the package's own
XLA:CPU workaround flag on import; both flags must survive).
"""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import pytest

import purejaxrl_ppo as pjp
from helpers import ROOT, leaves_equal
from purejaxrl_ppo.launch import layout as sharding
from purejaxrl_ppo.launch import programs

CHECK = textwrap.dedent(
    """
    import os, sys
    import purejaxrl_ppo as pjp
    import jax, numpy as np
    from purejaxrl_ppo.platform import CPU_DEADLOCK_FLAG

    assert "--xla_force_host_platform_device_count=4" in os.environ["XLA_FLAGS"]
    assert CPU_DEADLOCK_FLAG in os.environ["XLA_FLAGS"]
    assert jax.device_count() == 4, jax.devices()
    from helpers import tiny_config

    algo, num_seeds, per_batch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    per_batch = None if per_batch == "none" else int(per_batch)
    algo, _, policy = algo.partition(":")  # e.g. "ppo:gru": a recurrent policy, its carry sharded with the seeds
    config = tiny_config(algo, **({"policy": policy, "rnn_hidden_size": 8} if policy else {}))
    key = jax.random.PRNGKey(5)
    reference = jax.jit(jax.vmap(pjp.make_train(config)))(jax.random.split(key, num_seeds))
    out = pjp.train_seeds(config, num_seeds, key, seeds_per_batch=per_batch)
    assert out.metrics["episode_return"].shape == (num_seeds, config.num_updates)
    leaves = jax.tree_util.tree_flatten_with_path(reference)[0]
    assert len(leaves) == len(jax.tree_util.tree_leaves(out))
    for (path, want), got in zip(leaves, jax.tree_util.tree_leaves(out)):
        name = jax.tree_util.keystr(path)
        got, want = np.asarray(got), np.asarray(want)
        exact = not np.issubdtype(want.dtype, np.floating) or "episode_" in name
        if exact:
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            # another vmap width per device: float rounding, which TRPO's CG and line search amplify a little
            # (through a recurrence more: TRPO-attention measured 1.4e-3 relative on a kl value and 2e-4
            # absolute on attention-window entries of about 0.01; a mis-sharded carry would differ wholesale)
            rtol, atol = (5e-3, 1e-3) if policy else (1e-4, 1e-5)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
    print("OK", num_seeds, per_batch)
    """
)


RUNNER_CHECK = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    import purejaxrl_ppo as pjp
    import jax, numpy as np
    from purejaxrl_ppo.runs.options import RunOptions
    from purejaxrl_ppo.driver import train_durable
    from purejaxrl_ppo.launch.chunked import train_seeds_chunked

    from helpers import tiny_config

    assert jax.device_count() == 4, jax.devices()
    config = tiny_config("ppo")
    one, num_seeds, block = jax.devices()[:1], 6, 2  # 6 seeds: padded to 8 on 4 devices

    def same(got, want):
        got_leaves = jax.tree_util.tree_flatten_with_path(got)[0]
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
        for (path, x), y in zip(got_leaves, jax.tree_util.tree_leaves(want)):
            name = jax.tree_util.keystr(path)
            x, y = np.asarray(x), np.asarray(y)
            assert x.shape[0] == num_seeds, (name, x.shape)
            np.testing.assert_array_equal(x, y, err_msg=name)

    def run(devices=None):
        out = train_seeds_chunked(config, num_seeds, 3, plan=[2, 2, 2], devices=devices, seeds_per_batch=block)
        return out.metrics, out.final_state

    # Fixed blocks of 2 seeds: 4 devices == 1 device == train_seeds, bit for bit.
    reference = run(one)
    same(run(), reference)
    whole = pjp.train_seeds(config, num_seeds, jax.random.PRNGKey(3), seeds_per_batch=block)
    same((whole.metrics, whole.state), reference)

    # A run checkpointed on 4 devices resumes on 1, and one from 1 device on 4.
    class Stop(Exception):
        pass

    def stop_after_first_chunk(report):
        if report.index == 0:
            raise Stop

    options = RunOptions(num_seeds=num_seeds, seed=3, chunk_updates=2, seeds_per_batch=block)
    for first, then in ((None, one), (one, None)):
        run_dir = Path(tempfile.mkdtemp()) / "run"
        try:
            train_durable(run_dir, config, options, on_chunk=stop_after_first_chunk, devices=first)
        except Stop:
            pass
        resumed = train_durable(run_dir, resume=True, devices=then)
        assert resumed.updates_run == 4, resumed.updates_run
        same((resumed.metrics, resumed.final_state), reference)
    print("OK runner")
    """
)


SWEEP_CHECK = textwrap.dedent(
    """
    import purejaxrl_ppo as pjp
    import jax, numpy as np
    from helpers import tiny_config

    assert jax.device_count() == 4, jax.devices()
    config = tiny_config("ppo", learning_rate=0.02)
    sharded = pjp.sweep(config, {"clip_eps": [0.1, 0.3]}, num_seeds=6, seed=3)  # devices=None: all 4
    alone = pjp.sweep(config, {"clip_eps": [0.1, 0.3]}, num_seeds=6, seed=3, devices=jax.devices()[:1])
    assert sharded.axes == alone.axes == ("clip_eps", "seed", "update")
    for name, want in alone.metrics.items():
        got = sharded.metrics[name]
        assert got.shape == want.shape == (2, 6, config.num_updates), (name, got.shape)
        # another vmap width per device: equal up to float rounding (episode statistics exactly)
        if "episode_" in name or not np.issubdtype(want.dtype, np.floating):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=name)
    print("OK sweep")
    """
)


def run_four_devices(*args: str, script: str = CHECK) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    # the repository (the package) and tests/ (helpers)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "algo,num_seeds,per_batch",
    [
        ("ppo", 10, "2"),     # uneven and chunked: padded to 12, 3 seeds per device = 2 + 1
        pytest.param("ppo", 6, "none", marks=pytest.mark.heavy),   # uneven: padded to 8, padding dropped
        # The rest of the matrix takes minutes more on a 2-core CPU: make test-all.
        pytest.param("ppo", 8, "none", marks=pytest.mark.heavy),   # even: 2 seeds per device
        pytest.param("ppo", 16, "2", marks=pytest.mark.heavy),     # chunked: 2 sequential batches of 2
        pytest.param("trpo", 5, "none", marks=pytest.mark.heavy),  # the other algorithm, uneven
        pytest.param("ppo:gru", 6, "2", marks=pytest.mark.heavy),  # a recurrent policy: the carry is per seed
        pytest.param("trpo:attention", 5, "none", marks=pytest.mark.heavy),
    ],
)
def test_sharded_equals_unsharded(algo, num_seeds, per_batch):
    result = run_four_devices(algo, str(num_seeds), per_batch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK {num_seeds}" in result.stdout


def test_pad_and_unpad_seed_axis():
    tree = {"a": jax.numpy.arange(5), "b": jax.numpy.ones((5, 2))}
    padded = sharding.pad_seed_axis(tree, 4)
    assert padded["a"].shape == (8,) and padded["b"].shape == (8, 2)
    assert padded["a"].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    back = sharding.unpad_seed_axis(padded, 5)
    assert back["a"].tolist() == [0, 1, 2, 3, 4]


def test_shard_seed_axis_rejects_unpadded_batches():
    mesh = sharding.seed_mesh([jax.devices()[0]] * 1)
    sharding.shard_seed_axis(jax.numpy.zeros((3, 2)), mesh)  # 1 device: any length works
    with pytest.raises(ValueError, match="num_seeds"):
        pjp.train_seeds(pjp.PPOConfig(env_name="CartPole-v1"), 0, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="seeds_per_batch"):
        sharding.map_seeds(lambda k: k, mesh, seeds_per_batch=0)
    with pytest.raises(ValueError, match="devices"):
        sharding.seed_mesh([])


@pytest.mark.heavy  # ~1 min: make test-all. The default run keeps train_seeds on 4 devices (above), the CLI
# runner on 2 (tests/cli/test_cli.py) and resume on one device (tests/driver/test_durable.py).
def test_chunked_runner_and_checkpoints_across_device_counts():
    """The CLI's runner places seeds like train_seeds; checkpoints resume on another device count."""
    result = run_four_devices(script=RUNNER_CHECK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK runner" in result.stdout


@pytest.mark.heavy  # 45-100 s on the 2-core VM; make test: sweep() on one device (tests/launch/test_sweep.py)
def test_sweep_shards_seeds_over_every_device():  # a 4-device subprocess compiling two small sweeps
    """pjp.sweep with devices=None spreads the seed axis over the 4 devices, with the results of one device."""
    result = run_four_devices(script=SWEEP_CHECK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK sweep" in result.stdout


def test_seed_layout_pads_to_whole_blocks_and_back():
    layout = sharding.seed_layout(5, [jax.devices()[0]], seeds_per_batch=4)
    assert layout.padded_seeds == 8  # every device's share is a whole number of 4-seed blocks
    tree = {"a": jax.numpy.arange(5), "b": jax.numpy.ones((5, 3))}
    placed = layout.put(tree)
    assert placed["a"].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert layout.abstract(jax.eval_shape(lambda: tree))["b"].shape == (8, 3)
    assert layout.take(placed)["a"].tolist() == [0, 1, 2, 3, 4]
    assert sharding.seed_layout(4, [jax.devices()[0]]).take(tree) is tree  # nothing padded: as is
    with pytest.raises(ValueError, match="seeds_per_batch"):
        sharding.seed_layout(4, seeds_per_batch=0)


@pytest.mark.heavy  # 14 s of make test's budget; make test-all runs it
def test_second_train_seeds_call_reuses_the_compiled_program(monkeypatch):
    """Same config and layout: the program is built (traced, compiled) once, and gives the same result."""
    built = []
    real_make_train = programs.make_train
    monkeypatch.setattr(programs, "make_train", lambda config: built.append(config) or real_make_train(config))
    programs.train_program.cache_clear()
    config = pjp.PPOConfig(env_name="CartPole-v1", num_envs=2, num_steps=8, total_timesteps=32, hidden_sizes=(8,),
                           num_minibatches=2, update_epochs=1)
    first = pjp.train_seeds(config, 3, jax.random.PRNGKey(1))
    second = pjp.train_seeds(config, 3, jax.random.PRNGKey(1))
    assert len(built) == 1
    leaves_equal(first, second)  # NaN (no episode ended yet) counts as equal
    pjp.train_seeds(dataclasses.replace(config, learning_rate=1e-3), 3, jax.random.PRNGKey(1))
    assert len(built) == 2  # another config builds its own program
