"""A small causal transformer language model (flax.linen) with an LM head or a scalar head.

Architecture (GPT-2 style, pre-LayerNorm)::

    tokens [B, T] ─token embed + learned position embed (max length S = cfg.seq_len)─▶ x [B, T, D]
    x ─num_layers × Block─▶ LayerNorm ─▶ h [B, T, D] ─head─▶ logits [B, T, V]   (LM: untied Dense to V)
                                                          or values [B, T]      (scalar: Dense to 1, squeezed)
    Block: x += Attention(LayerNorm(x));  x += MLP(LayerNorm(x))   (MLP: D → mlp_ratio·D → GELU → D)

**Where the logits of token t come from.** Position i sees tokens 0..i (the causal mask) and its
logits are the distribution of token i+1. So for a prompt of P tokens followed by a response,
response token t is predicted at position P-1+t: :func:`prefill` returns the logits of position
P-1 (response token 0) and :func:`decode_step` at ``position`` = P+t, fed response token t,
returns those of response token t+1.

**One block for the full forward and for decoding.** Every call of the trunk writes the keys and
values of its T new positions into an explicit cache ``[B, C, H, D/H]`` per layer (with
``jax.lax.dynamic_update_slice`` at ``start``) and attends to the whole cache under the mask
"key position <= query position". Keys that are not written yet, or lie in the future, get
weight exactly 0. The three uses are the same code with different arguments:

* full forward (:func:`lm_logits`, :func:`scalar_outputs`): a fresh cache of length C = T, start 0;
* :func:`prefill`: the prompt into a fresh cache of length S, start 0;
* :func:`decode_step`: one token (T = 1) at start = ``position`` into the cache it is given.

The cache is an explicit :class:`Cache` pytree rather than flax's mutable "cache" collection, so
it is an ordinary value a ``lax.scan`` carries, the functions here stay pure, and the same
``Block`` serves training and generation with no ``decode`` flag.

**Parameters** are a plain dict ``{"trunk": <flax params of Trunk>, "head": {"kernel": [D, n],
"bias": [n]}}`` with n = V (LM) or 1 (scalar model). The trunk is the separable part: a reward
or value model is built from an LM by keeping ``params["trunk"]`` and replacing ``"head"``
(:func:`scalar_model_from`). Everything is float32.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.rlhf.config import RLHFConfig

Params = dict[str, Any]

#: Scale of the embedding tables (GPT-2's initialisation).
EMBED_STD = 0.02


class Cache(NamedTuple):
    """Keys and values of every layer at every position written so far (zeros elsewhere)."""

    keys: jax.Array    # [num_layers, B, S, H, D/H] float32
    values: jax.Array  # [num_layers, B, S, H, D/H] float32


# ----------------------------------------------------------------------------- attention
def causal_mask(start: jax.Array | int, num_queries: int, num_keys: int) -> jax.Array:
    """``[T, C] bool``: query i (at absolute position start+i) may attend to key positions <= start+i."""
    query_pos = start + jnp.arange(num_queries)
    return query_pos[:, None] >= jnp.arange(num_keys)[None, :]


def attend(queries: jax.Array, keys: jax.Array, values: jax.Array, mask: jax.Array) -> jax.Array:
    """Scaled dot-product attention of ``queries [B, T, H, Dh]`` over ``keys, values [B, C, H, Dh]``.

    ``mask [T, C] bool`` says which keys each query sees; masked keys get weight exactly 0 (so
    what a cache holds there never matters). Returns ``[B, T, H, Dh]``.
    """
    scores = jnp.einsum("bthd,bchd->bhtc", queries, keys) / math.sqrt(queries.shape[-1])
    # The most negative float, not -inf: exp underflows to exactly 0 and no row is all -inf (key 0
    # is always visible), so no NaN can appear.
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bhtc,bchd->bthd", weights, values)


# ----------------------------------------------------------------------------- modules
class Block(nn.Module):
    """Pre-LayerNorm block: ``(x [B, T, D], keys, values [B, C, H, Dh], start) -> (x, keys, values)``.

    ``x`` holds positions start..start+T-1; their keys/values are written into the cache at
    ``start`` and each position attends to cache positions <= its own.
    """

    num_heads: int
    mlp_ratio: int
    num_layers: int

    @nn.compact
    def __call__(self, x: jax.Array, keys: jax.Array, values: jax.Array,
                 start: jax.Array | int) -> tuple[jax.Array, jax.Array, jax.Array]:
        batch, length, width = x.shape
        # GPT-2: each residual branch's output projection scaled by 1/sqrt(2·num_layers), so the
        # residual stream's variance does not grow with depth at initialisation.
        residual_init = nn.initializers.variance_scaling(1.0 / (2 * self.num_layers), "fan_in", "truncated_normal")
        h = nn.LayerNorm(name="ln_attention")(x)
        qkv = nn.Dense(3 * width, name="qkv")(h).reshape(batch, length, 3, self.num_heads, width // self.num_heads)
        start = jnp.asarray(start, jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        keys = jax.lax.dynamic_update_slice(keys, qkv[:, :, 1], (zero, start, zero, zero))
        values = jax.lax.dynamic_update_slice(values, qkv[:, :, 2], (zero, start, zero, zero))
        attended = attend(qkv[:, :, 0], keys, values, causal_mask(start, length, keys.shape[1]))
        x = x + nn.Dense(width, kernel_init=residual_init, name="attention_out")(attended.reshape(batch, length, width))
        h = nn.LayerNorm(name="ln_mlp")(x)
        h = nn.gelu(nn.Dense(self.mlp_ratio * width, name="mlp_in")(h))
        x = x + nn.Dense(width, kernel_init=residual_init, name="mlp_out")(h)
        return x, keys, values


class Trunk(nn.Module):
    """Embeddings, blocks and the final LayerNorm: ``(tokens [B, T], cache, start) -> (h [B, T, D], cache)``.

    ``tokens`` sit at absolute positions start..start+T-1 (start + T <= max_len).
    """

    vocab_size: int
    max_len: int
    d_model: int
    num_layers: int
    num_heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, tokens: jax.Array, cache: Cache, start: jax.Array | int) -> tuple[jax.Array, Cache]:
        embed_init = nn.initializers.normal(EMBED_STD)
        x = nn.Embed(self.vocab_size, self.d_model, embedding_init=embed_init, name="token_embed")(tokens)
        positions = self.param("position_embed", embed_init, (self.max_len, self.d_model))
        x = x + jax.lax.dynamic_slice_in_dim(positions, jnp.asarray(start, jnp.int32), tokens.shape[1])[None]
        keys, values = [], []
        for layer in range(self.num_layers):
            block = Block(self.num_heads, self.mlp_ratio, self.num_layers, name=f"block_{layer}")
            x, k, v = block(x, cache.keys[layer], cache.values[layer], start)
            keys.append(k)
            values.append(v)
        return nn.LayerNorm(name="ln_final")(x), Cache(jnp.stack(keys), jnp.stack(values))


def _trunk(cfg: RLHFConfig) -> Trunk:
    return Trunk(cfg.vocab_size, cfg.seq_len, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.mlp_ratio)


def _empty_cache(cfg: RLHFConfig, batch_size: int, length: int) -> Cache:
    """Zeros ``[num_layers, batch_size, length, H, D/H]`` for keys and values."""
    shape = (cfg.num_layers, batch_size, length, cfg.num_heads, cfg.d_model // cfg.num_heads)
    return Cache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def _check_tokens(cfg: RLHFConfig, tokens: jax.Array, name: str = "tokens") -> None:
    """Raise a readable error (not an XLA shape error) for tokens that are not ``[B, S' <= S]``."""
    if tokens.ndim != 2 or tokens.shape[1] > cfg.seq_len:
        raise ValueError(f"{name} must be [batch, length] with length <= seq_len = {cfg.seq_len} "
                         f"(prompt_len + response_len); got shape {tokens.shape}")


# ----------------------------------------------------------------------------- init
def _init_trunk(key: jax.Array, cfg: RLHFConfig) -> Params:
    tokens = jnp.zeros((1, cfg.seq_len), jnp.int32)
    return _trunk(cfg).init(key, tokens, _empty_cache(cfg, 1, cfg.seq_len), 0)["params"]


def _head(kernel: jax.Array) -> Params:
    return {"kernel": kernel, "bias": jnp.zeros(kernel.shape[-1:], jnp.float32)}


def _scalar_head(key: jax.Array, cfg: RLHFConfig, zero_head: bool) -> Params:
    """``{"kernel": [D, 1], "bias": [1]}``: zeros, or a normal(1/sqrt(D+1)) kernel and zero bias."""
    if zero_head:
        return _head(jnp.zeros((cfg.d_model, 1), jnp.float32))
    # Ziegler et al. 2019 (lm-human-preferences) initialise the reward head with std 1/sqrt(D+1): the
    # score then starts at about unit scale on the final LayerNorm's output.
    std = 1.0 / math.sqrt(cfg.d_model + 1)
    return _head(std * jax.random.normal(key, (cfg.d_model, 1), jnp.float32))


def init_lm(key: jax.Array, cfg: RLHFConfig) -> Params:
    """A fresh language model: ``{"trunk": ..., "head": {"kernel": [D, V], "bias": [V]}}`` (untied head)."""
    trunk_key, head_key = jax.random.split(key)
    kernel = nn.initializers.lecun_normal()(head_key, (cfg.d_model, cfg.vocab_size), jnp.float32)  # nn.Dense's default
    return {"trunk": _init_trunk(trunk_key, cfg), "head": _head(kernel)}


def init_scalar_model(key: jax.Array, cfg: RLHFConfig) -> Params:
    """A fresh scalar model (one number per position): ``{"trunk": ..., "head": {"kernel": [D, 1], "bias": [1]}}``."""
    trunk_key, head_key = jax.random.split(key)
    return {"trunk": _init_trunk(trunk_key, cfg), "head": _scalar_head(head_key, cfg, zero_head=False)}


def scalar_model_from(params: Params, key: jax.Array, cfg: RLHFConfig, zero_head: bool) -> Params:
    """A scalar model with the trunk of ``params`` (an LM's or a scalar model's) and a new scalar head.

    The trunk's arrays are shared, not re-initialised. The head is all zeros if ``zero_head``
    (every output exactly 0, e.g. a value model that starts neutral), else a small random
    kernel (std 1/sqrt(D+1)) and a zero bias drawn from ``key``.
    """
    return {"trunk": params["trunk"], "head": _scalar_head(key, cfg, zero_head)}


# ----------------------------------------------------------------------------- forward passes
def _hidden(trunk_params: Params, cfg: RLHFConfig, tokens: jax.Array, cache: Cache,
            start: jax.Array | int) -> tuple[jax.Array, Cache]:
    return _trunk(cfg).apply({"params": trunk_params}, tokens, cache, start)


def _apply_head(head: Params, h: jax.Array) -> jax.Array:
    return h @ head["kernel"] + head["bias"]


def _full_forward(params: Params, cfg: RLHFConfig, tokens: jax.Array) -> jax.Array:
    """Head outputs ``[B, S', n]`` of one causal pass over ``tokens [B, S']`` (a fresh cache of length S')."""
    _check_tokens(cfg, tokens)
    batch, length = tokens.shape
    h, _ = _hidden(params["trunk"], cfg, tokens, _empty_cache(cfg, batch, length), 0)
    return _apply_head(params["head"], h)


def lm_logits(params: Params, cfg: RLHFConfig, tokens: jax.Array) -> jax.Array:
    """Next-token logits ``[B, S', V]`` float32 of ``tokens [B, S'] int32`` (S' <= S), one causal pass.

    Position i's logits depend on tokens 0..i only and predict token i+1.
    """
    return _full_forward(params, cfg, tokens)


def scalar_outputs(params: Params, cfg: RLHFConfig, tokens: jax.Array) -> jax.Array:
    """A scalar model's outputs ``[B, S']`` float32 for ``tokens [B, S'] int32`` (S' <= S), one causal pass.

    Position i's output depends on tokens 0..i only.
    """
    return _full_forward(params, cfg, tokens)[..., 0]


def prefill(params: Params, cfg: RLHFConfig, prompts: jax.Array) -> tuple[jax.Array, Cache]:
    """Run ``prompts [B, P] int32`` into a fresh cache of length S.

    Returns the logits ``[B, V]`` of the last prompt position (the distribution of the first
    response token) and the :class:`Cache` with positions 0..P-1 written.
    """
    _check_tokens(cfg, prompts, "prompts")
    h, cache = _hidden(params["trunk"], cfg, prompts, _empty_cache(cfg, prompts.shape[0], cfg.seq_len), 0)
    return _apply_head(params["head"], h[:, -1]), cache


def decode_step(params: Params, cfg: RLHFConfig, cache: Cache, tokens: jax.Array,
                position: jax.Array | int) -> tuple[jax.Array, Cache]:
    """Feed ``tokens [B] int32`` at absolute ``position`` (int32 scalar, P <= position < S).

    The token attends to cache positions 0..position (its own keys/values written first).
    Returns the logits ``[B, V]`` of the next token and the cache with ``position`` written.
    """
    h, cache = _hidden(params["trunk"], cfg, tokens[:, None], cache, position)
    return _apply_head(params["head"], h[:, 0]), cache
