"""Durable runs (driver/control.py, driver/run.py, runs/checkpoint.py, runs/rundir.py): checkpoint/resume equal
to the uninterrupted run, atomic and verified checkpoints, NaN stops, run-directory rules.
In-process on a tiny budget; the real kill of a CLI process is in tests/cli/test_cli.py."""

import json
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxrl_ppo as pjp
from helpers import TINY, leaves_equal
from purejaxrl_ppo.launch.chunked import TrainingDiverged, train_seeds_chunked
from purejaxrl_ppo.runs.checkpoint import Checkpointer, CheckpointError, CorruptCheckpointWarning
from purejaxrl_ppo.driver.control import CollapseWarning, train_durable
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.rundir import RunDirError

CONFIG = pjp.PPOConfig(**{**TINY, "total_timesteps": 2 * 16 * 8}, num_minibatches=2, update_epochs=1)
OPTIONS = RunOptions(num_seeds=2, seed=3, chunk_updates=2, keep_checkpoints=2)  # 4 chunks of 2 updates
LOG_FILES = ("metrics.csv", "metrics_aggregate.csv", "metrics.jsonl")


class Stop(Exception):
    """Raised from on_chunk to interrupt a run between chunks."""


def stop_after(chunk_index: int):
    def on_chunk(report):
        if report.index == chunk_index:
            raise Stop

    return on_chunk


def assert_same_run(result, reference, run_dir: Path, reference_dir: Path) -> None:
    """Metrics, final state of every seed and the log files equal bit for bit."""
    assert set(result.metrics) == set(reference.metrics)
    for name in reference.metrics:
        np.testing.assert_array_equal(result.metrics[name], reference.metrics[name], err_msg=name)
    leaves_equal(result.final_state, reference.final_state)
    for name in LOG_FILES:
        assert (run_dir / name).read_bytes() == (reference_dir / name).read_bytes(), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    return train_durable(run_dir, CONFIG, OPTIONS), run_dir


@pytest.fixture
def interrupted(tmp_path):
    """A run stopped after its second chunk (checkpoints at updates 2 and 4)."""
    run_dir = tmp_path / "run"
    with pytest.raises(Stop):
        train_durable(run_dir, CONFIG, OPTIONS, on_chunk=stop_after(1))
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [2, 4]
    return run_dir


def test_durable_run_equals_plain_chunked_run(reference):
    result, run_dir = reference
    plain = train_seeds_chunked(CONFIG, OPTIONS.num_seeds, OPTIONS.seed, target_chunks=3)  # another plan
    for name in plain.metrics:
        np.testing.assert_array_equal(result.metrics[name], plain.metrics[name], err_msg=name)
    leaves_equal(result.final_state, plain.final_state)
    # the newest K=2 checkpoints are kept; the last one is the final state
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [6, 8]


def test_resume_after_interruption_equals_uninterrupted_run(reference, interrupted):
    resumed = train_durable(interrupted, resume=True, command="resume")
    assert resumed.updates_run == CONFIG.num_updates - 4
    assert_same_run(resumed, reference[0], interrupted, reference[1])
    commands = json.loads((interrupted / "run.json").read_text())["commands"]
    assert [c["resumed_at_update"] for c in commands] == [None, 4]


def test_checkpoint_holds_state_history_and_config(reference):
    _, run_dir = reference
    restored = Checkpointer(run_dir / "checkpoints").restore(8, pjp_abstract())
    assert restored.meta["config"] == CONFIG.to_dict() and restored.meta["plan"] == [2, 2, 2, 2]
    assert restored.meta["options"]["num_seeds"] == 2 and restored.step == 8
    np.testing.assert_array_equal(restored.history["env_steps"][0], np.arange(1, 9) * CONFIG.batch_size)
    leaves_equal(restored.state, reference[0].final_state)
    np.testing.assert_array_equal(restored.state.update_step, [8, 8])
    assert restored.meta["timing"]["compile_seconds"] == reference[0].compile_seconds > 0


def test_a_finished_run_resumed_keeps_its_timings(reference, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(reference[1], copy)
    again = train_durable(copy, resume=True)
    assert again.updates_run == CONFIG.num_updates  # the process that finished it ran every update
    assert again.compile_seconds == reference[0].compile_seconds > 0
    assert 0 < again.run_seconds <= reference[0].run_seconds  # as of the last checkpoint (before the final sync)


def pjp_abstract():
    from purejaxrl_ppo.launch.programs import abstract_train_state

    return abstract_train_state(CONFIG, OPTIONS.num_seeds)


def test_corrupt_latest_checkpoint_names_the_file_and_falls_back(reference, interrupted):
    damaged = max((interrupted / "checkpoints" / "4" / "state").rglob("d/*"), key=lambda p: p.stat().st_size)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # truncated
    with pytest.warns(CorruptCheckpointWarning, match=str(damaged)):
        resumed = train_durable(interrupted, resume=True)
    assert resumed.updates_run == CONFIG.num_updates - 2  # continued from update 2
    assert_same_run(resumed, reference[0], interrupted, reference[1])
    assert any((interrupted / "corrupt_checkpoints").iterdir())  # kept for inspection, out of the way


def test_crash_mid_write_leaves_previous_checkpoint_usable(reference, interrupted):
    # What a kill during orbax's write of step 6 leaves: an uncommitted temporary directory.
    partial = interrupted / "checkpoints" / "6.orbax-checkpoint-tmp" / "state"
    partial.mkdir(parents=True)
    (partial / "_METADATA").write_text('{"tree_metadata": {')  # half a file
    assert Checkpointer(interrupted / "checkpoints").steps() == [2, 4]
    resumed = train_durable(interrupted, resume=True)
    assert resumed.updates_run == CONFIG.num_updates - 4
    assert_same_run(resumed, reference[0], interrupted, reference[1])


def test_no_intact_checkpoint_is_an_error_naming_each(interrupted):
    for step in ("2", "4"):
        (interrupted / "checkpoints" / step / "meta" / "metadata").write_text("{")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptCheckpointWarning)
        with pytest.raises(CheckpointError, match=r"checkpoints/4/meta/metadata.*checkpoints/2/meta/metadata"):
            train_durable(interrupted, resume=True)


def test_resume_before_any_checkpoint_starts_from_update_zero(reference, tmp_path):
    run_dir = tmp_path / "run"
    options = RunOptions(**{**OPTIONS.to_dict(), "checkpoint_every": 10})
    with pytest.raises(Stop):
        train_durable(run_dir, CONFIG, options, on_chunk=stop_after(1))
    assert not any((run_dir / "checkpoints").iterdir())
    # the saved options differ from the reference only in checkpoint_every, which changes no result
    resumed = train_durable(run_dir, resume=True)
    for name in reference[0].metrics:
        np.testing.assert_array_equal(resumed.metrics[name], reference[0].metrics[name], err_msg=name)


def test_nan_stops_with_update_and_metric_and_keeps_last_good_checkpoint(tmp_path):
    # A learning rate of 1e18 makes the value head overflow within a few updates.
    config = CONFIG.replace(learning_rate=1e18, anneal_lr=False)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train_durable(run_dir, config, RunOptions(num_seeds=2, chunk_updates=1, keep_checkpoints=10))
    err = info.value
    assert f"{err.metric} is not finite at update {err.update}" in str(err)
    values = err.metrics[err.metric]
    assert not np.isfinite(values[err.seed, err.update - 1]) and np.isfinite(values[:, : err.update - 1]).all()
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir())
    assert steps == list(range(1, err.update))  # every good chunk, never the diverged state
    if steps:
        assert err.last_checkpoint == run_dir / "checkpoints" / str(steps[-1])
    rows = (run_dir / "metrics_aggregate.csv").read_text().splitlines()
    assert len(rows) == 1 + err.update  # the logs show the update that diverged


def test_divergence_inside_a_chunk_logs_end_with_the_update_that_diverged(tmp_path):
    """The chunk that diverged ran on past the NaN; its later updates are not logged (README: logs end there)."""
    config = CONFIG.replace(learning_rate=1e18, anneal_lr=False)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train_durable(run_dir, config, RunOptions(num_seeds=2, chunk_updates=4))
    err = info.value
    assert err.update % 4 != 0  # mid-chunk, so the chunk's metrics extend past it
    assert err.metrics[err.metric].shape[1] > err.update
    assert len((run_dir / "metrics_aggregate.csv").read_text().splitlines()) == 1 + err.update
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 2 * err.update
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == err.update and json.loads(lines[-1])["update"] == err.update


@pytest.mark.parametrize("lr", [1e6, 1e3])
def test_collapse_warns_once_per_kind_and_training_goes_on(tmp_path, lr):
    """At a huge learning rate CartPole's policy turns deterministic and its value loss explodes, without a NaN."""
    config = CONFIG.replace(learning_rate=lr, anneal_lr=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_durable(tmp_path / "run", config, RunOptions(num_seeds=2, chunk_updates=2))
    messages = [str(w.message) for w in caught if issubclass(w.category, CollapseWarning)]
    assert result.updates_run == CONFIG.num_updates and np.all(result.metrics["entropy"][:, -1] < 1e-3)
    assert sum(m.startswith("entropy fell below 0.001 at update") for m in messages) == 1, messages
    exploded = bool(np.any(result.metrics["value_loss"] > 1e8))
    assert sum(m.startswith("value_loss exceeded 1e+08") for m in messages) == int(exploded), messages


def test_collapse_checks_can_be_turned_off_and_skip_continuous_entropy(tmp_path):
    config = CONFIG.replace(learning_rate=1e6, anneal_lr=False)
    off = RunOptions(num_seeds=2, chunk_updates=2, collapse_entropy=0.0, collapse_value_loss=0.0)
    pendulum = pjp.PPOConfig(**{**TINY, "env_name": "Pendulum-v1", "total_timesteps": 2 * 16 * 2}, num_minibatches=2,
                             update_epochs=1)
    always = RunOptions(num_seeds=2, chunk_updates=2, collapse_entropy=1e9, collapse_value_loss=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        train_durable(tmp_path / "off", config, off)
        train_durable(tmp_path / "pendulum", pendulum, always)  # a Gaussian's entropy may be any real number
    with pytest.warns(CollapseWarning, match="entropy fell below 1e"):
        train_durable(tmp_path / "cartpole", CONFIG, always)


class ExtendedState(NamedTuple):
    """A train state with fields the checkpointer has never heard of (e.g. normalisation statistics)."""

    params: dict
    obs_stats: tuple
    key: jax.Array
    typed_key: jax.Array
    count: jax.Array


def test_checkpointer_saves_any_pytree_including_typed_keys(tmp_path):
    state = ExtendedState(
        params={"w": jnp.arange(6.0).reshape(2, 3)},
        obs_stats=(jnp.ones(3), jnp.full(3, 2.0, jnp.float64 if jax.config.x64_enabled else jnp.float32)),
        key=jax.random.PRNGKey(1),
        typed_key=jax.random.split(jax.random.key(2), 4),
        count=jnp.int32(7),
    )
    ckpt = Checkpointer(tmp_path / "ck", keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, state, {"loss": np.full((2, step), 0.5, np.float32)}, {"note": "x"})
    assert ckpt.steps() == [2, 3]
    restored = ckpt.restore(3, jax.eval_shape(lambda: state))
    assert restored.history["loss"].shape == (2, 3) and restored.meta == {"note": "x", "step": 3}
    np.testing.assert_array_equal(jax.random.key_data(restored.state.typed_key), jax.random.key_data(state.typed_key))
    leaves_equal(restored.state._replace(typed_key=None), state._replace(typed_key=None))


def test_only_a_verified_checkpoint_is_visible_or_called_last_good(tmp_path):
    """A save leaves no staging behind; a checkpoint that lost its manifest is not the last good one."""
    state = {"w": jnp.arange(4.0)}
    ckpt = Checkpointer(tmp_path / "ck", keep=3)
    for step in (1, 2):
        ckpt.save(step, state, {"loss": np.zeros((1, step), np.float32)}, {})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["1", "2"]
    assert ckpt.last_verified() == tmp_path / "ck" / "2"
    (tmp_path / "ck" / "2" / "checksums.json").unlink()
    assert ckpt.last_verified() == tmp_path / "ck" / "1"
    with pytest.raises(CheckpointError, match="no checksums.json"):
        ckpt.verify(2)
    (tmp_path / "ck" / ".staging" / "3").mkdir(parents=True)  # a save killed before its rename
    assert Checkpointer(tmp_path / "ck").steps() == [1, 2] and not (tmp_path / "ck" / ".staging").exists()


def test_new_run_refuses_an_existing_directory_unless_overwrite(reference, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="--resume .*--overwrite"):
        train_durable(run_dir, CONFIG, OPTIONS)
    (run_dir / "metrics.csv").write_text("stale")
    result = train_durable(run_dir, CONFIG, OPTIONS, overwrite=True)
    assert (run_dir / "notes.txt").read_text() == "mine"  # --overwrite removes only what a run writes
    assert_same_run(result, reference[0], run_dir, reference[1])


def test_resume_needs_a_run_directory(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        train_durable(tmp_path / "nothing", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="config.yaml"):
        train_durable(tmp_path / "empty", resume=True)


def test_checkpoint_from_before_an_option_existed_resumes_with_its_default():
    """A checkpoint whose saved options lack a newer field (e.g. seeds_per_batch) still matches."""
    from purejaxrl_ppo.driver.control import _upgrade_saved
    from purejaxrl_ppo.driver.run import ChunkedStage, restore_stage
    from purejaxrl_ppo.runs.checkpoint import Restored

    meta = {"config": CONFIG.to_dict(), "options": OPTIONS.to_dict(), "plan": [2, 2, 2, 2]}

    class OldCheckpoint:
        directory = Path("run/checkpoints")

        def __init__(self, options):
            self.options = options

        def restore_latest(self, abstract_state, quarantine=None):
            return Restored(2, "state", {}, {**meta, "options": self.options, "step": 2})

    old = {k: v for k, v in OPTIONS.to_dict().items() if k != "seeds_per_batch"}
    stage = ChunkedStage("train", programs=None, plan=[2, 2, 2, 2], init=lambda: None, abstract_state=None, meta=meta,
                         checkpoints=Path("run/checkpoints"), upgrade_saved=_upgrade_saved(CONFIG, OPTIONS))
    assert restore_stage(stage, OldCheckpoint(old), "run.json")[0].updates_done == 2
    with pytest.raises(RunDirError, match=r"different options .*seeds_per_batch: 2 -> 0\)"):
        restore_stage(stage, OldCheckpoint({**old, "seeds_per_batch": 2}), "run.json")
