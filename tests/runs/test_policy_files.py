"""Saved policies (runs/policy_files.py): parameters and observation statistics round trip."""

import numpy as np

from purejaxrl_ppo.core.normalization import init_stats
from purejaxrl_ppo.runs.policy_files import load_policy, save_policy


def test_policy_round_trip(tmp_path):
    params = {"actor": {"w": np.arange(6.0).reshape(2, 3)}, "critic": {"b": np.ones(2)}}
    stats = init_stats((3,))
    save_policy(tmp_path / "p.msgpack", params, stats)
    loaded, loaded_stats = load_policy(tmp_path / "p.msgpack")
    np.testing.assert_array_equal(loaded["actor"]["w"], params["actor"]["w"])
    np.testing.assert_array_equal(loaded_stats.var, np.ones(3))
    save_policy(tmp_path / "q.msgpack", params, None)
    assert load_policy(tmp_path / "q.msgpack")[1] is None
