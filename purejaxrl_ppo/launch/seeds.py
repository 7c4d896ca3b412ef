"""``train_seeds``: many seeds of one config, sharded over the devices, in one program.

See :mod:`purejaxrl_ppo.launch.layout` for how seeds are placed and when results are
bit-identical across device counts. The program comes from the shared compile cache
(:func:`~purejaxrl_ppo.launch.programs.train_program`), so a second call with the same
config and layout compiles nothing.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import jax

from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.loop import check_single_key
from purejaxrl_ppo.core.types import TrainOutput
from purejaxrl_ppo.launch.layout import seed_layout
from purejaxrl_ppo.launch.programs import train_program


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def train_seeds(
    config: BaseConfig,
    num_seeds: int,
    key: jax.Array,
    devices: Sequence[jax.Device] | None = None,
    seeds_per_batch: int | None = None,
) -> TrainOutput:
    """Train ``num_seeds`` seeds of ``config`` with the seed axis sharded over ``devices``.

    key:             one PRNG key; seed ``i`` trains with ``jax.random.split(key, num_seeds)[i]``
                     (a batch of keys is refused: this function splits the one key itself)
    devices:         the devices to use (default: every device; with ``jax.distributed``, every
                     process's, and every process calls this with the same arguments)
    seeds_per_batch: run each device's seeds in sequential blocks of exactly this
                     many (``jax.lax.map``; the seeds are padded to a multiple of
                     ``devices x seeds_per_batch``): bounds memory and makes the
                     result bit-identical on any device count. ``None`` runs a
                     device's seeds all at once and falls back to halving blocks
                     if the device runs out of memory

    Returns a :class:`~purejaxrl_ppo.core.types.TrainOutput` with metrics
    ``[num_seeds, num_updates]`` and a final state with leading ``[num_seeds]``:
    per block of seeds, bit-identical to ``jax.jit(jax.vmap(make_train(config)))``
    of that block's keys (see the module docstring). When the devices span several
    processes, every process gets every seed's metrics and final state, as NumPy arrays.
    """
    check_single_key(key, hint=f"train_seeds(config, num_seeds, key) splits one key into the {num_seeds} seeds' "
                               "keys itself: pass e.g. jax.random.PRNGKey(seed), not a batch of keys")
    layout = seed_layout(num_seeds, devices, seeds_per_batch)
    keys = jax.random.split(key, layout.num_seeds)
    while True:
        try:
            out = train_program(config, layout)(layout.put(keys))
            jax.block_until_ready(out)
            return layout.take(out)
        except Exception as error:  # XLA raises its own runtime error type
            if seeds_per_batch is not None or not _is_out_of_memory(error):
                raise
            current = layout.seeds_per_batch or layout.padded_seeds // layout.mesh.devices.size
            if current <= 1:
                raise
            layout = dataclasses.replace(layout, seeds_per_batch=max(1, current // 2))
            warnings.warn(
                f"{num_seeds} seeds did not fit in device memory at once; retrying with "
                f"seeds_per_batch={layout.seeds_per_batch} per device",
                RuntimeWarning,
                stacklevel=2,
            )
