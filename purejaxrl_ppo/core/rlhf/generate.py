"""Sampling responses with the KV cache, and recomputing their log-probabilities, values and scores.

A response is L = cfg.response_len tokens after a prompt of P = cfg.prompt_len tokens. It ends
at its first EOS: that EOS is a valid token (mask 1, it carries the decision to stop) and every
later token is PAD with mask 0. A response with no EOS is cut at L tokens.

Indexing (see :mod:`.model`): position i predicts token i+1, so response token t is drawn from
the logits of position P-1+t and a scalar model's value of the state before token t, V(s_t), is
its output at P-1+t. A sequence's score is read at the last valid response token, position
P + last_index (the EOS if there is one), where the model has seen the whole response.

:func:`sample` decodes with the cache (:func:`.model.prefill`, then :func:`.model.decode_step`
inside ``lax.scan``); :func:`response_logits` recomputes the same distributions with one full
causal pass, which is what the RL update differentiates. Feeding PAD after EOS in both keeps
them identical, and causality makes the PADs irrelevant to every valid position.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig
from purejaxrl_ppo.core.rlhf.model import (
    Params,
    decode_step,
    lm_logits,
    prefill,
    scalar_outputs,
)


class Generation(NamedTuple):
    """Sampled responses."""

    responses: jax.Array  # [B, L] int32, PAD (0) after the first EOS
    log_probs: jax.Array  # [B, L] float32 log π(y_t | x, y_<t) at the sampling temperature, 0 where mask is 0
    mask: jax.Array       # [B, L] float32, 1 for tokens up to and including the first EOS


def _check_lengths(cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array | None = None) -> None:
    if prompts.ndim != 2 or prompts.shape[1] != cfg.prompt_len:
        raise ValueError(f"prompts must be [batch, prompt_len = {cfg.prompt_len}]; got shape {prompts.shape}")
    if responses is not None and (responses.ndim != 2 or responses.shape != (prompts.shape[0], cfg.response_len)):
        raise ValueError(f"responses must be [batch = {prompts.shape[0]}, response_len = {cfg.response_len}]; "
                         f"got shape {responses.shape}")


def _gather(log_probs: jax.Array, tokens: jax.Array) -> jax.Array:
    """``log_probs [..., V]`` at ``tokens [...]`` -> ``[...]``."""
    return jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]


#: The logit PAD gets in every policy distribution: finite, so KL and entropy stay finite (0·log 0 terms), and
#: e^-1e9 underflows to exactly 0, so PAD is never sampled and never carries probability.
NO_PAD_LOGIT = -1e9


def policy_logits(logits: jax.Array, temperature: float | jax.Array) -> jax.Array:
    """``logits [..., V] / temperature`` with PAD's logit set to :data:`NO_PAD_LOGIT`: the distribution a response
    token is drawn from. PAD only fills a response after its EOS; a policy that emitted it as a word would make
    an unterminated response look padded."""
    scaled = logits / temperature
    return scaled.at[..., PAD].set(NO_PAD_LOGIT)


def sample(params: Params, cfg: RLHFConfig, prompts: jax.Array, key: jax.Array,
           temperature: float | jax.Array) -> Generation:
    """Sample one response per prompt from the LM ``params`` at ``temperature``.

    ``prompts [B, P] int32`` -> :class:`Generation` of ``[B, L]`` arrays. Keys: response token t
    of the whole batch is drawn with ``jax.random.categorical(jax.random.split(key, L)[t],
    policy_logits(logits_t, temperature))`` on the ``[B, V]`` logits, so a sampler that recomputes the logits
    another way reproduces the same tokens. After a row's first EOS its tokens are PAD.
    """
    _check_lengths(cfg, prompts)
    logits, cache = prefill(params, cfg, prompts)
    done = jnp.zeros(prompts.shape[0], bool)

    def step(carry, inputs):
        logits, cache, done = carry
        t, step_key = inputs
        scaled = policy_logits(logits, temperature)
        valid = ~done
        token = jnp.where(valid, jax.random.categorical(step_key, scaled), PAD).astype(jnp.int32)
        log_prob = jnp.where(valid, _gather(jax.nn.log_softmax(scaled), token), 0.0)
        # PAD is fed after EOS, as in the full forward of response_logits, so both see the same
        # sequence. The last step's logits are unused: one extra decode keeps the scan body uniform.
        logits, cache = decode_step(params, cfg, cache, token, cfg.prompt_len + t)
        return (logits, cache, done | (token == EOS)), (token, log_prob, valid.astype(jnp.float32))

    steps = (jnp.arange(cfg.response_len, dtype=jnp.int32), jax.random.split(key, cfg.response_len))
    _, (tokens, log_probs, mask) = jax.lax.scan(step, (logits, cache, done), steps)
    return Generation(tokens.T, log_probs.T, mask.T)  # scan stacks time first: [L, B] -> [B, L]


def response_mask(responses: jax.Array) -> jax.Array:
    """``[B, L] float32``: 1 for tokens up to and including the first EOS of ``responses [B, L] int32``."""
    is_eos = (responses == EOS).astype(jnp.int32)
    eos_before = jnp.cumsum(is_eos, axis=-1) - is_eos  # EOS tokens strictly before t
    return (eos_before == 0).astype(jnp.float32)


def last_index(mask: jax.Array) -> jax.Array:
    """``[B] int32``: index of the last valid token of a prefix ``mask [B, L]`` (its first EOS, or L-1 without one).

    A row with no valid token (never produced by :func:`response_mask`) gives 0.
    """
    return jnp.maximum(jnp.sum(mask, axis=-1).astype(jnp.int32) - 1, 0)


def has_eos(responses: jax.Array) -> jax.Array:
    """``[B] bool``: the response ``[B, L] int32`` contains an EOS (it ended rather than being cut)."""
    return jnp.any(responses == EOS, axis=-1)


def response_logits(params: Params, cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array,
                    temperature: float | jax.Array) -> jax.Array:
    """``[B, L, V] float32``: :func:`policy_logits` (logits / temperature, PAD excluded) of the distribution each
    response token was drawn from.

    One full causal pass of the LM over prompt + response (``prompts [B, P]``, ``responses
    [B, L]`` int32); response token t's logits come from position P-1+t. The last response
    token predicts nothing, so it is not fed.
    """
    _check_lengths(cfg, prompts, responses)
    tokens = jnp.concatenate([prompts, responses[:, :-1]], axis=1)
    return policy_logits(lm_logits(params, cfg, tokens)[:, cfg.prompt_len - 1:], temperature)


def token_log_probs(logits: jax.Array, responses: jax.Array) -> jax.Array:
    """``[B, L] float32``: log-softmax of ``logits [B, L, V]`` at ``responses [B, L] int32`` (not masked)."""
    return _gather(jax.nn.log_softmax(logits, axis=-1), responses)


def response_values(params: Params, cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """``[B, L] float32``: the scalar model at positions P-1+t, V(s_t) of the state before response token t.

    ``prompts [B, P]``, ``responses [B, L]`` int32; one full causal pass (the last response token is not fed).
    """
    _check_lengths(cfg, prompts, responses)
    tokens = jnp.concatenate([prompts, responses[:, :-1]], axis=1)
    return scalar_outputs(params, cfg, tokens)[:, cfg.prompt_len - 1:]


def sequence_scores(params: Params, cfg: RLHFConfig, prompts: jax.Array, responses: jax.Array) -> jax.Array:
    """``[B] float32``: the scalar model at position P + last_index, the last valid response token.

    That is the first EOS (included), or token L-1 of a response with no EOS. ``prompts [B, P]``,
    ``responses [B, L]`` int32 (PAD after EOS); one full causal pass.
    """
    _check_lengths(cfg, prompts, responses)
    outputs = scalar_outputs(params, cfg, jnp.concatenate([prompts, responses], axis=1))  # [B, S]
    index = cfg.prompt_len + last_index(response_mask(responses))
    return jnp.take_along_axis(outputs, index[:, None], axis=1)[:, 0]
