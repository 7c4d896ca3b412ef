"""Many seeds over many devices: the seed axis sharded on a 1-D mesh.

:func:`train_seeds` is the one entry point for training many seeds. It splits
``key`` into ``num_seeds`` keys exactly as ``jax.random.split(key, num_seeds)``
does, pads the seed axis to a multiple of the device count, places each
device's slice of seeds on that device (:class:`jax.sharding.NamedSharding`
over a mesh axis named ``"seeds"``) and runs the vmapped training program on
every device at once. When all seeds of a device do not fit in its memory at
once, each device runs its seeds in sequential batches of ``seeds_per_batch``
(``jax.lax.map(..., batch_size=...)``); without an explicit
``seeds_per_batch`` this fallback is taken automatically, halving the batch
after an out-of-memory error.

Seeds never interact, so each seed's result is that of
``jax.jit(jax.vmap(make_train(config)))(keys)``: the same trajectories and
episode statistics, and parameters equal up to float32 rounding. Not bit for
bit: XLA:CPU rounds some reductions differently when the number of seeds in
one program (or the device count) changes, by about 1e-9 in the parameters
after a few updates (``tests/test_sharding.py`` measures how close).

The pieces are public so that a host loop (e.g. one that trains in chunks of
updates, :func:`purejaxrl_ppo.runner.train_seeds_chunked`) can keep a batch of
:class:`~purejaxrl_ppo.train.TrainState` sharded between chunks:
:func:`seed_mesh`, :func:`pad_seed_axis`, :func:`shard_seed_axis`,
:func:`unpad_seed_axis` and :func:`map_seeds`.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxrl_ppo.config import BaseConfig
from purejaxrl_ppo.train import TrainOutput, make_train

SEED_AXIS = "seeds"


def seed_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D :class:`~jax.sharding.Mesh` with axis ``"seeds"`` over ``devices``.

    ``devices=None`` uses every local device of the default backend
    (``jax.local_devices()``).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty: give at least one jax.Device (or None for all local devices)")
    return Mesh(np.asarray(devices, dtype=object), (SEED_AXIS,))


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh's ``"seeds"`` axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(SEED_AXIS))


def padded_seed_count(num_seeds: int, num_devices: int) -> int:
    """``num_seeds`` rounded up to a multiple of ``num_devices``."""
    return -(-num_seeds // num_devices) * num_devices


def pad_seed_axis(tree: Any, multiple: int) -> Any:
    """Pad every leaf's leading (seed) axis to a multiple of ``multiple``.

    Padding repeats the last seed, so padded rows run a valid (duplicate)
    training run; drop them with :func:`unpad_seed_axis`.
    """
    def pad(x):
        x = jax.numpy.asarray(x)
        extra = padded_seed_count(x.shape[0], multiple) - x.shape[0]
        if extra == 0:
            return x
        return jax.numpy.concatenate([x, jax.numpy.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree)


def unpad_seed_axis(tree: Any, num_seeds: int) -> Any:
    """Keep the first ``num_seeds`` rows of every leaf (undoes :func:`pad_seed_axis`)."""
    return jax.tree_util.tree_map(lambda x: x[:num_seeds], tree)


def shard_seed_axis(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf (leading seed axis, a multiple of the mesh size) on ``mesh``.

    Works for any batch of per-seed pytrees: ``[seeds]`` keys, a
    :class:`~purejaxrl_ppo.train.TrainState` with leading ``[seeds]``, metrics.
    """
    size = mesh.devices.size
    for leaf in jax.tree_util.tree_leaves(tree):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % size:
            raise ValueError(
                f"leading (seed) axis of length {np.shape(leaf)[:1]} is not a multiple of the "
                f"{size} devices; pad it first with pad_seed_axis(tree, {size})"
            )
    return jax.device_put(tree, seed_sharding(mesh))


def map_seeds(fn: Callable[[Any], Any], mesh: Mesh, seeds_per_batch: int | None = None) -> Callable[[Any], Any]:
    """``fn`` (one seed) applied to a ``[seeds]`` batch sharded over ``mesh``, compiled.

    Each device runs ``jax.vmap(fn)`` over its own slice of seeds, or, with
    ``seeds_per_batch``, ``jax.lax.map(fn, ..., batch_size=seeds_per_batch)``:
    its seeds in sequential batches, to bound the memory a device needs.
    Inputs and outputs have a leading seed axis split over ``"seeds"``.
    """
    if seeds_per_batch is not None and seeds_per_batch < 1:
        raise ValueError(f"seeds_per_batch must be a positive int or None, got {seeds_per_batch!r}")

    def per_device(batch):
        if seeds_per_batch is None:
            return jax.vmap(fn)(batch)
        return jax.lax.map(fn, batch, batch_size=seeds_per_batch)

    spec = PartitionSpec(SEED_AXIS)
    # check_vma=False: the body is an ordinary per-seed program with no collectives.
    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return jax.jit(sharded)


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
    devices:         the devices to use (default: every local device)
    seeds_per_batch: run each device's seeds in sequential batches of this many
                     (``jax.lax.map``); ``None`` runs them all at once and falls
                     back to halving batches if the device runs out of memory

    Returns a :class:`~purejaxrl_ppo.train.TrainOutput` with metrics
    ``[num_seeds, num_updates]`` and a final state with leading ``[num_seeds]``,
    equal to ``jax.jit(jax.vmap(make_train(config)))(keys)`` up to float32 rounding.
    """
    if not isinstance(num_seeds, (int, np.integer)) or isinstance(num_seeds, bool) or num_seeds < 1:
        raise ValueError(f"num_seeds must be a positive int, got {num_seeds!r}")
    train = make_train(config)
    mesh = seed_mesh(devices)
    keys = jax.random.split(key, int(num_seeds))
    padded = shard_seed_axis(pad_seed_axis(keys, mesh.devices.size), mesh)
    per_device = padded.shape[0] // mesh.devices.size
    batch = seeds_per_batch
    while True:
        try:
            out = map_seeds(train, mesh, batch)(padded)
            jax.block_until_ready(out)
            break
        except Exception as error:  # XLA raises its own runtime error type
            if seeds_per_batch is not None or not _is_out_of_memory(error):
                raise
            current = per_device if batch is None else batch
            if current <= 1:
                raise
            batch = max(1, current // 2)
            warnings.warn(
                f"{num_seeds} seeds did not fit in device memory at once; retrying with "
                f"seeds_per_batch={batch} per device",
                RuntimeWarning,
                stacklevel=2,
            )
    return unpad_seed_axis(out, int(num_seeds))

