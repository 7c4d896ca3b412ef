"""Pieces every algorithm's update uses: the update batch and minibatch epochs."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class UpdateBatch(NamedTuple):
    """What an algorithm's ``update`` receives, flattened to ``[B]`` with B = T·N.

    obs:       ``[B, *obs_shape]``
    action:    ``[B]`` int32 or ``[B, A]`` float32
    log_prob:  ``[B]`` log π_old(action | obs) recorded while acting
    value:     ``[B]`` V_old(obs) recorded while acting
    advantage: ``[B]`` GAE advantages (not normalised)
    target:    ``[B]`` value targets (advantage + value)
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """``(x - mean) / (std + eps)`` over all elements."""
    return (x - x.mean()) / (x.std() + eps)


def minibatch_epochs(
    step: Callable[[Any, Any], tuple[Any, dict]],
    carry: Any,
    data: Any,
    key: jax.Array,
    num_epochs: int,
    num_minibatches: int,
) -> tuple[Any, dict]:
    """Run ``step(carry, minibatch) -> (carry, metrics)`` over shuffled minibatches.

    ``data`` is a pytree of ``[B, ...]`` arrays; each epoch draws a fresh
    permutation and splits it into ``num_minibatches`` equal minibatches
    (B must be divisible, which the configs check). Returns the final carry
    and every metric averaged over all ``num_epochs * num_minibatches`` steps.
    """
    batch_size = jax.tree_util.tree_leaves(data)[0].shape[0]
    minibatch_size = batch_size // num_minibatches

    def epoch(carry, epoch_key):
        perm = jax.random.permutation(epoch_key, batch_size)
        shuffled = jax.tree_util.tree_map(
            lambda x: jnp.take(x, perm, axis=0).reshape((num_minibatches, minibatch_size) + x.shape[1:]), data
        )
        return jax.lax.scan(step, carry, shuffled)

    carry, metrics = jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
    return carry, jax.tree_util.tree_map(jnp.mean, metrics)
