"""The gymnax adapter behind ``make_env`` (core/envs/): spaces, auto-reset, truncation, statistics, clipping."""

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import env_rollout, fast_jit

# gymnax Pendulum-v1 constants (EnvParams defaults), for the numpy dynamics below
G, M, L, DT, MAX_SPEED, MAX_TORQUE = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0


def pendulum_numpy_step(obs, u):
    """Independent numpy Pendulum step from the observation [cos θ, sin θ, θ̇]: (next obs, reward)."""
    cos, sin, thdot = (float(x) for x in obs)
    th = np.arctan2(sin, cos)  # already in [-π, π]: the normalised angle
    u = float(np.clip(u, -MAX_TORQUE, MAX_TORQUE))
    reward = -(th**2 + 0.1 * thdot**2 + 0.001 * u**2)
    new_thdot = np.clip(thdot + (3 * G / (2 * L) * np.sin(th) + 3.0 / (M * L**2) * u) * DT, -MAX_SPEED, MAX_SPEED)
    new_th = th + new_thdot * DT
    return np.array([np.cos(new_th), np.sin(new_th), new_thdot]), reward


# ----------------------------------------------------------------------------- registry and spaces
def test_registered_env_names():
    names = pjp.registered_env_names()
    assert "CartPole-v1" in names and "Pendulum-v1" in names and "Breakout-MinAtar" in names
    with pytest.raises(ValueError, match="CartPole-v1"):
        pjp.make_env("NoSuchEnv-v0")


def test_cartpole_spaces():
    env = pjp.make_env("CartPole-v1")
    assert env.observation_shape == (4,)
    assert env.action_space.discrete is True
    assert env.action_space.num_actions == 2
    assert env.action_space.action_dim == 2


def test_pendulum_spaces():
    env = pjp.make_env("Pendulum-v1")
    space = env.action_space
    assert env.observation_shape == (3,)
    assert space.discrete is False
    assert space.shape == (1,)
    assert space.low == (-2.0,) and space.high == (2.0,)
    assert space.action_dim == 1


def test_minatar_breakout_reset_and_step():
    env = pjp.make_env("Breakout-MinAtar")
    assert env.observation_shape == (10, 10, 4)
    assert env.action_space.discrete is True
    assert env.action_space.num_actions == 3
    obs0, results = env_rollout(env, jax.random.PRNGKey(0), jnp.array([0, 1, 2], jnp.int32))
    assert obs0.shape == (10, 10, 4) and obs0.dtype == jnp.float32
    assert results.obs.shape == (3, 10, 10, 4) and results.final_obs.shape == (3, 10, 10, 4)
    assert results.reward.shape == (3,) and results.reward.dtype == jnp.float32
    assert results.terminated.dtype == jnp.bool_ and results.truncated.dtype == jnp.bool_


# ----------------------------------------------------------------------------- truncation at the time limit
@pytest.fixture(scope="module")
def pendulum_episode():
    env = pjp.make_env("Pendulum-v1")
    actions = jnp.asarray(np.linspace(-1.5, 1.5, 205).reshape(205, 1), jnp.float32)
    obs0, results = env_rollout(env, jax.random.PRNGKey(3), actions)
    return np.asarray(actions), np.asarray(obs0), jax.tree_util.tree_map(np.asarray, results)


def test_pendulum_truncates_at_200_without_terminating(pendulum_episode):
    _, _, r = pendulum_episode
    assert not r.terminated.any()
    assert r.truncated[199]  # the 200th step
    assert not r.truncated[:199].any() and not r.truncated[200:].any()


def test_final_obs_is_true_next_obs_and_obs_is_reset(pendulum_episode):
    actions, obs0, r = pendulum_episode
    # before the end, final_obs is just the next observation
    np.testing.assert_array_equal(r.final_obs[:199], r.obs[:199])
    # at the truncation step the returned obs is a fresh reset, final_obs the true last state
    assert np.abs(r.final_obs[199] - r.obs[199]).max() > 1e-3
    expected_final, _ = pendulum_numpy_step(r.obs[198], actions[199, 0])
    np.testing.assert_allclose(r.final_obs[199], expected_final, atol=1e-4)
    # and the dynamics continue from the reset obs afterwards
    expected_next, _ = pendulum_numpy_step(r.obs[199], actions[200, 0])
    np.testing.assert_allclose(r.obs[200], expected_next, atol=1e-4)


def test_pendulum_rewards_match_numpy_dynamics(pendulum_episode):
    actions, obs0, r = pendulum_episode
    prev = np.concatenate([obs0[None], r.obs[:-1]])
    for t in (0, 50, 198, 199, 200):
        _, reward = pendulum_numpy_step(prev[t], actions[t, 0])
        assert r.reward[t] == pytest.approx(reward, rel=1e-4, abs=1e-4)


def test_episode_statistics_on_truncation(pendulum_episode):
    _, _, r = pendulum_episode
    info = r.info
    assert info["episode_done"][199] and info["episode_done"].sum() == 1
    assert int(info["episode_length"][199]) == 200
    my_return = float(np.sum(r.reward[:200].astype(np.float64)))
    assert float(info["episode_return"][199]) == pytest.approx(my_return, rel=1e-5)
    # zero where no episode ended
    assert not np.any(info["episode_length"][:199]) and not np.any(info["episode_return"][:199])
    assert not np.any(info["episode_length"][200:])


# ----------------------------------------------------------------------------- termination
def test_cartpole_termination():
    env = pjp.make_env("CartPole-v1")
    # always push right: the pole falls well before the 500-step limit
    _, r = env_rollout(env, jax.random.PRNGKey(0), jnp.ones(100, jnp.int32))
    r = jax.tree_util.tree_map(np.asarray, r)
    assert r.terminated.any()
    t = int(np.argmax(r.terminated))
    assert not r.truncated[: t + 1].any()
    assert r.info["episode_done"][t] and int(r.info["episode_length"][t]) == t + 1
    assert float(r.info["episode_return"][t]) == pytest.approx(float(r.reward[: t + 1].sum()))
    # the terminal state is out of bounds (|x| > 2.4 or |θ| > 12°), the reset obs is near zero
    x, theta = r.final_obs[t, 0], r.final_obs[t, 2]
    assert abs(x) > 2.4 or abs(theta) > 12 * 2 * np.pi / 360
    assert np.abs(r.obs[t]).max() <= 0.05


# ----------------------------------------------------------------------------- action clipping
def _one_step(env, action):
    key = jax.random.PRNGKey(11)
    obs, state = env.reset(key)
    result = env.step(jax.random.PRNGKey(12), state, jnp.asarray(action, jnp.float32))
    return obs, result


def test_pendulum_actions_are_clipped():
    env = pjp.make_env("Pendulum-v1")
    step = fast_jit(lambda a: _one_step(env, a))
    obs, big = step(jnp.array([100.0]))
    _, edge = step(jnp.array([2.0]))
    _, inside = step(jnp.array([1.0]))
    for a, b in zip(jax.tree_util.tree_leaves(big), jax.tree_util.tree_leaves(edge)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(big.reward) != float(inside.reward)  # the action does matter
    _, neg = step(jnp.array([-100.0]))
    _, neg_edge = step(jnp.array([-2.0]))
    np.testing.assert_array_equal(np.asarray(neg.obs), np.asarray(neg_edge.obs))
    assert float(neg.reward) == float(neg_edge.reward)


def test_mountain_car_continuous_reward_sees_clipped_action():
    # gymnax's MountainCarContinuous charges -0.1 a² on the *unclipped* action, so only the
    # adapter's clipping makes action 100 cost the same as the bound 1.0
    env = pjp.make_env("MountainCarContinuous-v0")
    assert env.action_space.low == (-1.0,) and env.action_space.high == (1.0,)
    step = fast_jit(lambda a: _one_step(env, a))
    _, big = step(jnp.array([100.0]))
    _, edge = step(jnp.array([1.0]))
    assert float(big.reward) == pytest.approx(float(edge.reward))
    np.testing.assert_array_equal(np.asarray(big.obs), np.asarray(edge.obs))
    # sanity: the raw gymnax env would not (the check above can fail)
    raw, params = gymnax.make("MountainCarContinuous-v0")
    _, state = raw.reset(jax.random.PRNGKey(11), params)
    raw_reward = raw.step(jax.random.PRNGKey(12), state, jnp.array([100.0]), params)[2]
    assert float(raw_reward) < -100.0


def test_env_first_built_inside_a_trace_holds_no_tracers():
    """make_env is cached: building it first under jit must not cache traced arrays."""
    import jax

    from purejaxrl_ppo.core.envs import make_env as cached_make_env

    cached_make_env.cache_clear()
    jax.jit(lambda: cached_make_env("Acrobot-v1").reset(jax.random.PRNGKey(0))[0])()
    env = cached_make_env("Acrobot-v1")
    for leaf in jax.tree_util.tree_leaves(env.env.params):
        assert not isinstance(leaf, jax.core.Tracer)
    jax.jit(lambda k: env.reset(k)[0])(jax.random.PRNGKey(1))  # a second trace works
