"""Every compiled program the host launches, built once per (kind, config, layout, size).

The one compile cache of the package: :func:`~purejaxrl_ppo.launch.seeds.train_seeds`,
the chunked runner (:mod:`purejaxrl_ppo.launch.chunked`) and
:func:`~purejaxrl_ppo.launch.sweep.sweep` all take their programs from here, so a second
run of the same config over the same :class:`~purejaxrl_ppo.launch.layout.SeedLayout`
in one process (a notebook, a resume) compiles nothing. Each program runs one seed's
function over a ``[seeds]`` batch sharded over the layout's mesh.

* :func:`train_program`: ``keys [seeds] -> TrainOutput`` (the whole run);
* :func:`init_program`:  ``keys [seeds] -> TrainState``;
* :func:`chunk_program`: ``(TrainState [seeds], first_update) -> (TrainState, metrics [seeds, size])``,
  compiled ahead of time, so the runner measures compile time apart from run time;
* :func:`sweep_program`: ``(keys [seeds], stacked configs [points]) -> metrics [points, seeds, updates]``;
* :func:`grid_init_program` and :func:`grid_chunk_program`: the chunked form of :func:`sweep_program`,
  with train states ``[points, seeds]`` (the seed axis sharded, second).

:class:`SeedPrograms` and :class:`GridPrograms` bundle a chunked run's programs with where its states
live, behind one interface (``compile``, ``init``, ``chunk``, ``put``, ``take``, ``host``,
``abstract_state``): the chunked runner (:func:`~purejaxrl_ppo.launch.chunked.train_seeds_chunked`)
and the durable driver are the same code for a run of seeds (``train``) and for a sweep; only the
state's leading axes (``[seeds]`` or ``[points, seeds]``) and the programs differ.

Programs are returned *jitted* (an AOT ``Compiled`` object fails in jax 0.10 when the program
closes over large constants, e.g. a Brax system: "compiled for 312 inputs but called with 84");
ahead-of-time compilation only warms jax's own cache.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.loop import init_train_state, make_train, run_training, train_updates
from purejaxrl_ppo.core.types import TrainState
from purejaxrl_ppo.launch.layout import (
    SEED_AXIS,
    SeedLayout,
    _put_global,
    gather_seeds,
    pad_seed_axis,
    spans_processes,
)

_cache = functools.lru_cache(maxsize=32)


@_cache
def train_program(config: BaseConfig, layout: SeedLayout) -> Callable[[Any], Any]:
    """The whole training run of every seed: ``layout.map(make_train(config))``."""
    return layout.map(make_train(config))


@_cache
def init_program(config: BaseConfig, layout: SeedLayout) -> Callable[[Any], TrainState]:
    """Fresh train states from keys, compiled ahead of time."""
    fn = layout.map(lambda k: init_train_state(config, k))
    fn.lower(layout.abstract(abstract_keys(layout.num_seeds))).compile()
    return fn


@_cache
def chunk_program(config: BaseConfig, layout: SeedLayout, size: int) -> Callable[[Any, Any], Any]:
    """``size`` updates of every seed (buffers donated), compiled ahead of time.

    The update offset is shared (not batched), so periodic evaluation stays a branch
    (:func:`~purejaxrl_ppo.core.loop.train_updates`).
    """
    fn = layout.map(lambda s, first: train_updates(config, s, size, first), donate=True)
    fn.lower(layout.abstract(abstract_train_state(config, layout.num_seeds)), jax.ShapeDtypeStruct((), np.int32)).compile()
    return fn


@_cache
def sweep_program(config: BaseConfig, layout: SeedLayout) -> Callable[[Any, Any], Any]:
    """Metrics ``[points, seeds, updates]`` of every (grid point, seed), the seed axis sharded.

    Called as ``program(keys [padded seeds], stacked_config)`` where ``stacked_config``'s traced
    leaves have a leading ``[points]`` axis (replicated on every device). Each device runs
    ``vmap`` over points of ``vmap`` over its seeds.
    """

    def per_device(keys, stacked):
        def one_point(point_config: BaseConfig):
            return jax.vmap(lambda key: run_training(point_config, key).metrics)(keys)

        return jax.vmap(one_point)(stacked)

    def mapped(keys, stacked):
        return jax.shard_map(per_device, mesh=layout.mesh, in_specs=(PartitionSpec(SEED_AXIS), PartitionSpec()),
                             out_specs=PartitionSpec(None, SEED_AXIS), check_vma=False)(keys, stacked)

    if layout.seeds_per_batch is not None:
        raise ValueError("sweeps run every seed of a device at once; seeds_per_batch is not supported")
    return jax.jit(mapped)


#: Where a sweep's ``[points, seeds, ...]`` leaves live: the seed axis (second) split over the mesh.
GRID_SPEC = PartitionSpec(None, SEED_AXIS)


@_cache
def grid_init_program(config: BaseConfig, layout: SeedLayout, num_points: int) -> Callable[[Any, Any], TrainState]:
    """Fresh train states ``[points, padded seeds]`` from ``(keys [padded seeds], stacked configs [points])``.

    Every grid point starts from the same per-seed keys (common random numbers, as :func:`sweep_program`).
    Compiled ahead of time.
    """

    def per_device(keys, stacked):
        return jax.vmap(lambda point: jax.vmap(lambda key: init_train_state(point, key))(keys))(stacked)

    fn = jax.jit(jax.shard_map(per_device, mesh=layout.mesh, in_specs=(PartitionSpec(SEED_AXIS), PartitionSpec()),
                               out_specs=GRID_SPEC, check_vma=False))
    fn.lower(layout.abstract(abstract_keys(layout.num_seeds)), abstract_stacked_config(config, num_points)).compile()
    return fn


@_cache
def grid_chunk_program(config: BaseConfig, layout: SeedLayout, num_points: int, size: int) -> Callable[..., Any]:
    """``size`` updates of every (grid point, seed): ``(TrainState [points, seeds], stacked configs [points],
    first_update) -> (TrainState, metrics [points, seeds, size])``, state buffers donated, compiled ahead of time.

    Each device runs ``vmap`` over points of ``vmap`` over its seeds, the nesting of :func:`sweep_program`.
    """

    def per_device(state, stacked, first):
        def one_point(point: BaseConfig, states: TrainState):
            return jax.vmap(lambda s: train_updates(point, s, size, first))(states)

        return jax.vmap(one_point)(stacked, state)

    mapped = jax.shard_map(per_device, mesh=layout.mesh, in_specs=(GRID_SPEC, PartitionSpec(), PartitionSpec()),
                           out_specs=GRID_SPEC, check_vma=False)
    fn = jax.jit(mapped, donate_argnums=0)
    placed = _abstract_grid_placed(abstract_grid_state(config, num_points, layout.num_seeds), layout)
    fn.lower(placed, abstract_stacked_config(config, num_points), jax.ShapeDtypeStruct((), np.int32)).compile()
    return fn


def abstract_stacked_config(config: BaseConfig, num_points: int) -> BaseConfig:
    """``config`` with ``ShapeDtypeStruct`` ``[num_points]`` float32 leaves, as
    :func:`~purejaxrl_ppo.launch.sweep.stack_configs` makes them."""
    return jax.tree_util.tree_map(lambda _: jax.ShapeDtypeStruct((num_points,), np.float32), config)


def abstract_grid_state(config: BaseConfig, num_points: int, num_seeds: int) -> TrainState:
    """``ShapeDtypeStruct`` tree of a sweep's ``[num_points, num_seeds, ...]`` train state (no computation)."""
    init = jax.vmap(lambda point, keys: jax.vmap(lambda key: init_train_state(point, key))(keys), in_axes=(0, None))
    return jax.eval_shape(init, abstract_stacked_config(config, num_points), abstract_keys(num_seeds))


def _abstract_grid_placed(tree: Any, layout: SeedLayout) -> Any:
    """``[points, num_seeds, ...]`` ``ShapeDtypeStruct`` leaves -> ``[points, padded_seeds, ...]`` placed ones."""
    sharding = NamedSharding(layout.mesh, GRID_SPEC)
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct((x.shape[0], layout.padded_seeds, *x.shape[2:]), x.dtype, sharding=sharding,
                                       weak_type=getattr(x, "weak_type", False)),
        tree,
    )


@dataclasses.dataclass(frozen=True)
class SeedPrograms:
    """The programs of a chunked run of ``config``'s seeds: train states and metrics ``[seeds, ...]``."""

    config: BaseConfig
    layout: SeedLayout

    @property
    def leading_shape(self) -> tuple[int, ...]:
        """The leading axes of every state leaf and metric: ``(num_seeds,)``."""
        return (self.layout.num_seeds,)

    def compile(self, sizes: Sequence[int], fresh: bool) -> None:
        """Compile (or find in the cache) the chunk programs of ``sizes``, and the init program if ``fresh``."""
        if fresh:
            init_program(self.config, self.layout)
        for size in sizes:
            chunk_program(self.config, self.layout, size)

    def init(self, keys: Any) -> TrainState:
        """Fresh states, placed, from ``[num_seeds]`` keys."""
        return init_program(self.config, self.layout)(self.layout.put(keys))

    def chunk(self, size: int, state: TrainState, first_update: int) -> tuple[TrainState, dict[str, Any]]:
        """``size`` updates of the placed ``state`` (donated) after ``first_update`` updates done."""
        return chunk_program(self.config, self.layout, size)(state, np.int32(first_update))

    def put(self, state: Any) -> Any:
        """``[num_seeds, ...]`` leaves -> placed on the mesh."""
        return self.layout.put(state)

    def take(self, tree: Any) -> Any:
        """Placed leaves -> ``[num_seeds, ...]`` (device arrays, or NumPy across processes)."""
        return self.layout.take(tree)

    def host(self, tree: Any) -> Any:
        """Placed leaves -> ``[num_seeds, ...]`` NumPy, on every process."""
        return self.layout.host(tree)

    def abstract_state(self) -> TrainState:
        """``ShapeDtypeStruct`` tree of the ``[num_seeds, ...]`` state (to restore a checkpoint into)."""
        return abstract_train_state(self.config, self.layout.num_seeds)


@dataclasses.dataclass(frozen=True)
class GridPrograms:
    """The programs of a chunked sweep: every (grid point, seed); states and metrics ``[points, seeds, ...]``.

    ``stacked``: the grid's configs stacked (:func:`~purejaxrl_ppo.launch.sweep.stack_configs`), traced leaves
    ``[points]`` float32, replicated on every device. Seed ``i`` of every point starts from the same key.
    """

    config: BaseConfig
    layout: SeedLayout
    stacked: BaseConfig
    num_points: int

    @property
    def leading_shape(self) -> tuple[int, ...]:
        """The leading axes of every state leaf and metric: ``(num_points, num_seeds)``."""
        return (self.num_points, self.layout.num_seeds)

    def compile(self, sizes: Sequence[int], fresh: bool) -> None:
        """Compile (or find in the cache) the chunk programs of ``sizes``, and the init program if ``fresh``."""
        if fresh:
            grid_init_program(self.config, self.layout, self.num_points)
        for size in sizes:
            grid_chunk_program(self.config, self.layout, self.num_points, size)

    def init(self, keys: Any) -> TrainState:
        """Fresh states ``[points, seeds]``, placed, from ``[num_seeds]`` keys."""
        return grid_init_program(self.config, self.layout, self.num_points)(self.layout.put(keys), self.stacked)

    def chunk(self, size: int, state: TrainState, first_update: int) -> tuple[TrainState, dict[str, Any]]:
        """``size`` updates of every point's seeds (``state`` donated) after ``first_update`` updates done."""
        program = grid_chunk_program(self.config, self.layout, self.num_points, size)
        return program(state, self.stacked, np.int32(first_update))

    def put(self, state: Any) -> Any:
        """``[points, num_seeds, ...]`` leaves -> ``[points, padded seeds, ...]`` with the seed axis on the mesh."""
        padded = state
        if self.layout.padded_seeds != self.layout.num_seeds:
            padded = _pad_second_axis(state, self.layout.mesh.devices.size)
        sharding = NamedSharding(self.layout.mesh, GRID_SPEC)
        if spans_processes(self.layout.mesh):
            return _put_global(jax.device_get(padded), sharding)
        return jax.device_put(padded, sharding)

    def take(self, tree: Any) -> Any:
        """Placed leaves -> ``[points, num_seeds, ...]`` (device arrays, or NumPy across processes)."""
        if spans_processes(self.layout.mesh):
            return self.host(tree)
        if self.layout.padded_seeds == self.layout.num_seeds:
            return tree
        return _unpad_second_axis(tree, self.layout.num_seeds)

    def host(self, tree: Any) -> Any:
        """Placed leaves -> ``[points, num_seeds, ...]`` NumPy, on every process."""
        tree = gather_seeds(tree) if spans_processes(self.layout.mesh) else jax.device_get(tree)
        return jax.tree_util.tree_map(lambda x: x[:, : self.layout.num_seeds], tree)

    def abstract_state(self) -> TrainState:
        """``ShapeDtypeStruct`` tree of the ``[points, num_seeds, ...]`` state (to restore a checkpoint into)."""
        return abstract_grid_state(self.config, self.num_points, self.layout.num_seeds)


@functools.partial(jax.jit, static_argnums=1)
def _pad_second_axis(tree: Any, multiple: int) -> Any:
    """:func:`~purejaxrl_ppo.launch.layout.pad_seed_axis` on the second axis (one program, not one per leaf)."""
    swap = functools.partial(jax.tree_util.tree_map, lambda x: jnp.swapaxes(x, 0, 1))
    return swap(pad_seed_axis(swap(tree), multiple))


@functools.partial(jax.jit, static_argnums=1)
def _unpad_second_axis(tree: Any, num_seeds: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[:, :num_seeds], tree)


def abstract_keys(num_seeds: int) -> jax.ShapeDtypeStruct:
    """``ShapeDtypeStruct`` of ``[num_seeds]`` PRNG keys."""
    return jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), num_seeds))


def abstract_train_state(config: BaseConfig, num_seeds: int) -> TrainState:
    """``ShapeDtypeStruct`` tree of the ``[num_seeds, ...]`` train state (no computation)."""
    return jax.eval_shape(jax.vmap(lambda k: init_train_state(config, k)), abstract_keys(num_seeds))


def clear() -> None:
    """Forget every cached program (they are rebuilt on next use)."""
    for fn in (train_program, init_program, chunk_program, sweep_program, grid_init_program, grid_chunk_program):
        fn.cache_clear()
