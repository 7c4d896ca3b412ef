"""The POPGym Arcade adapter (``popgym_arcade/<id>``): names and options, pixel spaces, vmapped stepping,
terminated vs truncated from each game's own ``done``, auto-reset, gymnax 1.0 compatibility, check_env."""

import pytest

pytest.importorskip("popgym_arcade")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from helpers import fast_jit, random_steps_match_spec  # noqa: E402

from purejaxrl_ppo.core.envs import ActionSpace, check_env_name, make_env  # noqa: E402
from purejaxrl_ppo.core.envs.check import env_problems  # noqa: E402
from purejaxrl_ppo.core.envs.popgym_arcade_env import PopGymArcadeEnv, env_ids  # noqa: E402
from purejaxrl_ppo.core.envs.suites import SUITES, suite_env_names  # noqa: E402

# MineSweeper on a 4×4 board with 2 mines: actions 0 up, 1 down, 2 left, 3 right move the cursor, 4 reveals.
# Moving never ends an episode, so the 32-step limit truncates it.
MINES = "popgym_arcade/MineSweeperEasy"
UP, DOWN, LEFT, RIGHT, REVEAL = range(5)
NUM_ENVS = 4


def test_names_list_every_game_and_unknown_names_say_what_exists():
    games = ("CartPole", "NoisyCartPole", "CountRecall", "BattleShip", "MineSweeper", "Navigator", "AutoEncode",
             "Skittles", "Breakout", "Tetris")
    assert set(env_ids()) == {game + level for game in games for level in ("Easy", "Medium", "Hard")}
    arcade = next(suite for suite in SUITES if suite.prefix == "popgym_arcade/")
    assert "popgym_arcade/TetrisHard" in suite_env_names(arcade)
    with pytest.raises(ValueError, match="did you mean 'popgym_arcade/MineSweeperEasy'") as err:
        check_env_name("popgym_arcade/MinesweeperEasy")
    assert "\n" not in str(err.value) and "popgym_arcade/CountRecallHard" in str(err.value)
    with pytest.raises(ValueError, match="unknown option"):
        check_env_name("popgym_arcade/CartPoleEasy?max_steps=10")


@pytest.mark.parametrize(
    "options, shape",
    [({}, (128, 128, 3)), ({"obs_size": "256"}, (256, 256, 3)), ({"partial": "true"}, (128, 128, 3))],
)
def test_options_give_uint8_frames_and_five_actions(options, shape):
    env = PopGymArcadeEnv.make("MineSweeperEasy", options)
    assert env.observation_spec == jax.ShapeDtypeStruct(shape, jnp.uint8) and env.observation_shape is None
    assert env.action_space == ActionSpace(discrete=True, num_actions=5)
    assert env.env.partial_obs == (options.get("partial") == "true") and env.max_episode_steps == 33


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
def test_autoencode_gets_its_confirm_action_and_episode_limits_follow_each_game():
    # AutoEncode's action_space() says 4, but its action 4 confirms a card (and its baselines use 5 actions).
    assert PopGymArcadeEnv.make("AutoEncodeEasy", {}).action_space.num_actions == 5
    # CartPole and AutoEncode check their time limit on the state before the step: one step more.
    limits = {"CartPoleEasy": 201, "AutoEncodeEasy": 261, "BattleShipEasy": 128, "NavigatorEasy": 64,
              "SkittlesEasy": 100, "BreakoutEasy": 2000, "TetrisEasy": 3000}
    assert {name: PopGymArcadeEnv.make(name, {}).max_episode_steps for name in limits} == limits


@pytest.mark.parametrize(
    "options, match",
    [({"partial": "maybe"}, "partial must be true or false"), ({"obs_size": "64"}, "obs_size must be one of 128, 256")],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        PopGymArcadeEnv.make("MineSweeperEasy", options)


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(120)
def test_jit_vmap_reset_and_step_match_the_spec():
    # SkittlesEasy: dodge falling blocks, episodes end within ~10-30 steps
    obs, results = random_steps_match_spec(make_env("popgym_arcade/SkittlesEasy"), NUM_ENVS)
    assert obs.shape == (NUM_ENVS, 128, 128, 3) and obs.dtype == jnp.uint8
    assert not any(bool(r.truncated.any()) for r in results)  # the limit is 100 steps
    assert sum(int(r.terminated.sum()) for r in results) > 0


def _mine_and_cursor(state):
    """(x, y) of a mine and of the cursor in MineSweeper's state."""
    mine = np.argwhere(np.asarray(state.mine_grid) == 1)[0]
    return (int(mine[0]), int(mine[1])), (int(state.action_x), int(state.action_y))


@pytest.mark.timeout(120)
def test_time_limit_truncates_a_mine_terminates_and_step_auto_resets():
    env = make_env(MINES)
    step, reset = jax.jit(env.step), jax.jit(env.reset)
    _, state = reset(jax.random.PRNGKey(0))
    # Moving right (to the last column, where no episode starts): truncated at the 32nd step, never terminated.
    for t in range(32):
        key = jax.random.PRNGKey(t)
        result = step(key, state, jnp.int32(RIGHT))
        state = result.state
        assert bool(result.truncated) == (t == 31) and not bool(result.terminated)
        assert float(result.reward) == 0.0
    # obs is the next episode's first, drawn from the step key's reset half; final_obs the ended one's last.
    np.testing.assert_array_equal(result.obs, reset(jax.random.split(key)[1])[0])
    assert not np.array_equal(result.obs, result.final_obs)
    assert int(result.info["episode_length"]) == 32
    # Walk to a mine and reveal it: terminated (MineSweeper gives no reward for it).
    (mx, my), (x, y) = _mine_and_cursor(state.env_state)
    moves = [RIGHT if mx > x else LEFT] * abs(mx - x) + [DOWN if my > y else UP] * abs(my - y) + [REVEAL]
    for t, action in enumerate(moves):
        result = step(jax.random.PRNGKey(100 + t), state, jnp.int32(action))
        state = result.state
        assert bool(result.terminated) == (action == REVEAL) and not bool(result.truncated)
    assert float(result.reward) == 0.0 and int(result.info["episode_length"]) == len(moves)
    assert np.asarray(result.final_obs).any() and not np.array_equal(result.obs, result.final_obs)


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(180)
def test_cartpole_steps_under_gymnax_1_and_truncates_one_step_after_its_limit():
    # CartPole's step_env calls discount(), which gymnax 1.0 routes to an is_terminated it does not define;
    # its done checks the time limit on the state before the step, so the 200-step limit ends step 201.
    env = make_env("popgym_arcade/CartPoleEasy")

    def run(key):
        _, state = env.reset(key)

        def body(state, key):
            game = state.env_state  # a balancing controller reads the physics state
            action = jnp.where(game.theta + 0.5 * game.theta_dot > 0, 3, 2)
            result = env.step(key, state, action)
            return result.state, (result.terminated, result.truncated, result.reward)

        return jax.lax.scan(body, state, jax.random.split(key, 202))[1]

    terminated, truncated, reward = (np.asarray(x) for x in fast_jit(run)(jax.random.PRNGKey(0)))
    assert not terminated.any() and np.flatnonzero(truncated).tolist() == [200]
    np.testing.assert_allclose(reward[:200], 1 / 200)
    assert reward[200] == 0.0  # the extra step, taken from a state at the limit, earns nothing


@pytest.mark.timeout(120)
def test_check_env_passes():
    assert env_problems(make_env(MINES), num_envs=2, num_steps=36) == []
