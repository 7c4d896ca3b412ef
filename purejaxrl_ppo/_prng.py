"""Compile-time fix for jax's threefry PRNG on the CPU backend.

jax lowers the threefry-2x32 hash on CPU as a rolled ``fori_loop`` of five
iterations (on GPU/TPU it is unrolled). Every random call site of the training
program (key splits, action sampling, environment resets, minibatch
permutations, orthogonal initialisation) then becomes a while loop of its own
with a dozen small kernels and buffer copies around it. Measured on the 2-core
CPU used for development (jax 0.10.2, CartPole PPO, one seed): the rolled form
gives 494 fusions and 543 copies in the compiled program and ~19 s of compile
CPU time; the unrolled form 311 fusions, 133 copies and ~11 s, with the same
run time. The hash is the same function either way, so every random number,
and therefore every training result, is bit-identical (``tests/test_prng.py``).

This uses jax internals (``jax._src.random.threefry2x32``), so it is guarded:
if they move, nothing is changed and jax's default is used. Set
``PUREJAXRL_PPO_JAX_DEFAULT_THREEFRY=1`` to keep jax's default lowering.
"""

from __future__ import annotations

import os

OPT_OUT_VARIABLE = "PUREJAXRL_PPO_JAX_DEFAULT_THREEFRY"


def use_unrolled_threefry_on_cpu() -> bool:
    """Register jax's unrolled threefry lowering for the CPU platform.

    Returns True when the unrolled lowering is in effect for programs lowered
    from now on, False when opted out or when jax's internals are not as expected.
    """
    if os.environ.get(OPT_OUT_VARIABLE, "").strip() not in ("", "0"):
        return False
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32
    except Exception:  # pragma: no cover - depends on jax internals
        return False
    primitive = getattr(threefry2x32, "threefry2x32_p", None)
    rule = getattr(threefry2x32, "_threefry2x32_lowering_rule", None)  # the unrolled GPU/TPU rule
    if primitive is None or rule is None:  # pragma: no cover - depends on jax internals
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True
