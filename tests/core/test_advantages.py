"""GAE against an independent plain-numpy double loop and hand-computed values."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def reference_gae(rewards, values, next_values, terminations, dones, gamma, lam):
    """Plain double loop in float64.

    delta_t = r_t + γ (1 - term_t) next_v_t - v_t
    A_t     = delta_t + γ λ (1 - done_t) A_{t+1}     (A_T = 0)
    """
    rewards, values, next_values = (np.asarray(x, np.float64) for x in (rewards, values, next_values))
    terminations, dones = np.asarray(terminations, bool), np.asarray(dones, bool)
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        next_adv = 0.0
        for t in reversed(range(T)):
            delta = rewards[t, n] + gamma * (0.0 if terminations[t, n] else 1.0) * next_values[t, n] - values[t, n]
            next_adv = delta + gamma * lam * (0.0 if dones[t, n] else 1.0) * next_adv
            adv[t, n] = next_adv
    return adv, adv + values


def _random_rollout(seed, T=12, N=5):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = rng.normal(size=(T, N)).astype(np.float32)
    u = rng.uniform(size=(T, N))
    terminations = u < 0.15
    truncations = (u >= 0.15) & (u < 0.3)  # done but not terminated
    dones = terminations | truncations
    return rewards, values, next_values, terminations, dones


def _run(rewards, values, next_values, terminations, dones, gamma, lam):
    adv, tgt = pjp.gae(
        jnp.asarray(rewards, jnp.float32),
        jnp.asarray(values, jnp.float32),
        jnp.asarray(next_values, jnp.float32),
        jnp.asarray(terminations, bool),
        jnp.asarray(dones, bool),
        gamma,
        lam,
    )
    return np.asarray(adv, np.float64), np.asarray(tgt, np.float64)


@pytest.mark.parametrize("seed,gamma,lam", [(0, 0.99, 0.95), (1, 0.9, 0.5)])
def test_random_matches_numpy_loop(seed, gamma, lam):
    data = _random_rollout(seed)
    term, dones = data[3], data[4]
    # the data really mixes both kinds of episode ends
    assert term.any() and (dones & ~term).any()
    adv, tgt = _run(*data, gamma, lam)
    ref_adv, ref_tgt = reference_gae(*data, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt, ref_tgt, rtol=1e-5, atol=1e-5)


def test_hand_computed_tiny_case():
    # T=3, N=1, γ=0.9, λ=0.5 (γλ = 0.45)
    # t=0: ordinary step;  t=1: truncated (done, not terminated);  t=2: terminated.
    # δ0 = 1 + 0.9*1.0 - 0.5 = 1.4
    # δ1 = 2 + 0.9*1.5 - 1.0 = 2.35     (truncation still bootstraps from next_v)
    # δ2 = 3 + 0          - 1.5 = 1.5   (termination: no bootstrap)
    # A2 = δ2 = 1.5
    # A1 = δ2 chain cut by done_1   -> A1 = δ1 = 2.35
    # A0 = δ0 + 0.45 * A1 = 1.4 + 1.0575 = 2.4575
    # targets = A + V = [2.9575, 3.35, 3.0]
    rewards = [[1.0], [2.0], [3.0]]
    values = [[0.5], [1.0], [1.5]]
    next_values = [[1.0], [1.5], [2.0]]
    terminations = [[False], [False], [True]]
    dones = [[False], [True], [True]]
    adv, tgt = _run(rewards, values, next_values, terminations, dones, 0.9, 0.5)
    np.testing.assert_allclose(adv[:, 0], [2.4575, 2.35, 1.5], rtol=1e-6)
    np.testing.assert_allclose(tgt[:, 0], [2.9575, 3.35, 3.0], rtol=1e-6)


def test_truncation_bootstraps_termination_does_not():
    T, N, k = 6, 3, 3
    gamma, lam = 0.97, 0.9
    rewards, values, next_values, _, _ = _random_rollout(7, T, N)
    next_values[k] = np.array([2.0, -3.0, 5.0], np.float32)  # clearly non-zero bootstrap values
    none = np.zeros((T, N), bool)
    end = none.copy()
    end[k] = True
    adv_trunc, _ = _run(rewards, values, next_values, none, end, gamma, lam)  # truncated at k
    adv_term, _ = _run(rewards, values, next_values, end, end, gamma, lam)  # terminated at k
    # at step k: truncated = r + γ V(final obs) - V;  terminated = r - V
    np.testing.assert_allclose(adv_trunc[k], rewards[k] + gamma * next_values[k] - values[k], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv_term[k], rewards[k] - values[k], rtol=1e-5, atol=1e-5)
    # earlier steps see the difference discounted by (γλ)^(k-t); later steps are unaffected
    for t in range(k + 1):
        np.testing.assert_allclose(
            adv_trunc[t] - adv_term[t], (gamma * lam) ** (k - t) * gamma * next_values[k], rtol=1e-4, atol=1e-5
        )
    np.testing.assert_allclose(adv_trunc[k + 1 :], adv_term[k + 1 :], rtol=1e-6, atol=1e-6)
    # both cut the λ-trace: the step after k does not leak into step k
    rewards2 = rewards.copy()
    rewards2[k + 1] += 100.0
    adv_trunc2, _ = _run(rewards2, values, next_values, none, end, gamma, lam)
    np.testing.assert_allclose(adv_trunc2[: k + 1], adv_trunc[: k + 1], rtol=1e-6, atol=1e-6)


def test_lambda_zero_is_one_step_td():
    rewards, values, next_values, term, dones = _random_rollout(3)
    gamma = 0.95
    adv, tgt = _run(rewards, values, next_values, term, dones, gamma, 0.0)
    td = rewards.astype(np.float64) + gamma * (1.0 - term) * next_values - values
    np.testing.assert_allclose(adv, td, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt, rewards + gamma * (1.0 - term) * next_values, rtol=1e-5, atol=1e-5)


def test_lambda_one_gamma_one_no_dones_is_reward_to_go_plus_bootstrap():
    T, N = 8, 2
    rewards, values, _, _, _ = _random_rollout(4, T, N)
    # consistent next values: V(s_{t+1}) = values[t+1]; last one bootstraps from a fresh value
    next_values = np.concatenate([values[1:], np.array([[0.7, -1.3]], np.float32)])
    none = np.zeros((T, N), bool)
    adv, tgt = _run(rewards, values, next_values, none, none, 1.0, 1.0)
    reward_to_go = np.cumsum(rewards[::-1].astype(np.float64), axis=0)[::-1]
    expected_targets = reward_to_go + next_values[-1]
    np.testing.assert_allclose(tgt, expected_targets, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, expected_targets - values, rtol=1e-5, atol=1e-5)


def test_targets_equal_advantages_plus_values():
    data = _random_rollout(5)
    adv, tgt = _run(*data, 0.99, 0.95)
    ref_adv, _ = reference_gae(*data, 0.99, 0.95)
    np.testing.assert_allclose(tgt, ref_adv + data[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tgt - adv, data[1], rtol=1e-5, atol=1e-5)


def test_traced_gamma_lambda_under_jit_and_vmap():
    data = _random_rollout(6, T=5, N=2)
    args = [jnp.asarray(x) for x in data]
    gammas = jnp.array([0.9, 0.99], jnp.float32)
    lams = jnp.array([0.0, 0.95], jnp.float32)
    adv, _ = jax.jit(jax.vmap(lambda g, l: pjp.gae(*args, g, l)))(gammas, lams)
    for i in range(2):
        ref, _ = reference_gae(*data, float(gammas[i]), float(lams[i]))
        np.testing.assert_allclose(np.asarray(adv[i]), ref, rtol=1e-5, atol=1e-5)
