"""Work around a deadlock in jax 0.10.2's XLA:CPU backend.

With jax 0.10.2 some vmapped training programs hang forever on the CPU backend
(0% CPU, every thread waiting). Disabling the concurrency-optimised scheduler
removed the hang in every try at up to 64 seeds, but not at 256; the root cause
was two batched LAPACK QR kernels (orthogonal initialisation under ``vmap``)
waiting on each other in XLA's thread pool, which
:func:`purejaxrl_ppo.networks.one_key_at_a_time` avoids. The flag stays as a
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


def appended_xla_flags(existing: str | None) -> str:
    """Return ``existing`` XLA flags with the CPU deadlock workaround appended.

    The user's own flags are kept in order; if they already set the scheduler
    flag (to any value) their choice wins and nothing is added.
    """
    existing = (existing or "").strip()
    if _FLAG_NAME in existing:
        return existing
    return f"{existing} {CPU_DEADLOCK_FLAG}".strip()


def _cpu_backend_started_without_flag() -> bool:
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
    backend_started = _cpu_backend_started_without_flag()
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
