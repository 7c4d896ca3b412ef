"""Provenance: where and with what a run or a measurement was made (one place for the package)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time

import jax

VERSIONED = (
    "purejaxrl_ppo", "jax", "jaxlib", "flax", "optax", "chex", "distrax", "gymnax", "brax", "numpy",
    "orbax-checkpoint", "tensorboardX", "wandb",
)



def versions() -> dict[str, str]:
    """Installed versions of Python and the packages a run depends on (absent ones omitted)."""
    out = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine_description() -> dict[str, str]:
    """Where a figure was measured: host, CPU count, jax backend and versions."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "jax_backend": jax.default_backend(),
        "devices": ", ".join(d.device_kind for d in jax.devices()),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


