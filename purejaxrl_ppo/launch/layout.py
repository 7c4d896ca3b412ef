"""Many seeds over many devices: the seed axis sharded on a 1-D mesh (:class:`SeedLayout`).

:func:`~purejaxrl_ppo.launch.seeds.train_seeds` is the one entry point for training many seeds. It splits
``key`` into ``num_seeds`` keys exactly as ``jax.random.split(key, num_seeds)``
does, pads the seed axis to a multiple of the device count, places each
device's slice of seeds on that device (:class:`jax.sharding.NamedSharding`
over a mesh axis named ``"seeds"``) and runs the vmapped training program on
every device at once. When all seeds of a device do not fit in its memory at
once, each device runs its seeds in sequential batches of ``seeds_per_batch``
(``jax.lax.map(..., batch_size=...)``); without an explicit
``seeds_per_batch`` this fallback is taken automatically, halving the batch
after an out-of-memory error.

Seeds never interact, and what XLA computes for one seed depends only on its
key and on how many seeds the program vmaps together (the *block width*), so
results are bit-identical whenever the block widths agree:

* each device's slice of ``train_seeds(config, n, key)`` equals
  ``jax.jit(jax.vmap(make_train(config)))`` of that slice of keys;
* with ``seeds_per_batch=b`` every seed trains in a vmapped block of exactly
  ``b`` seeds (the seed axis is padded to a multiple of ``devices x b``), so
  the result is the same, bit for bit, on any number of devices and for any
  ``num_seeds`` (``tests/launch/test_layout.py`` asserts ``np.array_equal`` on
  every leaf, for :func:`train_seeds` and the chunked CLI runner).

Without ``seeds_per_batch`` the block width is the seed count per device, so
float leaves may differ in the last bits (about 1e-9 in the parameters after a
few updates) between device counts, and training amplifies such differences:
over a long run they change actions, episodes and returns, so individual seeds
end differently (TRPO, 16 seeds, 5e5 CartPole steps: 9 of 16 seeds' returns
differed between 1 and 2 CPU devices) while the distribution over seeds is the
same. On XLA:CPU (jax 0.10.2) the main cause
found is width-dependent code generation: reductions over a seed's batch are offloaded
to YNNPACK when 8 or more rows are reduced together and emitted by XLA (as a
split tree reduction) below that, summing in a different order; with a block
of 1 seed the vmapped axis disappears and the whole program is generated
differently. Integer and boolean leaves (keys, counters, episode counts) and
the episode statistics agree exactly for the first updates, until the float
differences first flip an action.

The pieces are public so that a host loop (e.g. one that trains in chunks of
updates, :func:`purejaxrl_ppo.launch.chunked.train_seeds_chunked`) can keep a batch of
:class:`~purejaxrl_ppo.core.types.TrainState` on the mesh between chunks:
:class:`SeedLayout` (place, run, gather), :func:`seed_mesh`,
:func:`pad_seed_axis`, :func:`shard_seed_axis`, :func:`unpad_seed_axis` and
:func:`map_seeds`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxrl_ppo.core.types import is_key

SEED_AXIS = "seeds"


def seed_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D :class:`~jax.sharding.Mesh` with axis ``"seeds"`` over ``devices``.

    ``devices=None`` uses every device of the default backend, every process's
    (``jax.devices()``; the local devices when ``jax.distributed`` is not initialised).
    """
    devices = list(jax.devices() if devices is None else devices)
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


_unpad_on_device = jax.jit(unpad_seed_axis, static_argnums=1)


def spans_processes(mesh: Mesh) -> bool:
    """True if some of ``mesh``'s devices belong to another process (``jax.distributed``)."""
    return any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def _put_global(tree: Any, sharding: NamedSharding) -> Any:
    """Every process holds the whole host value; each builds its own devices' slices of the global array."""

    def leaf(x):
        raw = np.asarray(jax.random.key_data(x) if is_key(x) else x)
        out = jax.make_array_from_callback(raw.shape, sharding, lambda index: raw[index])
        return jax.random.wrap_key_data(out, impl=x.dtype._impl) if is_key(x) else out

    return jax.tree_util.tree_map(leaf, tree)


def gather_seeds(tree: Any) -> Any:
    """Seed-sharded arrays spread over several processes -> the whole NumPy arrays on every process.

    Uses ``multihost_utils.process_allgather`` (a collective: every process must call it).
    Typed PRNG keys come back as keys (host-local arrays).
    """
    from jax.experimental import multihost_utils

    def leaf(x):
        raw = np.asarray(multihost_utils.process_allgather(jax.random.key_data(x) if is_key(x) else x, tiled=True))
        return jax.random.wrap_key_data(raw, impl=x.dtype._impl) if is_key(x) else raw

    return jax.tree_util.tree_map(leaf, tree)


def shard_seed_axis(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf (leading seed axis, a multiple of the mesh size) on ``mesh``.

    Works for any batch of per-seed pytrees: ``[seeds]`` keys, a
    :class:`~purejaxrl_ppo.core.types.TrainState` with leading ``[seeds]``, metrics.
    On a mesh over several processes every process must pass the same whole value
    (each keeps its own devices' slices).
    """
    size = mesh.devices.size
    for leaf in jax.tree_util.tree_leaves(tree):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % size:
            raise ValueError(
                f"leading (seed) axis of length {np.shape(leaf)[:1]} is not a multiple of the "
                f"{size} devices; pad it first with pad_seed_axis(tree, {size})"
            )
    if spans_processes(mesh):
        return _put_global(tree, seed_sharding(mesh))
    return jax.device_put(tree, seed_sharding(mesh))


def map_seeds(
    fn: Callable[..., Any], mesh: Mesh, seeds_per_batch: int | None = None, donate: bool = False
) -> Callable[..., Any]:
    """``fn`` (one seed) applied to a ``[seeds]`` batch sharded over ``mesh``, compiled.

    The result is called as ``mapped(batch, *shared)`` and computes
    ``fn(seed_tree, *shared)`` for every seed. Each device runs
    ``jax.vmap(fn)`` over its own slice of seeds, or, with ``seeds_per_batch``,
    ``jax.lax.map(fn, ..., batch_size=seeds_per_batch)``: its seeds in
    sequential batches, to bound the memory a device needs. ``batch`` and the
    output have a leading seed axis split over ``"seeds"``; ``shared`` values
    are replicated and stay unbatched inside ``fn`` (so a ``lax.cond`` on them
    remains a branch under the vmap). ``donate`` lets the program reuse the
    batch's buffers for its output.
    """
    if seeds_per_batch is not None and seeds_per_batch < 1:
        raise ValueError(f"seeds_per_batch must be a positive int or None, got {seeds_per_batch!r}")
    spec = PartitionSpec(SEED_AXIS)

    def per_device(batch, *shared):
        def one_seed(tree):
            return fn(tree, *shared)

        if seeds_per_batch is None:
            return jax.vmap(one_seed)(batch)
        return jax.lax.map(one_seed, batch, batch_size=seeds_per_batch)

    def mapped(batch, *shared):
        in_specs = (spec,) + (PartitionSpec(),) * len(shared)
        # check_vma=False: the body is an ordinary per-seed program with no collectives.
        return jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=spec, check_vma=False)(batch, *shared)

    return jax.jit(mapped, donate_argnums=0 if donate else ())


@dataclasses.dataclass(frozen=True)
class SeedLayout:
    """Where a batch of ``num_seeds`` per-seed pytrees lives while it trains.

    On the devices the seed axis is padded to ``padded_seeds`` and split over
    ``mesh``; each device runs its seeds all at once or, with
    ``seeds_per_batch``, in sequential blocks of exactly that many (the padding
    makes every device's share a multiple of it). Everything the caller sees
    (keys in, metrics and states out, checkpoints) has exactly ``num_seeds``
    rows and no sharding, so nothing saved depends on the device count.
    :func:`train_seeds` and :func:`purejaxrl_ppo.launch.chunked.train_seeds_chunked`
    both place, run and gather their seeds through this class.
    """

    num_seeds: int
    mesh: Mesh
    seeds_per_batch: int | None = None

    @property
    def padded_seeds(self) -> int:
        return padded_seed_count(self.num_seeds, self._multiple)

    @property
    def _multiple(self) -> int:
        return self.mesh.devices.size * (self.seeds_per_batch or 1)

    def put(self, tree: Any) -> Any:
        """``[num_seeds, ...]`` leaves -> ``[padded_seeds, ...]`` split over the mesh."""
        return shard_seed_axis(pad_seed_axis(tree, self._multiple), self.mesh)

    def take(self, tree: Any) -> Any:
        """``[padded_seeds, ...]`` leaves -> the first ``num_seeds`` rows (as is when nothing was padded).

        On a mesh over several processes the rows are first gathered to every process
        (:func:`gather_seeds`, a collective), and the result is NumPy.
        """
        if spans_processes(self.mesh):
            return unpad_seed_axis(gather_seeds(tree), self.num_seeds)
        if self.padded_seeds == self.num_seeds:
            return tree
        if all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(tree)):
            return _unpad_on_device(tree, self.num_seeds)  # one program, not one eager slice per leaf
        return unpad_seed_axis(tree, self.num_seeds)

    def host(self, tree: Any) -> Any:
        """``[padded_seeds, ...]`` leaves -> the first ``num_seeds`` rows as NumPy, on every process."""
        if spans_processes(self.mesh):
            return self.take(tree)
        return unpad_seed_axis(jax.device_get(tree), self.num_seeds)

    def map(self, fn: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
        """``fn(seed_tree, *shared)`` over a placed batch: :func:`map_seeds` with this layout's mesh and blocks."""
        return map_seeds(fn, self.mesh, self.seeds_per_batch, donate)

    def abstract(self, tree: Any) -> Any:
        """``ShapeDtypeStruct`` leaves ``[num_seeds, ...]`` -> the placed ``[padded_seeds, ...]`` ones (to compile ahead)."""
        sharding = seed_sharding(self.mesh)
        return jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(
                (self.padded_seeds, *x.shape[1:]), x.dtype, sharding=sharding, weak_type=getattr(x, "weak_type", False)
            ),
            tree,
        )  # weak_type kept: otherwise the first call misses the compiled program and compiles again


def seed_layout(
    num_seeds: int, devices: Sequence[jax.Device] | None = None, seeds_per_batch: int | None = None
) -> SeedLayout:
    """:class:`SeedLayout` of ``num_seeds`` over ``devices`` (default: every device of every process), checked."""
    _check_count("num_seeds", num_seeds)
    if seeds_per_batch is not None:
        _check_count("seeds_per_batch", seeds_per_batch, " or None")
    return SeedLayout(int(num_seeds), seed_mesh(devices), None if seeds_per_batch is None else int(seeds_per_batch))


def _check_count(name: str, value: Any, alternative: str = "") -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int{alternative}, got {value!r}")
