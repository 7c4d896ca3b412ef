"""Platform workarounds, applied when :mod:`purejaxrl_ppo` is imported, and the CPU device split.

Importing the package calls :func:`apply_platform_workarounds`, which does two things and
computes nothing (so :func:`use_cpu_devices` may still follow the import):

1. **The XLA:CPU deadlock flag** (:func:`apply_cpu_deadlock_workaround`), appended to
   ``XLA_FLAGS`` before jax starts its CPU backend.
2. **The unrolled threefry lowering on CPU** (:func:`use_unrolled_threefry_on_cpu`): same
   random numbers, a faster compile.

Both are described below, with how to opt out. :func:`use_cpu_devices` (one XLA device per
CPU core) is opt-in.

The deadlock: with jax 0.10.2 some vmapped training programs hang forever on the CPU backend
(0% CPU, every thread waiting). Disabling the concurrency-optimised scheduler
removed the hang in every try at up to 64 seeds, but not at 256; the root cause
was two batched LAPACK QR kernels (orthogonal initialisation under ``vmap``)
waiting on each other in XLA's thread pool, which
:func:`purejaxrl_ppo.core.networks.base.one_key_at_a_time` avoids. The flag stays as a
second guard. XLA reads ``XLA_FLAGS`` once, when the backend
client is created, so the flag must be in the environment before the first
computation; importing :mod:`purejaxrl_ppo` does this.

The flag is an XLA:CPU option: on a GPU/TPU backend it only affects programs
that XLA compiles for the host, so it is harmless there.
"""

from __future__ import annotations

import os
import warnings

CPU_DEADLOCK_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
_FLAG_NAME = CPU_DEADLOCK_FLAG.split("=")[0]
CPU_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def appended_xla_flags(existing: str | None) -> str:
    """Return ``existing`` XLA flags with the CPU deadlock workaround appended.

    The user's own flags are kept in order; if they already set the scheduler
    flag (to any value) their choice wins and nothing is added.
    """
    existing = (existing or "").strip()
    if _FLAG_NAME in existing:
        return existing
    return f"{existing} {CPU_DEADLOCK_FLAG}".strip()


def _cpu_backend_started() -> bool:
    """True if jax already created a CPU client before the flag was set."""
    try:
        from jax._src import xla_bridge  # private, hence the broad guard
    except Exception:  # pragma: no cover - depends on jax internals
        return False
    backends = getattr(xla_bridge, "_backends", None) or {}
    return "cpu" in backends


def apply_cpu_deadlock_workaround() -> None:
    """Append the workaround to ``XLA_FLAGS`` (idempotent; never overwrites).

    Warns if the CPU backend was already started by earlier code, because the
    flag then has no effect for this process.
    """
    before = os.environ.get("XLA_FLAGS")
    after = appended_xla_flags(before)
    if after == (before or "").strip() and before is not None:
        return
    backend_started = _cpu_backend_started()
    os.environ["XLA_FLAGS"] = after
    if backend_started:
        warnings.warn(
            "purejaxrl_ppo was imported after jax had started its CPU backend, so "
            f"the XLA:CPU deadlock workaround ({CPU_DEADLOCK_FLAG}) cannot take effect "
            "in this process. Import purejaxrl_ppo before running any jax computation, "
            "or set XLA_FLAGS yourself.",
            RuntimeWarning,
            stacklevel=3,
        )


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _device_count_in(flags: str) -> int | None:
    for token in flags.split():
        if token.startswith(CPU_DEVICE_COUNT_FLAG + "="):
            return int(token.split("=", 1)[1])
    return None


def use_cpu_devices(count: int | str = "auto") -> int:
    """Split the CPU into ``count`` XLA devices (``"auto"``: one per available core).

    :func:`purejaxrl_ppo.train_seeds` (and the CLI's runner) shard the seeds over
    every local device, so on a CPU each device then runs its own share of seeds
    as an independent program, one per core, instead of one program whose small
    kernels are split over the cores. Measured on the 2-core development VM
    (CartPole, PureJaxRL config, 64 seeds, 2 devices): PPO 79k-83k -> 195k-198k
    env-steps/s, TRPO 76k -> 164k (``benchmarks/results/cpu_devices/``).

    What stays equal: with ``seeds_per_batch`` fixed, every seed's metrics and final
    state are bit-identical on any device count (each seed is vmapped in a block of
    that width either way; ``tests/cli/test_cpu_devices.py``). Without it, each device
    vmaps its share of the seeds, a different width than one device's, so XLA rounds
    floats differently (:mod:`purejaxrl_ppo.launch.layout`); training amplifies those
    last bits until single seeds follow different trajectories, so per-seed returns
    differ while their distribution across seeds is that of the same experiment.

    Appends ``--xla_force_host_platform_device_count=N`` to ``XLA_FLAGS``, so it
    must run before jax starts its CPU backend: right after ``import purejaxrl_ppo``
    (which computes nothing), before building a config or an environment (checking
    an env name imports gymnax, which computes arrays) or any other jax computation.
    Only the CPU platform is affected: on a GPU/TPU machine the accelerators stay
    the default devices. Returns the device count in effect.

    Raises ``ValueError`` for a count that is not a positive int or ``"auto"``,
    or when ``XLA_FLAGS`` already asks for a different count, and
    ``RuntimeError`` when the CPU backend has already started.
    """
    if count == "auto":
        count = available_cores()
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int or 'auto', got {count!r}")
    flags = os.environ.get("XLA_FLAGS", "")
    existing = _device_count_in(flags)
    if existing is not None:
        if existing != count:
            raise ValueError(f"XLA_FLAGS already sets {CPU_DEVICE_COUNT_FLAG}={existing}; asked for {count}")
        return count
    if _cpu_backend_started():
        raise RuntimeError(
            "jax's CPU backend has already started, so the number of CPU devices is fixed for this "
            "process; call use_cpu_devices() right after importing purejaxrl_ppo, before any jax computation "
            "(building a config or an environment counts: it imports gymnax, which computes arrays), or set "
            f"XLA_FLAGS={CPU_DEVICE_COUNT_FLAG}={count} before starting Python"
        )
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_DEVICE_COUNT_FLAG}={count}".strip()
    return count


# ----------------------------------------------------------------------------- threefry on CPU
#
# Compile-time fix for jax's threefry PRNG on the CPU backend.
#
# jax lowers the threefry-2x32 hash on CPU as a rolled ``fori_loop`` of five
# iterations (on GPU/TPU it is unrolled). Every random call site of the training
# program (key splits, action sampling, environment resets, minibatch
# permutations, orthogonal initialisation) then becomes a while loop of its own
# with a dozen small kernels and buffer copies around it. Measured on the 2-core
# CPU used for development (jax 0.10.2, CartPole PPO, one seed): the rolled form
# gives 494 fusions and 543 copies in the compiled program and ~19 s of compile
# CPU time; the unrolled form 311 fusions, 133 copies and ~11 s, with the same
# run time. The hash is the same function either way, so every random number,
# and therefore every training result, is bit-identical (``tests/test_platform.py``).
#
# This uses jax internals (``jax._src.random.threefry2x32``), so it is guarded:
# if they move, nothing is changed and jax's default is used. Set
# ``PUREJAXRL_PPO_JAX_DEFAULT_THREEFRY=1`` to keep jax's default lowering.

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


def apply_platform_workarounds() -> None:
    """What ``import purejaxrl_ppo`` does first: the deadlock flag, then the threefry lowering."""
    apply_cpu_deadlock_workaround()
    use_unrolled_threefry_on_cpu()
