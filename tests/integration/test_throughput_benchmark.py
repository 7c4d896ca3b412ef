"""benchmarks/throughput.py: the hand FLOP count, sweep capping, the SB3 summary and the target ratios."""

import importlib.util
import json
import sys

import pytest

import purejaxrl_ppo as pjp
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
tp = importlib.util.module_from_spec(_spec)
sys.modules["throughput"] = tp
_spec.loader.exec_module(tp)


def test_flop_count_by_hand_for_cartpole():
    # 4 -> 64 -> 64 trunk: 2·(4·64 + 64·64) = 8,704; actor head 2·64·2, critic head 2·64.
    actor, critic = 8_704 + 256, 8_704 + 128
    ppo = pjp.config_from_dict({"algo": "ppo", "num_envs": 4})
    assert tp.analytic_flops_per_env_step(ppo) == (actor + critic) + critic + 4 * 3 * (actor + critic) == 240_128
    trpo = pjp.config_from_dict({"algo": "trpo", "num_envs": 4, "cg_iters": 10, "fisher_subsample": 5})
    expected = (actor + critic) + critic + 5 * actor + (11 * 4 + 2) * actor / 5 + trpo.critic_epochs * 3 * critic
    assert tp.analytic_flops_per_env_step(trpo) == pytest.approx(expected)


@pytest.mark.parametrize("seeds", [1, 64, 4096])
def test_capped_points_stay_under_the_budget_but_run_at_least_one_update(seeds):
    batch = 4 * 128
    total = tp.capped_timesteps("ppo", 4, seeds, 500_000, 2_000_000)
    assert total >= batch and total % batch == 0
    assert total * seeds <= max(2_000_000, seeds * batch)
    full = tp.capped_timesteps("ppo", 4, seeds, 500_000, None)
    assert full == 976 * batch  # 500,000 rounded down to whole updates: not a capped point
    assert (total < full) == (seeds * full > 2_000_000)


def _sb3_run(rate, steps=50_176, ret=500.0):
    return {"peer": "sb3-contrib TRPO", "env_steps": steps, "env_steps_per_second": rate, "final_return": ret,
            "final_return_kind": "k", "versions": {}, "peak_rss_mb": 300.0}


def test_sb3_summary_sums_concurrent_learn_rates_and_keeps_the_wall_rate():
    runs = [_sb3_run(1_000.0), _sb3_run(3_000.0), _sb3_run(2_000.0, ret=100.0)]
    point = tp.summarise_sb3(runs, procs=2, wall=100.0)
    assert point["env_steps_per_second"] == pytest.approx(2 * 2_000.0)
    assert point["wall_env_steps_per_second"] == pytest.approx(3 * 50_176 / 100.0)
    assert point["num_seeds"] == 3 and point["final_return_median"] == 500.0
    assert tp.summarise_sb3(runs[:1], procs=2, wall=60.0)["env_steps_per_second"] == 1_000.0  # one run: one core


def test_targets_pair_each_peer_with_our_run_of_the_same_invocation():
    def ours(algo, seeds, sps, pair=None, **extra):
        point = {"algo": algo, "num_envs": 4, "num_seeds": seeds, "env_steps_per_second": sps,
                 "compile_seconds": 8.0, **extra}
        return {**point, "ab_pair": pair} if pair else point

    results = {
        "matmul_peak_flops_per_second": {"1024^3": 1e11},
        "ours": [
            ours("ppo", 64, 70_000.0, achieved_flops_per_second=2e10),  # a sweep point, in no pair
            ours("ppo", 64, 100_000.0, "rejax/0"), ours("ppo", 64, 90_000.0, "rejax/1"),
            ours("trpo", 64, 60_000.0, "sb3-trpo/0"),
        ],
        "peers": [
            {"peer": "rejax PPO", "num_seeds": 64, "env_steps_per_second": 50_000.0, "ab_pair": "rejax/0"},
            {"peer": "rejax PPO", "num_seeds": 64, "env_steps_per_second": 90_000.0, "ab_pair": "rejax/1"},
            {"peer": "sb3-contrib TRPO", "num_seeds": 4, "env_steps_per_second": 3_000.0, "ab_pair": "sb3-trpo/0"},
        ],
    }
    out = tp.targets(results)
    assert out["ppo_over_rejax_64_seeds (target >= 1.2)"] == pytest.approx((2.0 + 1.0) / 2)
    assert out["ppo_over_rejax_16_seeds (target >= 1.2)"] is None
    assert out["trpo_64_seeds_over_sb3_contrib_trpo_summed (target >= 25)"] == pytest.approx(20.0)
    assert out["trpo_over_ppo_64_seeds (target >= 0.8)"] == pytest.approx(60_000 / 90_000)
    assert out["utilisation_vs_1024^3_peak"] == {"ppo envs=4 seeds=64": pytest.approx(0.2)}


def test_purejaxrl_and_brax_trainer_targets_read_the_script_peers_json(tmp_path):
    point = {"config": "cartpole", "num_seeds": 16, "median_pair_ratio": 1.06,
             "compile": {"ours": {"seconds": 6.0}, "purejaxrl": {"seconds": 7.2}}}
    one_seed = {**point, "num_seeds": 1, "median_pair_ratio": 1.5}
    separate = {"config": "cartpole", "num_seeds": 1, "ratio": 1.17,
                "ours": {"compile": {"seconds": 5.4}}, "purejaxrl": {"error": "exit -9: "}}
    (tmp_path / "purejaxrl.json").write_text(json.dumps({"same_process": [one_seed, point],
                                                          "separate_process": [separate]}))
    (tmp_path / "brax_ppo.json").write_text(json.dumps({"comparisons": [{"num_seeds": 4, "ratio_median": 1.13}]}))
    found = tp.script_peer_targets({"script_peers": {"purejaxrl": {}, "brax-ppo": {}}}, tmp_path)
    assert found["ppo_over_purejaxrl_cartpole_16_seeds_same_process (target >= 1.2)"] == 1.06
    assert found["ppo_over_purejaxrl_cartpole_1_seeds_same_process"] == 1.5  # no target at one seed
    assert found["compile_seconds_cartpole_16_seeds_ours_vs_purejaxrl (target ours <= theirs)"] == [6.0, 7.2]
    assert found["ppo_over_purejaxrl_cartpole_1_seeds_separate_processes"] == 1.17
    assert found["compile_seconds_cartpole_1_seeds_separate_processes_ours_vs_purejaxrl (target ours <= theirs)"] == [
        5.4, None]
    assert found["ppo_over_brax_trainer_4_seeds (target >= 1.1)"] == 1.13
    assert tp.script_peer_targets({"script_peers": {}}, tmp_path) == {}
