"""The RLHF language model and generation: KV-cached sampling equals full recomputation, causality,
masking after EOS, the zero scalar head, temperature, and where values and scores are read."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import np_log_softmax

from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig
from purejaxrl_ppo.core.rlhf.generate import (
    has_eos,
    last_index,
    response_logits,
    response_mask,
    response_values,
    sample,
    sequence_scores,
    token_log_probs,
)
from purejaxrl_ppo.core.rlhf.model import (
    decode_step,
    init_lm,
    init_scalar_model,
    lm_logits,
    prefill,
    scalar_model_from,
    scalar_outputs,
)

CFG = RLHFConfig(vocab_size=8, prompt_len=3, response_len=5, d_model=16, num_layers=2, num_heads=2,
                 base_mean_length=3.0)
P, L, S, V = CFG.prompt_len, CFG.response_len, CFG.seq_len, CFG.vocab_size
B = 16

# cfg is static (a frozen, hashable dataclass): one compile per function and shape.
init_lm_jit = jax.jit(init_lm, static_argnums=1)
sample_jit = jax.jit(sample, static_argnums=1)
lm_logits_jit = jax.jit(lm_logits, static_argnums=1)
scalar_outputs_jit = jax.jit(scalar_outputs, static_argnums=1)
response_logits_jit = jax.jit(response_logits, static_argnums=1)


def random_tokens(seed, shape, low=0):
    """``[*shape] int32`` tokens in [low, V), drawn with numpy (no jax op to compile)."""
    return jnp.asarray(np.random.default_rng(seed).integers(low, V, shape), jnp.int32)

@pytest.fixture(scope="module")
def lm():
    params = init_lm_jit(jax.random.PRNGKey(0), CFG)
    # Raise EOS's logit so a random model ends some responses early and leaves others without EOS.
    params["head"]["bias"] = params["head"]["bias"].at[EOS].set(1.0)
    return params


@pytest.fixture(scope="module")
def prompts():
    return random_tokens(1, (B, P), low=2)  # content tokens


def reference_sample(params, prompts, key, temperature):
    """Sampling without a cache: recompute the whole prefix with lm_logits at every step, same per-step keys."""
    keys = jax.random.split(key, L)
    tokens = np.concatenate([np.asarray(prompts), np.full((B, L), PAD, np.int32)], axis=1)
    done = np.zeros(B, bool)
    log_probs = np.zeros((B, L))
    for t in range(L):
        # Future positions hold PAD; causality makes them irrelevant (one shape, one compile).
        logits = np.asarray(lm_logits_jit(params, CFG, jnp.asarray(tokens)))[:, P - 1 + t] / temperature
        logits[:, PAD] = -1e9  # PAD is never a word of a response
        token = np.asarray(jax.random.categorical(keys[t], jnp.asarray(logits, jnp.float32)))
        token = np.where(done, PAD, token)
        log_probs[:, t] = np.where(done, 0.0, np_log_softmax(logits)[np.arange(B), token])
        tokens[:, P + t] = token
        done |= token == EOS
    return tokens[:, P:], log_probs


def test_params_tree_and_dtypes(lm):
    assert set(lm) == {"trunk", "head"}
    assert lm["head"]["kernel"].shape == (CFG.d_model, V) and lm["head"]["bias"].shape == (V,)
    scalar = jax.eval_shape(lambda key: init_scalar_model(key, CFG), jax.random.PRNGKey(2))  # shapes only: no compile
    assert scalar["head"]["kernel"].shape == (CFG.d_model, 1)
    assert jax.tree_util.tree_structure(scalar["trunk"]) == jax.tree_util.tree_structure(lm["trunk"])
    assert {x.dtype for x in jax.tree_util.tree_leaves((lm, scalar))} == {jnp.dtype(jnp.float32)}
    assert jax.tree_util.tree_map(jnp.shape, scalar["trunk"]) == jax.tree_util.tree_map(jnp.shape, lm["trunk"])
    assert lm["trunk"]["position_embed"].shape == (S, CFG.d_model)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_cached_sampling_equals_full_recomputation(lm, prompts, temperature):
    key = jax.random.PRNGKey(3)
    gen = sample_jit(lm, CFG, prompts, key, temperature)
    ref_tokens, ref_log_probs = reference_sample(lm, prompts, key, temperature)
    np.testing.assert_array_equal(gen.responses, ref_tokens)
    np.testing.assert_allclose(gen.log_probs, ref_log_probs, atol=1e-5)
    # the training-time recomputation (one causal pass) gives the same log-probs on valid tokens
    recomputed = token_log_probs(response_logits_jit(lm, CFG, prompts, gen.responses, temperature), gen.responses)
    np.testing.assert_allclose(np.asarray(recomputed) * np.asarray(gen.mask), gen.log_probs, atol=1e-5)
    assert gen.responses.dtype == jnp.int32 and gen.log_probs.dtype == gen.mask.dtype == jnp.float32


@jax.jit
def cached_logits(params, tokens):
    """Logits ``[B, S-P+1, V]`` of positions P-1..S-1: prefill the prompt, then decode_step token by token."""
    logits, cache = prefill(params, CFG, tokens[:, :P])

    def step(cache, position):
        logits, cache = decode_step(params, CFG, cache, tokens[:, position], position)
        return cache, logits

    _, decoded = jax.lax.scan(step, cache, jnp.arange(P, S, dtype=jnp.int32))
    return jnp.concatenate([logits[:, None], decoded.transpose(1, 0, 2)], axis=1)


def test_prefill_and_decode_step_match_the_full_forward(lm):
    tokens = random_tokens(4, (B, S))
    np.testing.assert_allclose(cached_logits(lm, tokens), lm_logits_jit(lm, CFG, tokens)[:, P - 1:], atol=1e-5)


def test_a_later_token_never_changes_earlier_outputs(lm):
    tokens = random_tokens(5, (B, S))
    changed = tokens.at[:, 4].set((tokens[:, 4] + 1) % V)
    scalar = scalar_model_from(lm, jax.random.PRNGKey(6), CFG, zero_head=False)
    for apply, params in ((lm_logits_jit, lm), (scalar_outputs_jit, scalar)):
        before, after = apply(params, CFG, tokens), apply(params, CFG, changed)
        np.testing.assert_array_equal(before[:, :4], after[:, :4])
        assert np.all(np.abs(np.asarray(before[:, 4:]) - np.asarray(after[:, 4:])).reshape(B, -1).max(-1) > 0)


def test_tokens_after_the_first_eos_are_pad_with_mask_and_log_prob_zero(lm, prompts):
    gen = sample_jit(lm, CFG, prompts, jax.random.PRNGKey(7), 1.0)
    responses, log_probs, mask = (np.asarray(x) for x in gen)
    ended = has_eos(responses)
    assert ended.any() and not ended.all()  # the test sees both kinds of response
    for row, row_mask, row_log_probs in zip(responses, mask, log_probs):
        eos = np.flatnonzero(row == EOS)
        end = eos[0] + 1 if eos.size else L
        np.testing.assert_array_equal(row_mask, np.arange(L) < end)
        assert np.all(row[end:] == PAD) and np.all(row[:end - 1] != EOS)
        assert np.all(row_log_probs[end:] == 0.0) and np.all(row_log_probs[:end] < 0.0)
    np.testing.assert_array_equal(response_mask(responses), mask)


def test_mask_last_index_and_has_eos_by_hand():
    responses = jnp.array([[3, EOS, PAD, PAD, PAD],
                           [2, 3, 4, 5, 6],      # cut: no EOS
                           [EOS, PAD, PAD, PAD, PAD],
                           [4, 5, 6, 7, EOS],
                           [3, EOS, 4, EOS, 2]],  # only the first EOS ends it
                          jnp.int32)
    mask = response_mask(responses)
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1],
                                         [1, 1, 0, 0, 0]])
    assert mask.dtype == jnp.float32
    np.testing.assert_array_equal(last_index(mask), [1, 4, 0, 4, 1])
    assert last_index(mask).dtype == jnp.int32
    np.testing.assert_array_equal(has_eos(responses), [True, False, True, True, True])


def test_zero_head_scalar_model_outputs_zero_and_keeps_the_trunk(lm):
    tokens = random_tokens(8, (B, S))
    value = scalar_model_from(lm, jax.random.PRNGKey(9), CFG, zero_head=True)
    outputs = scalar_outputs_jit(value, CFG, tokens)
    assert outputs.shape == (B, S)
    np.testing.assert_array_equal(outputs, 0.0)
    for kept, original in zip(jax.tree_util.tree_leaves(value["trunk"]), jax.tree_util.tree_leaves(lm["trunk"])):
        np.testing.assert_array_equal(kept, original)
    # from a scalar model, with a random head: same trunk, non-zero outputs
    reward = scalar_model_from(value, jax.random.PRNGKey(10), CFG, zero_head=False)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: a is b, reward["trunk"], lm["trunk"]))
    assert reward["head"]["kernel"].shape == (CFG.d_model, 1)
    assert np.all(np.asarray(scalar_outputs_jit(reward, CFG, tokens)) != 0.0)


def test_temperature_scales_the_logits_of_sampling_and_recomputation(lm, prompts):
    gen = sample_jit(lm, CFG, prompts, jax.random.PRNGKey(11), 2.0)
    tokens = jnp.concatenate([prompts, gen.responses], axis=1)
    logits = np.asarray(lm_logits_jit(lm, CFG, tokens))[:, P - 1:S - 1] / 2.0  # independent of response_logits
    logits[..., PAD] = -1e9
    expected = np.take_along_axis(np_log_softmax(logits), np.asarray(gen.responses)[..., None], -1)[..., 0]
    np.testing.assert_allclose(gen.log_probs, expected * np.asarray(gen.mask), atol=1e-5)
    np.testing.assert_allclose(response_logits_jit(lm, CFG, prompts, gen.responses, 2.0), logits, atol=1e-5)


@jax.jit
def outputs_values_scores(model, prompts, responses):
    outputs = scalar_outputs(model, CFG, jnp.concatenate([prompts, responses], axis=1))
    return outputs, response_values(model, CFG, prompts, responses), sequence_scores(model, CFG, prompts, responses)


def test_values_and_scores_are_read_at_the_documented_positions(lm):
    model = scalar_model_from(lm, jax.random.PRNGKey(12), CFG, zero_head=False)
    prompts = jnp.array([[2, 3, 4], [5, 6, 7], [2, 2, 2], [7, 6, 5]], jnp.int32)
    responses = jnp.array([[3, EOS, PAD, PAD, PAD], [2, 3, 4, 5, 6], [EOS, PAD, PAD, PAD, PAD],
                           [4, 5, 6, 7, EOS]], jnp.int32)
    outputs, values, scores = (np.asarray(x) for x in outputs_values_scores(model, prompts, responses))
    by_hand = outputs[np.arange(4), [P + 1, P + 4, P + 0, P + 4]]  # last valid token: EOS, or L-1 when cut
    np.testing.assert_allclose(scores, by_hand, atol=1e-6)
    np.testing.assert_allclose(values, outputs[:, P - 1:S - 1], atol=1e-6)  # computed over S-1 tokens


def test_bad_shapes_raise_readable_errors(lm, prompts):
    with pytest.raises(ValueError, match="seq_len = 8"):
        lm_logits(lm, CFG, jnp.zeros((2, S + 1), jnp.int32))
    with pytest.raises(ValueError, match="prompt_len = 3"):
        sample(lm, CFG, jnp.zeros((2, P + 1), jnp.int32), jax.random.PRNGKey(0), 1.0)
    with pytest.raises(ValueError, match="response_len = 5"):
        response_logits(lm, CFG, prompts, jnp.zeros((B, L - 1), jnp.int32), 1.0)


def test_pad_is_never_sampled_before_eos():
    """Even a model that puts most of its mass on PAD never emits it as a word: PAD only pads after EOS."""
    lm = init_lm(jax.random.PRNGKey(20), CFG)
    lm = jax.tree_util.tree_map(lambda x: x, lm)
    lm["head"] = {"kernel": lm["head"]["kernel"], "bias": lm["head"]["bias"].at[PAD].set(30.0)}
    prompts = random_tokens(21, (64, P), low=2)
    gen = sample_jit(lm, CFG, prompts, jax.random.PRNGKey(22), 1.0)
    responses, mask = np.asarray(gen.responses), np.asarray(gen.mask)
    assert np.all(responses[mask > 0] != PAD)
    assert np.all(np.isfinite(np.asarray(gen.log_probs)))
