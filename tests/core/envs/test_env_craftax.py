"""The Craftax adapter: names, spaces, pixels as uint8, auto-reset, death = terminated, time limit = truncated.

Craftax compiles slowly on CPU (measured on the 2-core VM, 2-4 envs: Classic-Symbolic ~25 s,
Classic-Pixels ~45 s, Craftax-Symbolic ~90 s, Craftax-Pixels ~120 s), so the default tests use
Classic-Symbolic with one compiled reset and one compiled step, and the full game is marked slow.
"""

import pytest

pytest.importorskip("craftax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from helpers import fast_jit  # noqa: E402

import purejaxrl_ppo as pjp  # noqa: E402
from purejaxrl_ppo.core.envs import make_env  # noqa: E402
from purejaxrl_ppo.core.envs.craftax_env import CraftaxEnv, env_ids  # noqa: E402

NAME = "craftax/Craftax-Classic-Symbolic-v1?max_timesteps=3"
NUM_ENVS = 4


def test_names_and_errors():
    assert env_ids() == ("Craftax-Classic-Pixels-v1", "Craftax-Classic-Symbolic-v1", "Craftax-Pixels-v1",
                         "Craftax-Symbolic-v1")
    assert "craftax/Craftax-Classic-Symbolic-v1" in pjp.registered_env_names()
    with pytest.raises(ValueError, match=r"did you mean 'craftax/Craftax-Classic-Symbolic-v1'\?\); known: craftax/"):
        make_env("craftax/Craftax-Clasic-Symbolic-v1")
    with pytest.raises(ValueError, match="unknown option"):
        make_env("craftax/Craftax-Classic-Symbolic-v1?episode_length=3")
    with pytest.raises(ValueError, match="max_timesteps must be a positive integer"):
        make_env("craftax/Craftax-Classic-Symbolic-v1?max_timesteps=0")


def test_spaces():
    classic = make_env("craftax/Craftax-Classic-Symbolic-v1")
    assert classic.observation_shape == (1345,) and classic.max_episode_steps == 10_000
    assert classic.observation_spec == jax.ShapeDtypeStruct((1345,), jnp.float32)
    assert classic.action_space.num_actions == 17 and not classic.action_space.masked
    full = make_env("craftax/Craftax-Symbolic-v1?max_timesteps=500")
    assert full.observation_shape == (8268,) and full.max_episode_steps == 500 and full.action_space.num_actions == 43


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(240)
def test_time_limit_truncates_death_terminates_and_step_resets():
    env = make_env(NAME).env
    assert isinstance(env, CraftaxEnv) and env.max_episode_steps == 3
    reset = fast_jit(jax.vmap(env.reset))
    step = fast_jit(jax.vmap(env.step))
    obs, state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    assert obs.dtype == jnp.float32 and obs.shape == (NUM_ENVS, 1345)
    key = jax.random.PRNGKey(1)
    truncated, terminated = [], []
    for t in range(7):
        key, act_key, step_key = jax.random.split(key, 3)
        actions = jax.random.randint(act_key, (NUM_ENVS,), 0, 17)
        result = step(jax.random.split(step_key, NUM_ENVS), state, actions)
        assert result.obs.dtype == result.final_obs.dtype == jnp.float32 and result.reward.dtype == jnp.float32
        done = np.asarray(result.truncated | result.terminated)
        np.testing.assert_array_equal(np.asarray(result.state.timestep), np.where(done, 0, t % 3 + 1))
        same = (np.asarray(result.obs) == np.asarray(result.final_obs)).all(axis=1)
        np.testing.assert_array_equal(same, ~done)  # a fresh world after an end, the same obs otherwise
        truncated.append(np.asarray(result.truncated))
        terminated.append(np.asarray(result.terminated))
        state = result.state
    truncated, terminated = np.array(truncated), np.array(terminated)
    assert not terminated.any()  # nobody dies from full health in 3 steps
    np.testing.assert_array_equal(truncated.all(axis=1), [False, False, True, False, False, True, False])
    assert not truncated[[0, 1, 3, 4, 6]].any()
    # A player at 0 health dies: terminated (not truncated), also on the step that hits the time limit.
    dying = state.replace(player_health=jnp.zeros_like(state.player_health),
                          player_recover=jnp.zeros_like(state.player_recover),
                          timestep=jnp.array([0, 0, 2, 2], state.timestep.dtype))
    result = step(jax.random.split(key, NUM_ENVS), dying, jnp.zeros(NUM_ENVS, jnp.int32))  # NOOP
    np.testing.assert_array_equal(result.terminated, True)
    np.testing.assert_array_equal(result.truncated, False)
    np.testing.assert_array_equal(result.state.timestep, 0)
    np.testing.assert_array_equal(result.state.player_health, 9)


@pytest.mark.heavy  # make test-all: Craftax's game logic compiles for ~30 s twice; names and spaces stay
@pytest.mark.timeout(300)
def test_check_env_classic_symbolic():
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env(NAME)) == []


@pytest.mark.heavy  # ~45 s of compilation (and a one-time texture build of ~45 s the first time Craftax runs)
@pytest.mark.timeout(600)
def test_classic_pixels_are_uint8_rounded_from_craftax_floats():
    env = make_env("craftax/Craftax-Classic-Pixels-v1?max_timesteps=3").env
    assert env.observation_shape is None and env.observation_spec == jax.ShapeDtypeStruct((63, 63, 3), jnp.uint8)

    def reset_and_floats(key):
        obs, state = env.reset(key)
        return obs, env.env.get_obs(state)

    obs, floats = fast_jit(jax.vmap(reset_and_floats))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert obs.dtype == jnp.uint8
    # Craftax's pixels are not all multiples of 1/255 (alpha blending, darkness): rounding is within half a level.
    error = np.abs(np.asarray(obs, np.float64) / 255.0 - np.asarray(floats, np.float64))
    assert error.max() <= 0.5 / 255 + 1e-6
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env("craftax/Craftax-Classic-Pixels-v1?max_timesteps=3"), num_envs=2, num_steps=8) == []


@pytest.mark.heavy  # Craftax (not Classic) compiles for ~90 s (Symbolic) and ~120 s (Pixels) on a 2-core CPU
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["Craftax-Symbolic-v1", "Craftax-Pixels-v1"])
def test_check_env_full_craftax(name):
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env(f"craftax/{name}?max_timesteps=3"), num_envs=2, num_steps=8) == []
