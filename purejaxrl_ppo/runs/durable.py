"""Durable runs: train in a run directory with checkpoints and logs after every chunk; resume; save.

:func:`train_durable` drives :func:`~purejaxrl_ppo.launch.chunked.train_seeds_chunked`
in a run directory (:mod:`purejaxrl_ppo.runs.rundir`) with checkpoints
(:mod:`purejaxrl_ppo.runs.checkpoint`) and logs (:mod:`purejaxrl_ppo.runs.sinks`);
:func:`save_run` writes a finished run's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from purejaxrl_ppo.analysis.plots import plot_learning_curves
from purejaxrl_ppo.core.config import BaseConfig
from purejaxrl_ppo.launch.chunked import ChunkReport, RunResult, StartPoint, TrainingDiverged, chunk_plan, train_seeds_chunked
from purejaxrl_ppo.launch.programs import abstract_train_state
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs.checkpoint import Checkpointer
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.policy_files import POLICY_FILE, save_policy
from purejaxrl_ppo.runs.rundir import RunDirError
from purejaxrl_ppo.runs.run_files import run_dict


def save_run(result: RunResult, out_dir: Path, command: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``metrics.npz``, ``summary.json``, ``config.json``, ``policy.msgpack`` and ``learning_curve.png``.

    ``policy.msgpack`` holds every seed's final params (and observation
    statistics when normalised): what ``render`` and ``evaluate`` need.

    Returns the summary written and the paths of the files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / "metrics.npz",
        "summary": out_dir / "summary.json",
        "config": out_dir / "config.json",
        "plot": out_dir / "learning_curve.png",
        "policy": out_dir / POLICY_FILE,
    }
    normalizer = result.final_state.normalizer
    obs_stats = normalizer.obs if result.config.normalize_observations else None
    save_policy(paths["policy"], result.final_state.algo_state.params, obs_stats)
    np.savez_compressed(paths["metrics"], **result.metrics)
    summary = result.summary()
    if command is not None:
        summary["command"] = command
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    paths["config"].write_text(json.dumps(result.config.to_dict(), indent=2) + "\n")
    plot_learning_curves([(f"{result.config.algo_name.upper()}", result.metrics)], paths["plot"],
                         title=f"{result.config.env_name}: {result.num_seeds} seeds")
    return summary, paths


def train_durable(
    run_dir: Path,
    config: BaseConfig | None = None,
    options: Any = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: str = "",
    on_chunk: Callable[[ChunkReport], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> RunResult:
    """Train in ``run_dir`` with checkpoints and logs after every chunk; resumable.

    New run (``resume=False``): ``config`` and ``options``
    (:class:`~purejaxrl_ppo.runs.options.RunOptions`) are required; ``run_dir`` must be
    absent or empty unless ``overwrite``. Resume: config, options and chunk plan are read
    from ``run_dir`` and training continues from the newest intact checkpoint (from
    update 0 if none was written); the metrics, logs and final state equal those of an
    uninterrupted run bit for bit. A non-finite metric raises
    :class:`TrainingDiverged` after logging it; the last good checkpoint is kept.
    The seeds are split over ``devices`` (default: every local device);
    checkpoints hold unsharded ``[num_seeds, ...]`` arrays, so a run may resume
    on a different number of devices.
    """
    if resume:
        config, options, info = rundir.load_existing(run_dir)
        plan = [int(n) for n in info["plan"]]
    else:
        if config is None:
            raise TypeError("train_durable needs a config for a new run")
        options = options or RunOptions()
        plan = chunk_plan(config.num_updates, options.progress_chunks, options.chunk_updates)
        rundir.prepare_new(run_dir, overwrite)
        info = rundir.write_metadata(run_dir, config, options, plan, command)

    checkpointer = Checkpointer(run_dir / "checkpoints", keep=options.keep_checkpoints)
    meta = {"config": config.to_dict(), "options": options.to_dict(), "plan": plan}
    start = _restore_start(checkpointer, config, options, meta) if resume else None
    if resume:
        info = rundir.record_resume(run_dir, info, command, 0 if start is None else start.updates_done)
    sinks = _open_sinks(run_dir, config, options, info, start)
    logged = 0 if start is None else start.updates_done

    def after_chunk(report: ChunkReport) -> None:
        nonlocal logged
        for sink in sinks:
            sink.write(report.chunk_metrics)
        logged = report.updates_done
        if (report.index + 1) % options.checkpoint_every == 0 or report.updates_done == config.num_updates:
            checkpointer.save(report.updates_done, report.state, report.metrics, meta)
        if on_chunk is not None:
            on_chunk(report)

    try:
        return train_seeds_chunked(config, options.num_seeds, options.seed, on_chunk=after_chunk, plan=plan,
                                   start=start, devices=devices, seeds_per_batch=options.seeds_per_batch or None)
    except TrainingDiverged as err:
        tail = {k: v[:, logged:] for k, v in err.metrics.items()}
        for sink in sinks:  # show the run up to the NaN; its state is not checkpointed
            sink.write(tail)
        steps = checkpointer.steps()
        err.last_checkpoint = run_dir / "checkpoints" / str(steps[-1]) if steps else None
        raise
    finally:
        for sink in sinks:
            sink.close()
        checkpointer.close()


def _restore_start(checkpointer, config: BaseConfig, options, meta: dict[str, Any]) -> StartPoint | None:
    """The newest intact checkpoint as a :class:`StartPoint`, checked against the run's config."""
    restored = checkpointer.restore_latest(abstract_train_state(config, options.num_seeds))
    if restored is None:
        return None
    saved = dict(restored.meta)
    if isinstance(saved.get("options"), dict):  # options added since the checkpoint was written: their defaults
        saved["options"] = {**type(options)().to_dict(), **saved["options"]}
    if isinstance(saved.get("config"), dict):  # config fields added since (e.g. ``policy``): their defaults
        saved["config"] = {**type(config)().to_dict(), **type(config).upgrade_dict(saved["config"])}
    for name in ("config", "options", "plan"):
        if saved.get(name) != meta[name]:
            raise RunDirError(
                f"checkpoint {checkpointer.directory / str(restored.step)} was written with a different {name} "
                f"than {checkpointer.directory.parent / 'config.yaml'} / run.json: {saved.get(name)} != {meta[name]}"
            )
    return StartPoint(restored.step, restored.state, restored.history)


def _open_sinks(run_dir: Path, config: BaseConfig, options, info: dict[str, Any], start: StartPoint | None) -> list:
    """CSV and JSONL always; TensorBoard and W&B if asked. A resume rewrites CSV/JSONL from the history."""
    sinks: list = [ls.CSVSink(run_dir, config.batch_size), ls.JSONLSink(run_dir, config.batch_size)]
    if start is not None and start.metrics:
        for sink in sinks:
            sink.write(start.metrics)
    purge = None if start is None else (start.updates_done + 1) * config.batch_size
    if options.tensorboard:
        sinks.append(ls.TensorBoardSink(run_dir, options.num_seeds, options.log_seeds, purge_step=purge))
    if options.wandb:
        sinks.append(ls.WandbSink(run_dir, options.wandb_project, info["wandb_id"], run_dir.name,
                                  run_dict(config, options), options.num_seeds, options.log_seeds, config.batch_size))
    return sinks
