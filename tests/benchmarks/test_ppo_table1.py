"""benchmarks/ppo_table1.py: each Table 1 setting's config against the paper's values, the last-100-episodes
score and the normalisation against numpy loops, the ordering sentence, the results page; ``--smoke`` (heavy)."""

import json
import sys

import numpy as np
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import ppo_table1 as t1  # noqa: E402

import purejaxrl_ppo as pjp  # noqa: E402

#: Schulman et al. 2017, Table 3 (MuJoCo) and Section 6.1, field by field.
PAPER = dict(num_envs=1, num_steps=2048, gamma=0.99, gae_lambda=0.95, hidden_sizes=(64, 64), activation="tanh",
             shared_torso=False, ent_coef=0.0, policy="mlp")
PAPER_PPO = dict(update_epochs=10, num_minibatches=32, learning_rate=3e-4, anneal_lr=False, clip_value_loss=False)
#: Setting -> (objective, swept field, value) as the paper's Table 1 defines it (β initialised at 1 for adaptive KL).
EXPECTED = {
    "No clipping or penalty": ("kl_fixed", "kl_coef", 0.0),  # β = 0: the unclipped surrogate (UNCLIPPED_AS_BETA0)
    "Clipping, ε = 0.1": ("clip", "clip_eps", 0.1), "Clipping, ε = 0.2": ("clip", "clip_eps", 0.2),
    "Clipping, ε = 0.3": ("clip", "clip_eps", 0.3),
    "Adaptive KL, d_targ = 0.003": ("kl_adaptive", "kl_target", 0.003),
    "Adaptive KL, d_targ = 0.01": ("kl_adaptive", "kl_target", 0.01),
    "Adaptive KL, d_targ = 0.03": ("kl_adaptive", "kl_target", 0.03),
    "Fixed KL, β = 0.3": ("kl_fixed", "kl_coef", 0.3), "Fixed KL, β = 1": ("kl_fixed", "kl_coef", 1.0),
    "Fixed KL, β = 3": ("kl_fixed", "kl_coef", 3.0), "Fixed KL, β = 10": ("kl_fixed", "kl_coef", 10.0),
    "TRPO, δ = 0.01": (None, "max_kl", 0.01),
}


def setting_configs(task="Pendulum-v1", budget=1_000_000):
    """Every setting's single-run config, built the way the script builds its sweeps."""
    out = {}
    for family, labels in t1.program_families():
        base = t1.make_task_config(task, family, budget)
        for label, value in zip(labels, family.values or (None,)):
            out[label] = base if family.field is None else base.replace(**{family.field: value})
    return out


def test_every_setting_has_the_papers_config_field_by_field():
    configs = setting_configs()
    assert set(configs) == set(EXPECTED)
    assert set(t1.PAPER_TABLE1) == set(EXPECTED) - {"TRPO, δ = 0.01"}
    for label, (objective, name, value) in EXPECTED.items():
        cfg = configs[label]
        for field, expected in PAPER.items():
            assert getattr(cfg, field) == expected, (label, field)
        assert cfg.total_timesteps == 488 * 2048 and cfg.num_updates == 488  # 1M steps in whole rollouts
        assert cfg.normalize_observations  # Baselines ppo1's MlpPolicy (the paper's code) normalises observations
        assert getattr(cfg, name) == pytest.approx(value), label
        if objective is None:
            assert isinstance(cfg, pjp.TRPOConfig) and cfg.ent_coef == 0.0
            assert cfg == pjp.TRPOConfig(**{**{f: getattr(cfg, f) for f in ("env_name", "total_timesteps")},
                                            **PAPER, "normalize_observations": True, "max_kl": 0.01})
            continue
        assert isinstance(cfg, pjp.PPOConfig) and cfg.policy_objective == objective, label
        for field, expected in PAPER_PPO.items():
            assert getattr(cfg, field) == expected, (label, field)
        assert cfg.minibatch_size == 64 and cfg.max_grad_norm == 1e9 and cfg.vf_coef == 1.0
        if objective == "kl_adaptive":
            assert cfg.kl_coef == 1.0  # β initialised at 1


def test_env_names_keep_brax_defaults_and_name_the_backend():
    assert t1.env_name("hopper") == "brax/hopper?backend=positional&episode_length=1000"
    assert t1.env_name("inverted_pendulum") == "brax/inverted_pendulum?backend=generalized&episode_length=1000"
    assert t1.env_name("Pendulum-v1") == "Pendulum-v1"


def last_episodes_loop(returns, ended, n):
    """Independent reference: walk back update by update, episode by episode."""
    kept = []
    for u in range(len(returns) - 1, -1, -1):
        for _ in range(int(ended[u])):
            if len(kept) < n:
                kept.append(returns[u])
    return np.mean(kept) if kept else np.nan


def test_last_episodes_mean_matches_a_loop():
    rng = np.random.default_rng(0)
    ended = rng.integers(0, 4, size=(3, 5, 40)).astype(np.float32)
    ended[0, 0] = 0  # no episode at all
    ended[0, 1, :-1] = 0  # fewer than n episodes
    returns = np.where(ended > 0, rng.normal(100, 30, ended.shape), np.nan).astype(np.float32)
    for n in (1, 7, 100):
        got = t1.last_episodes_mean(returns, ended, n)
        want = np.array([[last_episodes_loop(returns[i, j], ended[i, j], n) for j in range(5)] for i in range(3)])
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert np.isnan(got[0, 0]) and got.shape == (3, 5)


def test_normalisation_puts_random_at_0_and_the_best_ppo_setting_at_1():
    raw = {"Clipping, ε = 0.2": np.array([80.0, 100.0]), "No clipping or penalty": np.array([0.0, -20.0]),
           "TRPO, δ = 0.01": np.array([200.0, 220.0])}
    norm, best = t1.normalise(raw, random_score=10.0)
    assert best == 90.0  # TRPO is not a candidate for best
    for k, v in raw.items():
        np.testing.assert_allclose(norm[k], [(x - 10.0) / (90.0 - 10.0) for x in v])
    assert np.mean(norm["Clipping, ε = 0.2"]) == 1.0 and (norm["TRPO, δ = 0.01"] > 1).all()
    with pytest.raises(ValueError, match="undefined"):
        t1.normalise({"Clipping, ε = 0.2": np.array([5.0])}, 5.0)


def test_ordering_sentence():
    means = {label: 0.7 for label in t1.LABELS}
    means.update({"Clipping, ε = 0.2": 0.82, "No clipping or penalty": -0.39, "TRPO, δ = 0.01": 2.0})
    assert t1.ordering_sentence(means).startswith("The paper's ordering reproduces: the best PPO setting is "
                                                  "Clipping, ε = 0.2 (0.82), the worst is No clipping or penalty")
    means["No clipping or penalty"] = 0.1
    text = t1.ordering_sentence(means)
    assert text.startswith("The paper's ordering does not fully reproduce") and "not below the random" in text
    means.update({"Fixed KL, β = 1": 0.9, "Fixed KL, β = 10": 0.0})
    text = t1.ordering_sentence(means)
    assert "best PPO setting is Fixed KL, β = 1 (0.90; clipping with ε = 0.2: 0.82)" in text
    assert "worst is Fixed KL, β = 10 (0.00; no clipping or penalty: 0.10)" in text
    means.update({"Fixed KL, β = 1": 0.82, "Fixed KL, β = 10": 0.82, "No clipping or penalty": -0.1})
    assert t1.ordering_sentence(means).startswith(
        "The paper's ordering reproduces: the best PPO setting is Clipping, ε = 0.2 (0.82, tied with Fixed KL, "
        "β = 1, Fixed KL, β = 10)")


def hand_made_doc(tasks=("a", "b"), seeds=3):
    rng = np.random.default_rng(1)
    doc = {"tasks": {t: {"raw": {k: rng.normal(50 + 5 * i, 5, seeds).tolist() for i, k in enumerate(t1.LABELS)},
                         "random_score": 1.0, "backend": "generalized", "seeds": seeds, "complete": True,
                         "wall_seconds": 12.0, "families": {"PPO clip": {"seconds": 12.0, "env_steps": 4096}}}
                     for t in tasks}}
    return doc


def test_summary_means_are_the_mean_normalised_score_over_tasks_and_seeds():
    doc = hand_made_doc()
    s = t1.summarise(doc["tasks"], reps=50)
    for k in t1.LABELS:
        norm = [t1.normalise({j: np.asarray(v) for j, v in doc["tasks"][t]["raw"].items()}, 1.0)[0][k]
                for t in ("a", "b")]
        assert s["mean"][k] == pytest.approx(np.mean(norm))
        assert s["mean_ci"][k][0] <= s["mean"][k] <= s["mean_ci"][k][1]
    assert s["ordering"] == t1.ordering_sentence(s["mean"])


def test_results_page_reads_every_number_from_the_json(tmp_path):
    import results_docs

    doc = hand_made_doc()
    doc.update(summary=t1.summarise(doc["tasks"], reps=50), paper=t1.PAPER_TABLE1, command="cmd",
               setup={"base": t1.PAPER_BASE, "ppo": t1.PAPER_PPO, "trpo": {"max_kl": 0.01},
                      "unclipped_as_beta0": True, "last_episodes": 100})
    path = tmp_path / results_docs.PPO_TABLE1_JSON
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    text = results_docs.ppo_table1_page(results_docs.Sources(tmp_path))
    s = doc["summary"]
    assert f"| Clipping, ε = 0.2 | {s['mean']['Clipping, ε = 0.2']:.2f} [" in text
    assert "| No clipping or penalty |" in text and "| -0.39 |" in text and "not in Table 1" in text
    assert s["ordering"] in text


@pytest.mark.heavy
def test_smoke_end_to_end(tmp_path):
    out = tmp_path / "smoke.json"
    t1.main(["--smoke", "--out", str(out)])
    doc = json.loads(out.read_text())
    rec = doc["tasks"]["Pendulum-v1"]
    assert rec["complete"] and set(rec["raw"]) == set(t1.LABELS)
    assert all(len(v) == 2 and np.isfinite(v).all() for v in rec["raw"].values())
    assert doc["summary"]["tasks"] == ["Pendulum-v1"]
