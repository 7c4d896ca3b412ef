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
* :func:`sweep_program`: ``(keys [seeds], stacked configs [points]) -> metrics [points, seeds, updates]``.

Programs are returned *jitted* (an AOT ``Compiled`` object fails in jax 0.10 when the program
closes over large constants, e.g. a Brax system: "compiled for 312 inputs but called with 84");
ahead-of-time compilation only warms jax's own cache.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import PartitionSpec

from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.core.loop import init_train_state, make_train, run_training, train_updates
from purejaxrl_ppo.core.types import TrainState
from purejaxrl_ppo.launch.layout import SEED_AXIS, SeedLayout

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


def abstract_keys(num_seeds: int) -> jax.ShapeDtypeStruct:
    """``ShapeDtypeStruct`` of ``[num_seeds]`` PRNG keys."""
    return jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), num_seeds))


def abstract_train_state(config: BaseConfig, num_seeds: int) -> TrainState:
    """``ShapeDtypeStruct`` tree of the ``[num_seeds, ...]`` train state (no computation)."""
    return jax.eval_shape(jax.vmap(lambda k: init_train_state(config, k)), abstract_keys(num_seeds))


def clear() -> None:
    """Forget every cached program (they are rebuilt on next use)."""
    for fn in (train_program, init_program, chunk_program, sweep_program):
        fn.cache_clear()
