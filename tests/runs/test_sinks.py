"""Logging sinks (runs/sinks.py) on synthetic metrics: aggregates against references, files read back."""

import csv
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.runs import sinks as ls

SEEDS, UPDATES, BATCH = 5, 4, 32


def synthetic_metrics(offset: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(offset)
    returns = rng.normal(100, 30, (SEEDS, UPDATES)).astype(np.float32)
    returns[1, 0] = np.nan  # seed 1 finished no episode in the first update
    steps = (np.arange(offset + 1, offset + UPDATES + 1) * BATCH).astype(np.int32)
    return {
        "episode_return": returns,
        "value_loss": rng.random((SEEDS, UPDATES)).astype(np.float32),
        "env_steps": np.broadcast_to(steps, (SEEDS, UPDATES)).copy(),
    }


def test_aggregate_matches_numpy_and_scipy_references():
    metrics = synthetic_metrics()
    agg = ls.aggregate(metrics)
    for j in range(UPDATES):
        column = metrics["episode_return"][:, j].astype(np.float64)
        assert agg["episode_return/median"][j] == pytest.approx(np.nanmedian(column))
        assert agg["episode_return/iqm"][j] == pytest.approx(pjp.iqm(column))  # scipy trim_mean based
        assert agg["value_loss/iqm"][j] == pytest.approx(pjp.iqm(metrics["value_loss"][:, j]))
    assert "env_steps/median" not in agg and "value_loss/iqm_ci_low" not in agg
    assert "episode_return/iqm_ci_low" not in agg  # the CI belongs to the return curve (SinkGroup adds it)
    curve = {**metrics, ls.RETURN_CURVE: metrics["episode_return"]}
    agg = ls.aggregate(curve)
    for j in range(UPDATES):
        assert agg["return_curve/iqm_ci_low"][j] <= agg["return_curve/iqm"][j] <= agg["return_curve/iqm_ci_high"][j]


def test_sink_group_adds_the_return_curve_carried_across_chunks(tmp_path):
    """The aggregate of the return curve keeps a seed that ended no episode in an update (its last return)."""
    first, second = synthetic_metrics(0), synthetic_metrics(UPDATES)
    second["episode_return"][3, :] = np.nan  # seed 3 stopped failing: no episode ends in the second chunk
    written = []

    class Keep:
        def write(self, metrics):
            written.append(metrics)

        def close(self):
            pass

    group = ls.SinkGroup([Keep()])
    group.write(first)
    group.write(second)
    group.close()
    whole = np.concatenate([first["episode_return"], second["episode_return"]], axis=1)
    curve = np.concatenate([w[ls.RETURN_CURVE] for w in written], axis=1)
    np.testing.assert_array_equal(curve, pjp.analysis.stats.forward_fill(whole).astype(np.float32))
    assert np.all(curve[3, UPDATES:] == first["episode_return"][3, -1])
    assert ls.aggregate(written[1])["return_curve/median"][0] == np.median(curve[:, UPDATES])
    no_returns = {"value_loss": first["value_loss"], "env_steps": first["env_steps"]}
    group.write(no_returns)  # RLHF-style metrics pass through unchanged
    assert written[-1] is no_returns


def test_csv_and_jsonl_hold_every_seed_exactly(tmp_path):
    first, second = synthetic_metrics(0), synthetic_metrics(UPDATES)
    sinks = [ls.CSVSink(tmp_path, BATCH), ls.JSONLSink(tmp_path, BATCH)]
    for chunk in (first, second):
        for sink in sinks:
            sink.write(chunk)
    for sink in sinks:
        sink.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) == SEEDS * 2 * UPDATES
    row = next(r for r in rows if r["update"] == "6" and r["seed"] == "2")
    assert np.float32(row["value_loss"]) == second["value_loss"][2, 1]
    assert row["env_steps"] == str(6 * BATCH)
    assert next(r for r in rows if r["update"] == "1" and r["seed"] == "1")["episode_return"] == "nan"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in records] == list(range(1, 2 * UPDATES + 1))
    assert records[0]["per_seed"]["episode_return"][1] is None
    np.testing.assert_array_equal(np.float32(records[5]["per_seed"]["value_loss"]), second["value_loss"][:, 1])
    aggregate = list(csv.DictReader((tmp_path / "metrics_aggregate.csv").open()))
    assert float(aggregate[0]["episode_return/iqm"]) == pytest.approx(ls.aggregate(first)["episode_return/iqm"][0])


def read_tfrecords(path: Path):
    """Events of a TensorBoard event file (TFRecord framing: length, crc, payload, crc)."""
    from tensorboardX.proto import event_pb2

    data, events, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        payload = data[offset + 12:offset + 12 + length]
        offset += 12 + length + 4
        event = event_pb2.Event()
        event.ParseFromString(payload)
        events.append(event)
    return events


def scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for path in run_dir.glob("events.out.tfevents.*"):
        for event in read_tfrecords(path):
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def test_tensorboard_writes_aggregate_and_per_seed_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    metrics = synthetic_metrics()
    sink = ls.TensorBoardSink(tmp_path, num_seeds=SEEDS, log_seeds=2)
    sink.write(metrics)
    sink.close()
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["aggregate", "seed_0", "seed_1"]
    agg = scalars(tmp_path / "tensorboard" / "aggregate")
    expected = ls.aggregate(metrics)
    assert agg["episode_return/iqm"][2 * BATCH] == pytest.approx(expected["episode_return/iqm"][1], rel=1e-6)
    assert set(agg["value_loss/median"]) == {BATCH, 2 * BATCH, 3 * BATCH, 4 * BATCH}  # x-axis: env steps
    seed1 = scalars(tmp_path / "tensorboard" / "seed_1")
    assert BATCH not in seed1["episode_return"]  # NaN (no episode ended) is not drawn
    assert seed1["value_loss"][3 * BATCH] == pytest.approx(metrics["value_loss"][1, 2])


@pytest.fixture
def wandb_offline(monkeypatch):
    """W&B in offline mode with no credentials or server in the environment (skips where wandb is absent)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_wandb_offline_writes_a_run_without_network(tmp_path, wandb_offline):
    sink = ls.WandbSink(tmp_path, project="test", run_id="abc123", name="tiny", config={"algo": "ppo"},
                        num_seeds=SEEDS, log_seeds=2, batch_size=BATCH)
    sink.write(synthetic_metrics())
    sink.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*abc123"))
    assert len(runs) == 1, os.listdir(tmp_path / "wandb")
    keys = (b"episode_return/iqm", b"seed_1/value_loss", b"env_steps")
    deadline = time.monotonic() + 60  # wandb's service process may still be flushing on a loaded machine
    while True:
        data = (runs[0] / "run-abc123.wandb").read_bytes()
        if all(key in data for key in keys) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for key in keys:
        assert key in data


def test_aggregate_ci_is_the_bootstrap_of_the_return_curves_iqm():
    """The logs' CI: 200 fixed resamples of whole seeds (seed 0), against explicit resampling with scipy."""
    from scipy import stats as scipy_stats

    metrics = synthetic_metrics()
    agg = ls.aggregate({**metrics, ls.RETURN_CURVE: metrics["episode_return"]})
    values = metrics["episode_return"].astype(np.float64)
    draws = np.random.default_rng(0).integers(0, SEEDS, size=(ls.BOOTSTRAP_SAMPLES, SEEDS))
    for j in range(UPDATES):
        iqms = []
        for draw in draws:
            column = values[draw, j]
            iqms.append(scipy_stats.trim_mean(column[~np.isnan(column)], 0.25))
        low, high = np.percentile(iqms, [2.5, 97.5])
        assert agg["return_curve/iqm_ci_low"][j] == pytest.approx(low, rel=1e-12)
        assert agg["return_curve/iqm_ci_high"][j] == pytest.approx(high, rel=1e-12)


def timing_row(update: int, seconds: float) -> dict:
    return {"update": update, "env_steps": update * BATCH, "wall_seconds": seconds, "env_steps_per_second": 1e4 + update}


def test_sink_group_passes_wall_time_only_to_the_sinks_that_plot_it(tmp_path):
    pytest.importorskip("tensorboardX")
    csv_sink = ls.CSVSink(tmp_path, BATCH)
    tensorboard = ls.TensorBoardSink(tmp_path, num_seeds=SEEDS, log_seeds=1)
    group = ls.SinkGroup([csv_sink, tensorboard])
    group.write(synthetic_metrics())
    group.write_timing(timing_row(UPDATES, 2.5))
    group.close()
    agg = scalars(tmp_path / "tensorboard" / "aggregate")
    assert agg["time/wall_seconds"] == {UPDATES * BATCH: 2.5}  # at the chunk's last env step
    assert agg["time/env_steps_per_second"] == {UPDATES * BATCH: pytest.approx(1e4 + UPDATES)}
    assert "time/wall_seconds" not in scalars(tmp_path / "tensorboard" / "seed_0")
    assert b"wall" not in (tmp_path / "metrics.csv").read_bytes() + (tmp_path / "metrics_aggregate.csv").read_bytes()


def test_tensorboard_files_of_a_resume_in_the_same_second_are_both_kept(tmp_path):
    pytest.importorskip("tensorboardX")
    first = ls.TensorBoardSink(tmp_path, num_seeds=SEEDS, log_seeds=0)
    first.write_timing(timing_row(2, 1.0))
    first.close()
    resumed = ls.TensorBoardSink(tmp_path, num_seeds=SEEDS, log_seeds=0, purge_step=3 * BATCH)
    resumed.write_timing(timing_row(4, 2.0))
    resumed.close()
    files = sorted((tmp_path / "tensorboard" / "aggregate").glob("events.out.tfevents.*"))
    assert len(files) == 2  # in the order they were written: TensorBoard applies the purge after the first
    assert scalars(tmp_path / "tensorboard" / "aggregate")["time/wall_seconds"] == {2 * BATCH: 1.0, 4 * BATCH: 2.0}


def test_wandb_logs_wall_time_at_the_chunks_last_update(tmp_path, wandb_offline):
    sink = ls.WandbSink(tmp_path, project="test", run_id="time42", name="tiny", config={}, num_seeds=SEEDS,
                        log_seeds=0, batch_size=BATCH)
    sink.write(synthetic_metrics())
    sink.write_timing(timing_row(UPDATES, 2.5))  # the same step as the chunk's last row
    sink.close()
    (run,) = (tmp_path / "wandb").glob("offline-run-*time42")
    keys = (b"time/wall_seconds", b"time/env_steps_per_second", b"episode_return/iqm")
    deadline = time.monotonic() + 60  # wandb's service process may still be flushing on a loaded machine
    while True:
        data = (run / "run-time42.wandb").read_bytes()
        if all(key in data for key in keys) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for key in keys:
        assert key in data
