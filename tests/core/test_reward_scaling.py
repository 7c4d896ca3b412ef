"""Reward scaling's guards: the return std is floored and scaled rewards are clipped to ±10."""

import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.core.normalization import REWARD_CLIP, REWARD_STD_FLOOR, init_reward_scaler, scale_rewards


def test_zero_variance_returns_do_not_blow_rewards_up():
    # Every step ends an episode with reward 1: every discounted return is 1, their variance 0.
    # Dividing by sqrt(0 + 1e-8) used to multiply the rewards by 1e4.
    rewards = jnp.ones((8, 4))
    _, scaled = scale_rewards(init_reward_scaler(4), rewards, jnp.ones((8, 4), bool), 0.99)
    np.testing.assert_array_equal(np.asarray(scaled), np.full((8, 4), min(1.0 / REWARD_STD_FLOOR, REWARD_CLIP)))


def test_scaled_rewards_are_clipped_and_keep_their_sign():
    # 400 steps of tiny rewards, then one huge one: the return std (~35) leaves it at ~28, clipped to 10.
    rewards = np.full((400, 2), 0.01, np.float32) * np.array([1.0, -1.0], np.float32)
    rewards[-1] = [1000.0, -1000.0]
    dones = np.zeros((400, 2), bool)
    dones[::10] = True
    _, scaled = scale_rewards(init_reward_scaler(2), jnp.asarray(rewards), jnp.asarray(dones), 0.9)
    scaled = np.asarray(scaled)
    assert scaled[-1, 0] == REWARD_CLIP and scaled[-1, 1] == -REWARD_CLIP
    assert 0 < scaled[0, 0] < REWARD_CLIP and scaled[0, 1] == -scaled[0, 0]


def test_ordinary_rewards_are_only_divided_by_the_return_std():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(16, 3)).astype(np.float32)
    dones = rng.random((16, 3)) < 0.1
    scaler, scaled = scale_rewards(init_reward_scaler(3), jnp.asarray(rewards), jnp.asarray(dones), 0.99)
    returns, g = [], np.zeros(3)
    for t in range(16):  # the per-env discounted return, reset after an episode ends
        g = 0.99 * g + rewards[t]
        returns.append(g.copy())
        g = np.where(dones[t], 0.0, g)
    std = np.sqrt(np.var(np.asarray(returns)) + 1e-8)
    assert std > REWARD_STD_FLOOR
    np.testing.assert_allclose(np.asarray(scaled), np.clip(rewards / std, -10, 10), rtol=1e-5)
