"""The compiled training program (core/loop.py): determinism, vmap, chunking, traced hyperparameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import leaves_equal, tiny_config


@pytest.fixture(scope="module", params=["ppo", "trpo"])
def compiled(request):
    config = tiny_config(request.param)
    return config, jax.jit(pjp.make_train(config)), jax.jit(jax.vmap(pjp.make_train(config)))


def test_metrics_have_documented_names_and_shapes(compiled):
    config, train, _ = compiled
    out = train(jax.random.PRNGKey(0))
    common = {"episode_return", "episode_length", "env_steps", "entropy", "value_loss", "explained_variance"}
    specific = (
        {"approx_kl", "clip_fraction", "policy_loss"}
        if config.algo_name == "ppo"
        else {"kl", "line_search_accepted", "surrogate_improvement"}
    )
    assert common | specific <= set(out.metrics)
    for name, value in out.metrics.items():
        assert value.shape == (config.num_updates,), name
    np.testing.assert_array_equal(out.metrics["env_steps"], np.arange(1, config.num_updates + 1) * config.batch_size)
    assert set(out.params) == {"actor", "critic"}


def test_same_key_is_bit_identical_and_different_keys_differ(compiled):
    _, train, _ = compiled
    a = train(jax.random.PRNGKey(3))
    b = train(jax.random.PRNGKey(3))
    c = train(jax.random.PRNGKey(4))
    leaves_equal(a.metrics, b.metrics)
    leaves_equal(a.params, b.params)
    assert not np.array_equal(np.asarray(a.metrics["value_loss"]), np.asarray(c.metrics["value_loss"]))


def test_vmap_over_seeds_equals_seeds_one_by_one(compiled):
    _, train, vtrain = compiled
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    batched = vtrain(keys)
    for i in range(3):
        single = train(keys[i])
        for name in ("value_loss", "entropy", "episode_return"):
            np.testing.assert_allclose(batched.metrics[name][i], single.metrics[name], rtol=2e-5, atol=1e-6, err_msg=name)
        for x, y in zip(jax.tree_util.tree_leaves(batched.params), jax.tree_util.tree_leaves(single.params)):
            np.testing.assert_allclose(x[i], y, rtol=2e-4, atol=1e-6)


def test_chunked_run_is_bit_identical_to_single_scan(compiled):
    config, train, _ = compiled
    key = jax.random.PRNGKey(11)
    whole = train(key)
    state = jax.jit(lambda k: pjp.init_train_state(config, k))(key)
    chunk = jax.jit(lambda s: pjp.train_updates(config, s, 2))
    pieces = []
    for _ in range(config.num_updates // 2):
        state, metrics = chunk(state)
        pieces.append(metrics)
    chunked = {k: np.concatenate([np.asarray(p[k]) for p in pieces]) for k in pieces[0]}
    leaves_equal(whole.metrics, chunked)
    leaves_equal(whole.state, state)


# tests/launch/test_sweep.py checks the same property through the public sweep() API in CI.
@pytest.mark.heavy
@pytest.mark.parametrize(
    "algo,field,values,extra",
    [("ppo", "clip_eps", (0.05, 0.3), {"learning_rate": 0.05}), ("trpo", "max_kl", (0.005, 0.05), {})],
)
def test_numeric_hyperparameters_can_be_traced(algo, field, values, extra):
    """vmap over a hyperparameter in one compile equals separate runs configured with each value."""
    configs = [tiny_config(algo, **{field: v}, **extra) for v in values]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.asarray(xs, jnp.float32), *configs)
    key = jax.random.PRNGKey(5)
    swept = jax.jit(jax.vmap(pjp.run_training, in_axes=(0, None)))(stacked, key)
    for i, config in enumerate(configs):
        alone = jax.jit(pjp.make_train(config))(key)
        np.testing.assert_allclose(swept.metrics["entropy"][i], alone.metrics["entropy"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(swept.metrics["entropy"][0], swept.metrics["entropy"][1])  # the value mattered


def test_continuous_actions_train_on_pendulum():
    config = pjp.PPOConfig(env_name="Pendulum-v1", num_envs=2, num_steps=32, total_timesteps=2 * 32 * 3,
                           num_minibatches=2, update_epochs=1, hidden_sizes=(8,))
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(out.metrics["value_loss"])).all()
    assert out.state.algo_state.params["actor"]["params"]["log_std"].shape == (1,)


def test_episode_return_is_nan_only_when_no_episode_ended():
    config = tiny_config("ppo", env_name="Pendulum-v1", num_steps=16, total_timesteps=2 * 16 * 15)
    out = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0))
    ended = np.asarray(out.metrics["episodes_ended"])
    returns = np.asarray(out.metrics["episode_return"])
    # Pendulum episodes last exactly 200 steps: with 16-step rollouts the first end is in update 13.
    assert np.isnan(returns[ended == 0]).all() and np.isfinite(returns[ended > 0]).all()
    np.testing.assert_array_equal(np.flatnonzero(ended)[:1], [12])
    np.testing.assert_allclose(np.asarray(out.metrics["episode_length"])[ended > 0], 200.0)


def test_make_train_rejects_non_config():
    with pytest.raises(TypeError, match="PPOConfig, TRPOConfig"):
        pjp.make_train({"env_name": "CartPole-v1"})
