"""``python -m purejaxrl_ppo rlhf`` end to end on a tiny pipeline, in-process.

One run (PPO, 2 seeds, a β = 0 sweep and a TRPO δ sweep) is trained once for the module; the other tests
reuse its stages (``--sft-from``/``--rm-from``) or copy it, so every program they run is one the persistent
compile cache (tests/conftest.py) already holds: the TRPO run is the sweep's TRPO program, the β sweep of
one β is the main program with other β values.
"""

import json
import math
import shutil

import numpy as np
import pytest

from purejaxrl_ppo.cli import main

TINY = ["--vocab-size", "8", "--prompt-len", "3", "--response-len", "5", "--base-mean-length", "3", "--d-model", "16",
        "--num-layers", "1", "--num-heads", "2", "--sft-steps", "20", "--rm-steps", "20", "--rm-train-pairs", "64",
        "--num-iterations", "4", "--rollout-batch", "8", "--num-minibatches", "2", "--eval-size", "16",
        "--num-seeds", "2", "--chunk-iterations", "2", "--max-kl", "0.02"]
PINNED = ("rm_accuracy", "rm_gold_accuracy", "sft_loss", "sft_entropy_floor", "gold_score_initial", "gold_score",
          "proxy_score_initial", "proxy_score", "kl_to_reference", "compile_seconds", "run_seconds", "wall_seconds")
FINAL_FILES = ("summary.json", "metrics.npz", "samples.md", "rlhf_curves.png", "overoptimisation.png", "sweep.json",
               "sweep_metrics.npz", "complete.json", "config.json", "run.json", "metrics.csv", "metrics.jsonl",
               "sft/params.msgpack", "sft/metrics.json", "rm/params.msgpack", "rm/metrics.json")


def _summary(run):
    return json.loads((run / "summary.json").read_text())


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rlhf") / "base"
    argv = ["rlhf", *TINY, "--out", str(run), "--sweep-kl-coefs", "0", "--sweep-max-kls", "0.02", "--quiet"]
    assert main(argv) == 0
    return run


def test_the_run_directory_holds_only_described_entries(base_run):
    from helpers import check_listing
    from purejaxrl_ppo.runs.contents import RLHF_RUN_FILES

    check_listing(base_run, RLHF_RUN_FILES)
    assert {"sft", "rm", "sweep.json", "summary.json", "complete.json"} <= {p.name for p in base_run.iterdir()}


def test_run_writes_the_pinned_summary_and_files(base_run):
    summary = _summary(base_run)
    for key in PINNED:
        assert math.isfinite(summary[key]), key
    assert summary["algo"] == "ppo" and summary["num_seeds"] == 2 and summary["kl_to_reference_initial"] == 0.0
    assert summary["kl_to_reference"] > 0.0 and len(summary["per_seed"]["gold_score"]) == 2
    assert summary["gold_score"] == np.median(summary["per_seed"]["gold_score"])
    for name in FINAL_FILES:
        assert (base_run / name).is_file(), name
    for png in ("rlhf_curves.png", "overoptimisation.png"):
        assert (base_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(base_run / "metrics.npz") as metrics:
        assert metrics["gold_score"].shape == (2, 4) and metrics["kl_coef"].shape == (2, 4)
        np.testing.assert_array_equal(metrics["kl_to_reference"][:, 0], 0.0)  # iteration 1 samples the reference
    sweep = json.loads((base_run / "sweep.json").read_text())["settings"]
    assert [s["label"] for s in sweep] == ["PPO β=0.05 (this run)", "PPO β=0", "TRPO δ=0.02, β=0.05"]
    with np.load(base_run / "sweep_metrics.npz") as metrics:
        np.testing.assert_array_equal(metrics["ppo/kl_coef"], 0.0)
    samples = (base_run / "samples.md").read_text()
    assert samples.count("## Prompt") == 8 and "</s>" in samples and "SFT (before RL)" in samples
    rows = (base_run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 2  # header, then one row per iteration and seed
    assert sorted(p.name for p in (base_run / "checkpoints").iterdir()) == ["2", "4"]


def test_stages_are_reused_and_a_different_model_is_refused(base_run, tmp_path, capsys):
    run = tmp_path / "reuse"
    assert main(["rlhf", *TINY, "--out", str(run), "--rm-from", str(base_run), "--quiet"]) == 0  # takes its SFT too
    summary = _summary(run)
    assert summary["stages"]["sft"]["reused_from"] == str(base_run)
    assert summary["stages"]["rm"]["reused_from"] == str(base_run) and summary["stages"]["rm"]["compile_seconds"] == 0
    for name in ("sft/params.msgpack", "rm/params.msgpack"):
        assert (run / name).read_bytes() == (base_run / name).read_bytes()
    assert summary["rm_accuracy"] == _summary(base_run)["rm_accuracy"]
    with np.load(run / "metrics.npz") as a, np.load(base_run / "metrics.npz") as b:
        np.testing.assert_array_equal(a["gold_score"], b["gold_score"])  # same stages, same seeds: same RL
    capsys.readouterr()

    refused = tmp_path / "refused"
    assert main(["rlhf", *TINY, "--d-model", "32", "--out", str(refused), "--sft-from", str(base_run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sft-from") and "d_model 16 there, 32 here" in err and len(err.splitlines()) == 1
    assert not refused.exists()


def test_trpo_runs(base_run, tmp_path):
    run = tmp_path / "trpo"
    argv = ["rlhf", *TINY, "--algo", "trpo", "--out", str(run), "--sft-from", str(base_run), "--rm-from",
            str(base_run), "--quiet"]
    assert main(argv) == 0
    summary = _summary(run)
    assert summary["algo"] == "trpo" and summary["max_kl"] == 0.02
    assert all(math.isfinite(summary[key]) for key in PINNED)
    with np.load(run / "metrics.npz") as metrics:
        assert "line_search_accepted" in metrics and metrics["gold_score"].shape == (2, 4)


def test_resume_reproduces_the_uninterrupted_run(base_run, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(base_run, run)
    shutil.rmtree(run / "checkpoints" / "4")  # killed after the first chunk's checkpoint
    for name in ("summary.json", "metrics.npz", "complete.json", "samples.md", "metrics.csv"):
        (run / name).unlink()
    assert main(["rlhf", "--resume", str(run), "--quiet"]) == 0
    with np.load(run / "metrics.npz") as a, np.load(base_run / "metrics.npz") as b:
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert (run / "metrics.csv").read_text() == (base_run / "metrics.csv").read_text()
    assert _summary(run)["gold_score"] == _summary(base_run)["gold_score"]
    commands = json.loads((run / "run.json").read_text())["commands"]
    assert [c["resumed"] for c in commands] == [False, True]


def test_refusals(base_run, tmp_path, capsys):
    assert main(["rlhf", *TINY, "--out", str(base_run)]) == 2  # non-empty, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["rlhf", "--resume", str(base_run), "--d-model", "8"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(["rlhf", "--resume", str(base_run), "--quiet"]) == 0  # finished: nothing to do
    assert main(["rlhf", *TINY, "--num-heads", "3", "--out", str(tmp_path / "x")]) == 2
    assert "not divisible by num_heads = 3" in capsys.readouterr().err
    assert main(["rlhf", *TINY, "--sweep-max-kls", "0", "--out", str(tmp_path / "y")]) == 2
    assert "sweep_max_kls must be positive" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("damage", ["flip sft/params.msgpack", "edit rm/metrics.json"])
def test_resume_recomputes_a_damaged_stage_instead_of_certifying_it(damage, base_run, tmp_path, capsys):
    """Round-2 finding 2: a damaged stage file was reused and hashed into the new complete.json."""
    from purejaxrl_ppo.runs.rundir import finished_problem

    run = tmp_path / "damaged"
    shutil.copytree(base_run, run)
    stage = damage.split()[1].split("/")[0]
    path = run / damage.split()[1]
    if damage.startswith("flip"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), "heldout_accuracy": 0.25}))
    capsys.readouterr()
    assert main(["rlhf", "--resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"warning: stage {stage} is unusable" in err and "checksum mismatch" in err, err
    assert [p.name.split("-")[0] for p in (run / "corrupt_checkpoints").iterdir()] == [stage]
    assert finished_problem(run) is None
    for name in (f"{stage}/params.msgpack", "metrics.npz", "metrics.csv"):
        assert (run / name).read_bytes() == (base_run / name).read_bytes(), name  # computed again, the same
    ours, theirs = _summary(run), _summary(base_run)
    for key in ("sft_loss", "rm_accuracy", "gold_score", "proxy_score", "kl_to_reference"):
        assert ours[key] == theirs[key], key


def test_a_damaged_stage_is_not_reused_by_another_run(base_run, tmp_path, capsys):
    source = tmp_path / "source"
    shutil.copytree(base_run, source)
    metrics = source / "sft" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "heldout_loss": 1.0}))
    capsys.readouterr()
    assert main(["rlhf", *TINY, "--out", str(tmp_path / "new"), "--sft-from", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sft-from") and "sft stage is damaged" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "new").exists()
