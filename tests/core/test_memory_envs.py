"""Partially observed tasks (core/envs/masked.py): ``?mask=velocity`` names and MemoryChain-bsuite."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import env_rollout
from purejaxrl_ppo.core.envs.masked import MASKS, ObservationMask


# ----------------------------------------------------------------------------- names
def test_masked_names_are_registered_and_built():
    names = pjp.registered_env_names()
    assert "CartPole-v1?mask=velocity" in names and "Pendulum-v1?mask=velocity" in names
    cartpole = pjp.make_env("CartPole-v1?mask=velocity")
    assert cartpole.observation_shape == (2,)
    assert cartpole.action_space == pjp.make_env("CartPole-v1").action_space
    pendulum = pjp.make_env("Pendulum-v1?mask=velocity")
    assert pendulum.observation_shape == (2,)
    assert pendulum.max_episode_steps == pjp.make_env("Pendulum-v1").max_episode_steps == 200


def test_a_config_accepts_a_masked_name():
    config = pjp.PPOConfig(env_name="CartPole-v1?mask=velocity")
    assert config.env_name == "CartPole-v1?mask=velocity"


@pytest.mark.parametrize(
    "name, message",
    [
        ("Acrobot-v1?mask=velocity", "no observation mask for 'Acrobot-v1'.*CartPole-v1\\?mask=velocity"),
        ("CartPole-v1?mask=position", "mask must be one of \\['velocity'\\]"),
        ("CartPole-v1?", "mask must be one of \\['velocity'\\]"),
        ("CartPole-v1?mask=velocity&noise=1", "unknown option.*noise.*valid options: mask"),
        ("CartPole-v1?mask", "cannot parse"),
    ],
)
def test_bad_masked_names_are_refused_with_the_valid_choices(name, message):
    with pytest.raises(ValueError, match=message):
        pjp.make_env(name)
    with pytest.raises(pjp.ConfigError, match="env_name: " + message):
        pjp.PPOConfig(env_name=name)


def test_observation_mask_checks_its_indices():
    with pytest.raises(ValueError, match="indices"):
        ObservationMask(pjp.make_env("CartPole-v1"), (0, 4))


# ----------------------------------------------------------------------------- masked == unmasked[keep]
@pytest.mark.parametrize(
    "base, action, steps",
    [("CartPole-v1", jnp.int32(1), 24), ("Pendulum-v1", jnp.array([0.5]), 202)],
)
def test_masked_env_is_the_unmasked_env_seen_through_the_mask(base, action, steps):
    """Same key and actions: obs and final_obs are the kept entries; rewards, ends and statistics are equal."""
    keep = np.asarray(MASKS["velocity"][base])
    actions = jnp.broadcast_to(action, (steps, *action.shape))
    key = jax.random.PRNGKey(7)
    obs0, full = env_rollout(pjp.make_env(base), key, actions)
    masked_obs0, masked = env_rollout(pjp.make_env(f"{base}?mask=velocity"), key, actions)
    np.testing.assert_array_equal(masked_obs0, np.asarray(obs0)[keep])
    np.testing.assert_array_equal(masked.obs, np.asarray(full.obs)[:, keep])
    np.testing.assert_array_equal(masked.final_obs, np.asarray(full.final_obs)[:, keep])
    for field in ("reward", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(masked, field), getattr(full, field), err_msg=field)
    for name in full.info:
        np.testing.assert_array_equal(masked.info[name], full.info[name], err_msg=name)
    # an episode ends inside the rollout (CartPole: constant pushes terminate it; Pendulum: the 200-step
    # time limit truncates it), where final_obs is the true last observation, not the reset one
    ended = np.asarray(full.terminated | full.truncated)
    assert ended.any()
    assert not np.allclose(masked.final_obs[ended], masked.obs[ended])


# ----------------------------------------------------------------------------- MemoryChain-bsuite
def test_memory_chain_shows_the_context_first_and_rewards_recall_at_the_end():
    env = pjp.make_env("MemoryChain-bsuite")
    assert env.observation_shape == (3,) and env.action_space.num_actions == 2
    obs0, results = env_rollout(env, jax.random.PRNGKey(3), jnp.ones((8,), jnp.int32))
    context = float(obs0[2])  # ±1 at the reset observation
    assert context in (-1.0, 1.0) and float(obs0[0]) == 1.0
    np.testing.assert_array_equal(results.obs[1:5, 2], 0.0)  # hidden in between
    done = np.asarray(results.terminated)
    np.testing.assert_array_equal(done, np.arange(8) == 5)  # memory_length 5: six steps
    assert not np.asarray(results.truncated).any()
    reward = np.asarray(results.reward)
    np.testing.assert_array_equal(reward[:5], 0.0)
    assert reward[5] == (1.0 if context == 1.0 else -1.0)  # action 1 recalls context bit 1
    assert results.info["episode_length"][5] == 6 and results.info["episode_return"][5] == reward[5]


def test_a_masked_env_trains():
    config = pjp.PPOConfig(
        env_name="CartPole-v1?mask=velocity", num_envs=2, num_steps=8, total_timesteps=2 * 8 * 2, hidden_sizes=(8,)
    )
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    assert out.metrics["env_steps"].shape == (2,)
    assert np.isfinite(np.asarray(out.metrics["value_loss"])).all()
