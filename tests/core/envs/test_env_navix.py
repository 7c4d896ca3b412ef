"""The Navix adapter (``navix/<id>``): names and options, spaces, vmapped stepping, auto-reset, check_env."""

import pytest

pytest.importorskip("navix")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from helpers import random_steps_match_spec, turn_then_goal  # noqa: E402

from purejaxrl_ppo.core.envs import ActionSpace, check_env_name, make_env  # noqa: E402
from purejaxrl_ppo.core.envs.navix_env import NavixEnv, env_ids  # noqa: E402
from purejaxrl_ppo.core.envs.suites import SUITES, suite_env_names  # noqa: E402

# Navix-Empty-5x5: the agent starts at (1, 1) facing east, the goal is at (3, 3); actions are
# MiniGrid's (0 turn left, 1 turn right, 2 forward, ...). A 6-step limit ends a turning-only episode.
SHORT = "navix/Navix-Empty-5x5-v0?max_steps=6"
TO_GOAL = (2, 2, 1, 2, 2)  # forward, forward, turn right (south), forward, forward
TURN = 1


def test_names_list_and_unknown_names_say_what_exists():
    assert {"Navix-Empty-5x5-v0", "Navix-DoorKey-5x5-v0"} <= set(env_ids())
    navix = next(suite for suite in SUITES if suite.prefix == "navix/")
    assert "navix/Navix-DoorKey-5x5-v0" in suite_env_names(navix)  # what registered_env_names lists
    with pytest.raises(ValueError, match="did you mean 'navix/Navix-Empty-5x5-v0'") as err:
        check_env_name("navix/Navix-Empty-5x5")
    assert "\n" not in str(err.value) and "navix/Navix-FourRooms-v0" in str(err.value)
    with pytest.raises(ValueError, match="unknown option"):
        check_env_name("navix/Navix-Empty-5x5-v0?size=3")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "options, shape, dtype",
    [
        ("", (5, 5, 3), jnp.int32),  # navix's default: the full symbolic grid
        ("?observation=symbolic_first_person", (7, 7, 3), jnp.int32),
        ("?observation=categorical", (5, 5, 1), jnp.int32),  # [H, W] gets a channel axis
        ("?observation=categorical_first_person", (7, 7, 1), jnp.int32),
        ("?observation=rgb", (40, 40, 3), jnp.uint8),
        ("?observation=rgb_first_person", (56, 56, 3), jnp.uint8),
    ],
)
def test_observation_options_give_int32_grids_or_uint8_images(options, shape, dtype):
    env = NavixEnv.make("Navix-DoorKey-5x5-v0", dict(kv.split("=") for kv in options[1:].split("&") if kv))
    assert env.observation_spec == jax.ShapeDtypeStruct(shape, dtype) and env.observation_shape is None
    assert env.action_space == ActionSpace(discrete=True, num_actions=7) and env.max_episode_steps == 100


@pytest.mark.parametrize(
    "options, match",
    [({"observation": "pixels"}, "observation must be one of symbolic, "), ({"max_steps": "0"}, "positive integer")],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        NavixEnv.make("Navix-Empty-5x5-v0", options)


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(60)
def test_jit_vmap_reset_and_step_match_the_spec():
    obs, _ = random_steps_match_spec(make_env("navix/Navix-DoorKey-5x5-v0"))
    assert obs.shape == (4, 5, 5, 3) and obs.dtype == jnp.int32


@pytest.mark.timeout(60)
def test_goal_terminates_time_limit_truncates_and_step_auto_resets():
    env = make_env(SHORT)
    assert env.max_episode_steps == 6
    result = turn_then_goal(env, TURN, TO_GOAL, 1.0)
    assert int(result.info["episode_length"]) == 5 and float(result.info["episode_return"]) == 1.0


@pytest.mark.timeout(120)  # compiles reset and step twice (the determinism check)
def test_check_env_passes():
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env(SHORT), num_envs=4, num_steps=16) == []
