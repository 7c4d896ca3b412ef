"""evaluate(), saved policies, presets and the render command (gymnax, fast)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.cli import main
from purejaxrl_ppo.evaluation import first_episode_returns, load_policy, save_policy
from purejaxrl_ppo.normalization import init_stats
from purejaxrl_ppo.presets import brax_preset


def test_first_episode_returns_matches_a_loop():
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(9, 4)).astype(np.float32)
    done = rng.random((9, 4)) < 0.3
    done[:, 3] = False
    expected = []
    for e in range(4):
        ends = np.flatnonzero(done[:, e])
        expected.append(reward[: ends[0] + 1, e].sum() if len(ends) else np.nan)
    np.testing.assert_allclose(first_episode_returns(jnp.asarray(reward), jnp.asarray(done)), expected, rtol=1e-5)


def test_evaluate_runs_whole_deterministic_episodes():
    config = pjp.PPOConfig(env_name="CartPole-v1", num_envs=2, num_steps=8, total_timesteps=16)
    env = pjp.make_env(config.env_name)
    params = pjp.make_network(config, env.action_space, env.observation_shape).init(jax.random.PRNGKey(0))
    returns = jax.jit(lambda k: pjp.evaluate(config, params, k, 5))(jax.random.PRNGKey(1))
    assert returns.shape == (5,) and np.isfinite(returns).all()
    assert ((returns >= 1) & (returns <= 500)).all()
    with pytest.raises(ValueError, match="obs_stats"):
        pjp.evaluate(config.replace(normalize_observations=True), params, jax.random.PRNGKey(1), 2)


def test_policy_round_trip(tmp_path):
    params = {"actor": {"w": np.arange(6.0).reshape(2, 3)}, "critic": {"b": np.ones(2)}}
    stats = init_stats((3,))
    save_policy(tmp_path / "p.msgpack", params, stats)
    loaded, loaded_stats = load_policy(tmp_path / "p.msgpack")
    np.testing.assert_array_equal(loaded["actor"]["w"], params["actor"]["w"])
    np.testing.assert_array_equal(loaded_stats.var, np.ones(3))
    save_policy(tmp_path / "q.msgpack", params, None)
    assert load_policy(tmp_path / "q.msgpack")[1] is None


def test_brax_presets_apply_only_to_brax_names():
    assert brax_preset("ppo", "CartPole-v1") == {}
    preset = brax_preset("ppo", "brax/inverted_pendulum?backend=positional")
    assert preset["normalize_observations"] and preset["num_envs"] == 32
    assert brax_preset("trpo", "brax/hopper")["action_squash"] == "tanh"
    for algo, cls in (("ppo", pjp.PPOConfig), ("trpo", pjp.TRPOConfig)):
        for env in ("brax/inverted_pendulum", "brax/reacher", "brax/hopper"):
            cls(env_name=env, **brax_preset(algo, env))  # every preset is a valid config


def test_train_saves_a_policy(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "256", "--num-envs", "2",
            "--num-steps", "32", "--quiet", "--out", str(run), "--normalize-observations"]
    assert main(argv) == 0
    params, stats = load_policy(run / "policy.msgpack")
    assert stats.mean.shape == (2, 4) and float(stats.count[0]) == 256
    assert jax.tree_util.tree_leaves(params)[0].shape[0] == 2
    assert json.loads((run / "config.json").read_text())["normalize_observations"] is True


def test_render_writes_a_gif_of_a_minatar_policy(tmp_path):
    config = pjp.PPOConfig(env_name="Breakout-MinAtar", num_envs=2, num_steps=8, total_timesteps=16)
    env = pjp.make_env(config.env_name)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    params = jax.vmap(pjp.make_network(config, env.action_space, env.observation_shape).init)(keys)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    save_policy(tmp_path / "policy.msgpack", params, None)
    assert main(["render", "--run", str(tmp_path), "--seed-index", "1"]) == 0
    assert (tmp_path / "render.gif").read_bytes()[:3] == b"GIF"
    assert main(["render", "--run", str(tmp_path), "--seed-index", "5"]) == 2
