"""The attention memory core (core/networks/attention.py): shapes, step-by-step equals all-at-once, no
attention across an episode start, a window of exactly context_len steps, and order-aware positions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.core.envs.base import ActionSpace
from purejaxrl_ppo.core.networks import make_network

K = 4  # context_len
DISCRETE = ActionSpace(discrete=True, num_actions=2)
CONTINUOUS = ActionSpace(discrete=False, shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0))


def _network(space=DISCRETE, shared_torso=False):
    config = pjp.PPOConfig(policy="attention", context_len=K, embed_dim=8, num_heads=2, hidden_sizes=(8,),
                           shared_torso=shared_torso)
    return make_network(config, space, (3,))


def _obs(key, t, n):
    return jax.random.normal(jax.random.PRNGKey(key), (t, n, 3))


def _outputs(network, reset):
    """``outputs(params, obs [T, N, 3]) -> [dist params leaves..., value]`` (numpy ``[T, N, ...]``): one apply
    from the initial carry, compiled once so that every call runs the same program."""
    carry = network.initial_carry((reset.shape[1],))
    apply = jax.jit(lambda params, obs: network.apply(params, carry, obs, reset)[1:])

    def outputs(params, obs):
        dist_params, value = apply(params, obs)
        return [np.asarray(x) for x in (*jax.tree_util.tree_leaves(dist_params), value)]

    return outputs


@pytest.mark.parametrize("space", [DISCRETE, CONTINUOUS], ids=["discrete", "continuous"])
@pytest.mark.parametrize("shared_torso", [False, True], ids=["separate", "shared"])
def test_shapes_of_apply_policy_value_and_carry(space, shared_torso):
    network = _network(space, shared_torso)
    assert network.recurrent
    params = jax.eval_shape(network.init, jax.random.PRNGKey(0))
    carry = network.initial_carry((3,))
    obs, reset = _obs(1, 5, 3), jnp.zeros((5, 3), bool)
    new_carry, dist_params, value = jax.eval_shape(network.apply, params, carry, obs, reset)
    assert value.shape == (5, 3)
    expected = {"logits": (5, 3, 2)} if space.discrete else {"mean": (5, 3, 2), "log_std": (5, 3, 2)}
    assert {k: v.shape for k, v in dist_params.items()} == expected
    shapes = lambda tree: jax.tree_util.tree_map(jnp.shape, tree)
    assert shapes(new_carry) == shapes(carry)
    for leaf in jax.tree_util.tree_leaves(carry):
        assert leaf.shape[0] == 3
    assert {k: v.shape for k, v in jax.eval_shape(network.policy, params, carry, obs, reset)[1].items()} == expected
    assert jax.eval_shape(network.value, params, carry, obs, reset)[1].shape == (5, 3)


def test_init_vmaps_over_keys():
    network = _network()
    params = jax.vmap(network.init)(jax.random.split(jax.random.PRNGKey(0), 4))
    single = network.init(jax.random.PRNGKey(0))
    assert jax.tree_util.tree_map(lambda x: x.shape[1:], params) == jax.tree_util.tree_map(jnp.shape, single)
    assert all(leaf.shape[0] == 4 for leaf in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("shared_torso", [False, True], ids=["separate", "shared"])
def test_all_steps_at_once_equal_one_step_at_a_time(shared_torso):
    network = _network(shared_torso=shared_torso)
    params = network.init(jax.random.PRNGKey(0))
    t, n = 9, 3
    obs = _obs(2, t, n)
    reset = jnp.zeros((t, n), bool).at[0].set(True).at[3, 0].set(True).at[4, 1].set(True).at[8, 2].set(True)
    carry0 = network.initial_carry((n,))
    all_carry, all_dist, all_value = jax.jit(network.apply)(params, carry0, obs, reset)

    apply = jax.jit(network.apply)
    carry, dists, values = carry0, [], []
    for i in range(t):
        carry, dist, value = apply(params, carry, obs[i:i + 1], reset[i:i + 1])
        dists.append(dist["logits"])
        values.append(value)
    np.testing.assert_allclose(jnp.concatenate(dists), all_dist["logits"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jnp.concatenate(values), all_value, rtol=1e-6, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), carry, all_carry)


def test_never_attends_across_an_episode_start():
    network = _network()
    params = network.init(jax.random.PRNGKey(0))
    t, n, start = 8, 3, 4
    obs = _obs(3, t, n)
    reset = jnp.zeros((t, n), bool).at[0].set(True).at[start, 0].set(True)
    changed = obs.at[:start, 0].add(1.0)  # env 0, before its episode starts at `start`
    outputs = _outputs(network, reset)
    base, other = outputs(params, obs), outputs(params, changed)
    for a, b in zip(base, other):
        np.testing.assert_array_equal(a[start:, 0], b[start:, 0])  # at and after the reset: exactly the same
        np.testing.assert_array_equal(a[:, 1:], b[:, 1:])  # other envs untouched
        assert np.all(np.abs(a[:start, 0] - b[:start, 0]).reshape(start, -1).max(-1) > 1e-6)


def test_the_window_holds_exactly_context_len_steps():
    network = _network()
    params = network.init(jax.random.PRNGKey(0))
    t, n, query = 10, 2, 8
    obs = _obs(4, t, n)
    reset = jnp.zeros((t, n), bool).at[0].set(True)
    outputs = _outputs(network, reset)
    base = outputs(params, obs)
    for back in range(1, query + 1):
        other = outputs(params, obs.at[query - back, 0].add(1.0))
        for a, b in zip(base, other):
            if back >= K:  # out of the window: step `query` is untouched
                np.testing.assert_array_equal(a[query, 0], b[query, 0])
            else:
                assert np.abs(a[query, 0] - b[query, 0]).max() > 1e-6, back
            np.testing.assert_array_equal(a[:, 1], b[:, 1])


def test_order_within_the_window_matters_through_the_position_encoding():
    network = _network()
    params = network.init(jax.random.PRNGKey(0))
    obs = _obs(5, K, 1)
    permuted = obs[jnp.array([2, 0, 1, 3])]  # same set, same query step, older steps reordered
    reset = jnp.zeros((K, 1), bool).at[0].set(True)
    outputs = _outputs(network, reset)
    base, other = outputs(params, obs), outputs(params, permuted)
    assert all(np.abs(a[-1] - b[-1]).max() > 1e-6 for a, b in zip(base, other))
    # Without the position embedding the last step sees an unordered set: the same output.
    no_pos = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "rel_pos" in jax.tree_util.keystr(path) else x, params)
    base, other = outputs(no_pos, obs), outputs(no_pos, permuted)
    for a, b in zip(base, other):
        np.testing.assert_allclose(a[-1], b[-1], rtol=1e-5, atol=1e-6)
