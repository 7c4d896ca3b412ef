"""A causal self-attention memory core over the episode's latest ``context_len`` steps (policy="attention").

:class:`AttentionCore` keeps, per env, a rolling window of the last K = ``context_len`` embedded
inputs in its carry and lets each step attend over the window, itself included::

    x_t [N, E] ─Dense─▶ e_t [N, D] ─append (drop the oldest)─▶ window [N, K, D]
    query: e_t + p_0          keys/values: window + p_{K-1-k} (slot k; the newest is k = K-1)
    y_t = LayerNorm(e_t + MultiHeadAttention(query, keys/values, mask = valid)) [N, D]

Carry (per env, a dict):

* ``window [N, K, D]`` float32: the embedded inputs e of the last K steps, oldest first, the
  current step in the last slot; invalid slots hold zeros;
* ``valid [N, K]`` bool: the slot holds a step of the current episode.

Where ``reset`` is set the window is emptied (every slot invalid and zeroed) before the step's
input is appended, so nothing before an episode start is ever attended; the current step is
always valid. The valid slots are therefore the episode's latest steps in order, so a slot's
index gives its distance to the query (K-1-k steps back).

Position encoding: a learned *relative* embedding ``p [K, D]`` indexed by that distance
(0 = the query's own step), added to the embeddings before the query, key and value
projections. It makes order visible and needs no position counter in the carry: an episode's
absolute time step is not encoded.

Time runs through ``nn.scan`` one step at a time, so ``T`` steps in one call give the outputs of
``T`` calls of one step with the carry threaded through (the rollout acts with ``T = 1``; the
update replays ``[T, N]`` sequences from the rollout's initial carry).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks import register_network
from purejaxrl_ppo.core.networks.memory import MemoryActorCritic, make_memory_network, register_core

Window = dict[str, jax.Array]


def empty_window(batch_shape: tuple[int, ...], context_len: int, embed_dim: int) -> Window:
    """The carry of an episode's start: ``window [*batch, K, D]`` zeros, ``valid [*batch, K]`` False."""
    return {"window": jnp.zeros(tuple(batch_shape) + (context_len, embed_dim), jnp.float32),
            "valid": jnp.zeros(tuple(batch_shape) + (context_len,), bool)}


def push(carry: Window, e: jax.Array, reset: jax.Array) -> Window:
    """Empty the window where ``reset [N]``, then append ``e [N, D]`` as the newest valid slot (dropping the oldest)."""
    valid = carry["valid"] & ~reset[:, None]
    window = jnp.where(valid[..., None], carry["window"], 0.0)
    window = jnp.concatenate([window[:, 1:], e[:, None].astype(window.dtype)], axis=1)
    valid = jnp.concatenate([valid[:, 1:], jnp.ones_like(valid[:, :1])], axis=1)
    return {"window": window, "valid": valid}


class AttentionStep(nn.Module):
    """One time step: ``(carry, (x [N, E], reset [N])) -> (carry, y [N, D])`` (see the module docstring)."""

    context_len: int
    num_heads: int
    embed_dim: int

    @nn.compact
    def __call__(self, carry: Window, inputs: tuple[jax.Array, jax.Array]) -> tuple[Window, jax.Array]:
        x, reset = inputs
        k, d = self.context_len, self.embed_dim
        e = nn.Dense(d, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)), name="embed")(x)
        carry = push(carry, e, reset)
        # Relative position: slot j (oldest first) lies k-1-j steps before the query.
        rel = self.param("rel_pos", nn.initializers.normal(stddev=0.1), (k, d))
        keys = carry["window"] + rel[::-1]
        query = (e + rel[0])[:, None]
        mask = carry["valid"][:, None, None, :]  # [N, heads, q_len = 1, K]
        attn = nn.MultiHeadDotProductAttention(
            self.num_heads, qkv_features=d, out_features=d,
            kernel_init=nn.initializers.orthogonal(1.0), name="attention",
        )(query, keys, keys, mask=mask)
        return carry, nn.LayerNorm(name="norm")(e + attn[:, 0])


class AttentionCore(nn.Module):
    """Causal attention over the episode's latest K inputs: ``(carry, x [T, N, E], reset [T, N]) -> (carry, y [T, N, D])``.

    ``K = context_len``, ``D = embed_dim`` (divisible by ``num_heads``); carry as in the module
    docstring, with leading ``[N]``.
    """

    context_len: int
    num_heads: int
    embed_dim: int

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Window:
        return empty_window(batch_shape, self.context_len, self.embed_dim)

    @nn.compact
    def __call__(self, carry: Window, x: jax.Array, reset: jax.Array) -> tuple[Window, jax.Array]:
        scan = nn.scan(AttentionStep, variable_broadcast="params", split_rngs={"params": False}, in_axes=0, out_axes=0)
        return scan(self.context_len, self.num_heads, self.embed_dim, name="step")(carry, (x, reset))


@register_core("attention")
def _attention(config: Any) -> AttentionCore:
    return AttentionCore(config.context_len, config.num_heads, config.embed_dim)


@register_network("attention", recurrent=True)
def make_attention(config: Any, action_space: ActionSpace, observation_shape: tuple[int, ...]) -> MemoryActorCritic:
    """Encoder MLP → :class:`AttentionCore` (``context_len``, ``num_heads``, ``embed_dim``) → heads."""
    return make_memory_network(config, action_space, observation_shape, "attention")
