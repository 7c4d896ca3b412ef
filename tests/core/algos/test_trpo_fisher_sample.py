"""Which transitions TRPO's Fisher sees: a random subset, so every env can enter."""

import jax
import numpy as np

from purejaxrl_ppo.core.algos.trpo.update import fisher_sample


def test_the_fisher_sample_is_a_sorted_subset_without_repeats():
    idx = np.asarray(fisher_sample(jax.random.PRNGKey(0), 80, 5))
    assert idx.shape == (16,) and len(set(idx.tolist())) == 16
    assert (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < 80
    np.testing.assert_array_equal(np.asarray(fisher_sample(jax.random.PRNGKey(0), 80, 1)), np.arange(80))


def test_every_env_can_enter_the_fisher_when_num_envs_is_a_multiple_of_the_subsample():
    num_steps, num_envs, k = 8, 10, 5  # rows of the flattened time-major batch are t * num_envs + env
    every_kth = np.arange(0, num_steps * num_envs, k) % num_envs
    assert set(every_kth.tolist()) == {0, 5}  # the rule before 0.2: two envs of ten, always the same
    seen = set()
    for seed in range(8):
        idx = np.asarray(fisher_sample(jax.random.PRNGKey(seed), num_steps * num_envs, k))
        seen |= set((idx % num_envs).tolist())
    assert seen == set(range(num_envs))
    a, b = (np.asarray(fisher_sample(jax.random.PRNGKey(s), 80, 5)) for s in (1, 2))
    assert not np.array_equal(a, b)  # drawn afresh each update
