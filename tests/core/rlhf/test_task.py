"""The synthetic RLHF task: gold score against a numpy loop, the base sampler's statistics, the
exact length solve, and Bradley–Terry labels against their sigmoid."""

import purejaxrl_ppo  # noqa: F401,I001  (first: sets XLA_FLAGS before jax runs)

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxrl_ppo.core.rlhf import task as T
from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig

# jitted once per module: every call below with the same shapes reuses one compiled program
sample_responses = jax.jit(T.sample_base_responses, static_argnums=1)
score = jax.jit(T.gold_score, static_argnums=1)
N = 8192

CFG = RLHFConfig(vocab_size=10, prompt_len=3, response_len=8, task_positive=2, task_negative=2,
                 base_mean_length=4.0, task_repeat_penalty=0.5, bt_scale=3.0)


def reference_gold(sentiment, penalty, response):
    """Plain loop: content tokens before the first EOS, mean sentiment minus penalty · repeats / count."""
    valid = []
    for token in response:
        if token == EOS:
            break
        valid.append(token)
    content = [t for t in valid if t >= 2]
    if not content:
        return 0.0
    # repeats: adjacent positions (in the response, before EOS) that are both content and equal
    repeats = sum(1 for a, b in itertools.pairwise(valid) if a >= 2 and a == b)
    return float(np.mean([sentiment[t] for t in content]) - penalty * repeats / len(content))


@pytest.fixture(scope="module")
def task():
    return T.make_task(CFG)


@pytest.fixture(scope="module")
def base_samples(task):
    prompts = T.sample_prompts(task, CFG, jax.random.PRNGKey(0), N)
    responses = sample_responses(task, CFG, jax.random.PRNGKey(1), prompts)
    return np.asarray(prompts), np.asarray(responses)


def test_make_task_is_deterministic_in_the_seed_and_well_formed(task):
    again = T.make_task(CFG)
    other = T.make_task(RLHFConfig(**{**CFG.to_dict(), "task_seed": 1}))
    for a, b in zip(task, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(task.base_logits), np.asarray(other.base_logits))

    sentiment = np.asarray(task.sentiment)
    assert sentiment.shape == (CFG.vocab_size,) and sentiment[PAD] == 0 and sentiment[EOS] == 0
    assert (sentiment == 1).sum() == CFG.task_positive and (sentiment == -1).sum() == CFG.task_negative

    # every content row: content probabilities sum to 1, PAD impossible, P(repeat) = REPEAT_PROB
    probs = np.exp(np.asarray(task.base_logits, np.float64))
    for prev in range(2, CFG.vocab_size):
        np.testing.assert_allclose(probs[prev, 2:].sum(), 1.0, rtol=1e-5)
        assert probs[prev, PAD] == 0.0
        np.testing.assert_allclose(probs[prev, prev], T.REPEAT_PROB, rtol=1e-5)


def test_hazard_is_solved_for_the_mean_length(task):
    assert task.eos_logit.shape == (CFG.response_len,)
    assert np.all(np.diff(np.asarray(task.eos_logit)) > 0)  # EOS grows likelier with length
    assert T.mean_length(np.asarray(task.eos_logit)) == pytest.approx(CFG.base_mean_length, abs=1e-4)
    for target in (1.5, 7.5):
        assert T.mean_length(T.solve_eos_logit(8, target)) == pytest.approx(target, abs=1e-4)


def test_gold_score_matches_a_numpy_loop_on_hand_made_responses(task):
    s = np.asarray(task.sentiment)
    pos, neg = np.flatnonzero(s == 1), np.flatnonzero(s == -1)
    neutral = [t for t in range(2, CFG.vocab_size) if s[t] == 0]
    p, q, z = int(pos[0]), int(neg[0]), int(neutral[0])
    responses = np.array([
        [p, q, z, EOS, PAD, PAD, PAD, PAD],    # (1 - 1 + 0) / 3
        [EOS, PAD, PAD, PAD, PAD, PAD, PAD, PAD],  # empty: 0
        [p, p, p, EOS, PAD, PAD, PAD, PAD],    # 1 - 0.5 · 2/3: the designed exploit is punished
        [p, p, p, p, p, p, p, p],              # no EOS: every token counts, 7 repeats of 8
        [q, EOS, q, q, p, p, PAD, PAD],        # tokens after EOS never count
        [z, z, EOS, p, PAD, PAD, PAD, PAD],    # neutral repeats are penalised too
        [p, PAD, p, EOS, PAD, PAD, PAD, PAD],  # PAD is no content token and breaks adjacency
    ], np.int32)
    expected = [reference_gold(s, CFG.task_repeat_penalty, r) for r in responses]
    np.testing.assert_allclose(expected[:6], [0.0, 0.0, 1 - 0.5 * 2 / 3, 1 - 0.5 * 7 / 8, -1.0, -0.25])
    prompts = np.full((len(responses), CFG.prompt_len), 2, np.int32)
    got = T.gold_score(task, CFG, jnp.asarray(prompts), jnp.asarray(responses))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)


def test_gold_score_matches_the_loop_on_base_samples(task, base_samples):
    prompts, responses = base_samples
    got = np.asarray(score(task, CFG, jnp.asarray(prompts), jnp.asarray(responses)))[:300]
    s = np.asarray(task.sentiment)
    np.testing.assert_allclose(got, [reference_gold(s, CFG.task_repeat_penalty, r) for r in responses[:300]],
                               atol=1e-6)


def test_base_responses_are_padded_after_eos_and_have_the_mean_length(task, base_samples):
    prompts, responses = base_samples
    assert responses.dtype == np.int32 and responses.shape == (len(prompts), CFG.response_len)
    assert (prompts >= 2).all() and (prompts < CFG.vocab_size).all()
    after_eos = np.cumsum(responses == EOS, axis=1) - (responses == EOS) > 0
    assert (responses[after_eos] == PAD).all()
    assert (responses[~after_eos] != PAD).all()  # PAD never before or at EOS
    assert ((responses == EOS).sum(1) <= 1).all()
    lengths = np.asarray(T.valid_token_mask(jnp.asarray(responses))).sum(1)
    # SE of the mean ≈ 2 / sqrt(8192) ≈ 0.02
    assert abs(lengths.mean() - CFG.base_mean_length) < 0.1
    is_content = ~after_eos & (responses >= 2)
    pairs = is_content[:, 1:] & is_content[:, :-1]
    repeat_rate = (pairs & (responses[:, 1:] == responses[:, :-1])).sum() / pairs.sum()
    assert abs(repeat_rate - T.REPEAT_PROB) < 0.015
    gold = np.asarray(score(task, CFG, jnp.asarray(prompts), jnp.asarray(responses)))
    assert gold.std() > 0.15  # a useful spread for preferences


def test_first_response_token_follows_the_bigram_row_of_the_last_prompt_token(task):
    last = 5
    prompts = jnp.full((N, CFG.prompt_len), 2, jnp.int32).at[:, -1].set(last)
    first = np.asarray(sample_responses(task, CFG, jax.random.PRNGKey(3), prompts))[:, 0]
    logits = np.asarray(task.base_logits[last], np.float64).copy()
    logits[EOS] += float(task.eos_logit[0])
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    np.testing.assert_allclose(np.bincount(first, minlength=CFG.vocab_size) / N, expected, atol=0.015)  # 3 SE


def test_sampler_names_a_bad_prompt_shape(task):
    with pytest.raises(ValueError, match=r"prompts must be \[n, prompt_len\]"):
        T.sample_base_responses(task, CFG, jax.random.PRNGKey(0), jnp.zeros(4, jnp.int32))


def test_bradley_terry_labels_follow_the_sigmoid(task):
    n = 20000
    prompts, chosen, rejected = jax.jit(T.preference_pairs, static_argnums=(1, 3))(
        task, CFG, jax.random.PRNGKey(4), n)
    assert prompts.shape == (n, CFG.prompt_len) and chosen.shape == rejected.shape == (n, CFG.response_len)
    margin = np.asarray(score(task, CFG, prompts, chosen) - score(task, CFG, prompts, rejected))
    gap = np.abs(margin)
    decided = gap > 1e-6
    # y1 and y2 are exchangeable, so the better of a pair is the chosen one with probability sigmoid(bt · |Δ|)
    better_chosen = margin[decided] > 0
    expected = 1 / (1 + np.exp(-CFG.bt_scale * gap[decided]))
    assert abs(better_chosen.mean() - expected.mean()) < 0.015  # SE ≈ 0.004
    for low, high in [(0.0, 0.2), (0.2, 0.5), (0.5, 3.0)]:
        in_bin = (gap[decided] > low) & (gap[decided] <= high)
        assert in_bin.sum() > 500
        assert abs(better_chosen[in_bin].mean() - expected[in_bin].mean()) < 0.03


def test_base_entropy_is_the_expected_nll_of_base_samples(task, base_samples):
    prompts, responses = base_samples
    mask = np.asarray(T.valid_token_mask(jnp.asarray(responses)))
    # numpy reference: entropy and NLL of each valid token under its own step distribution
    base_logits, eos_logit = np.asarray(task.base_logits, np.float64), np.asarray(task.eos_logit, np.float64)
    entropies, nlls = [], []
    for prompt, response, valid in zip(prompts[:1000], responses[:1000], mask[:1000]):
        prev = prompt[-1]
        for t in range(CFG.response_len):
            if not valid[t]:
                break
            logits = base_logits[prev].copy()
            logits[EOS] += eos_logit[t]
            log_p = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
            entropies.append(-(np.exp(log_p) * log_p).sum())
            nlls.append(-log_p[response[t]])
            prev = response[t]
    got = float(jax.jit(T.masked_mean_entropy)(task, jnp.asarray(prompts[:1000]), jnp.asarray(responses[:1000])))
    assert got == pytest.approx(np.mean(entropies), rel=1e-5)
    assert np.mean(nlls) == pytest.approx(np.mean(entropies), abs=0.06)  # same expectation (SE ≈ 0.02)
    fresh = float(jax.jit(T.base_token_entropy, static_argnums=(1, 3))(task, CFG, jax.random.PRNGKey(5), N))
    assert fresh == pytest.approx(got, abs=0.06)
