"""The GRU memory network (networks/memory.py): the fused GRU equals flax's GRUCell, resets at episode
starts, runs T steps at once as one at a time, and splits its parameters into policy and value parts;
the shared-torso MLP (networks/feedforward.py) likewise."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import discrete_space
from purejaxrl_ppo.core.networks import make_network
from purejaxrl_ppo.core.networks.memory import GRUCore

SIZES = dict(rnn_hidden_size=5, hidden_sizes=(6,), num_minibatches=1)


def gru_network(shared: bool = False, **overrides):
    config = pjp.PPOConfig(policy="gru", shared_torso=shared, **{**SIZES, **overrides})
    return make_network(config, discrete_space(3), (4,))


def test_fused_gru_equals_flax_gru_cell():
    x = jax.random.normal(jax.random.PRNGKey(0), (7, 3, 4))
    reset = jnp.zeros((7, 3), bool)
    core = GRUCore(5)
    params = core.init(jax.random.PRNGKey(1), core.initial_carry((3,)), x, reset)["params"]
    w_i, b_i = np.split(params["input_kernel"], 3, -1), np.split(params["input_bias"], 3, -1)
    w_h = np.split(params["recurrent_kernel"], 3, -1)
    cell_params = {"params": {
        "ir": {"kernel": w_i[0], "bias": b_i[0]}, "iz": {"kernel": w_i[1], "bias": b_i[1]},
        "in": {"kernel": w_i[2], "bias": b_i[2]}, "hr": {"kernel": w_h[0]}, "hz": {"kernel": w_h[1]},
        "hn": {"kernel": w_h[2], "bias": params["recurrent_bias_n"]},
    }}
    cell = nn.GRUCell(5)
    h = jnp.zeros((3, 5))
    expected = []
    for t in range(7):
        h, _ = cell.apply(cell_params, h, x[t])
        expected.append(h)
    carry, ys = core.apply({"params": params}, core.initial_carry((3,)), x, reset)
    np.testing.assert_allclose(ys, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, expected[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_reset_starts_from_the_initial_carry_and_steps_equal_the_sequence(shared):
    network = gru_network(shared)
    params = network.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 2, 4))
    reset = jnp.zeros((6, 2), bool).at[0].set(True).at[3, 1].set(True)
    apply = jax.jit(network.apply)
    carry, dist, value = apply(params, network.initial_carry((2,)), obs, reset)
    # env 1 restarts at step 3: its outputs from there equal a fresh run on obs[3:]
    _, dist_fresh, value_fresh = apply(params, network.initial_carry((2,)), obs[3:], jnp.ones((3, 2), bool).at[1:].set(False))
    np.testing.assert_allclose(dist["logits"][3:, 1], dist_fresh["logits"][:, 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(value[3:, 1], value_fresh[:, 1], rtol=1e-5, atol=1e-7)
    assert not np.allclose(dist["logits"][3:, 0], dist_fresh["logits"][:, 0])  # env 0 remembers
    # one step at a time with the carry threaded gives the same outputs
    step_carry, logits, values = network.initial_carry((2,)), [], []
    for t in range(6):
        step_carry, d, v = apply(params, step_carry, obs[t:t + 1], reset[t:t + 1])
        logits.append(d["logits"][0])
        values.append(v[0])
    np.testing.assert_allclose(np.stack(logits), dist["logits"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.stack(values), value, rtol=1e-6, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), step_carry, carry)


def test_parameter_parts_separate_and_shared():
    separate, shared = gru_network(False), gru_network(True)
    p_sep, p_shared = separate.init(jax.random.PRNGKey(0)), shared.init(jax.random.PRNGKey(0))
    assert set(p_sep) == {"actor", "critic"} and separate.policy_params(p_sep) is p_sep["actor"]
    assert set(shared.policy_params(p_shared)["params"]) == {"torso", "actor_head"}
    assert set(shared.value_params(p_shared)["params"]) == {"torso", "critic_head"}
    moved = jax.tree_util.tree_map(lambda x: x + 1.0, shared.policy_params(p_shared))
    updated = shared.with_policy_params(p_shared, moved)
    np.testing.assert_array_equal(updated["params"]["critic_head"]["Dense_0"]["kernel"],
                                  p_shared["params"]["critic_head"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(shared.value_params(updated)["params"]["torso"]["Dense_0"]["kernel"],
                                  moved["params"]["torso"]["Dense_0"]["kernel"])  # the torso is shared
    assert jax.tree_util.tree_leaves(jax.vmap(separate.init)(jax.random.split(jax.random.PRNGKey(1), 3)))[0].shape[0] == 3


def test_shared_mlp_torso_parts_and_training():
    network = make_network(pjp.PPOConfig(shared_torso=True, hidden_sizes=(8, 8)), discrete_space(2), (3,))
    params = network.init(jax.random.PRNGKey(0))
    assert set(network.policy_params(params)["params"]) == {"torso_0", "torso_1", "actor_head"}
    assert set(network.value_params(params)["params"]) == {"torso_0", "torso_1", "critic_head"}
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    _, dist_params, value = network.apply(params, (), obs, jnp.zeros(5, bool))
    np.testing.assert_array_equal(dist_params["logits"], network.policy(params, (), obs, None)[1]["logits"])
    np.testing.assert_array_equal(value, network.value(params, (), obs, None)[1])
    config = pjp.PPOConfig(shared_torso=True, hidden_sizes=(8,), num_envs=4, num_steps=16, total_timesteps=64 * 3,
                           num_minibatches=2, update_epochs=1)
    metrics = jax.jit(pjp.make_train(config))(jax.random.PRNGKey(0)).metrics
    assert np.isfinite(np.asarray(metrics["value_loss"])).all() and (np.asarray(metrics["approx_kl"]) > 0).all()
