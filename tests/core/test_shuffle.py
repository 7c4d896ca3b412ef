"""The fast minibatch permutation equals ``jax.random.permutation`` bit for bit, ties included."""

import purejaxrl_ppo  # noqa: F401, I001  (first: sets XLA_FLAGS before jax runs)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from purejaxrl_ppo.core.shuffle import permutation, stable_argsort

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("n", [1, 7, 512, 1626, 5000])  # 1626: the first size jax shuffles in two rounds
def test_equals_jax_permutation_plain_and_vmapped(n):
    keys = jax.random.split(jax.random.PRNGKey(n), 8)
    expected = jax.vmap(lambda k: jax.random.permutation(k, n))(keys)
    assert np.array_equal(permutation(keys[0], n), expected[0])
    assert np.array_equal(jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys), expected)
    nested = jax.vmap(jax.vmap(lambda k: permutation(k, n)))(keys.reshape(2, 4, *keys.shape[1:]))
    assert np.array_equal(nested.reshape(expected.shape), expected)
    assert np.array_equal(np.sort(np.asarray(expected[0])), np.arange(n))


def test_inside_a_vmapped_scan_like_the_minibatch_epochs():
    keys = jax.random.split(jax.random.PRNGKey(3), 6 * 4).reshape(6, 4, -1)

    def epochs(keys):
        return jax.lax.scan(lambda c, k: (c, permutation(k, 512)), 0, keys)[1]

    expected = jax.vmap(jax.vmap(lambda k: jax.random.permutation(k, 512)))(keys)
    assert np.array_equal(jax.jit(jax.vmap(epochs))(keys), expected)


def _key_value_argsort(keys):
    positions = lax.broadcasted_iota(jnp.int32, keys.shape, keys.ndim - 1)
    return lax.sort_key_val(keys, positions, dimension=keys.ndim - 1, is_stable=True)[1]


def test_equal_keys_keep_index_order_unbatched_and_batched():
    tied = jnp.array([5, 3, 5, 1, 3, 3, 0, 4294967295], jnp.uint32)
    distinct = jnp.array([8, 1, 7, 2, 6, 3, 5, 4], jnp.uint32)
    assert stable_argsort(tied).tolist() == [6, 3, 1, 4, 5, 0, 2, 7]
    assert stable_argsort(distinct).tolist() == np.argsort(np.asarray(distinct)).tolist()
    # One tied row in a vmapped batch: the whole batch takes the key-value sort, every row still exact.
    batch = jnp.stack([distinct, tied, distinct[::-1]])
    assert np.array_equal(jax.jit(jax.vmap(stable_argsort))(batch), _key_value_argsort(batch))
    rng = np.random.default_rng(0)
    few_values = jnp.asarray(rng.integers(0, 4, size=(5, 64)), jnp.uint32)  # ties everywhere
    assert np.array_equal(jax.vmap(stable_argsort)(few_values), _key_value_argsort(few_values))
