"""The XLand-MiniGrid adapter (``xland/<id>``): names and options, spaces, vmapped stepping, auto-reset,
the benchmark download the XLand-MiniGrid-R* ids need, rulesets in the observation, check_env."""

import os

import pytest

pytest.importorskip("xminigrid")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from helpers import fast_jit, random_steps_match_spec, turn_then_goal  # noqa: E402

from purejaxrl_ppo.core.envs import ActionSpace, EnvBuildError, build_env, check_env_name, make_env  # noqa: E402
from purejaxrl_ppo.core.envs.suites import SUITES, make_suite_env, suite_env_names  # noqa: E402
from purejaxrl_ppo.core.envs.xland_env import XLandEnv, env_ids  # noqa: E402

# MiniGrid-Empty-5x5: the agent starts at (1, 1) facing right, the goal is at (3, 3); xminigrid's
# actions are 0 forward, 1 turn right, 2 turn left, 3 pick up, 4 put down, 5 toggle.
SHORT = "xland/MiniGrid-Empty-5x5?max_steps=6"
TO_GOAL = (0, 0, 1, 0, 0)  # forward, forward, turn right (down), forward, forward
TURN = 1


@pytest.fixture
def benchmark_dir(tmp_path, monkeypatch):
    """xminigrid's benchmark folder, empty: nothing from ~/.xland_minigrid is seen, nothing is downloaded."""
    benchmarks = pytest.importorskip("xminigrid.benchmarks")
    monkeypatch.setattr(benchmarks, "DATA_PATH", str(tmp_path))
    return tmp_path


def write_benchmark(folder) -> np.ndarray:
    """A two-ruleset stand-in for the 'trivial-21k' file, in xminigrid's format (its goals are returned):
    0 = hold the red ball; 1 = a rule turns a held red ball into a blue square, be next to the square."""
    from xminigrid.benchmarks import save_bz2_pickle
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentHoldGoal, AgentNearGoal
    from xminigrid.core.rules import AgentHoldRule, EmptyRule

    ball, square = TILES_REGISTRY[Tiles.BALL, Colors.RED], TILES_REGISTRY[Tiles.SQUARE, Colors.BLUE]
    empty_tile, empty_rule = TILES_REGISTRY[Tiles.EMPTY, Colors.EMPTY], EmptyRule().encode()
    goals = np.stack([AgentHoldGoal(tile=ball).encode(), AgentNearGoal(tile=square).encode()])
    rules = np.stack([np.stack([empty_rule, empty_rule]),
                      np.stack([AgentHoldRule(tile=ball, prod_tile=square).encode(), empty_rule])])
    tiles = np.stack([np.stack([ball, square]), np.stack([ball, empty_tile])])
    save_bz2_pickle({"goals": goals.astype(np.uint8), "rules": rules.astype(np.uint8),
                     "init_tiles": tiles.astype(np.uint8), "num_rules": np.array([[0], [1]], np.uint8)},
                    os.path.join(folder, "trivial_21k"))
    return goals


def test_names_list_and_unknown_names_say_what_exists():
    assert {"MiniGrid-Empty-5x5", "MiniGrid-DoorKey-8x8", "XLand-MiniGrid-R1-9x9"} <= set(env_ids())
    xland = next(suite for suite in SUITES if suite.prefix == "xland/")
    assert "xland/MiniGrid-Empty-5x5" in suite_env_names(xland)  # what registered_env_names lists
    with pytest.raises(ValueError, match="did you mean 'xland/MiniGrid-Empty-5x5'") as err:
        check_env_name("xland/MiniGrid-Empty5x5")
    assert "\n" not in str(err.value) and "xland/MiniGrid-FourRooms" in str(err.value)
    with pytest.raises(ValueError, match="unknown option"):
        check_env_name("xland/MiniGrid-Empty-5x5?size=3")


def test_xland_ids_without_the_benchmark_file_fail_in_one_line_saying_where_it_goes(benchmark_dir):
    with pytest.raises(EnvBuildError) as err:
        build_env("xland/XLand-MiniGrid-R1-9x9")
    message = str(err.value)
    assert "\n" not in message and "benchmark 'trivial-21k'" in message
    assert "huggingface.co/datasets/Howuhh/xland_minigrid/resolve/main/trivial_21k" in message
    assert os.path.join(str(benchmark_dir), "trivial_21k") in message
    assert not os.listdir(benchmark_dir)  # nothing was downloaded or created


@pytest.mark.parametrize(
    "name, match",
    [
        ("xland/MiniGrid-Empty-5x5?max_steps=0", "max_steps must be a positive integer"),
        ("xland/MiniGrid-Empty-5x5?view_size=4", "view_size must be odd"),
        ("xland/MiniGrid-Empty-5x5?benchmark=trivial-21k", "apply to the XLand-MiniGrid-R\\* ids only"),
        ("xland/XLand-MiniGrid-R1-9x9?benchmark=tiny", "benchmark must be one of trivial-21k, "),
        ("xland/XLand-MiniGrid-R1-9x9?ruleset=2", "ruleset must be an index in \\[0, 2\\)"),
    ],
)
def test_bad_options_raise(benchmark_dir, name, match):
    write_benchmark(benchmark_dir)
    with pytest.raises(ValueError, match=match):
        make_suite_env(name)


@pytest.mark.parametrize(
    "env_id, options, shape, limit",
    [
        ("MiniGrid-Empty-5x5", {}, (7, 7, 2), 100),
        ("MiniGrid-DoorKey-8x8", {"max_steps": "50", "view_size": "5"}, (5, 5, 2), 50),
        ("MiniGrid-MemoryS8", {}, (3, 3, 2), 320),
    ],
)
def test_minigrid_ids_observe_an_int32_egocentric_view(env_id, options, shape, limit):
    env = XLandEnv.make(env_id, options)
    assert env.observation_spec == jax.ShapeDtypeStruct(shape, jnp.int32) and env.observation_shape is None
    assert env.action_space == ActionSpace(discrete=True, num_actions=6) and env.max_episode_steps == limit


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(60)
def test_jit_vmap_reset_and_step_match_the_spec():
    obs, _ = random_steps_match_spec(make_env("xland/MiniGrid-DoorKey-5x5"))
    assert obs.shape == (4, 7, 7, 2) and obs.dtype == jnp.int32


@pytest.mark.timeout(60)
def test_goal_terminates_time_limit_truncates_and_step_auto_resets():
    env = make_env(SHORT)
    assert env.max_episode_steps == 6
    result = turn_then_goal(env, TURN, TO_GOAL, 1.0 - 0.9 * 5 / 6)
    assert int(result.info["episode_length"]) == 5


@pytest.mark.timeout(90)  # XLand's rule and goal checks compile slowly (~30 s here)
def test_xland_ids_with_a_benchmark_draw_rulesets_and_observe_them(benchmark_dir):
    goals = write_benchmark(benchmark_dir)
    env = make_suite_env("xland/XLand-MiniGrid-R1-9x9?max_steps=4")
    assert env.observation_spec == {
        "img": jax.ShapeDtypeStruct((5, 5, 2), jnp.int32),
        "goal_encoding": jax.ShapeDtypeStruct((5,), jnp.float32),
        "rule_encoding": jax.ShapeDtypeStruct((2 * 7,), jnp.float32),  # 2 rules (padded) of 7 numbers
    }
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    obs, state = fast_jit(jax.vmap(env.reset))(keys)
    drawn = {tuple(g) for g in np.asarray(obs["goal_encoding"], np.int64)}
    assert drawn == {tuple(g) for g in goals.astype(np.int64)}  # 8 episodes drew both rulesets
    step = fast_jit(jax.vmap(env.step))
    for t in range(4):  # turning only: every episode is truncated at the 4th step
        result = step(jax.random.split(jax.random.PRNGKey(t + 1), 8), state, jnp.full((8,), TURN, jnp.int32))
        state = result.state
        assert jax.tree_util.tree_structure(result.obs) == jax.tree_util.tree_structure(result.final_obs)
        assert bool(result.truncated.all()) == (t == 3) and not bool(result.terminated.any())
        np.testing.assert_array_equal(result.final_obs["goal_encoding"], obs["goal_encoding"])

    fixed = make_suite_env("xland/XLand-MiniGrid-R1-9x9?ruleset=1")
    obs, _ = fast_jit(jax.vmap(fixed.reset))(keys)
    np.testing.assert_array_equal(obs["goal_encoding"], np.broadcast_to(goals[1], (8, 5)))


@pytest.mark.timeout(120)  # compiles reset and step twice (the determinism check)
def test_check_env_passes():
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env(SHORT), num_envs=4, num_steps=16) == []
