"""The Brax adapter: names and options, spaces, truncation at the episode limit, bootstrapping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.envs import BraxEnv, parse_brax_name
from purejaxrl_ppo.core.networks import value_on_transitions
from purejaxrl_ppo.core.rollout import bootstrap_values, collect, reset_envs

# A short time limit so a few steps cross it.
NAME = "brax/inverted_pendulum?episode_length=6&action_repeat=2"


def test_parse_names_and_options():
    spec = parse_brax_name("brax/hopper")
    assert (spec.env_id, spec.backend, spec.episode_length, spec.action_repeat) == ("hopper", "generalized", 1000, 1)
    spec = parse_brax_name("brax/ant?backend=mjx&action_repeat=3")
    assert (spec.backend, spec.action_repeat) == ("mjx", 3)
    assert "brax/ant" in pjp.registered_env_names() and "CartPole-v1" in pjp.registered_env_names()


@pytest.mark.heavy  # building an mjx or generalized system takes 15-40 s of CPU here
@pytest.mark.parametrize("backend", ["mjx", "generalized", "positional", "spring"])
def test_every_backend_builds(backend):
    env = pjp.make_env(f"brax/inverted_pendulum?backend={backend}")
    assert env.env.spec.backend == backend and env.observation_shape == (4,)


@pytest.mark.parametrize(
    "name, match",
    [
        ("brax/nosuchenv", "unknown Brax environment"),
        ("brax/ant?backend=bullet", "backend must be one of"),
        ("brax/ant?episode_length=0", "episode_length must be a positive integer"),
        ("brax/ant?speed=2", "unknown option"),
    ],
)
def test_bad_names_raise_config_errors(name, match):
    with pytest.raises(pjp.ConfigError, match=match):
        pjp.PPOConfig(env_name=name)


@pytest.mark.slow  # compiling Brax physics takes minutes on a loaded 2-core CPU
def test_truncation_at_the_episode_limit_bootstraps_from_the_final_obs():
    env = pjp.make_env(NAME)
    assert isinstance(env.env, BraxEnv) and env.max_episode_steps == 3
    assert env.observation_shape == (4,) and env.action_space.low == (-1.0,)
    config = pjp.PPOConfig(env_name=NAME, num_envs=3, num_steps=8, total_timesteps=24, num_minibatches=1)
    network = pjp.make_network(config, env.action_space, env.observation_shape)
    params = network.init(jax.random.PRNGKey(0))
    # A zero-mean, tiny-std policy keeps the pole up for 3 agent steps: every episode is truncated.
    params["actor"] = jax.tree_util.tree_map(jnp.zeros_like, params["actor"])
    params["actor"]["params"]["log_std"] = jnp.full((1,), -10.0)

    def run(key):
        runner = reset_envs(env, network, key, config.num_envs)
        _, traj = collect(env, network, params, runner, jax.random.PRNGKey(1), config.num_steps)
        return traj, bootstrap_values(network, params, traj)

    traj, next_values = jax.jit(run)(jax.random.PRNGKey(2))
    truncated = np.asarray(traj.done & ~traj.terminated)
    np.testing.assert_array_equal(truncated[:, 0], [0, 0, 1, 0, 0, 1, 0, 0])  # every 3rd agent step
    assert not np.asarray(traj.terminated).any()
    np.testing.assert_array_equal(traj.info["episode_length"][2], [3, 3, 3])
    np.testing.assert_allclose(traj.reward, 2.0)  # action_repeat 2 sums two rewards of 1
    # The step after a truncation starts a new episode; the final obs is the old episode's.
    obs, final = np.asarray(traj.obs), np.asarray(traj.final_obs)
    assert np.abs(obs[3]).max() < 0.011  # fresh reset noise is ±0.01
    assert not np.allclose(final[2], obs[3])
    np.testing.assert_allclose(final[:2], obs[1:3], rtol=1e-6)  # within an episode final_obs = next obs
    critic_final = value_on_transitions(network, params, traj.final_obs[2])
    np.testing.assert_allclose(next_values[2], critic_final, rtol=1e-6)
    # GAE: the truncated step bootstraps from V(final_obs), not from the next episode's first obs.
    adv, _ = pjp.gae(traj.reward, traj.value, next_values, traj.terminated, traj.done, 0.9, 0.95)
    expected = traj.reward[2] + 0.9 * critic_final - traj.value[2]
    np.testing.assert_allclose(adv[2], expected, rtol=1e-5, atol=1e-6)
