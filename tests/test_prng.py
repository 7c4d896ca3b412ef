"""The unrolled CPU threefry lowering gives jax's random numbers bit for bit."""

import os
import subprocess
import sys

import jax
import numpy as np

import purejaxrl_ppo  # noqa: F401  (applies the lowering)
from purejaxrl_ppo.platform import OPT_OUT_VARIABLE

_SCRIPT = """
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


def _run(tmp_path, name: str, opt_out: bool) -> list[np.ndarray]:
    env = dict(os.environ)
    env.pop(OPT_OUT_VARIABLE, None)
    if opt_out:
        env[OPT_OUT_VARIABLE] = "1"
    path = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda s: int(s.split("_")[1]))]


def test_unrolled_lowering_is_bit_identical_to_jax_default(tmp_path):
    ours = _run(tmp_path, "unrolled", opt_out=False)
    default = _run(tmp_path, "default", opt_out=True)
    assert len(ours) == len(default) == 5
    for a, b in zip(ours, default):
        np.testing.assert_array_equal(a, b)


def test_lowering_is_unrolled_in_this_process():
    if jax.default_backend() != "cpu":
        return
    hlo = jax.jit(lambda k: jax.random.split(k, 4)).lower(jax.random.PRNGKey(0)).compile().as_text()
    assert " while(" not in hlo and "while(" not in hlo.replace("while (", "")
