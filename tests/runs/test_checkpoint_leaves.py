"""Checkpoint host conversion: zero-size leaves (MJX states hold several) survive a save and restore, as do
typed PRNG keys."""

import numpy as np

import purejaxrl_ppo  # noqa: F401
import jax
import jax.numpy as jnp

from purejaxrl_ppo.runs.checkpoint import from_host, host_template, to_host


def test_zero_size_leaves_and_keys_round_trip_through_host_arrays():
    tree = {"act": jnp.zeros((4, 0), jnp.float32), "qpos": jnp.arange(6.0).reshape(2, 3),
            "empty_int": jnp.zeros((0,), jnp.int32), "key": jax.random.key(3)}
    host = to_host(tree)
    assert all(np.asarray(x).size > 0 for x in jax.tree_util.tree_leaves(host))  # orbax refuses zero-size arrays
    abstract = jax.eval_shape(lambda: tree)
    template = host_template(abstract)
    assert jax.tree_util.tree_structure(template) == jax.tree_util.tree_structure(host)
    assert all(a.shape == b.shape and a.dtype == b.dtype
               for a, b in zip(jax.tree_util.tree_leaves(template), jax.tree_util.tree_leaves(host)))
    back = from_host(host, abstract)
    assert back["act"].shape == (4, 0) and back["act"].dtype == jnp.float32
    assert back["empty_int"].shape == (0,) and back["empty_int"].dtype == jnp.int32
    np.testing.assert_array_equal(back["qpos"], tree["qpos"])
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))
