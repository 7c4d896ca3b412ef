"""CLI commands called in-process on a tiny budget: train saving a policy, render (gymnax, fast)."""

import json
import shutil

import jax

from purejaxrl_ppo.cli import main
from purejaxrl_ppo.runs.policy_files import load_policy


def test_train_saves_a_policy(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "256", "--num-envs", "2",
            "--num-steps", "32", "--quiet", "--out", str(run), "--normalize-observations", "--eval-every", "2",
            "--eval-episodes", "2"]
    assert main(argv) == 0
    header, *rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    evals = [row[header.index("eval_return")] for row in rows]  # one row per seed and update
    assert evals.count("nan") == len(evals) // 2 and all(float(x) > 0 for x in evals if x != "nan")
    params, stats = load_policy(run / "policy.msgpack")
    assert stats.mean.shape == (2, 4) and float(stats.count[0]) == 256
    assert jax.tree_util.tree_leaves(params)[0].shape[0] == 2
    assert json.loads((run / "config.json").read_text())["normalize_observations"] is True


def test_render_writes_a_gif_of_a_minatar_policy(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)  # render refuses an unfinished run, so render a real (tiny, 2-seed) one
    assert main(["render", "--run", str(run), "--seed-index", "1"]) == 0
    assert (run / "render.gif").read_bytes()[:3] == b"GIF"
    assert main(["render", "--run", str(run), "--seed-index", "5"]) == 2
