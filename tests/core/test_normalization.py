"""Running observation statistics, reward scaling and the tanh-squashed Gaussian, against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.networks import ActorCritic, TanhGaussian
from purejaxrl_ppo.core.envs import ActionSpace
from purejaxrl_ppo.core.normalization import OBS_CLIP, init_reward_scaler, init_stats, normalize, scale_rewards, update_stats


def test_running_stats_equal_numpy_over_the_stream():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 5, 3)).astype(np.float32) for n in (1, 7, 32, 4)]
    stats = init_stats((3,))
    update = jax.jit(update_stats)
    for i, batch in enumerate(batches):
        stats = update(stats, jnp.asarray(batch))
        seen = np.concatenate([b.reshape(-1, 3) for b in batches[: i + 1]]).astype(np.float64)
        assert float(stats.count) == len(seen)
        np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-4, atol=1e-5)


def test_normalize_uses_stats_and_clips():
    stats = update_stats(init_stats((2,)), jnp.array([[0.0, 10.0], [2.0, 30.0]]))
    out = normalize(stats, jnp.array([[1.0, 20.0], [1.0 + 1e4, 20.0]]))
    np.testing.assert_allclose(out[0], [0.0, 0.0], atol=1e-6)
    assert float(out[1, 0]) == OBS_CLIP
    assert normalize(init_stats((2,)), jnp.array([0.5, -3.0])).tolist() == pytest.approx([0.5, -3.0], abs=1e-6)


def test_reward_scaling_matches_a_numpy_loop():
    rng = np.random.default_rng(1)
    T, N, gamma = 6, 3, 0.9
    rewards = rng.normal(size=(2, T, N)).astype(np.float32)
    dones = rng.random((2, T, N)) < 0.3
    scaler = init_reward_scaler(N)
    ret, seen = np.zeros(N), []
    for k in range(2):
        scaler, scaled = scale_rewards(scaler, jnp.asarray(rewards[k]), jnp.asarray(dones[k]), gamma)
        for t in range(T):
            ret = gamma * ret + rewards[k, t]
            seen.append(ret.copy())
            ret = np.where(dones[k, t], 0.0, ret)
        np.testing.assert_allclose(scaled, rewards[k] / np.sqrt(np.var(seen) + 1e-8), rtol=1e-4)
        np.testing.assert_allclose(scaler.discounted_return, ret, rtol=1e-5, atol=1e-6)


def test_normalizer_state_is_per_seed_under_vmap():
    config = pjp.PPOConfig(
        env_name="Pendulum-v1", num_envs=2, num_steps=8, total_timesteps=32, num_minibatches=2,
        normalize_observations=True, scale_rewards=True,
    )
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    out = jax.jit(jax.vmap(pjp.make_train(config)))(keys)
    stats = out.state.normalizer.obs
    assert stats.mean.shape == (3, 3)
    np.testing.assert_allclose(stats.count, [32.0] * 3)
    assert not np.allclose(stats.mean[0], stats.mean[1])  # different seeds saw different observations
    # Seed 1 alone gives the same statistics as seed 1 under vmap.
    single = jax.jit(pjp.make_train(config))(keys[1])
    np.testing.assert_allclose(single.state.normalizer.obs.mean, stats.mean[1], rtol=1e-5, atol=1e-6)
    assert out.state.normalizer.rewards.discounted_return.shape == (3, 2)


def test_normalization_off_leaves_default_training_unchanged():
    base = dict(env_name="CartPole-v1", num_envs=2, num_steps=8, total_timesteps=32, num_minibatches=2)
    key = jax.random.PRNGKey(3)
    out = jax.jit(pjp.make_train(pjp.PPOConfig(**base)))(key)
    assert float(out.state.normalizer.obs.count) == 0.0  # stats untouched when the switch is off


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
    entropy = tanh.distribution(tanh.policy(params["actor"], jnp.zeros((4, 3)))).entropy()
    assert entropy.shape == (4,) and np.isfinite(entropy).all()


def test_action_squash_is_validated():
    with pytest.raises(pjp.ConfigError, match="action_squash"):
        pjp.PPOConfig(action_squash="sigmoid")
