"""The chunked runner's host-side pieces (launch/chunked.py): the chunk plan and the NaN check.

Runs in chunks are compared with whole runs in tests/driver/test_durable.py,
tests/core/test_loop.py and tests/core/test_evaluate.py.
"""

import numpy as np
import pytest

from purejaxrl_ppo.launch.chunked import chunk_plan, first_non_finite


@pytest.mark.parametrize("num_updates", [1, 3, 20, 21, 61, 97, 976, 1000])
def test_chunk_plan_covers_every_update_with_at_most_two_sizes(num_updates):
    plan = chunk_plan(num_updates, target_chunks=20)
    assert sum(plan) == num_updates
    assert len(set(plan)) <= 2 and len(plan) <= 21
    assert all(size >= 1 for size in plan)


@pytest.mark.parametrize("num_updates,chunk_updates,expected", [
    (8, 2, [2, 2, 2, 2]), (7, 3, [3, 3, 1]), (5, 10, [5]), (30, 1, [1] * 30),
])
def test_chunk_plan_with_fixed_chunk_size(num_updates, chunk_updates, expected):
    assert chunk_plan(num_updates, chunk_updates=chunk_updates) == expected


def test_first_non_finite_reports_earliest_update_metric_and_seed():
    nan = np.nan
    metrics = {
        "episode_return": np.array([[nan, nan, nan], [nan, 1.0, nan]]),  # NaN by design: ignored
        "value_loss": np.array([[1.0, 2.0, np.inf], [1.0, 2.0, 3.0]]),
        "policy_loss": np.array([[0.1, 0.1, 0.1], [0.1, nan, 0.1]]),
        "env_steps": np.array([[32, 64, 96], [32, 64, 96]]),
    }
    assert first_non_finite(metrics) == (2, "policy_loss", 1)
    assert first_non_finite(metrics, offset=10) == (12, "policy_loss", 1)
    assert first_non_finite({"value_loss": np.ones((2, 3))}) is None
