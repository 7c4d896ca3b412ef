"""Running observation statistics and reward scaling (core/normalization.py), against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import leaves_equal
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
    default = pjp.PPOConfig(**base)
    off = pjp.PPOConfig(**base, normalize_observations=False, scale_rewards=False)
    assert not default.normalize_observations and not default.scale_rewards  # off is the default
    out = jax.jit(pjp.make_train(off))(key)
    reference = jax.jit(pjp.make_train(default))(key)
    assert float(out.state.normalizer.obs.count) == 0.0  # stats untouched when the switch is off
    assert set(out.metrics) == set(reference.metrics)
    for name in reference.metrics:  # the switches explicitly off: the default run, bit for bit
        np.testing.assert_array_equal(np.asarray(out.metrics[name]), np.asarray(reference.metrics[name]), err_msg=name)
    leaves_equal(out.state, reference.state)
