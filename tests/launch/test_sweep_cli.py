"""``python -m purejaxrl_ppo sweep`` (cli/sweep.py, runs/sweep_files.py; the durable driver's ``kind="sweep"``):
the run directory and table, equality with ``pjp.sweep``, kill/Ctrl-C and resume bit-identical, divergence,
bad grids, and the table's statistics against independent references.

One uninterrupted CLI sweep (module fixture) is the reference; the interrupted ones reuse its compiled
programs (same config and layout), so each costs seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import KILL_DRIVER, SWEEP_RUN_FILE, SWEEP_SETS, leaves_equal, write_run_file
from purejaxrl_ppo.cli.commands import main
from purejaxrl_ppo.launch.chunked import TrainingDiverged, first_non_finite
from purejaxrl_ppo.launch.programs import abstract_grid_state
from purejaxrl_ppo.driver.outputs import SUMMARY_BOOTSTRAP_SAMPLES, setting_rows
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs.checkpoint import Checkpointer
from purejaxrl_ppo.runs.sweep_files import read_sweep_file

RUN_FILE, SETS = SWEEP_RUN_FILE, SWEEP_SETS
GRID = {"clip_eps": [0.1, 0.2, 0.3], "ent_coef": [0.0, 0.05]}
LABELS = [f"clip_eps={c!r},ent_coef={e!r}" for c in GRID["clip_eps"] for e in GRID["ent_coef"]]
SEEDS, UPDATES = 3, 8
LOG_FILES = ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl")


class Crash(BaseException):
    """A simulated kill just before a rename (no ``Exception``: nothing handles it)."""


@pytest.fixture(scope="module")
def run_file(tmp_path_factory) -> Path:
    return write_run_file(tmp_path_factory, RUN_FILE)


def sweep(run_file: Path, out: Path, *extra: str) -> int:
    return main(["sweep", "--config", str(run_file), *SETS, "--out", str(out), *extra])


def resume(out: Path, *extra: str) -> int:
    return main(["sweep", "--resume", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def reference(run_file, tmp_path_factory):
    """The uninterrupted sweep, and what it printed (stderr)."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    err = io.StringIO()  # (a module fixture cannot use capsys)
    with contextlib.redirect_stderr(err):
        assert sweep(run_file, out) == 0
    return out, err.getvalue()


def final_state(run_dir: Path):
    config, options, grid = read_sweep_file(run_dir / rundir.CONFIG_FILE)
    abstract = abstract_grid_state(config, len(LABELS), options.num_seeds)
    return Checkpointer(run_dir / "checkpoints").restore(UPDATES, abstract).state


def assert_same_sweep(run_dir: Path, reference_dir: Path) -> None:
    """Finished, and every result equal to the reference bit for bit (timings aside)."""
    assert rundir.finished_problem(run_dir) is None
    with np.load(run_dir / "metrics.npz") as a, np.load(reference_dir / "metrics.npz") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (run_dir / "summary.csv").read_bytes() == (reference_dir / "summary.csv").read_bytes()
    for label in LABELS:
        for name in LOG_FILES:
            path = Path("points") / label / name
            assert (run_dir / path).read_bytes() == (reference_dir / path).read_bytes(), path
    leaves_equal(final_state(run_dir), final_state(reference_dir))


# ----------------------------------------------------------------------------- the run directory and the table
def test_cli_writes_the_run_directory_and_prints_the_table(reference):
    out, printed = reference
    assert "Sweep: PPO on CartPole-v1, 6 settings × 3 seeds" in printed
    assert "IQM 95% CI" in printed and "percentile bootstrap" in printed
    assert rundir.finished_problem(out) is None
    marker = json.loads((out / rundir.COMPLETE_FILE).read_text())["files"]
    assert {"metrics.npz", "summary.json", "summary.csv", "learning_curves.png"} <= set(marker)

    config, options, grid = read_sweep_file(out / rundir.CONFIG_FILE)  # the run file that reruns it
    assert grid == GRID and options.num_seeds == SEEDS and config.learning_rate == 0.02

    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "sweep" and summary["axes"] == ["clip_eps", "ent_coef", "seed", "update"]
    assert summary["shape"] == [3, 2, SEEDS, UPDATES] and "final_return" not in summary  # not a train summary
    assert [row["setting"] for row in summary["settings"]] == [
        {"clip_eps": c, "ent_coef": e} for c in GRID["clip_eps"] for e in GRID["ent_coef"]]
    with np.load(out / "metrics.npz") as data:
        assert all(data[name].shape == (3, 2, SEEDS, UPDATES) for name in data)
        finals = pjp.final_returns(data["episode_return"]).reshape(6, SEEDS)
    for row, per_seed in zip(summary["settings"], finals):  # the table reads the one final-return definition
        np.testing.assert_array_equal(row["final_return_per_seed"], per_seed)
        assert row["final_return"]["median"] == np.median(per_seed) and row["final_return"]["seeds"] == SEEDS
        low, high = row["final_return"]["iqm_ci"]
        assert low <= row["final_return"]["iqm"] <= high
        assert f"{row['final_return']['iqm']:,.1f}" in printed
    assert len({row["final_return"]["iqm"] for row in summary["settings"]}) > 1  # the settings mattered

    table = (out / "summary.csv").read_text().splitlines()
    assert table[0].startswith("clip_eps,ent_coef,seeds,of,median,iqm,iqm_ci_low,iqm_ci_high")
    assert len(table) == 7 and table[1].startswith("0.1,0.0,3,3,")
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in LABELS:  # each point logs like a train run
        lines = (out / "points" / label / "metrics.csv").read_text().splitlines()
        assert len(lines) == 1 + UPDATES * SEEDS


def test_every_point_equals_pjp_sweep_bit_for_bit(reference):
    out, _ = reference
    config, options, grid = read_sweep_file(out / rundir.CONFIG_FILE)
    expected = pjp.sweep(config, grid, num_seeds=options.num_seeds, seed=options.seed)
    with np.load(out / "metrics.npz") as data:
        assert sorted(data) == sorted(expected.metrics)
        for name, values in expected.metrics.items():
            np.testing.assert_array_equal(data[name], values, err_msg=name)


def test_dump_config_round_trips_the_grid(run_file, tmp_path, capsys):
    dumped, again = tmp_path / "sweep.toml", tmp_path / "again.yaml"
    assert main(["sweep", "--config", str(run_file), *SETS, "--dump-config", str(dumped)]) == 0
    config, options, grid = read_sweep_file(dumped)
    assert grid == GRID and config.num_envs == 2 and options.num_seeds == SEEDS
    # the file's grid under --set: a field given replaces its values, the others stay
    assert main(["sweep", "--config", str(dumped), "--set", "clip_eps=0.5", "--dump-config", str(again)]) == 0
    assert read_sweep_file(again) == (config, options, {"clip_eps": [0.5], "ent_coef": [0.0, 0.05]})
    # a file with a grid is not a train run file
    assert main(["train", "--config", str(dumped), "--dump-config", str(tmp_path / "x.yaml")]) == 2
    assert "sweep" in capsys.readouterr().err


# ----------------------------------------------------------------------------- durable: kill, Ctrl-C, resume
def crash_at(monkeypatch, k: int) -> None:
    """Raise :class:`Crash` just before the ``k``-th (1-based) ``os.rename``/``os.replace``."""
    count = [0]
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def hooked(*args, _real=real, **kwargs):
            count[0] += 1
            if count[0] == k:
                raise Crash(f"crash before rename {k}: {args}")
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, hooked)


@pytest.mark.parametrize("k", [16, 28])  # while saving checkpoint 6; while writing the final files
def test_killed_sweep_resumes_bit_identical(k, run_file, reference, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    with monkeypatch.context() as patch:
        crash_at(patch, k)
        with pytest.raises(Crash):
            sweep(run_file, out, "--quiet")
    assert rundir.finished_problem(out) is not None
    assert resume(out) == 0
    assert_same_sweep(out, reference[0])


def test_ctrl_c_says_how_to_resume_and_resume_is_bit_identical(run_file, reference, tmp_path, monkeypatch, capsys):
    from purejaxrl_ppo.cli import sweep as sweep_cli

    out = tmp_path / "interrupted"
    real = sweep_cli._SweepProgress.__call__

    def interrupt(self, report):
        real(self, report)
        if report.index == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(sweep_cli._SweepProgress, "__call__", interrupt)
        assert sweep(run_file, out, "--quiet") == 130
    assert f"continue with: python -m purejaxrl_ppo sweep --resume {out}" in capsys.readouterr().err
    assert Checkpointer(out / "checkpoints").steps() == [2, 4]
    # one writer: the lock is free again, and a second resume of a finished sweep does nothing
    assert resume(out) == 0
    assert_same_sweep(out, reference[0])
    assert resume(out) == 0 and "nothing to do" in capsys.readouterr().err


def test_divergence_names_the_setting_and_keeps_the_last_checkpoint(run_file, tmp_path, monkeypatch, capsys):
    from purejaxrl_ppo.launch import chunked

    def diverge_in_chunk_3(metrics, offset=0):
        return (offset + 2, "value_loss", 1 * SEEDS + 2) if offset == 4 else first_non_finite(metrics, offset)

    monkeypatch.setattr(chunked, "first_non_finite", diverge_in_chunk_3)
    out = tmp_path / "diverged"
    assert sweep(run_file, out, "--quiet") == 3
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: training stopped: value_loss is not finite at update 6 "
                            "(clip_eps=0.1,ent_coef=0.05, seed 2)"), error
    assert str(out / "checkpoints" / "4") in error
    assert rundir.finished_problem(out) is not None
    for label in LABELS:  # the logs end with the update that diverged
        assert (out / "points" / label / "metrics.jsonl").read_text().count("\n") == 6


def test_first_non_finite_and_divergence_of_a_sweep():
    metrics = {"value_loss": np.zeros((2, 3, 4), np.float32), "episode_return": np.full((2, 3, 4), np.nan)}
    metrics["value_loss"][1, 2, 3] = np.inf
    metrics["value_loss"][0, 1, 3] = np.nan
    assert first_non_finite(metrics, offset=10) == (14, "value_loss", 1)  # earliest update, then first row
    err = TrainingDiverged(14, "value_loss", 1, metrics, point="clip_eps=0.1")
    assert str(err) == "value_loss is not finite at update 14 (clip_eps=0.1, seed 1)"


# ----------------------------------------------------------------------------- refused before anything runs
@pytest.mark.parametrize(("argv", "needles"), [
    (["--set", "clip_eps"], ["expected FIELD=V1,V2,..."]),
    (["--set", "=0.1,0.2"], ["expected FIELD=V1,V2,..."]),
    (["--set", "clip_eps="], ["expected FIELD=V1,V2,..."]),
    (["--set", "clip_eps=0.1,,0.2"], ["'' is not a finite number"]),
    (["--set", "clip_eps=0.1,abc"], ["'abc' is not a finite number"]),
    (["--set", "clip_eps=nan"], ["'nan' is not a finite number"]),
    (["--set", "clip_eps=0.1", "--set", "clip-eps=0.2"], ["clip_eps is given twice"]),
    (["--set", "num_envs=2,4"], ["cannot sweep 'num_envs'", "structural", "clip_eps", "learning_rate"]),
    (["--set", "hidden_sizes=8,16"], ["cannot sweep 'hidden_sizes'", "structural"]),
    (["--set", "max_kl=0.01"], ["cannot sweep 'max_kl'", "not a PPOConfig field", "clip_eps"]),
    (["--set", "clip_eps=0.1,1.5"], ["clip_eps must be in (0.0, 1.0), got 1.5"]),
    (["--set", "clip_eps=0.1,0.1"], ["duplicates"]),
    ([], ["sweep needs a grid", "--set clip_eps=0.1,0.2,0.3", "learning_rate"]),
    (["--set", "clip_eps=0.1,0.2", "--seeds-per-batch", "2"], ["seeds_per_batch"]),
    (["--set", "clip_eps=0.1,0.2", "--wandb"], ["wandb", "not supported for sweeps"]),
])
def test_bad_grids_are_one_line_errors_before_anything_is_written(argv, needles, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["sweep", "--algo", "ppo", "--total-timesteps", "64", "--num-envs", "2", "--num-steps", "16",
                 *argv, "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()


def test_a_run_directory_of_the_other_kind_is_refused_naming_the_right_command(tmp_path, capsys):
    config = pjp.PPOConfig(env_name="CartPole-v1", num_envs=2, num_steps=16, total_timesteps=64)
    trained, swept = tmp_path / "train", tmp_path / "sweep"
    for run_dir, grid in ((trained, None), (swept, {"clip_eps": [0.1, 0.2]})):
        run_dir.mkdir()
        rundir.write_metadata(run_dir, config, pjp.RunOptions(), [2], "test", grid)
    assert main(["sweep", "--resume", str(trained)]) == 2
    assert f"holds a train run, not a sweep; continue it with: python -m purejaxrl_ppo train --resume {trained}" \
        in capsys.readouterr().err
    assert main(["train", "--resume", str(swept)]) == 2
    assert f"holds a sweep run, not a train; continue it with: python -m purejaxrl_ppo sweep --resume {swept}" \
        in capsys.readouterr().err
    assert main(["sweep", "--resume", str(swept), *SETS]) == 2  # the grid is the saved one
    assert "cannot be combined" in capsys.readouterr().err


def test_help_is_plain_and_lists_set(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert "--set FIELD=V1,V2,..." in text and "--num-seeds" in text and "--resume" in text and "``" not in text


# ----------------------------------------------------------------------------- the table's statistics
def _reference_final_returns(episode_return: np.ndarray) -> np.ndarray:
    """Per seed, by a plain loop: the return curve carried forward, the mean of its last 10 values."""
    out = np.full(episode_return.shape[:-1], np.nan)
    for index in np.ndindex(*episode_return.shape[:-1]):
        last, curve = np.nan, []
        for value in episode_return[index].tolist():  # Python floats: float64 sums
            last = value if not np.isnan(value) else last
            curve.append(last)
        window = [v for v in curve[-10:] if not np.isnan(v)]
        out[index] = np.mean(window) if window else np.nan
    return out


def _reference_iqm_ci(per_seed: np.ndarray, samples: int) -> tuple[float, float]:
    """The documented resampling, explicitly: whole seeds with replacement, NaNs left out, scipy's trimmed mean."""
    from scipy import stats

    draws = np.random.default_rng(0).integers(0, per_seed.size, size=(samples, per_seed.size))
    iqms = []
    for row in draws:
        values = per_seed[row]
        iqms.append(stats.trim_mean(values[~np.isnan(values)], 0.25))
    low, high = np.percentile(iqms, [2.5, 97.5])
    return float(low), float(high)


def test_table_statistics_against_references():
    from scipy import stats

    rng = np.random.default_rng(5)
    returns = rng.normal(100, 30, size=(2, 13, 15)).astype(np.float32)
    returns[rng.random(returns.shape) < 0.3] = np.nan  # updates where no episode ended
    returns[1, 4] = np.nan  # a seed that never finished an episode
    settings = [{"clip_eps": 0.1}, {"clip_eps": 0.2}]
    rows, metric = setting_rows({"episode_return": returns, "env_steps": np.ones_like(returns)}, settings)
    assert metric == "episode_return"
    finals = _reference_final_returns(returns)
    for row, per_seed, setting in zip(rows, finals, settings):
        covered = per_seed[~np.isnan(per_seed)]
        got = row["final_return"]
        assert row["setting"] == setting
        np.testing.assert_allclose(np.asarray(row["final_return_per_seed"], float), per_seed, rtol=1e-12)
        assert (got["seeds"], got["of"]) == (covered.size, 13)
        np.testing.assert_allclose(got["median"], np.median(covered), rtol=1e-12)
        np.testing.assert_allclose(got["iqm"], stats.trim_mean(covered, 0.25), rtol=1e-12)
        np.testing.assert_allclose(got["iqm_ci"], _reference_iqm_ci(per_seed, SUMMARY_BOOTSTRAP_SAMPLES), rtol=1e-9)
    assert rows[1]["final_return"]["seeds"] == 12


def test_table_ci_agrees_with_rliable():
    """rliable (a dev/study extra) draws other resamples: its stratified-bootstrap CI of the IQM agrees within
    Monte Carlo error."""
    pytest.importorskip("rliable")
    from purejaxrl_ppo.analysis import study

    finals = np.random.default_rng(1).gamma(4.0, 50.0, size=64)
    returns = np.repeat(finals[None, :, None], 12, axis=2)  # constant curves: final return = the value
    rows, _ = setting_rows({"episode_return": returns, "env_steps": np.ones_like(returns)}, [{"gamma": 0.99}])
    points, intervals = study.aggregate_estimates({"x": finals[:, None]}, reps=SUMMARY_BOOTSTRAP_SAMPLES)
    ours = rows[0]["final_return"]
    np.testing.assert_allclose(ours["iqm"], points["x"]["iqm"], rtol=1e-12)
    width = intervals["x"]["iqm"][1] - intervals["x"]["iqm"][0]
    np.testing.assert_allclose(ours["iqm_ci"], intervals["x"]["iqm"], atol=0.1 * width)


# ----------------------------------------------------------------------------- a real kill


@pytest.mark.slow
def test_sigkill_while_saving_a_checkpoint_then_resume_is_bit_identical(run_file, reference, tmp_path):
    out = tmp_path / "sigkilled"
    proc = subprocess.run([sys.executable, "-c", KILL_DRIVER, "20", "sweep", "--config", str(run_file), *SETS, "--out",
                           str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert resume(out) == 0
    assert_same_sweep(out, reference[0])


TWO_DEVICES = textwrap.dedent("""
    import os, sys
    import numpy as np
    import purejaxrl_ppo as pjp
    from purejaxrl_ppo.cli.commands import main
    from purejaxrl_ppo.runs.sweep_files import read_sweep_file

    run_file, root, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
    base = ["sweep", "--config", run_file, *sets, "--cpu-devices", "2", "--quiet"]
    assert main([*base, "--out", root + "/whole"]) == 0

    class Crash(BaseException):
        pass

    count, real = [0], (os.rename, os.replace)
    def hook(function):
        def hooked(*args, **kwargs):
            count[0] += 1
            if count[0] == 16:  # while saving checkpoint 6
                raise Crash
            return function(*args, **kwargs)
        return hooked
    os.rename, os.replace = hook(real[0]), hook(real[1])
    try:
        main([*base, "--out", root + "/killed"])
    except Crash:
        pass
    os.rename, os.replace = real
    assert main(["sweep", "--resume", root + "/killed", "--quiet"]) == 0

    config, options, grid = read_sweep_file(root + "/whole/config.yaml")
    expected = pjp.sweep(config, grid, num_seeds=options.num_seeds, seed=options.seed)  # over both devices
    for name in ("whole", "killed"):
        with np.load(f"{root}/{name}/metrics.npz") as data:
            for metric, values in expected.metrics.items():
                np.testing.assert_array_equal(data[metric], values, err_msg=f"{name} {metric}")
    print("equal")
""")


@pytest.mark.heavy  # two interpreter starts and two compiles (~30 s): make test-all
def test_two_devices_pad_the_seeds_and_still_equal_pjp_sweep_after_a_resume(run_file, tmp_path):
    """3 seeds on 2 CPU devices (padded to 4, the seed axis of [points, seeds] sharded): uninterrupted and resumed
    sweeps both equal pjp.sweep over the same devices bit for bit."""
    proc = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(run_file), str(tmp_path), *SETS],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "equal" in proc.stdout, proc.stderr[-3000:]


def test_compare_shows_each_setting_of_a_sweep(reference, tmp_path, capsys):
    """``compare`` on a sweep directory: one row (and one curve) per setting, its final returns the summary's."""
    out, _ = reference
    capsys.readouterr()
    assert main(["compare", str(out), "--plot", str(tmp_path / "cmp.png")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    rows = []  # [label, algo, env, seeds, steps, median, ...]; a wrapped label continues on cell-less lines
    for line in printed.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and any(cells[1:]):
            rows.append(cells)
        elif cells and rows:
            rows[-1][0] += ("" if rows[-1][0].endswith(("=", ",")) else " ") + cells[0]
    settings = [",".join(f"{k}={v:g}" for k, v in row["setting"].items()) for row in summary["settings"]]
    assert [r[0].replace(" ", "") for r in rows] == [f"sweep{label}" for label in settings]
    assert [r[5] for r in rows] == [f"{row['final_return']['median']:,.1f}" for row in summary["settings"]]
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
