"""The RL stage's pieces on hand-made arrays: KL-penalty rewards, GAE over tokens, masking, the KL controller,
and the shared natural-gradient machinery (Gauss–Newton products, the trust-region step) on explicit matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import np_log_softmax

from purejaxrl_ppo.core.algos import losses
from purejaxrl_ppo.core.algos.base import normalize
from purejaxrl_ppo.core.algos.natural_gradient import gauss_newton_fvp, trust_region_step
from purejaxrl_ppo.core.rlhf import model, rl
from purejaxrl_ppo.core.rlhf.config import EOS, PAD, RLHFConfig
from purejaxrl_ppo.core.rlhf.generate import response_mask, token_log_probs

def test_kl_penalty_equals_log_ratio_on_hand_made_logits():
    rng = np.random.default_rng(0)
    logits, ref_logits = rng.normal(size=(2, 2, 4, 5)).astype(np.float32)
    responses = np.array([[3, 2, EOS, PAD], [4, 4, 2, 3]], np.int32)
    mask = np.asarray(response_mask(jnp.asarray(responses)))
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 1, 1, 1]])
    log_probs = token_log_probs(jnp.asarray(logits), jnp.asarray(responses)) * mask
    ref_log_probs = token_log_probs(jnp.asarray(ref_logits), jnp.asarray(responses)) * mask
    scores = np.array([0.7, -1.3], np.float32)
    beta = 0.1
    rewards = np.asarray(rl.kl_penalty_rewards(log_probs, ref_log_probs, jnp.asarray(scores), jnp.asarray(mask), beta))

    lp = np.take_along_axis(np_log_softmax(logits), responses[..., None], -1)[..., 0]
    lr = np.take_along_axis(np_log_softmax(ref_logits), responses[..., None], -1)[..., 0]
    expected = -beta * (lp - lr) * mask
    expected[0, 2] += scores[0]  # the score lands on the last valid token: EOS of response 0 ...
    expected[1, 3] += scores[1]  # ... and the cut-off last token of response 1 (no EOS)
    np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-6)


def test_tokens_after_eos_change_no_advantage_or_loss():
    rng = np.random.default_rng(1)
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
    rewards = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32) * mask
    values = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
    adv, ret = rl.token_advantages(rewards, values, mask, 1.0, 0.95)
    # garbage where masked: values after EOS must not leak in
    values2 = values.at[0, 3:].set(100.0)
    adv2, ret2 = rl.token_advantages(rewards, values2, mask, 1.0, 0.95)
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(adv2))
    np.testing.assert_array_equal(np.asarray(ret), np.asarray(ret2))
    assert np.all(np.asarray(adv)[0, 3:] == 0) and np.all(np.asarray(ret)[0, 3:] == 0)
    # reference: γ = 1, λ = 0.95, terminal at the last valid token
    v = np.asarray(values) * np.asarray(mask)
    r = np.asarray(rewards)
    for b, last in ((0, 2), (1, 4)):
        a, expected = 0.0, np.zeros(5)
        for t in range(last, -1, -1):
            next_v = v[b, t + 1] if t < last else 0.0
            a = r[b, t] + next_v - v[b, t] + 0.95 * a
            expected[t] = a
        np.testing.assert_allclose(np.asarray(adv)[b], expected, rtol=1e-5, atol=1e-6)

    # the masked loss pieces ignore whatever sits after EOS
    ratio = jnp.exp(jnp.asarray(rng.normal(size=(2, 5)) * 0.3, jnp.float32))
    ratio2 = ratio.at[0, 3:].set(50.0)
    for fn in (lambda r: losses.clipped_surrogate_loss(r, adv, 0.2, mask),
               lambda r: losses.approx_kl(r, jnp.log(r), mask),
               lambda r: losses.clip_fraction(r, 0.2, mask),
               lambda r: losses.value_loss(r, values, ret, 0.2, mask)):
        assert float(fn(ratio)) == float(fn(ratio2))
    a1 = normalize(adv, mask=mask)
    a2 = normalize(adv.at[0, 3:].set(7.0), mask=mask)
    np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))
    valid = np.asarray(a1)[np.asarray(mask) > 0]
    assert abs(valid.mean()) < 1e-5 and abs(valid.std() - 1) < 1e-3


def test_masked_mean_without_mask_is_plain_mean():
    x = jnp.arange(6.0).reshape(2, 3)
    assert float(losses.masked_mean(x)) == float(x.mean())
    assert float(losses.masked_mean(x, jnp.asarray([[1, 0, 0], [0, 0, 1]]))) == 2.5
    assert float(losses.masked_mean(x, jnp.zeros((2, 3)))) == 0.0  # an all-masked batch: 0, not NaN


def test_adaptive_kl_controller_follows_ziegler():
    cfg = RLHFConfig(kl_target=2.0, kl_horizon=1000, rollout_batch=64)
    beta = jnp.float32(0.1)
    # KL far above target: error clipped at +0.2, β grows by 0.2·64/1000
    np.testing.assert_allclose(float(rl.adapt_kl_coef(beta, jnp.float32(10.0), cfg)), 0.1 * (1 + 0.2 * 0.064), rtol=1e-6)
    np.testing.assert_allclose(float(rl.adapt_kl_coef(beta, jnp.float32(0.0), cfg)), 0.1 * (1 - 0.2 * 0.064), rtol=1e-6)
    np.testing.assert_allclose(float(rl.adapt_kl_coef(beta, jnp.float32(2.2), cfg)), 0.1 * (1 + 0.1 * 0.064), rtol=1e-6)


def test_gauss_newton_fvp_matches_explicit_masked_fisher():
    """F = (1/n) Σ_valid Jᵀ (diag p - p pᵀ) J for a linear-softmax policy, against the masked product."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)        # 6 "tokens", 3 features
    mask = jnp.asarray([1, 1, 0, 1, 0, 1], jnp.float32)
    theta = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)    # 4-way categorical

    def logits_of(t):
        return x @ t

    def kl_sum(old, new):
        return (rl.token_kl(old, new) * mask).sum()

    damping = 0.05
    fvp = gauss_newton_fvp(logits_of, theta, kl_sum, damping, num_samples=mask.sum())
    p = np.asarray(jax.nn.softmax(x @ theta), np.float64)
    fisher = np.zeros((12, 12))
    for i in range(6):
        if mask[i] == 0:
            continue
        jac = np.zeros((4, 12))
        for k in range(4):
            jac[k, np.arange(3) * 4 + k] = np.asarray(x[i])
        fisher += jac.T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ jac
    fisher /= float(mask.sum())
    v = rng.normal(size=(3, 4)).astype(np.float32)
    expected = fisher @ v.reshape(-1) + damping * v.reshape(-1)
    np.testing.assert_allclose(np.asarray(fvp(jnp.asarray(v))).reshape(-1), expected, rtol=2e-4, atol=1e-5)


def test_trust_region_step_stays_within_the_bound():
    """On a quadratic KL ½ dᵀA d the accepted step satisfies KL ≤ δ and improves a linear objective."""
    a = jnp.asarray([[2.0, 0.3], [0.3, 1.0]])
    g = jnp.asarray([1.0, -0.5])
    theta = jnp.zeros(2)

    def objective(t):
        return g @ t

    def kl(t):
        return 0.5 * t @ a @ t

    for max_kl in (0.01, 0.05):
        step = trust_region_step(objective, kl, theta, objective(theta), g, lambda v: a @ v, max_kl, 10, 10, 0.8)
        assert bool(step.accepted)
        assert float(kl(step.theta)) <= max_kl + 1e-7
        np.testing.assert_allclose(float(kl(step.theta)), max_kl, rtol=1e-3)  # the full step reaches the boundary
        assert float(step.improvement) > 0


@pytest.mark.parametrize("bad", [{"d_model": 30, "num_heads": 4}, {"rollout_batch": 10, "num_minibatches": 4},
                                 {"task_positive": 10, "task_negative": 10}, {"algo": "a2c"}])
def test_config_refuses_bad_values(bad):
    from purejaxrl_ppo.core.config import ConfigError

    with pytest.raises(ConfigError):
        RLHFConfig(**bad)


def _np_whiten_stats(rewards: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    valid = rewards[mask > 0]
    return float(valid.mean()), float(valid.std())


@pytest.mark.parametrize("mode", ["scale", "keep_mean"])
def test_reward_whitening_matches_the_reference_formulas(mode):
    rng = np.random.default_rng(4)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    rewards = (rng.normal(size=(2, 5)) * 3.0 + 1.5).astype(np.float32) * mask
    mean, std = _np_whiten_stats(rewards, mask)
    # "scale": r/σ (ours); "keep_mean": (r - μ)/σ + μ, TRL's masked_whiten(shift_mean=False)
    expected = (rewards / std if mode == "scale" else (rewards - mean) / std + mean) * mask
    got = np.asarray(rl.whiten_token_rewards(jnp.asarray(rewards), jnp.asarray(mask), mode))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.all(got[0, 3:] == 0)  # nothing after EOS
    if mode == "keep_mean":  # the mean is kept and the spread is 1
        np.testing.assert_allclose(_np_whiten_stats(got, mask), (mean, 1.0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="keep_mean"):
        rl.whiten_token_rewards(jnp.asarray(rewards), jnp.asarray(mask), "center")


def test_advantage_whitening_over_the_rollout_or_each_minibatch():
    rng = np.random.default_rng(5)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0]], np.float32)
    advantages = (rng.normal(size=(4, 4)) * 2.0 + 0.7).astype(np.float32) * mask
    batch = rl.TokenBatch(jnp.full((4, 4), 2, jnp.int32), jnp.full((4, 4), 3, jnp.int32), jnp.asarray(mask), jnp.zeros((4, 4)),
                          jnp.zeros((4, 4)), jnp.asarray(advantages), jnp.zeros((4, 4)))
    ref = RLHFConfig(vocab_size=8, prompt_len=4, response_len=4, d_model=8, num_layers=1, num_heads=2,
                     base_mean_length=2.0, task_positive=2, task_negative=2, rollout_batch=4, num_minibatches=2)
    params = model.init_lm(jax.random.PRNGKey(0), ref)

    def whitened(cfg, rows):
        minibatch = jax.tree.map(lambda x: x[rows], batch)
        return np.asarray(rl.policy_terms(cfg, params, minibatch)[2])

    def np_whiten(a, m):
        mean, std = _np_whiten_stats(a, m)
        return (a - mean) / (std + 1e-8) * m

    rows = np.array([0, 2])
    # "minibatch" (the default): whitened over the minibatch's own valid tokens
    np.testing.assert_allclose(whitened(ref, rows), np_whiten(advantages[rows], mask[rows]), rtol=1e-5, atol=1e-6)
    # "rollout": the update takes the advantages as the rollout whitened them, unchanged
    rollout_cfg = ref.replace(advantage_whitening="rollout")
    np.testing.assert_array_equal(whitened(rollout_cfg, rows), advantages[rows])
    # off: unchanged too
    np.testing.assert_array_equal(whitened(ref.replace(normalize_advantages=False), rows), advantages[rows])
    np.testing.assert_allclose(np.asarray(normalize(jnp.asarray(advantages), mask=jnp.asarray(mask))),
                               np_whiten(advantages, mask), rtol=1e-5, atol=1e-6)
