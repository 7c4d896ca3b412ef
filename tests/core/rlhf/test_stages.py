"""SFT and reward-model stages: the losses against numpy references, the normalisation fold, and two
small seeded learning tests (SFT reaches the entropy floor, the RM beats chance and is normalised)."""

import purejaxrl_ppo  # noqa: F401,I001  (first: sets XLA_FLAGS before jax runs)

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import np_log_softmax

from purejaxrl_ppo.core.rlhf import generate, model
from purejaxrl_ppo.core.rlhf import stages as S
from purejaxrl_ppo.core.rlhf import task as T
from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig

# A tiny language and model: each stage compiles in seconds and trains in about one second on 2 cores.
CFG = RLHFConfig(vocab_size=10, prompt_len=3, response_len=8, task_positive=2, task_negative=2,
                 base_mean_length=4.0, d_model=32, num_layers=1, num_heads=2,
                 sft_steps=300, sft_batch_size=32, sft_learning_rate=3e-3,
                 rm_steps=300, rm_batch_size=32, rm_learning_rate=1e-3, rm_train_pairs=1024, eval_size=512)

@pytest.fixture(scope="module")
def task():
    return T.make_task(CFG)


@pytest.fixture(scope="module")
def batch():
    """Six hand-made sequences (no compile): an empty response, a cut one (no EOS), and four of other lengths."""
    rng = np.random.default_rng(0)
    prompts = rng.integers(2, CFG.vocab_size, (6, CFG.prompt_len), dtype=np.int32)
    responses = rng.integers(2, CFG.vocab_size, (6, CFG.response_len), dtype=np.int32)
    for row, eos_at in enumerate([0, None, 1, 3, 5, 7]):
        if eos_at is not None:
            responses[row, eos_at] = EOS
            responses[row, eos_at + 1:] = PAD
    return jnp.asarray(prompts), jnp.asarray(responses)


@pytest.fixture(scope="module")
def fresh_params():
    """An untrained LM and scalar model (one compiled program for both)."""
    init = jax.jit(lambda key: (model.init_lm(key, CFG), model.init_scalar_model(key, CFG)))
    return init(jax.random.PRNGKey(3))


@pytest.fixture(scope="module")
def sft_run(task):
    return S.train_sft(CFG, task, jax.random.PRNGKey(1))


@pytest.fixture(scope="module")
def rm_run(task, sft_run):
    return S.train_rm(CFG, task, sft_run[0], jax.random.PRNGKey(2))


def test_sft_loss_is_the_masked_cross_entropy_of_a_numpy_loop(batch, fresh_params):
    prompts, responses = batch
    params = fresh_params[0]
    # reference: the full sequence's logits; position P-1+t predicts response token t; stop after EOS

    @jax.jit
    def logits_and_loss(params, prompts, responses):
        tokens = jnp.concatenate([prompts, responses], axis=1)
        return model.lm_logits(params, CFG, tokens), S.sft_loss(params, CFG, prompts, responses)

    logits, loss = logits_and_loss(params, prompts, responses)
    # the policy never emits PAD (generate.policy_logits excludes it), so the reference renormalises without it
    logits = np.asarray(logits, np.float64)
    logits[..., PAD] = -np.inf
    nlls = []
    for b in range(len(prompts)):
        for t in range(CFG.response_len):
            token = int(responses[b, t])
            nlls.append(-np_log_softmax(logits[b, CFG.prompt_len - 1 + t])[token])
            if token == EOS:
                break
    assert len(nlls) == 1 + 8 + 2 + 4 + 6 + 8
    assert float(loss) == pytest.approx(np.mean(nlls), rel=1e-5)


def test_rm_loss_is_bradley_terry_on_sequence_scores(batch, fresh_params):
    prompts, responses = batch
    params = fresh_params[1]
    chosen, rejected = responses, responses[::-1]

    @jax.jit
    def loss_and_scores(params, prompts, chosen, rejected):
        scores = [generate.sequence_scores(params, CFG, prompts, y) for y in (chosen, rejected)]
        return S.rm_loss(params, CFG, prompts, chosen, rejected), scores

    (loss, accuracy), (r_c, r_r) = loss_and_scores(params, prompts, chosen, rejected)
    r_c, r_r = np.asarray(r_c, np.float64), np.asarray(r_r, np.float64)
    assert float(loss) == pytest.approx(np.mean(np.log1p(np.exp(-(r_c - r_r)))), rel=1e-5)
    assert float(accuracy) == pytest.approx(np.mean(r_c > r_r))


def test_gold_accuracy_excludes_equal_gold_and_counts_score_ties_as_wrong():
    scores_c = jnp.array([1.0, 0.0, 2.0, 5.0, 3.0])
    scores_r = jnp.array([0.0, 1.0, 2.0, 0.0, 0.0])
    gold_c = jnp.array([0.5, 0.5, 0.5, 0.1, -0.2])
    gold_r = jnp.array([0.0, 0.0, 0.0, 0.1, 0.3])
    # pair 3 has equal gold (excluded); right: 0; wrong: 1 (reversed), 2 (tie), 4 (gold prefers rejected)
    assert float(S.gold_accuracy(scores_c, scores_r, gold_c, gold_r)) == pytest.approx(1 / 4)


def test_normalized_head_is_an_exact_affine_map_at_every_position(batch, fresh_params):
    prompts, responses = batch
    params = fresh_params[1]
    tokens = jnp.concatenate([prompts, responses], axis=1)
    outputs = jax.jit(model.scalar_outputs, static_argnums=1)
    before = np.asarray(outputs(params, CFG, tokens))
    after = np.asarray(outputs(S.normalized_head(params, 0.7, 2.5), CFG, tokens))
    np.testing.assert_allclose(after, (before - 0.7) / 2.5, rtol=1e-5, atol=1e-6)


@pytest.mark.heavy  # make test: tests/integration/test_rlhf_learning.py checks the floor gap on its own SFT run
def test_sft_learns_the_base_distribution_down_to_its_entropy_floor(sft_run):
    _, metrics = sft_run
    loss = np.asarray(metrics["loss"])
    assert loss.shape == (CFG.sft_steps,) and np.isfinite(loss).all()
    assert loss[-20:].mean() < loss[:10].mean() - 0.4
    floor, heldout = float(metrics["base_entropy"]), float(metrics["heldout_loss"])
    assert 1.0 < floor < 2.0  # the tiny language's ≈ 1.5 nats per token
    # a perfect model scores the floor up to sampling noise (about ±0.015 on 512 held-out responses);
    # 300 steps of this tiny model measured ≈ 0.03 nats above it
    assert -0.03 < heldout - floor < 0.08


@pytest.mark.heavy  # make test: tests/integration/test_rlhf_learning.py checks accuracy and normalisation
def test_reward_model_beats_chance_and_is_normalised_on_the_sft_policy(task, sft_run, rm_run):
    sft_params, _ = sft_run
    rm_params, metrics = rm_run
    assert metrics["loss"].shape == metrics["accuracy"].shape == (CFG.rm_steps,)
    assert float(metrics["loss"][-50:].mean()) < float(metrics["loss"][:10].mean()) - 0.15
    assert float(metrics["heldout_accuracy"]) > 0.65    # noisy labels: measured ≈ 0.77
    assert float(metrics["heldout_gold_accuracy"]) > 0.8  # measured ≈ 0.9
    # the whole model trains, starting from the SFT trunk
    sft_embed = np.asarray(sft_params["trunk"]["token_embed"]["embedding"])
    rm_embed = np.asarray(rm_params["trunk"]["token_embed"]["embedding"])
    assert rm_embed.shape == sft_embed.shape and not np.allclose(rm_embed, sft_embed)

    # 1024 fresh prompts and SFT samples (not the 512 the statistics came from): mean ≈ 0, std ≈ 1 (± ~0.05 SE)
    bigger = dataclasses.replace(CFG, eval_size=1024)
    mean, std = jax.jit(S.policy_score_stats, static_argnums=3)(rm_params, sft_params, task, bigger,
                                                               jax.random.PRNGKey(6))
    assert abs(float(mean)) < 0.15 and abs(float(std) - 1.0) < 0.15


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_reward_model_is_normalised_on_samples_at_rm_norm_temperature(task, fresh_params, temperature):
    """The normalisation statistics are the RM's scores on SFT samples drawn at ``rm_norm_temperature``
    (lm-human-preferences: the RL temperature; the default 1), recomputed here by hand."""
    lm, rm = fresh_params
    cfg = CFG.replace(rm_norm_temperature=temperature, eval_size=64)
    key = jax.random.PRNGKey(7)
    mean, std = S.policy_score_stats(rm, lm, task, cfg, key)
    prompt_key, sample_key = jax.random.split(key)
    prompts = T.sample_prompts(task, cfg, prompt_key, cfg.eval_size)
    responses = generate.sample(lm, cfg, prompts, sample_key, temperature).responses
    scores = np.asarray(generate.sequence_scores(rm, cfg, prompts, responses))
    np.testing.assert_allclose([float(mean), float(std)], [scores.mean(), scores.std()], rtol=1e-5, atol=1e-6)
    other = generate.sample(lm, cfg, prompts, sample_key, 1.7 - temperature).responses  # 0.7 vs 1.0 differ
    assert not np.array_equal(np.asarray(other), np.asarray(responses))
