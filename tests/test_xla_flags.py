"""The XLA:CPU deadlock workaround is appended to XLA_FLAGS, never overwriting them."""

import os
import subprocess
import sys

from purejaxrl_ppo._xla import CPU_DEADLOCK_FLAG, appended_xla_flags


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
