"""Platform workarounds (platform.py): the XLA:CPU deadlock flag is appended to XLA_FLAGS (never
overwriting them), one XLA device per core on request, and the unrolled CPU threefry lowering gives
jax's random numbers bit for bit."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import purejaxrl_ppo  # noqa: F401  (applies the workarounds)
from purejaxrl_ppo.platform import CPU_DEADLOCK_FLAG, OPT_OUT_VARIABLE, appended_xla_flags


def test_appends_to_user_flags_and_keeps_them():
    assert appended_xla_flags(None) == CPU_DEADLOCK_FLAG
    assert appended_xla_flags("") == CPU_DEADLOCK_FLAG
    assert appended_xla_flags("--xla_dump_to=/tmp/x") == f"--xla_dump_to=/tmp/x {CPU_DEADLOCK_FLAG}"


def test_user_choice_for_the_same_flag_wins():
    user = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert appended_xla_flags(user) == user


def _flags_after_import(initial: str | None, code: str = "import purejaxrl_ppo") -> str:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    if initial is not None:
        env["XLA_FLAGS"] = initial
    script = f"{code}\nimport os; print(os.environ['XLA_FLAGS'])"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1], proc.stderr


def test_import_sets_the_flag_before_the_backend_starts():
    flags, stderr = _flags_after_import("--xla_force_host_platform_device_count=2")
    assert flags == f"--xla_force_host_platform_device_count=2 {CPU_DEADLOCK_FLAG}"
    assert "cannot take effect" not in stderr


def test_warns_when_imported_after_the_cpu_backend_started():
    flags, stderr = _flags_after_import(None, "import jax; jax.numpy.zeros(1).block_until_ready()\nimport purejaxrl_ppo")
    assert "cannot take effect" in stderr


# ------------------------------------------------------------------ batched QR deadlock (jaxlib 0.10.2)
def test_vmapped_init_factorises_one_matrix_at_a_time_with_the_same_values():
    import jax
    import numpy as np

    import purejaxrl_ppo as pjp
    from purejaxrl_ppo.core.envs import make_env
    from purejaxrl_ppo.core.networks import make_network

    config = pjp.PPOConfig(env_name="CartPole-v1")
    env = make_env(config.env_name)
    network = make_network(config, env.action_space, env.observation_shape)
    keys = jax.random.split(jax.random.PRNGKey(3), 5)

    jaxpr = jax.make_jaxpr(jax.vmap(network.init))(keys)
    qr_shapes = []

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in ("geqrf", "householder_product", "qr"):
                qr_shapes.append(eqn.invars[0].aval.shape)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jaxpr.jaxpr)
    assert qr_shapes, "no QR found: orthogonal initialisation changed?"
    assert all(len(shape) == 2 for shape in qr_shapes), qr_shapes  # unbatched: no [seeds, m, n] QR

    batched = jax.jit(jax.vmap(network.init))(keys)
    for i in range(len(keys)):
        one = jax.jit(network.init)(keys[i])
        jax.tree_util.tree_map(lambda b, o: np.testing.assert_array_equal(b[i], o), batched, one)


_MANY_SEEDS = """
import jax, purejaxrl_ppo as pjp
config = pjp.PPOConfig(env_name="CartPole-v1", num_envs=4, num_steps=128, total_timesteps=512)
keys = jax.random.split(jax.random.PRNGKey(0), 256)
jax.block_until_ready(jax.jit(jax.vmap(pjp.make_train(config)))(keys).metrics)
print("finished")
"""


def test_256_seed_program_finishes():
    # Before initialisation ran one QR at a time, this program hung at 0% CPU on every try (2 cores).
    proc = subprocess.run([sys.executable, "-c", _MANY_SEEDS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("finished")


_CPU_DEVICES = """
import os, sys, purejaxrl_ppo as pjp
import pytest
with pytest.raises(ValueError, match="positive int"):
    pjp.use_cpu_devices(0)
assert pjp.use_cpu_devices(3) == 3
assert pjp.use_cpu_devices(3) == 3  # asking again for the same count is fine
with pytest.raises(ValueError, match="already sets"):
    pjp.use_cpu_devices(2)
import jax
assert jax.device_count() == 3, jax.devices()
with pytest.raises(RuntimeError, match="already started"):
    os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(" --xla_force_host_platform_device_count=3", "")
    pjp.use_cpu_devices(2)
print("FLAGS", os.environ["XLA_FLAGS"])
"""


def test_use_cpu_devices_appends_the_count_before_the_backend_starts():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_dump_to=/tmp/unused"
    proc = subprocess.run([sys.executable, "-c", _CPU_DEVICES], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    flags = proc.stdout.strip().splitlines()[-1]
    assert flags.startswith(f"FLAGS --xla_dump_to=/tmp/unused {CPU_DEADLOCK_FLAG}")  # the user's flags kept, in order


def test_auto_is_one_device_per_available_core():
    code = "import purejaxrl_ppo as pjp, jax; n = pjp.use_cpu_devices('auto'); print(n, jax.device_count())"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, devices = map(int, proc.stdout.split())
    assert count == devices == len(os.sched_getaffinity(0))


# ------------------------------------------------------------------ unrolled CPU threefry lowering
_PRNG_SCRIPT = """
import numpy as np, jax, purejaxrl_ppo as pjp
key = jax.random.PRNGKey(3)
draws = jax.jit(lambda k: (jax.random.split(k, 7), jax.random.uniform(k, (5, 3)), jax.random.normal(jax.random.fold_in(k, 2), (4,)),
                           jax.random.permutation(k, 11), jax.random.categorical(k, np.zeros((6, 3)))))(key)
# Every kind of draw the training program makes (key splits, uniform env resets, normal initialisation,
# minibatch permutations, categorical actions): equal draws make equal training runs, since the lowering
# rule is the only thing that differs. (A whole training program per lowering took ~15 s more.)
leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(draws)]
np.savez(__import__("sys").argv[1], *leaves)
"""


def _prng_draws(tmp_path, name: str, opt_out: bool) -> list[np.ndarray]:
    env = dict(os.environ)
    env.pop(OPT_OUT_VARIABLE, None)
    if opt_out:
        env[OPT_OUT_VARIABLE] = "1"
    path = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-c", _PRNG_SCRIPT, str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda s: int(s.split("_")[1]))]


def test_unrolled_lowering_is_bit_identical_to_jax_default(tmp_path):
    ours = _prng_draws(tmp_path, "unrolled", opt_out=False)
    default = _prng_draws(tmp_path, "default", opt_out=True)
    assert len(ours) == len(default) == 5
    for a, b in zip(ours, default):
        np.testing.assert_array_equal(a, b)


def test_lowering_is_unrolled_in_this_process():
    if jax.default_backend() != "cpu":
        pytest.skip(f"the unrolled threefry lowering applies on CPU only (backend: {jax.default_backend()})")
    hlo = jax.jit(lambda k: jax.random.split(k, 4)).lower(jax.random.PRNGKey(0)).compile().as_text()
    assert " while(" not in hlo and "while(" not in hlo.replace("while (", "")
