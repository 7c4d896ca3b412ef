"""How actions reach the environment (core/networks/base.py): the tanh-squashed Gaussian against
numpy, clipping and squashing of continuous actions, and the action_squash setting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.envs import ActionSpace
from purejaxrl_ppo.core.networks import ActorCritic, TanhGaussian, policy_on_transitions


def _numpy_squashed_log_prob(u, mean, log_std, low, high):
    u, mean, std = (np.asarray(a, np.float64) for a in (u, mean, np.exp(log_std)))
    gauss = -0.5 * (((u - mean) / std) ** 2 + 2 * np.log(std) + np.log(2 * np.pi))
    jac = np.log((np.asarray(high) - np.asarray(low)) / 2.0 * (1.0 - np.tanh(u) ** 2))
    return (gauss - jac).sum(-1)


def test_tanh_gaussian_log_prob_matches_numpy():
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(5, 2)).astype(np.float32)
    log_std = rng.normal(scale=0.3, size=(5, 2)).astype(np.float32)
    u = rng.normal(size=(5, 2)).astype(np.float32)
    low, high = np.array([-1.0, 0.0], np.float32), np.array([1.0, 4.0], np.float32)
    dist = TanhGaussian(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(low), jnp.asarray(high))
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(u)), _numpy_squashed_log_prob(u, mean, log_std, low, high), rtol=1e-4)
    sample, log_prob = dist.sample_and_log_prob(seed=jax.random.PRNGKey(0))
    np.testing.assert_allclose(log_prob, _numpy_squashed_log_prob(sample, mean, log_std, low, high), rtol=1e-4)
    # Saturated samples stay finite (u is stored, not atanh(a)).
    assert np.isfinite(dist.log_prob(jnp.full((5, 2), 30.0))).all()


def test_tanh_gaussian_density_integrates_to_one_over_the_bounds():
    dist = TanhGaussian(jnp.array([0.7]), jnp.array([-0.5]), jnp.array([-2.0]), jnp.array([3.0]))
    u = jnp.linspace(-12.0, 12.0, 200_001)[:, None]
    a = np.asarray(dist.squash(u))[:, 0].astype(np.float64)
    density = np.exp(np.asarray(dist.log_prob(u), np.float64))
    assert np.trapezoid(density, a) == pytest.approx(1.0, abs=2e-3)
    assert a.min() >= -2.0 and a.max() <= 3.0


def test_env_action_clip_and_tanh():
    space = ActionSpace(discrete=False, shape=(2,), low=(-1.0, 0.0), high=(1.0, 2.0))
    u = jnp.array([[3.0, -5.0], [0.0, 0.0]])
    clip = ActorCritic((3,), space, action_squash="clip")
    tanh = ActorCritic((3,), space, action_squash="tanh")
    np.testing.assert_allclose(clip.env_action(u), [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(tanh.env_action(u), [[np.tanh(3.0), 1.0 + np.tanh(-5.0)], [0.0, 1.0]], rtol=1e-6, atol=1e-6)
    params = tanh.init(jax.random.PRNGKey(0))
    entropy = tanh.distribution(policy_on_transitions(tanh, params, jnp.zeros((4, 3)))).entropy()
    assert entropy.shape == (4,) and np.isfinite(entropy).all()


def test_action_squash_is_validated():
    with pytest.raises(pjp.ConfigError, match="action_squash"):
        pjp.PPOConfig(action_squash="sigmoid")
