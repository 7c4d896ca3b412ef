"""The shared rollout: time-major shapes and bootstrapping from the true final observation."""

import jax
import numpy as np

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.networks import value_on_transitions
from purejaxrl_ppo.core.rollout import bootstrap_values, collect, reset_envs


def test_rollout_bootstraps_truncated_episodes_from_their_final_observation():
    env = pjp.make_env("Pendulum-v1")  # every episode is truncated at exactly 200 steps
    config = pjp.PPOConfig(env_name="Pendulum-v1", num_envs=3, num_steps=210, total_timesteps=630, num_minibatches=3)
    network = pjp.make_network(config, env.action_space, env.observation_shape)
    key = jax.random.PRNGKey(0)
    params = network.init(key)
    runner = reset_envs(env, network, key, config.num_envs)
    _, traj = jax.jit(lambda r: collect(env, network, params, r, key, config.num_steps))(runner)
    assert traj.obs.shape == (210, 3, 3) and traj.action.shape == (210, 3, 1) and traj.reward.shape == (210, 3)

    done = np.asarray(traj.done)
    np.testing.assert_array_equal(np.flatnonzero(done[:, 0]), [199])  # step 200 ends the episode
    assert not np.asarray(traj.terminated).any()
    obs, final_obs = np.asarray(traj.obs), np.asarray(traj.final_obs)
    # Where the episode goes on, the true next observation is the next step's observation ...
    np.testing.assert_array_equal(final_obs[:-1][~done[:-1]], obs[1:][~done[:-1]])
    # ... where it was truncated, it is the last state, not the next episode's first one.
    assert np.abs(final_obs[199] - obs[200]).min() > 0
    np.testing.assert_array_equal(np.asarray(traj.episode_start)[200], True)

    next_values = np.asarray(bootstrap_values(network, params, traj))
    values = np.asarray(traj.value)
    np.testing.assert_allclose(next_values[:-1][~done[:-1]], values[1:][~done[:-1]], rtol=1e-5, atol=1e-6)
    expected = np.asarray(value_on_transitions(network, params, traj.final_obs[199]))
    np.testing.assert_allclose(next_values[199], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(next_values[199] - values[200]).min() > 1e-6
