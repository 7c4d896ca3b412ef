"""Wall time of a run (runs/sinks.py WallClock, timing.csv, TensorBoard's time/ scalars): kept out of
metrics.npz and the logs, which a resume reproduces bit for bit, and continued across a resume from the
checkpoint's value. The clock's arithmetic on given times; the durable runs on a tiny CartPole budget."""

import json
import shutil

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import TINY, assert_same_results
from purejaxrl_ppo.launch.programs import abstract_train_state
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs.checkpoint import Checkpointer
from purejaxrl_ppo.driver import save_run, train_durable
from purejaxrl_ppo.runs.options import RunOptions

SEEDS, BATCH = 3, 32


# ----------------------------------------------------------------------------- the clock, on given times
def test_a_new_clock_counts_from_zero_and_rates_each_chunk():
    clock = ls.WallClock(SEEDS, BATCH)
    rows = [clock.record(2, 1.0), clock.record(4, 3.0), clock.record(5, 3.5)]
    assert [r["update"] for r in rows] == [2, 4, 5] and [r["env_steps"] for r in rows] == [64, 128, 160]
    assert [r["wall_seconds"] for r in rows] == [1.0, 3.0, 3.5]
    assert [r["env_steps_per_second"] for r in rows] == pytest.approx([SEEDS * 2 * BATCH / 1.0,
                                                                       SEEDS * 2 * BATCH / 2.0, SEEDS * BATCH / 0.5])
    table = clock.table()
    np.testing.assert_array_equal(table["wall_seconds"], [1.0, 3.0, 3.5])
    assert table["update"].dtype == np.int64 and clock.checkpoint_timing()["wall_seconds"] == 3.5


def test_a_resumed_clock_continues_from_the_checkpoint():
    first = ls.WallClock(SEEDS, BATCH)
    first.record(2, 1.25)
    first.record(4, 3.5)
    saved = json.loads(json.dumps({"compile_seconds": 9.0, "run_seconds": 3.5, "updates_run": 4,
                                   **first.checkpoint_timing()}))  # what a checkpoint's meta keeps
    resumed = ls.WallClock(SEEDS, BATCH, start_update=4, saved=saved)
    row = resumed.record(6, 0.75)  # 0.75 s after this process's first chunk started
    assert row["wall_seconds"] == 3.5 + 0.75 and row["env_steps_per_second"] == pytest.approx(SEEDS * 2 * BATCH / 0.75)
    np.testing.assert_array_equal(resumed.table()["wall_seconds"], [1.25, 3.5, 4.25])
    np.testing.assert_array_equal(resumed.table()["update"], [2, 4, 6])


def test_a_checkpoint_from_before_the_clock_leaves_the_table_unknown():
    legacy = ls.WallClock(SEEDS, BATCH, start_update=4, saved={"compile_seconds": 1.0, "run_seconds": 2.0,
                                                               "updates_run": 4})
    assert legacy.record(6, 1.0)["wall_seconds"] == 3.0  # its own process's run time is all it knew
    assert legacy.table() is None and legacy.checkpoint_timing() == {"wall_seconds": 3.0}
    assert ls.WallClock(SEEDS, BATCH, start_update=4, saved=None).table() is None


def test_timing_csv_reads_back_exactly_and_interpolates_within_chunks(tmp_path):
    clock = ls.WallClock(SEEDS, BATCH)
    for update, seconds in ((3, 0.1 + 0.2), (6, 2.0 / 3.0), (8, 1e-3 + 1.0)):
        clock.record(update, seconds)
    path = tmp_path / ls.TIMING_FILE
    path.write_bytes(ls.timing_csv(clock.table()))
    table = ls.read_timing(path)
    for name in ls.TIMING_COLUMNS:
        np.testing.assert_array_equal(table[name], clock.table()[name])
    per_update = ls.wall_seconds_per_update(table, 8)
    expected, start_update, start_seconds = [], 0, 0.0  # linear within each chunk, from 0 s before update 1
    for end_update, end_seconds in zip(table["update"], table["wall_seconds"]):
        for u in range(start_update + 1, end_update + 1):
            expected.append(start_seconds + (end_seconds - start_seconds) * (u - start_update) / (end_update - start_update))
        start_update, start_seconds = end_update, end_seconds
    np.testing.assert_allclose(per_update, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="ends at update 8"):
        ls.wall_seconds_per_update(table, 9)
    path.write_text("update,seconds\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        ls.read_timing(path)
    path.write_text(",".join(ls.TIMING_COLUMNS) + "\n2,64,1.0\n")
    with pytest.raises(ValueError, match="malformed"):
        ls.read_timing(path)


# ----------------------------------------------------------------------------- durable runs
CONFIG = pjp.PPOConfig(**{**TINY, "total_timesteps": 2 * 16 * 8}, num_minibatches=2, update_epochs=1)
OPTIONS = RunOptions(num_seeds=2, seed=3, chunk_updates=2, keep_checkpoints=2, tensorboard=True)  # 4 chunks
LOG_FILES = ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl")


class Stop(Exception):
    """Raised from on_chunk to interrupt a run between chunks."""


def stop_after_second_chunk(report):
    if report.index == 1:
        raise Stop


def time_scalars(run_dir):
    """``{tag: {env step: value}}`` of the ``time/`` scalars in TensorBoard's aggregate run."""
    pytest.importorskip("tensorboardX")
    from test_sinks import scalars

    return {tag: values for tag, values in scalars(run_dir / "tensorboard" / "aggregate").items()
            if tag.startswith("time/")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, saved."""
    pytest.importorskip("tensorboardX")
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    save_run(train_durable(run_dir, CONFIG, OPTIONS), run_dir)
    return run_dir


def test_wall_time_has_its_own_final_file_and_scalars(reference):
    table = ls.read_timing(reference / ls.TIMING_FILE)
    np.testing.assert_array_equal(table["update"], [2, 4, 6, 8])
    np.testing.assert_array_equal(table["env_steps"], table["update"] * CONFIG.batch_size)
    seconds = table["wall_seconds"]
    assert seconds[0] > 0 and np.all(np.diff(seconds) > 0)
    steps = OPTIONS.num_seeds * 2 * CONFIG.batch_size  # a new run: the chunk lasted the difference of the clock
    np.testing.assert_allclose(table["env_steps_per_second"], steps / np.diff(seconds, prepend=0.0), rtol=1e-9)
    assert ls.TIMING_FILE in json.loads((reference / rundir.COMPLETE_FILE).read_text())["files"]
    assert rundir.finished_problem(reference) is None
    with np.load(reference / "metrics.npz") as metrics:  # out of the per-update metrics and the logs
        assert not any("wall" in name or "second" in name for name in metrics.files)
    for name in LOG_FILES:
        assert b"wall" not in (reference / name).read_bytes(), name
    scalars = time_scalars(reference)
    assert sorted(scalars) == ["time/env_steps_per_second", "time/wall_seconds"]
    assert sorted(scalars["time/wall_seconds"]) == list(table["env_steps"])  # at each chunk's last env step
    for tag in scalars:
        column = tag.split("/")[1]
        for step, value in zip(table["env_steps"], table[column]):
            assert scalars[tag][step] == pytest.approx(value, rel=1e-6)


def test_resumed_run_continues_the_clock_while_its_logs_stay_bit_identical(reference, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Stop):
        train_durable(run_dir, CONFIG, OPTIONS, on_chunk=stop_after_second_chunk)
    checkpoint = Checkpointer(run_dir / "checkpoints").restore(4, abstract_train_state(CONFIG, OPTIONS.num_seeds))
    saved = checkpoint.meta["timing"]
    assert [row[0] for row in saved["chunks"]] == [2, 4] and saved["wall_seconds"] == saved["chunks"][-1][2]
    before = time_scalars(run_dir)["time/wall_seconds"]

    resumed = train_durable(run_dir, resume=True)
    save_run(resumed, run_dir)
    assert_same_results(run_dir, reference, LOG_FILES)  # metrics.npz and the logs as if never interrupted
    table = ls.read_timing(run_dir / ls.TIMING_FILE)
    np.testing.assert_array_equal(table["update"], [2, 4, 6, 8])
    np.testing.assert_array_equal(np.stack([table[c] for c in ls.TIMING_COLUMNS], 1)[:2],
                                  np.array(saved["chunks"], np.float64))  # the checkpoint's rows, as saved
    seconds = table["wall_seconds"]
    assert seconds[2] > saved["wall_seconds"] and np.all(np.diff(seconds) > 0)  # continued, not restarted
    after = time_scalars(run_dir)["time/wall_seconds"]
    assert sorted(after) == list(table["env_steps"]) and after[4 * CONFIG.batch_size] == before[4 * CONFIG.batch_size]
    assert after[8 * CONFIG.batch_size] == pytest.approx(seconds[-1], rel=1e-6)


def test_a_finished_run_rewrites_its_timing_from_the_last_checkpoint(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / ls.TIMING_FILE).write_text("damaged")
    assert rundir.finished_problem(run_dir) is not None  # the marker covers it
    result = train_durable(run_dir, resume=True)  # nothing left to train
    assert result.updates_run == CONFIG.num_updates  # the timings of the process that finished it
    save_run(result, run_dir)
    assert (run_dir / ls.TIMING_FILE).read_bytes() == (reference / ls.TIMING_FILE).read_bytes()
    assert rundir.finished_problem(run_dir) is None
