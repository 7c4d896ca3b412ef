"""The SB3 RL-Zoo comparison (``benchmarks/sb3_zoo.py``): the Zoo's hyperparameters map field by field onto our
configs, the band flag follows its stated rule, and ``--smoke`` runs end to end (heavy: it trains)."""

import json

import pytest
from helpers import load_script

import purejaxrl_ppo as pjp

zoo = load_script("benchmarks/sb3_zoo.py", "sb3_zoo")


def test_every_cell_has_hyperparameters_and_a_zoo_score():
    cells = {(a, e) for a in zoo.ALGOS for e in zoo.ENVS}
    assert set(zoo.ZOO_HYPERPARAMS) == cells and set(zoo.ZOO_SCORES) == cells


def test_ppo_cartpole_maps_field_by_field():
    """hyperparams/ppo.yml, CartPole-v1: n_envs 8, n_timesteps 1e5, n_steps 32, batch_size 256, gae_lambda 0.8,
    gamma 0.98, n_epochs 20, ent_coef 0.0, learning_rate lin_0.001, clip_range lin_0.2; SB3 PPO defaults otherwise."""
    config, deviations = zoo.zoo_config("ppo", "CartPole-v1")
    assert isinstance(config, pjp.PPOConfig)
    expected = dict(
        env_name="CartPole-v1", num_envs=8, num_steps=32,
        total_timesteps=391 * 256,  # ceil(1e5 / 256) whole rollouts, as SB3's learn collects them
        num_minibatches=1,  # batch_size 256 = the whole 8 x 32 rollout
        update_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0, learning_rate=0.001, anneal_lr=True,
        clip_eps=0.2, anneal_clip_eps=True,  # lin_0.2: ε annealed to 0 as the learning rate
        vf_coef=1.0,  # SB3's 0.5 x MSE is our 1.0 x (1/2 MSE)
        clip_value_loss=False, max_grad_norm=0.5, normalize_advantages=True, normalize_observations=False,
        scale_rewards=False, hidden_sizes=(64, 64), activation="tanh", eval_every=0, log_std_init=0.0,
        ortho_init=True,
    )
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    # What remains is the one-rollout offset of both schedules (SB3 evaluates them after the rollout).
    assert deviations == ["lin_ learning rate and clip range: ours anneal from the full value at the first update, "
                          "SB3 from 1 - batch/n_timesteps of it (one rollout later)"]


def test_ppo_mountaincar_continuous_maps_and_names_what_it_cannot_do():
    """hyperparams/ppo.yml, MountainCarContinuous-v0: normalize, n_envs 1, n_timesteps 20000, batch_size 256,
    n_steps 8, gamma 0.9999, learning_rate 7.77e-05, ent_coef 0.00429, clip_range 0.1, n_epochs 10, gae_lambda 0.9,
    max_grad_norm 5, vf_coef 0.19, use_sde, policy_kwargs log_std_init=-3.29, ortho_init=False: all mapped but gSDE
    (and VecNormalize's per-step statistics)."""
    config, deviations = zoo.zoo_config("ppo", "MountainCarContinuous-v0")
    expected = dict(
        num_envs=1, num_steps=8, total_timesteps=20000, num_minibatches=1, gamma=0.9999, learning_rate=7.77e-05,
        anneal_lr=False, ent_coef=0.00429, clip_eps=0.1, update_epochs=10, gae_lambda=0.9, max_grad_norm=5.0,
        normalize_observations=True, scale_rewards=True, clip_value_loss=False, log_std_init=-3.29, ortho_init=False,
        anneal_clip_eps=False,
    )
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert config.vf_coef == pytest.approx(0.38)
    assert len(deviations) == 2
    assert deviations[0].startswith("normalize")
    # gSDE stays unsupported; its deviation says what log_std_init means there and what it sets here.
    assert deviations[1].startswith("use_sde") and "log_std_init=-3.29" in deviations[1]
    assert "ortho_init" not in " ".join(deviations)


def test_only_mcc_ppo_changes_the_policy_init_and_only_cartpole_ppo_anneals_eps():
    for algo in zoo.ALGOS:
        for env in zoo.ENVS:
            config, _ = zoo.zoo_config(algo, env)
            special = (algo, env) == ("ppo", "MountainCarContinuous-v0")
            assert (config.log_std_init, config.ortho_init) == ((-3.29, False) if special else (0.0, True))
            assert getattr(config, "anneal_clip_eps", False) == ((algo, env) == ("ppo", "CartPole-v1"))


def _doc(cells, command, complete=True):
    return {"command": command, "date": "2026-12-08", "code": {"commit": "f" * 40}, "machine": {},
            "complete": complete, "results": [{"algo": a, "env": e, "command": command} for a, e in cells]}


def test_merge_keeps_the_cells_not_rerun_in_run_order():
    every = [(a, e) for e in zoo.ENVS for a in zoo.ALGOS]
    previous = _doc(every, "python benchmarks/sb3_zoo.py --out x")
    rerun = [("ppo", "CartPole-v1"), ("ppo", "MountainCarContinuous-v0")]
    merged = zoo.merge_results(previous, _doc(rerun, "python benchmarks/sb3_zoo.py --merge"))
    assert [(r["algo"], r["env"]) for r in merged["results"]] == every
    for r in merged["results"]:
        assert r["command"].endswith("--merge") == ((r["algo"], r["env"]) in rerun)
    assert merged["complete"] and merged["command"].endswith("--merge")
    assert merged["earlier_run"]["command"] == previous["command"]
    assert "PPO CartPole-v1, PPO MountainCarContinuous-v0 rerun" in merged["note"]
    assert "total_seconds" not in merged
    timed = zoo.merge_results(previous, {**_doc(rerun, "new"), "total_seconds": 12.0})
    assert timed["rerun_seconds"] == 12.0 and "total_seconds" not in timed
    partial = zoo.merge_results(_doc(every[:3], "old"), _doc(rerun[:1], "new"))
    assert not partial["complete"] and len(partial["results"]) == 3


def test_trpo_cartpole_maps_field_by_field():
    """hyperparams/trpo.yml, CartPole-v1: n_envs 2, n_timesteps 1e5, n_steps 512, batch_size 512, cg_damping 1e-3,
    gae_lambda 0.98, gamma 0.99, learning_rate 1e-3, n_critic_updates 20; sb3-contrib TRPO defaults otherwise
    (target_kl 0.01, cg_max_steps 15, line_search_shrinking_factor 0.8, line_search_max_iter 10,
    sub_sampling_factor 1)."""
    config, deviations = zoo.zoo_config("trpo", "CartPole-v1")
    assert isinstance(config, pjp.TRPOConfig)
    expected = dict(
        num_envs=2, num_steps=512, total_timesteps=98 * 1024, critic_minibatches=2, critic_epochs=20,
        cg_damping=1e-3, gae_lambda=0.98, gamma=0.99, critic_learning_rate=1e-3, max_kl=0.01, cg_iters=15,
        backtrack_coef=0.8, line_search_steps=10, fisher_subsample=1, ent_coef=0.0, normalize_advantages=True,
        normalize_observations=False, scale_rewards=False, hidden_sizes=(64, 64), activation="tanh",
    )
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert deviations == []


def test_trpo_acrobot_uses_the_defaults_it_does_not_override():
    """hyperparams/trpo.yml, Acrobot-v1: normalize, n_envs 2, n_timesteps 1e5, n_steps 1024 only."""
    config, deviations = zoo.zoo_config("trpo", "Acrobot-v1")
    assert (config.critic_minibatches, config.critic_epochs) == (2048 // 128, 10)  # batch_size 128, 10 critic updates
    assert (config.gamma, config.gae_lambda, config.cg_damping, config.critic_learning_rate) == (0.99, 0.95, 0.1, 1e-3)
    assert config.normalize_observations and config.scale_rewards
    assert config.total_timesteps == 49 * 2048
    assert len(deviations) == 1 and "normalize" in deviations[0]


def test_budget_scale_rounds_up_to_whole_rollouts():
    config, _ = zoo.zoo_config("ppo", "Acrobot-v1", budget_scale=0.01)  # 1e4 steps, rollouts of 16 x 256
    assert config.total_timesteps == 3 * 4096


def test_a_schedule_other_than_linear_is_refused():
    assert zoo._schedule("lin_0.5") == (0.5, True) and zoo._schedule(3e-4) == (3e-4, False)
    with pytest.raises(ValueError, match="unknown Zoo schedule"):
        zoo._schedule("exp_0.5")
    with pytest.raises(ValueError, match="does not divide"):
        zoo._minibatches(100, 64, "cell")
    assert zoo._minibatches(8, 256, "cell") == 1


@pytest.mark.parametrize("mean, ci, flag", [
    (-100.0, (-110.0, -90.0), ""),  # inside the band [-110, -90]
    (-90.0, (-95.0, -85.0), ""),  # on its upper edge
    (-115.0, (-120.0, -105.0), "mean below"),  # point below, CI reaches the band
    (-130.0, (-140.0, -111.0), "below"),  # the whole CI below -110
    (-85.0, (-91.0, -80.0), "mean above"),
    (-80.0, (-90.0, -70.0), "mean above"),  # the CI reaches the band's upper edge
    (-80.0, (-89.9, -70.0), "above"),
])
def test_band_flag(mean, ci, flag):
    assert zoo.band_flag(mean, ci, zoo_mean=-100.0, zoo_std=10.0) == flag


def test_band_flag_with_a_zero_std():
    """CartPole's Zoo band is [500, 500]: any mean below 500 is flagged, 'below' once the CI ends under 500."""
    assert zoo.band_flag(500.0, (500.0, 500.0), 500.0, 0.0) == ""
    assert zoo.band_flag(499.0, (497.0, 500.0), 500.0, 0.0) == "mean below"
    assert zoo.band_flag(499.0, (497.0, 499.9), 500.0, 0.0) == "below"


@pytest.mark.heavy
def test_smoke_runs_end_to_end(tmp_path):
    result = zoo.main(["--smoke", "--out", str(tmp_path)])
    stored = json.loads((tmp_path / "sb3_zoo.json").read_text())
    assert stored["complete"] and stored["smoke"] and stored["zoo_commit"] == zoo.ZOO_COMMIT
    assert [(r["algo"], r["env"]) for r in result["results"]] == [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1")]
    for row in stored["results"]:
        assert len(row["score_per_seed"]) == 2 and row["config"]["env_name"] == "CartPole-v1"
        assert row["mean_ci95"][0] <= row["mean"] <= row["mean_ci95"][1]


def test_page_table_equals_the_stored_json():
    """``docs/results/sb3-zoo.md``'s score table (``benchmarks/results_docs.py``) shows the stored JSON's numbers."""
    from pathlib import Path

    rd = load_script("benchmarks/results_docs.py", "results_docs")
    root = Path(__file__).resolve().parents[2]
    doc = json.loads((root / rd.SB3_ZOO).read_text())
    text = rd.sb3_zoo_page(rd.Sources(root))
    lines = text.split("## Scores")[1].split("## Deviations")[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| `")]
    assert len(rows) == len(doc["results"])
    for row, r in zip(rows, doc["results"]):
        assert (row[0], row[1], row[3]) == (f"`{r['env']}`", r["algo"].upper(), str(r["seeds"]))
        assert row[5].startswith(f"{r['mean']:.2f} [{r['mean_ci95'][0]:.2f}, {r['mean_ci95'][1]:.2f}]")
        assert row[6].startswith(f"{r['iqm']:.2f} [")
        assert row[8].startswith(f"{r['zoo_mean']:.2f} ± {r['zoo_std']:.2f}")
        assert row[9] == rd.ZOO_FLAG_TEXT[r["flag"]]
        assert r["flag"] == zoo.band_flag(r["mean"], tuple(r["mean_ci95"]), r["zoo_mean"], r["zoo_std"])
