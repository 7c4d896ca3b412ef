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
        assert agg["episode_return/iqm_ci_low"][j] <= agg["episode_return/iqm"][j] <= agg["episode_return/iqm_ci_high"][j]
        assert agg["value_loss/iqm"][j] == pytest.approx(pjp.iqm(metrics["value_loss"][:, j]))
    assert "env_steps/median" not in agg and "value_loss/iqm_ci_low" not in agg


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


def test_wandb_offline_writes_a_run_without_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
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
