"""The MuJoCo Playground adapter (``playground/<env>``): names and options, spaces, vmapped stepping,
truncation at the episode limit with auto-reset, dict observations, check_env."""

import pytest

pytest.importorskip("mujoco_playground")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import struct  # noqa: E402
from helpers import fast_jit  # noqa: E402

from purejaxrl_ppo.core.envs import ActionSpace, check_env_name, make_env, observation_spec  # noqa: E402
from purejaxrl_ppo.core.envs.check import env_problems  # noqa: E402
from purejaxrl_ppo.core.envs.playground_env import PlaygroundEnv, PlaygroundSpec, env_ids, parse_options  # noqa: E402
from purejaxrl_ppo.core.envs.suites import SUITES, suite_env_names  # noqa: E402

# Cartpole balancing: 6 env steps with each action repeated twice, so 3 agent steps per episode.
SHORT = "playground/CartpoleBalance?episode_length=6&action_repeat=2"
NUM_ENVS = 4


def test_names_list_the_dm_control_suite_and_unknown_names_say_what_exists():
    assert {"CartpoleBalance", "PendulumSwingup", "CheetahRun", "HumanoidWalk"} <= set(env_ids())
    assert len(env_ids()) == 25 and "Go1JoystickFlatTerrain" not in env_ids()  # menagerie envs are not listed
    playground = next(suite for suite in SUITES if suite.prefix == "playground/")
    assert "playground/WalkerWalk" in suite_env_names(playground)
    with pytest.raises(ValueError, match="did you mean 'playground/CartpoleBalance'") as err:
        check_env_name("playground/CartpoleBalanse")
    assert "\n" not in str(err.value) and "playground/PendulumSwingup" in str(err.value)
    with pytest.raises(ValueError, match="unknown playground environment 'Go1JoystickFlatTerrain'"):
        check_env_name("playground/Go1JoystickFlatTerrain")
    with pytest.raises(ValueError, match="unknown option"):
        check_env_name("playground/CartpoleBalance?impl=warp")


def test_options_default_to_the_env_config():
    assert parse_options("CheetahRun", {}) == PlaygroundSpec("CheetahRun", 1000, 1)
    spec = parse_options("CheetahRun", {"episode_length": "500", "action_repeat": "2"})
    assert spec == PlaygroundSpec("CheetahRun", 500, 2)


@pytest.mark.parametrize(
    "options, match",
    [({"episode_length": "0"}, "episode_length must be a positive integer"),
     ({"action_repeat": "two"}, "action_repeat must be a positive integer")],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        parse_options("CartpoleBalance", options)


@pytest.fixture(scope="module")
def short_env():
    """SHORT with its reset and step compiled once for NUM_ENVS envs (MJX compiles for tens of seconds here)."""
    env = make_env(SHORT)
    return env, fast_jit(jax.vmap(env.reset)), fast_jit(jax.vmap(env.step))


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(240)
def test_spaces_and_jit_vmap_steps_match_the_spec(short_env):
    env, reset, step = short_env
    spec = observation_spec(env)
    assert spec == jax.ShapeDtypeStruct((5,), jnp.float32) and env.observation_shape == (5,)
    assert env.action_space == ActionSpace(discrete=False, shape=(1,), low=(-1.0,), high=(1.0,))
    assert env.max_episode_steps == 3 and make_env("playground/CartpoleBalance").max_episode_steps == 1000
    obs, state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    assert obs.shape == (NUM_ENVS, 5) and obs.dtype == jnp.float32
    for t in range(20):
        keys = jax.random.split(jax.random.PRNGKey(t + 1), NUM_ENVS + 1)
        actions = jax.random.uniform(keys[0], (NUM_ENVS, 1), minval=-2.0, maxval=2.0)  # clipped to [-1, 1]
        result = step(keys[1:], state, actions)
        state = result.state
        for leaf in (result.obs, result.final_obs):
            assert leaf.shape == (NUM_ENVS, 5) and leaf.dtype == jnp.float32
        assert result.reward.shape == (NUM_ENVS,) and result.reward.dtype == jnp.float32
        assert result.terminated.dtype == jnp.bool_ and result.truncated.dtype == jnp.bool_
        assert np.isfinite(np.asarray(result.obs)).all()


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(240)
def test_episode_limit_truncates_and_step_auto_resets_from_its_key(short_env):
    env, reset, step = short_env
    obs, state = reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))
    zeros = jnp.zeros((NUM_ENVS, 1))
    for t in range(7):
        keys = jax.random.split(jax.random.PRNGKey(100 + t), NUM_ENVS)
        result = step(keys, state, zeros)
        state = result.state
        ended = t in (2, 5)  # every 3rd agent step
        assert (np.asarray(result.truncated) == ended).all() and not np.asarray(result.terminated).any()
        # Two env steps per action: two rewards of at most 1 each (the pole stays up).
        assert ((np.asarray(result.reward) > 1.9) & (np.asarray(result.reward) <= 2.0)).all()
        if ended:
            # obs is a fresh episode drawn from the step's key; final_obs is the ended episode's last.
            np.testing.assert_array_equal(result.obs, reset(keys)[0])
            assert not np.allclose(result.obs, result.final_obs)
            np.testing.assert_array_equal(result.info["episode_length"], 3)
        else:
            np.testing.assert_array_equal(result.obs, result.final_obs)


# ----------------------------------------------------------------------------- dict observations
@struct.dataclass
class _State:
    obs: dict
    reward: jax.Array
    done: jax.Array


class DictObsEnv:
    """A Playground-shaped env whose observation is a dict, as the locomotion envs' ``{"state",
    "privileged_state"}`` (those need mujoco_menagerie): a point at ``x`` moves by ``0.4 * action`` each step,
    reward 1, done (terminal) once ``|x| > 1``; ``privileged_state`` is int32, to be cast."""

    action_size = 2

    def _obs(self, x, steps):
        return {"state": x, "privileged_state": jnp.stack([steps, steps, steps]).astype(jnp.int32)}

    def reset(self, rng):
        x = jax.random.uniform(rng, (2,), minval=-0.1, maxval=0.1)
        return _State(self._obs(x, jnp.int32(0)), jnp.float32(0.0), jnp.float32(0.0))

    def step(self, state, action):
        x = state.obs["state"] + 0.4 * action
        steps = state.obs["privileged_state"][0] + 1
        return _State(self._obs(x, steps), jnp.float32(1.0), (jnp.abs(x).max() > 1.0).astype(jnp.float32))


def test_dict_observations_keep_their_keys_as_float32_and_ends_split_into_terminated_and_truncated():
    env = PlaygroundEnv.wrap(PlaygroundSpec("DictObs", episode_length=4, action_repeat=1), DictObsEnv())
    assert env.observation_spec == {"state": jax.ShapeDtypeStruct((2,), jnp.float32),
                                    "privileged_state": jax.ShapeDtypeStruct((3,), jnp.float32)}
    assert env.observation_shape is None and env.max_episode_steps == 4
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    for t in range(4):  # standing still: truncated at the 4th step
        result = step(jax.random.PRNGKey(t), state, jnp.zeros(2))
        state = result.state
        assert bool(result.truncated) == (t == 3) and not bool(result.terminated)
    assert result.final_obs["privileged_state"].tolist() == [4.0, 4.0, 4.0]
    assert result.obs["privileged_state"].tolist() == [0.0, 0.0, 0.0]
    for t in range(3):  # moving by 0.4 (actions clipped to 1): |x| > 1 at the 3rd step, terminated
        result = step(jax.random.PRNGKey(10 + t), state, jnp.full(2, 5.0))
        state = result.state
        assert bool(result.terminated) == (t == 2) and not bool(result.truncated)
    assert float(result.final_obs["state"].max()) > 1.0 and float(jnp.abs(result.obs["state"]).max()) <= 0.1
    assert env_problems(env, num_envs=2, num_steps=8) == []


# heavy (make test-all): compiles MJX reset and step twice, vmapped: 35 s of make test's 12-minute budget
@pytest.mark.heavy
@pytest.mark.timeout(300)  # 31 s here, 100 s on a loaded CPU
def test_check_env_passes():
    assert env_problems(make_env(SHORT), num_envs=2, num_steps=8) == []
