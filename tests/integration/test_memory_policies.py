"""Stateful policies through the whole library: durable resume, periodic evaluation, sweeps and the CLI,
for PPO and TRPO (the carry is part of the train state, so each of these needs nothing of its own)."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import leaves_equal
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.driver import train_durable
from purejaxrl_ppo.runs.options import RunOptions

SMALL = dict(env_name="CartPole-v1?mask=velocity", rnn_hidden_size=8, hidden_sizes=(8,), context_len=4, num_heads=2,
             embed_dim=8, num_envs=4, num_steps=8, total_timesteps=4 * 8 * 6)


def config(algo: str, policy: str, **overrides) -> pjp.BaseConfig:
    if algo == "ppo":
        return pjp.PPOConfig(policy=policy, num_minibatches=2, update_epochs=1, **{**SMALL, **overrides})
    return pjp.TRPOConfig(policy=policy, critic_minibatches=2, critic_epochs=1, fisher_subsample=2, cg_iters=3,
                          line_search_steps=3, **{**SMALL, **overrides})


class Stop(Exception):
    pass


def stop_after_first_chunk(report):
    if report.index == 0:
        raise Stop


@pytest.mark.slow
@pytest.mark.heavy  # ~60 s; make test resumes feed-forward runs (tests/runs/), the carry is one more state leaf
@pytest.mark.parametrize(("algo", "policy"), [("ppo", "gru"), ("trpo", "attention")])
def test_resumed_recurrent_run_equals_the_uninterrupted_run(algo, policy, tmp_path):
    cfg = config(algo, policy)
    options = RunOptions(num_seeds=2, chunk_updates=2)
    whole = train_durable(tmp_path / "whole", cfg, options)
    with pytest.raises(Stop):
        train_durable(tmp_path / "cut", cfg, options, on_chunk=stop_after_first_chunk)
    resumed = train_durable(tmp_path / "cut", resume=True)
    for name in whole.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name], err_msg=name)
    leaves_equal(resumed.final_state, whole.final_state)  # the carries included
    assert set(whole.final_state.runner.carry) == {"actor", "critic"}


@pytest.mark.slow
def test_periodic_evaluation_with_a_recurrent_policy():
    cfg = config("ppo", "gru", eval_every=3, eval_episodes=2)
    out = jax.jit(pjp.make_train(cfg))(jax.random.PRNGKey(0))
    evals = np.asarray(out.metrics["eval_return"])
    assert np.isfinite(evals[2::3]).all() and np.isnan(evals[0]) and (evals[2::3] > 0).all()


@pytest.mark.heavy
def test_sweep_with_a_recurrent_policy_equals_single_runs():
    swept = pjp.sweep(config("ppo", "gru"), {"clip_eps": [0.1, 0.3]}, num_seeds=1, seed=0)
    alone = jax.jit(jax.vmap(pjp.make_train(config("ppo", "gru", clip_eps=0.3))))(
        jax.random.split(jax.random.PRNGKey(0), 1)).metrics
    for name in ("value_loss", "entropy", "approx_kl"):
        np.testing.assert_allclose(swept.sel(clip_eps=0.3)[name], np.asarray(alone[name]), rtol=2e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "policy", "extra"), [
    ("ppo", "gru", ["--shared-torso"]), pytest.param("trpo", "gru", [], marks=pytest.mark.heavy)])
def test_cli_trains_memory_policies(algo, policy, extra, tmp_path: Path, capsys):
    out = tmp_path / "run"
    sizes = ["--rnn-hidden-size", "8", "--hidden-sizes", "8", "--num-envs", "4", "--num-steps", "8",
             "--total-timesteps", "96", "--num-seeds", "2"]
    split = ["--num-minibatches", "2"] if algo == "ppo" else ["--critic-minibatches", "2", "--fisher-subsample", "2"]
    code = main(["train", "--algo", algo, "--env", "CartPole-v1?mask=velocity", "--policy", policy, *extra, *sizes,
                 *split, "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["policy"] == policy and summary["config"]["shared_torso"] == bool(extra)
    capsys.readouterr()
    assert main(["train", "--algo", "trpo", "--policy", "gru", "--shared-torso", "--out", str(tmp_path / "x")]) == 2
    assert "shared_torso is not supported by TRPO" in capsys.readouterr().err


@pytest.mark.heavy
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_gru_on_a_brax_task(algo):
    kw = dict(num_minibatches=2) if algo == "ppo" else dict(critic_minibatches=2, fisher_subsample=2)
    cls = pjp.PPOConfig if algo == "ppo" else pjp.TRPOConfig
    cfg = cls(env_name="brax/inverted_pendulum", policy="gru", rnn_hidden_size=8, hidden_sizes=(8,), num_envs=4,
              num_steps=8, total_timesteps=4 * 8 * 2, **kw)
    metrics = jax.jit(pjp.make_train(cfg))(jax.random.PRNGKey(0)).metrics
    assert np.isfinite(np.asarray(metrics["value_loss"])).all()
