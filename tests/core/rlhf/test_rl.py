"""The RL stage on a tiny language model: masking after EOS, the TRPO step's trust region, one iteration's books."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxrl_ppo.core.rlhf import generate, model, rl
from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig
from purejaxrl_ppo.core.rlhf.task import make_task

CFG = RLHFConfig(vocab_size=8, prompt_len=3, response_len=5, d_model=16, num_layers=1, num_heads=2,
                 base_mean_length=3.0, task_positive=2, task_negative=2, rollout_batch=8, num_minibatches=2)


@pytest.fixture(scope="module")
def models():
    ref = model.init_lm(jax.random.PRNGKey(0), CFG)
    rm = model.scalar_model_from(ref, jax.random.PRNGKey(1), CFG, zero_head=False)
    return ref, rm


@pytest.fixture(scope="module")
def batch_and_state(models):
    ref, rm = models
    state = rl.rl_init(CFG, ref, rm, jax.random.PRNGKey(2))
    batch, stats = jax.jit(lambda s: rl.rollout(CFG, make_task(CFG), ref, rm, s, jax.random.PRNGKey(3)))(state)
    return batch, stats, state


def test_tokens_after_eos_change_no_loss(batch_and_state):
    batch, _, state = batch_and_state
    mask = np.asarray(batch.mask)
    assert (mask == 0).any(), "the sample should hold at least one response that ended early"
    scrambled = jnp.where(batch.mask > 0, batch.responses, 5)  # a content token instead of PAD after EOS
    other = batch._replace(responses=scrambled)
    params = {"policy": state.policy, "value": state.value}
    loss = jax.jit(lambda b: rl.ppo_loss(CFG, params, b))
    (l1, m1), (l2, m2) = loss(batch), loss(other)
    assert float(l1) == float(l2)
    for name in m1:
        assert float(m1[name]) == float(m2[name]), name


def test_rollout_books_are_consistent(batch_and_state, models):
    batch, stats, state = batch_and_state
    mask = np.asarray(batch.mask)
    responses = np.asarray(batch.responses)
    assert np.all(responses[mask == 0] == PAD)
    assert np.all(np.asarray(batch.advantages)[mask == 0] == 0) and np.all(np.asarray(batch.values)[mask == 0] == 0)
    # the policy is the reference at the start: no KL, and the log-probs are the sampled distribution's
    assert abs(float(stats["kl_to_reference"])) < 1e-6 and abs(float(stats["kl_sampled"])) < 1e-6
    np.testing.assert_allclose(float(stats["response_length"]), mask.sum(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(float(stats["eos_fraction"]), (responses == EOS).any(1).mean(), rtol=1e-6)
    # GAE with V ≡ 0 (zero value head), γ = 1: the advantage of token t is the λ-discounted reward-to-go
    assert np.all(np.asarray(batch.values) == 0)


def test_rollout_whitening_options_follow_their_formulas(models, batch_and_state):
    """``advantage_whitening="rollout"`` whitens the rollout's advantages once over all its valid tokens (the same
    key gives the same responses, so the raw advantages are the default rollout's)."""
    ref, rm = models
    batch, _, state = batch_and_state
    task = make_task(CFG)

    def run(cfg):
        return jax.jit(lambda s: rl.rollout(cfg, task, ref, rm, s, jax.random.PRNGKey(3)))(state)[0]

    rollout_batch = run(CFG.replace(advantage_whitening="rollout"))
    mask = np.asarray(batch.mask)
    raw = np.asarray(batch.advantages)[mask > 0]
    expected = (raw - raw.mean()) / (raw.std() + 1e-8)
    np.testing.assert_allclose(np.asarray(rollout_batch.advantages)[mask > 0], expected, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(rollout_batch.advantages)[mask == 0] == 0)
    np.testing.assert_array_equal(np.asarray(rollout_batch.returns), np.asarray(batch.returns))
    # reward whitening's formulas: test_rl_pieces.py (hand-made arrays), without two more rollout compiles here


@pytest.mark.parametrize("max_kl", [0.02, pytest.param(0.005, marks=pytest.mark.heavy)])
def test_trpo_step_keeps_mean_token_kl_within_delta(batch_and_state, max_kl):
    batch, _, state = batch_and_state
    cfg = CFG.replace(algo="trpo", max_kl=max_kl)
    new_policy, metrics = jax.jit(lambda p, b: rl.trpo_policy_step(cfg, p, b))(state.policy, batch)
    assert float(metrics["line_search_accepted"]) == 1.0
    old_logits = generate.response_logits(state.policy, cfg, batch.prompts, batch.responses, cfg.temperature)
    new_logits = generate.response_logits(new_policy, cfg, batch.prompts, batch.responses, cfg.temperature)
    mask = np.asarray(batch.mask)
    kl = (np.asarray(rl.token_kl(old_logits, new_logits)) * mask).sum() / mask.sum()
    assert 0 < kl <= max_kl * (1 + 1e-4)
    np.testing.assert_allclose(kl, float(metrics["kl"]), rtol=1e-3)
    assert float(metrics["surrogate_improvement"]) > 0


@pytest.mark.heavy  # make test: the CLI test runs β × seed rows of PPO in one program, and TRPO
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_iterations_vmap_over_seeds_and_kl_coefs(models, algo):
    """One program runs several (β, seed) rows: β lives in the state. β = 0 rewards are the scores alone."""
    ref, rm = models
    cfg = CFG.replace(algo=algo)
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    betas = jnp.asarray([0.0, 0.1, 0.1])
    states = jax.vmap(lambda k, b: rl.rl_init(cfg, ref, rm, k, kl_coef=b))(keys, betas)
    run = jax.jit(jax.vmap(lambda s: rl.rl_chunk(cfg, make_task(cfg), ref, rm, s, 2)))
    final, metrics = run(states)
    assert metrics["proxy_score"].shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(metrics["kl_coef"]), np.repeat(np.asarray(betas)[:, None], 2, 1))
    np.testing.assert_array_equal(np.asarray(final.iteration), [2, 2, 2])
    # seed rows are independent: row 2 alone gives row 2's numbers
    alone, alone_metrics = jax.jit(lambda s: rl.rl_chunk(cfg, make_task(cfg), ref, rm, s, 2))(
        jax.tree_util.tree_map(lambda x: x[2], states))
    np.testing.assert_allclose(np.asarray(alone_metrics["gold_score"]), np.asarray(metrics["gold_score"][2]),
                               rtol=1e-5, atol=1e-6)
    for value in metrics.values():
        assert np.all(np.isfinite(np.asarray(value)))
