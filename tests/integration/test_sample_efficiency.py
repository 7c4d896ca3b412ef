"""benchmarks/sample_efficiency.py: the study's variants, configs and report, on synthetic curves."""

import importlib.util
import json
import sys

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("sample_efficiency", ROOT / "benchmarks" / "sample_efficiency.py")
se = importlib.util.module_from_spec(_spec)
sys.modules["sample_efficiency"] = se  # dataclasses look the module up by name
_spec.loader.exec_module(se)


def test_variants_are_the_papers_table_1_plus_trpo():
    assert len(se.VARIANTS) == 14
    assert "PPO no clip" in se.VARIANTS and "TRPO δ=0.005" in se.VARIANTS
    assert [v for v in se.VARIANTS if v.startswith("PPO fixed KL")] == [f"PPO fixed KL β={b}" for b in ("0.3", "1", "3", "10")]
    assert set(se.REPRESENTATIVES) <= set(se.VARIANTS) and {se.PPO_HEADLINE, se.TRPO_HEADLINE} <= set(se.VARIANTS)


@pytest.mark.parametrize("env", ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar"])
def test_every_family_builds_a_valid_config_that_differs_only_in_the_update(env):
    spec = se.ENV_SPECS[env]
    configs = [se.make_config(spec, f, spec.budget) for f in se.FAMILIES]
    for c in configs:
        assert c.env_name == env and c.ent_coef == 0.0
        assert (c.num_envs, c.num_steps, c.gamma, c.hidden_sizes) == (configs[0].num_envs, configs[0].num_steps,
                                                                       configs[0].gamma, configs[0].hidden_sizes)
        assert c.num_updates * c.batch_size <= spec.budget
    assert [c.policy_objective for c in configs[:4]] == ["unclipped", "clip", "kl_adaptive", "kl_fixed"]
    assert isinstance(configs[4], pjp.TRPOConfig)


@pytest.mark.parametrize("env", ["brax/inverted_pendulum", "brax/inverted_double_pendulum"])
def test_brax_tasks_run_the_library_preset_but_for_budget_and_swept_values(env):
    from purejaxrl_ppo.cli.presets import brax_preset

    spec = se.ENV_SPECS[env]
    for family in se.FAMILIES:
        config = se.make_config(spec, family, 50_000)
        preset = brax_preset(family.algo, env)
        expected = {k: v for k, v in preset.items() if k not in ("total_timesteps", family.field)}
        assert {k: getattr(config, k) for k in expected} == expected, family.key
        assert config.total_timesteps <= 50_000 < preset["total_timesteps"]


def synthetic_curves(rng, n_seeds, n_updates, level):
    """Rising noisy curves towards ``level`` with the first two updates missing (no episode ended)."""
    ramp = np.linspace(0.0, 1.0, n_updates) * level
    curves = ramp[None, :] + rng.normal(0, 0.05 * max(abs(level), 1), size=(n_seeds, n_updates))
    curves[:, :2] = np.nan
    return curves


def test_report_from_synthetic_curves(tmp_path):
    rng = np.random.default_rng(0)
    curves = {}
    for env, (low, high) in {"CartPole-v1": (20.0, 500.0), "Acrobot-v1": (-500.0, -100.0)}.items():
        steps = np.arange(1, 31) * 512
        returns = {v: low + (high - low) * synthetic_curves(rng, 6, 30, 0.3 + 0.05 * i) for i, v in enumerate(se.VARIANTS)}
        se.save_env(tmp_path, env, {"returns": returns, "env_steps": steps}, low, high)
        curves[env] = se.load_env(tmp_path / f"curves_{env}.npz")
        assert set(curves[env]["returns"]) == set(se.VARIANTS)
    info = {"command": "cmd", "seconds": {"CartPole-v1": {"TRPO": 1.0}}, "machine": "m", "versions": "v",
            "train_seconds": 1.0, "budget_note": "synthetic"}
    stats = se.generate_outputs(curves, info, tmp_path, reps=50)
    for name in ("learning_curves.png", "aggregate_metrics.png", "performance_profile.png", "stats.json"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "sample_efficiency.md").read_text()
    assert "| TRPO δ=0.02 |" in report and "PPO clip ε=0.2 > TRPO δ=0.01 (final)" in report
    # the last variant has the highest level on both envs, so it wins on the final score
    assert stats["aggregate_final"]["points"]["TRPO δ=0.02"]["iqm"] == max(
        p["iqm"] for p in stats["aggregate_final"]["points"].values())
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert saved["envs"] == ["CartPole-v1", "Acrobot-v1"]


def test_steps_cell_is_the_median_of_the_seeds_that_reached_the_threshold():
    assert se._steps_cell([10_000.0, 30_000.0, np.inf, np.inf, np.inf]) == "20k (2/5)"
    assert se._steps_cell([np.inf, np.inf]) == "– (0/2)"
