"""The Jumanji adapter: names, spaces (joint masks for multi-discrete actions), auto-reset, terminated vs truncated."""

import pytest

pytest.importorskip("jumanji")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from helpers import fast_jit  # noqa: E402

import purejaxrl_ppo as pjp  # noqa: E402
from purejaxrl_ppo.core.envs import ACTION_MASK, make_env  # noqa: E402
from purejaxrl_ppo.core.envs.jumanji_env import JumanjiEnv, env_ids  # noqa: E402

MAIN = ("Snake-v1", "Minesweeper-v0", "Knapsack-v1", "BinPack-v2")
NUM_ENVS, NUM_STEPS = 4, 20


def random_valid_action(space, obs, key):
    """A uniformly random allowed action of one env (per factor for a multi-discrete space)."""
    mask = obs.get(ACTION_MASK)
    if space.multi:
        actions, start = [], 0
        for k, n in zip(jax.random.split(key, len(space.nvec)), space.nvec):
            logits = jnp.zeros(n) if mask is None else jnp.where(mask[start:start + n], 0.0, -1e9)
            actions.append(jax.random.categorical(k, logits))
            start += n
        return jnp.stack(actions).astype(jnp.int32)
    logits = jnp.zeros(space.num_actions) if mask is None else jnp.where(mask, 0.0, -1e9)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def rollout(env, key, num_steps=NUM_STEPS):
    """``num_steps`` vmapped steps of ``NUM_ENVS`` envs with random allowed actions: ``(first obs, results [T, N])``."""

    def run(key):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, NUM_ENVS))

        def body(carry, key):
            obs, state = carry
            act_key, step_key = jax.random.split(key)
            actions = jax.vmap(lambda o, k: random_valid_action(env.action_space, o, k))(
                obs, jax.random.split(act_key, NUM_ENVS))
            result = jax.vmap(env.step)(jax.random.split(step_key, NUM_ENVS), state, actions)
            return (result.obs, result.state), (result, actions)

        _, out = jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))
        return obs, out

    return fast_jit(run)(key)


def test_names_and_errors():
    assert set(MAIN) <= set(env_ids())
    assert "jumanji/Snake-v1" in pjp.registered_env_names()
    with pytest.raises(ValueError, match=r"did you mean 'jumanji/Snake-v1'\?\); known: jumanji/BinPack-v2, "):
        make_env("jumanji/Snak-v1")
    with pytest.raises(ValueError, match="unknown option"):
        make_env("jumanji/Snake-v1?limit=3")
    with pytest.raises(ValueError, match="time_limit must be a positive integer"):
        make_env("jumanji/Snake-v1?time_limit=0")


def test_spaces_of_the_main_envs():
    spaces = {name: make_env("jumanji/" + name) for name in MAIN}
    for env in spaces.values():
        assert env.observation_shape is None and env.action_space.masked and not env.action_space.multi
    snake, mines, knapsack, binpack = (spaces[name] for name in MAIN)
    assert snake.action_space.num_actions == 4 and snake.max_episode_steps == 4000
    assert snake.observation_spec["grid"] == jax.ShapeDtypeStruct((12, 12, 5), jnp.float32)
    assert mines.action_space.num_actions == 100 and mines.max_episode_steps == 90  # 100 cells, 10 mines
    assert mines.observation_spec["board"] == jax.ShapeDtypeStruct((10, 10, 1), jnp.int32)
    assert knapsack.action_space.num_actions == 50 and knapsack.max_episode_steps == 50
    assert binpack.action_space.num_actions == 40 * 20 and binpack.max_episode_steps == 20
    assert binpack.observation_spec["ems"] == jax.ShapeDtypeStruct((6 * 40,), jnp.float32)
    for env in spaces.values():
        assert env.observation_spec[ACTION_MASK] == jax.ShapeDtypeStruct((env.action_space.num_actions,), jnp.bool_)


def test_a_joint_action_is_the_flat_index_of_the_2d_mask():
    env = make_env("jumanji/Minesweeper-v0").env
    assert isinstance(env, JumanjiEnv) and env.joint_nvec == (10, 10)
    np.testing.assert_array_equal(env._env_action(jnp.int32(37)), [3, 7])
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert obs[ACTION_MASK].all()  # nothing revealed yet
    safe = int(np.flatnonzero(~np.isin(np.arange(100), np.asarray(state.env_state.flat_mine_locations)))[0])
    result = env.step(jax.random.PRNGKey(1), state, jnp.int32(safe))
    assert not result.terminated and not result.truncated
    board = np.asarray(result.obs["board"][..., 0])
    assert board.reshape(-1)[safe] >= 0 and (board.reshape(-1) == -1).sum() == 99  # exactly that cell revealed
    mask = np.asarray(result.obs[ACTION_MASK])
    assert not mask[safe] and mask.sum() == 99  # and the flat mask forbids exactly it


@pytest.mark.heavy  # make test-all: the default run keeps each suite's names and check_env tests
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", MAIN)
def test_rollout_shapes_masks_and_auto_reset(name):
    env = make_env(f"jumanji/{name}?time_limit=5").env
    assert env.max_episode_steps == 5
    first, (result, actions) = rollout(env, jax.random.PRNGKey(0))
    spec = env.observation_spec
    for tree in (first, result.obs, result.final_obs):
        assert set(tree) == set(spec)
        for key, leaf in spec.items():
            assert tree[key].dtype == leaf.dtype and tree[key].shape[-len(leaf.shape):] == leaf.shape, key
    assert result.reward.dtype == jnp.float32 and result.reward.shape == (NUM_STEPS, NUM_ENVS)
    terminated, truncated = np.asarray(result.terminated), np.asarray(result.truncated)
    assert not (terminated & truncated).any()
    # Every action taken was allowed by the mask the policy saw.
    masks = np.concatenate([np.asarray(first[ACTION_MASK])[None], np.asarray(result.obs[ACTION_MASK])[:-1]])
    assert np.take_along_axis(masks, np.asarray(actions)[..., None], axis=-1).all()
    # Episodes last at most 5 steps; one reaching 5 steps without a termination is truncated.
    done = terminated | truncated
    length = np.zeros(NUM_ENVS, int)
    for t in range(NUM_STEPS):
        length += 1
        assert (length <= 5).all()
        np.testing.assert_array_equal(truncated[t], (length == 5) & ~terminated[t])
        length[done[t]] = 0
    assert truncated.any()
    # Within an episode the final obs is the next obs; after an end, obs is a fresh episode's.
    for key in spec:
        final, following = np.asarray(result.final_obs[key]), np.asarray(result.obs[key])
        np.testing.assert_array_equal(final[~done], following[~done])
    if "step_count" in spec:
        steps = np.asarray(result.obs["step_count"][..., 0])
        np.testing.assert_array_equal(steps[done], 0)
        np.testing.assert_array_equal(np.asarray(result.final_obs["step_count"][..., 0])[truncated], 5)


@pytest.mark.timeout(120)
def test_minesweeper_mine_is_terminated_and_jumanji_time_limit_is_truncated():
    mines = make_env("jumanji/Minesweeper-v0").env
    _, (result, _) = rollout(mines, jax.random.PRNGKey(1))
    assert np.asarray(result.terminated).any() and not np.asarray(result.truncated).any()
    # RubiksCube-partly-scrambled ends at Jumanji's own 20-step limit, which Jumanji reports as a termination.
    cube = make_env("jumanji/RubiksCube-partly-scrambled-v0").env
    assert cube.max_episode_steps == 20 and cube.action_space.nvec == (6, 1, 3) and not cube.action_space.masked
    _, (result, _) = rollout(cube, jax.random.PRNGKey(2), num_steps=20)
    truncated = np.asarray(result.truncated)
    assert truncated[19].all() and not truncated[:19].any() and not np.asarray(result.terminated).any()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in ("BinPack-v2", "Knapsack-v1") else n
                                  for n in MAIN])
def test_check_env(name):
    from purejaxrl_ppo.core.envs.check import env_problems

    # A 20-step limit, so the 64-step check also sees every episode end within max_episode_steps.
    assert env_problems(make_env(f"jumanji/{name}?time_limit=20")) == []


@pytest.mark.heavy  # ~3-30 s of compilation per env on a 2-core CPU
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(set(env_ids()) - set(MAIN)))
def test_check_every_other_adapted_env(name):
    from purejaxrl_ppo.core.envs.check import env_problems

    assert env_problems(make_env(f"jumanji/{name}?time_limit=20")) == []


def test_a_stuck_flatpack_state_allows_every_action_and_other_envs_keep_their_mask():
    flatpack = make_env("jumanji/FlatPack-v0").env
    assert flatpack.action_space.num_actions == 25 * 4 * 9 * 9 and flatpack.joint_nvec == (25, 4, 9, 9)
    assert flatpack._mask(jnp.zeros((25, 4, 9, 9), bool)).all()  # no block fits: every action is the same no-op
    some = jnp.zeros((25, 4, 9, 9), bool).at[3, 1, 2, 0].set(True)
    assert int(flatpack._mask(some).sum()) == 1
    knapsack = make_env("jumanji/Knapsack-v1").env
    assert not knapsack._mask(jnp.zeros(50, bool)).any()
