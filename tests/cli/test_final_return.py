"""The final return of a run whose episodes stop ending: every seed keeps the return of its last episode.

Pendulum-v1 never fails: its episodes end only at the 200-step limit, like a balancing policy that has
stopped failing. With one env and 8-step rollouts an episode ends once every 25 updates; a 45-update run
ends its last episode at update 25, so no episode ends in the last 10 updates (the final-return window).
The definition before 0.3 (the mean over the episodes that ended in the window) gave no final return for
any seed; the return curve carried forward gives each seed its last episode's return.
"""

import json

import numpy as np

from purejaxrl_ppo.cli import main

PENDULUM = ["--env", "Pendulum-v1", "--num-seeds", "3", "--num-envs", "1", "--num-steps", "8",
            "--total-timesteps", "360", "--num-minibatches", "1", "--hidden-sizes", "8"]


def test_a_run_that_stops_ending_episodes_keeps_every_seed(tmp_path, capsys):
    out = tmp_path / "pendulum"
    assert main(["train", *PENDULUM, "--out", str(out)]) == 0
    printed = capsys.readouterr().err
    with np.load(out / "metrics.npz") as data:
        returns = data["episode_return"]
    assert returns.shape == (3, 45)
    ended = ~np.isnan(returns)
    assert ended[:, 24].all() and ended.sum() == 3  # one episode per seed, at update 25; none in the window
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_return_per_seed"] == [float(r) for r in returns[:, 24]]
    assert summary["final_return"]["seeds"] == summary["final_return"]["of"] == 3
    assert summary["final_return"]["min"] == float(returns[:, 24].min())
    assert summary["final_return_metric"] == "episode_return"
    assert "carried forward" in printed and "3/3" not in printed  # all seeds covered: a plain 3

    capsys.readouterr()
    assert main(["compare", str(out), str(out)]) == 0
    table = capsys.readouterr().out
    assert f"{np.median(returns[:, 24]):,.1f}" in table
