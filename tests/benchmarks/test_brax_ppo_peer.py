"""benchmarks/peers/brax_ppo.py: the settings both trainers share and the quick A B B A comparison.

The quick run trains Brax's own PPO trainer (``brax.training.agents.ppo.train``) and ours on
inverted_pendulum for a few hundred env steps; it compiles ours once per seed count and Brax once
per call, so it takes minutes on a 2-core CPU (heavy).
"""

import importlib.util
import json
import sys

import jax
import pytest
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("brax_ppo_peer", ROOT / "benchmarks" / "peers" / "brax_ppo.py")
peer = importlib.util.module_from_spec(_spec)
sys.modules["brax_ppo_peer"] = peer
_spec.loader.exec_module(peer)


def test_both_trainers_get_the_same_settings_and_rollout_size():
    args = peer.parse_args([])
    steps = peer.steps_per_seed(args, 1)
    ours, brax = peer.our_config(args, steps), peer.brax_kwargs(args, steps, 0)
    pairs = {"num_envs": "num_envs", "num_steps": "unroll_length", "num_minibatches": "num_minibatches",
             "update_epochs": "num_updates_per_batch", "learning_rate": "learning_rate", "gamma": "discounting",
             "gae_lambda": "gae_lambda", "clip_eps": "clipping_epsilon", "ent_coef": "entropy_cost",
             "vf_coef": "vf_loss_coefficient", "max_grad_norm": "max_grad_norm",
             "normalize_observations": "normalize_observations", "normalize_advantages": "normalize_advantage",
             "total_timesteps": "num_timesteps"}
    for field, theirs in pairs.items():
        assert getattr(ours, field) == brax[theirs], (field, theirs)
    # One Brax training step collects batch_size * num_minibatches / num_envs unrolls: exactly our rollout.
    assert brax["batch_size"] * brax["num_minibatches"] == ours.num_envs
    assert brax["batch_size"] * brax["num_minibatches"] * brax["unroll_length"] == ours.batch_size
    assert not ours.anneal_lr and not ours.clip_value_loss and brax["clipping_epsilon_value"] is None
    assert not ours.scale_rewards and brax["reward_scaling"] == 1.0 and ours.action_squash == "tanh"
    assert ours.env_name == "brax/inverted_pendulum?backend=generalized&episode_length=1000&action_repeat=1"
    assert (brax["episode_length"], brax["action_repeat"]) == (1000, 1)
    # Whole Brax epochs (2) of whole rollouts: both run the same number of updates.
    assert steps == 200_000 and steps % (peer.BRAX_EPOCHS * ours.batch_size) == 0
    capped = peer.steps_per_seed(args, 16)  # N seeds: N x steps per seed capped by --max-steps-per-call
    assert 16 * capped <= args.max_steps_per_call and capped % (peer.BRAX_EPOCHS * ours.batch_size) == 0


@pytest.mark.slow
@pytest.mark.heavy  # ours compiles once per seed count, Brax's trainer once per call: minutes on a 2-core CPU
@pytest.mark.timeout(1800)
def test_quick_comparison_measures_both_and_both_report_returns(tmp_path):
    out = tmp_path / "brax_ppo.json"
    results = peer.run(["--quick", "--out", str(out)], log=lambda *a: None)
    saved = json.loads(out.read_text())
    assert saved["comparisons"] == json.loads(json.dumps(results["comparisons"]))
    assert [p["num_seeds"] for p in saved["comparisons"]] == [1, 2]
    for point in saved["comparisons"]:
        seeds = point["num_seeds"]
        assert point["env_steps_per_seed"] == 640
        ours, brax = point["ours"], point["brax"]
        assert len(ours["steady"]) == len(brax["steady"]) == 2  # one A B B A round
        assert all(m["env_steps_per_second"] > 0 for m in ours["steady"] + brax["steady"])
        assert ours["env_steps"] == seeds * 640 and all(m["env_steps"] == seeds * 640 for m in brax["steady"])
        for m in brax["steady"]:
            assert [r["seed"] for r in m["runs"]] == list(range(seeds))  # N Brax calls, one per seed
            for r in m["runs"]:
                assert r["steady_epoch_env_steps"] == 320
                assert r["compiles_in_epoch_2_and_its_eval"] in (0, None)  # the stand-in keeps Brax's compile cache
                assert 0 < r["steady_epoch_cpu_seconds"] and 0 < r["steady_epoch_seconds"] <= r["first_epoch_seconds"]
        assert len(point["pair_ratios"]) == len(point["cpu_pair_ratios"]) == 2
        assert point["ratio_median"] > 0 and point["cpu_ratio_median"] > 0
        assert ours["compile_seconds"] > 0 and ours["first_call_seconds"] >= ours["compile_seconds"]
        assert len(ours["eval_return_per_seed"]) == len(brax["steady"][-1]["eval_return_per_seed"]) == seeds
        assert all(r > 0 for r in ours["eval_return_per_seed"] + brax["steady"][-1]["eval_return_per_seed"])
        assert f"| {seeds} | 640 |" in saved["table_markdown"]
    machine = saved["machine"]
    assert machine["versions"]["jax"] == jax.__version__ and machine["versions"]["brax"]
    assert "--quick" in machine["command"] and machine["cpu_count"]
