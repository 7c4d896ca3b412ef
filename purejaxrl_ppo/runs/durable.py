"""Durable runs: train in a run directory with checkpoints and logs after every chunk; resume; save.

:func:`train_durable` drives :func:`~purejaxrl_ppo.launch.chunked.train_seeds_chunked`
in a run directory (:mod:`purejaxrl_ppo.runs.rundir`) with checkpoints
(:mod:`purejaxrl_ppo.runs.checkpoint`) and logs (:mod:`purejaxrl_ppo.runs.sinks`);
:func:`save_run` writes a finished run's files, each atomically, and the
completion marker last.

What survives which fault (each tested in ``tests/runs/test_faults.py``):

* a kill (``SIGKILL``) anywhere: ``--resume`` continues from the newest complete
  checkpoint and ends with metrics, logs and final state equal to the
  uninterrupted run's bit for bit; a kill while finishing leaves no completion
  marker, and ``--resume`` regenerates the final files from the last checkpoint;
* damaged checkpoint files (truncated, bit-flipped, missing manifest): named,
  quarantined with a warning, and the run falls back to an older checkpoint;
  when none is left, ``--resume`` refuses until ``--restart`` is given;
* damaged final files: ``compare``/``render`` refuse the run with a one-line
  error, ``--resume`` rewrites them;
* two writers: the second one stops with an error naming the first (lock); ``train`` holds the lock until
  its final files and ``complete.json`` are written (:func:`~purejaxrl_ppo.runs.rundir.keep_locks`), so a
  ``--resume`` or ``--overwrite`` arriving while a run finishes is refused too;
* a full or read-only disk, a run directory or lock file that is not what it should be: one line
  (:class:`~purejaxrl_ppo.runs.rundir.RunDirError`), never a traceback.

**Several processes** (``jax.distributed``; :mod:`purejaxrl_ppo.launch.distributed`): every process calls
:func:`train_durable` with the same arguments and trains its share of the seeds, but only process 0
touches the run directory: it takes the lock, writes the run files, restores the newest checkpoint and
hands the config, plan and restored state to the others (:func:`~purejaxrl_ppo.launch.distributed.broadcast_json`,
:func:`~purejaxrl_ppo.launch.distributed.broadcast_arrays`), so the other hosts need no shared filesystem.
Each other process compares what it was asked for (run directory, ``--resume``, config, options, grid) with
what process 0 sent and refuses with one line naming the flags that differ, rather than silently training
process 0's run.
Each chunk's metrics and state are gathered to every process; process 0 writes the logs and checkpoints
(orbax restricted to process 0). Checkpoints hold the unsharded ``[num_seeds, ...]`` state, so a run
resumes on any process or device count. If process 0 fails while setting up, the others raise
:class:`~purejaxrl_ppo.launch.distributed.ProcessGroupError` with its message, and process 0's exception
carries ``told_process_group = True`` (every process can exit normally). A failure after the set-up
leaves the others inside a collective: the failing process must exit, and the others then fail in that
collective and learn who died from :func:`~purejaxrl_ppo.launch.distributed.dead_processes` (the CLI does
both).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from purejaxrl_ppo.analysis.plots import plot_learning_curves
from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.core.envs import build_env
from purejaxrl_ppo.launch import distributed
from purejaxrl_ppo.launch.chunked import ChunkReport, RunResult, StartPoint, TrainingDiverged, chunk_plan, train_seeds_chunked
from purejaxrl_ppo.launch.programs import abstract_grid_state, abstract_train_state
from purejaxrl_ppo.launch.sweep import check_grid, grid_settings, setting_label
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs import sweep_files
from purejaxrl_ppo.runs.checkpoint import Checkpointer, CheckpointError, from_host, host_template, to_host
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.policy_files import POLICY_FILE, save_policy
from purejaxrl_ppo.runs.rundir import RunDirError
from purejaxrl_ppo.runs.run_files import run_dict, split_run_dict


class CollapseWarning(UserWarning):
    """Training went on, but a seed's policy or value function looks collapsed (see ``RunOptions``)."""


def save_run(result: RunResult, out_dir: Path, command: str | None = None,
             options: RunOptions | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``metrics.npz``, ``summary.json``, ``config.json``, ``policy.msgpack``, ``learning_curve.png``,
    ``timing.csv`` (where the result has its
    :attr:`~purejaxrl_ppo.launch.chunked.RunResult.wall_clock`), then ``complete.json``.

    Each file goes to a temporary name and is renamed into place; ``complete.json``
    (the SHA-256 of each) comes last, so a crash while finishing leaves a run that
    is visibly unfinished (:func:`~purejaxrl_ppo.runs.rundir.finished_problem`) and
    that ``--resume`` finishes. ``policy.msgpack`` holds every seed's final params
    (and observation statistics when normalised): what ``render`` and ``evaluate`` need.
    With ``options.video`` (default: the run directory's ``config.yaml``) it also writes
    ``video.gif`` or ``video.mp4`` of seed 0's deterministic episode, covered by ``complete.json``
    (:func:`~purejaxrl_ppo.analysis.render.finish_run_video`: a note instead where it cannot).
    ``complete.json`` also covers the logs (``metrics.csv``, ``metrics_aggregate.csv``, ``metrics.jsonl``), so a
    truncated log makes the run unfinished and ``--resume`` rewrites it. A write the disk refuses (full,
    read-only) raises a one-line :class:`~purejaxrl_ppo.runs.rundir.RunDirError`.

    Returns the summary written and the paths of the files.
    """
    with rundir.disk_errors(out_dir):
        return _save_run(result, out_dir, command, options)


def _save_run(result: RunResult, out_dir: Path, command: str | None, options: RunOptions | None
              ) -> tuple[dict[str, Any], dict[str, Path]]:
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
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **result.metrics)
    rundir.write_atomic(paths["metrics"], buffer.getvalue())
    summary = result.summary()
    if command is not None:
        summary["command"] = command
    rundir.write_atomic(paths["summary"], (json.dumps(summary, indent=2) + "\n").encode())
    rundir.write_atomic(paths["config"], (json.dumps(result.config.to_dict(), indent=2) + "\n").encode())
    tmp_plot = out_dir / ".learning_curve.tmp.png"
    plot_learning_curves([(f"{result.config.algo_name.upper()}", result.metrics)], tmp_plot,
                         title=f"{result.config.env_name}: {result.num_seeds} seeds")
    os.replace(tmp_plot, paths["plot"])
    if result.wall_clock is not None:  # wall time stays out of metrics.npz and the logs (not bit-identical)
        paths["timing"] = out_dir / ls.TIMING_FILE
        rundir.write_atomic(paths["timing"], ls.timing_csv(result.wall_clock))
    video = _run_video(result, out_dir, options)
    if video is not None:
        paths["video"] = video
    rundir.mark_complete(out_dir, (*(p.name for p in paths.values()), *rundir.logs_present(out_dir)))
    return summary, paths


def _run_video(result: RunResult, out_dir: Path, options: RunOptions | None) -> Path | None:
    """The evaluation video ``options.video`` asks for (options from ``out_dir/config.yaml`` when not given)."""
    from purejaxrl_ppo.analysis.render import finish_run_video
    from purejaxrl_ppo.core.acting import Policy, PolicyParams
    from purejaxrl_ppo.runs.run_files import load_run_file

    if options is None:
        try:
            options = load_run_file(out_dir / rundir.CONFIG_FILE)[1]
        except (ConfigError, OSError):
            options = RunOptions()
    normalizer = result.final_state.normalizer
    obs_stats = normalizer.obs if result.config.normalize_observations else None
    params = PolicyParams(result.final_state.algo_state.params, obs_stats)
    return finish_run_video(Policy(result.config, params, tuple(range(result.num_seeds))), out_dir, options.video)


def train_durable(
    run_dir: Path,
    config: BaseConfig | None = None,
    options: Any = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    restart: bool = False,
    command: str = "",
    on_chunk: Callable[[ChunkReport], None] | None = None,
    on_compile: Callable[[], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    kind: str = "train",
    grid: Mapping[str, Sequence[float]] | None = None,
) -> RunResult:
    """Train in ``run_dir`` with checkpoints and logs after every chunk; resumable.

    New run (``resume=False``): ``config`` and ``options``
    (:class:`~purejaxrl_ppo.runs.options.RunOptions`) are required; the environment
    is built first (a failure leaves nothing behind); ``run_dir`` must be absent or
    empty unless ``overwrite``. Resume: config, options and chunk plan are read from
    ``run_dir`` and training continues from the newest checkpoint that verifies and
    reads back (from update 0 if none was ever written); the metrics, logs and final
    state equal those of an uninterrupted run bit for bit. If every checkpoint was
    quarantined as damaged, resuming raises :class:`RunDirError` unless ``restart``
    (start again from update 0, dropping the checkpoints). A resumed run that had
    finished returns its final state without training (``updates_run == 0``), with
    the timings of the process that finished it, so the final files can be rewritten.

    One writer at a time: the run directory's lock is held throughout
    (:func:`~purejaxrl_ppo.runs.rundir.locked`). A non-finite metric raises
    :class:`TrainingDiverged`; the logs end with the update that diverged and the
    last verified checkpoint is named in ``err.last_checkpoint``. A seed whose
    entropy or value loss crosses the ``collapse_*`` thresholds of the options
    triggers one :class:`CollapseWarning` per kind. ``on_compile()`` runs just before
    compiling. The seeds are split over ``devices`` (default: every local device);
    checkpoints hold unsharded ``[num_seeds, ...]`` arrays, so a run may resume on a
    different number of devices. With several processes, see the module docstring:
    process 0 alone reads and writes ``run_dir``.

    ``kind="sweep"`` trains a grid of numeric hyperparameters × the seeds instead (``grid``:
    ``{field: values}``, required for a new sweep, read from ``run_dir`` on a resume), through the same
    path: the state, checkpoints and metrics get a leading ``[points]`` axis
    (:class:`~purejaxrl_ppo.launch.programs.GridPrograms`), the grid is part of the run file, and each
    point logs to ``points/<setting>/`` (:mod:`~purejaxrl_ppo.runs.sweep_files`, which also writes the
    finished sweep's files). Resuming a directory of the other kind raises :class:`RunDirError`.
    """
    run_dir = Path(run_dir)
    if not distributed.is_primary():
        return _follow(run_dir, config, options, resume, on_chunk, devices, grid)
    announce = _Announcer(run_dir, resume)
    try:
        with rundir.disk_errors(run_dir):  # a full or read-only disk: one line, not a traceback
            return _train_primary(run_dir, config, options, resume, overwrite, restart, command, on_chunk,
                                  on_compile, devices, announce, kind, grid)
    except BaseException as err:
        if announce.error(err):  # the other processes stop with this message instead of waiting for process 0
            err.told_process_group = True  # so the CLI exits as with one process: nobody is left waiting
        raise


def _train_primary(run_dir, config, options, resume, overwrite, restart, command, on_chunk, on_compile, devices,
                   announce, kind="train", grid=None) -> RunResult:
    """:func:`train_durable` in process 0 (the only process with one process)."""
    if restart and not resume:
        raise ValueError("restart=True only applies when resuming (a new run starts from update 0 anyway)")
    if kind not in ("train", "sweep"):
        raise ValueError(f"kind must be 'train' or 'sweep', got {kind!r}")
    if grid is not None and (resume or kind != "sweep"):
        raise ValueError("a grid is given for a new sweep (kind='sweep') alone; a resumed sweep reads its grid "
                         "from run_dir")
    if resume:
        rundir.require_run_dir(run_dir, kind)  # a clear error before the lock file is created in a non-run directory
    else:
        if config is None or (kind == "sweep" and not grid):
            raise TypeError("train_durable needs a config for a new run (and a grid for a new sweep)")
        if grid is not None:
            grid = _check_sweep(config, options or RunOptions(), grid)
        build_env(config.env_name)  # before the directory exists: a bad env leaves nothing to clean up
        _make_run_dir(run_dir)
    with rundir.locked(run_dir, command):
        if resume:
            config, options, grid, info = sweep_files.load_existing(run_dir, kind)
            if grid is not None:
                grid = _check_sweep(config, options, grid)
            build_env(config.env_name)
            plan = [int(n) for n in info["plan"]]
        else:
            options = options or RunOptions()
            plan = chunk_plan(config.num_updates, options.progress_chunks, options.chunk_updates)
            rundir.prepare_new(run_dir, overwrite, rundir.OWNED if grid is None else sweep_files.SWEEP_OWNED)
            info = rundir.write_metadata(run_dir, config, options, plan, command, grid)
        if restart:
            _drop_progress(run_dir)
        return _train_locked(run_dir, config, options, plan, info, resume, restart, command, on_chunk, on_compile,
                             devices, announce, grid)


def _make_run_dir(run_dir: Path) -> None:
    """Create a new run's directory; a one-line :class:`RunDirError` where a file stands in the way."""
    blocking = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        what = "it" if blocking == run_dir else f"{blocking}"
        raise RunDirError(f"run directory {run_dir} cannot be created: {what} is a file; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)


def _check_sweep(config: BaseConfig, options: RunOptions,
                 grid: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """A sweep's grid, checked against the config (:func:`~purejaxrl_ppo.launch.sweep.check_grid`), and the options
    a sweep cannot honour refused (one-line :class:`ConfigError`)."""
    if options.seeds_per_batch:
        raise ConfigError("seeds_per_batch: a sweep runs every seed of a device at once (set it to 0)")
    if options.wandb:
        raise ConfigError("wandb: a sweep logs each grid point to points/<setting>/ (CSV, JSONL, --tensorboard); "
                          "W&B logs one run per process, so it is not supported for sweeps")
    if getattr(options, "video", "off") != "off":
        raise ConfigError(f"video: a sweep writes no policy video (video={options.video!r}); set it to 'off'")
    return check_grid(config, grid)


def _abstract_state(config: BaseConfig, num_seeds: int, grid: Mapping[str, Sequence[float]] | None) -> Any:
    """``ShapeDtypeStruct`` tree of the run's state: ``[seeds, ...]``, a sweep's ``[points, seeds, ...]``."""
    if grid is None:
        return abstract_train_state(config, num_seeds)
    return abstract_grid_state(config, len(grid_settings(grid)), num_seeds)


class _Announcer:
    """Process 0's side of the set-up hand-over: what the others train, or why they cannot (one broadcast)."""

    def __init__(self, run_dir: Path, resume: bool):
        self.pending = distributed.process_count() > 1
        self.run_dir, self.resume = run_dir, resume

    def ready(self, config: BaseConfig, options: RunOptions, plan: list[int], start: StartPoint | None,
              timing: dict[str, Any] | None, grid: dict[str, list[float]] | None = None) -> None:
        """Send the run's config, options, plan, grid and timings, then the restored state and history (if any)."""
        if not self.pending:
            return
        self.pending = False
        history = None if start is None else {k: str(np.asarray(v).dtype) for k, v in start.metrics.items()}
        distributed.broadcast_json({"error": None, "run": run_dict(config, options), "plan": plan, "timing": timing,
                                    "step": None if start is None else start.updates_done, "history": history,
                                    "grid": None if grid is None else list(grid.items()),
                                    "out": str(self.run_dir), "resume": self.resume})
        if start is not None:
            distributed.broadcast_arrays((to_host(start.state), dict(start.metrics)), None)

    def error(self, err: BaseException) -> bool:
        """Send ``err`` if the set-up was not sent (once); True if it was sent now."""
        if not self.pending:
            return False
        self.pending = False
        distributed.broadcast_json({"error": f"{type(err).__name__}: {err}"})
        return True


def _follow(run_dir: Path, mine: BaseConfig | None, my_options: RunOptions | None, resume: bool,
            on_chunk: Callable[[ChunkReport], None] | None, devices: Sequence[jax.Device] | None,
            my_grid: Mapping[str, Sequence[float]] | None = None) -> RunResult:
    """:func:`train_durable` in a process other than 0: train with what process 0 sends; write nothing.

    The run this process was asked for (``run_dir``, ``resume``, its own config, options and grid) must be process 0's:
    a follower started with other flags refuses with one line naming them (:class:`ConfigError`) instead of
    silently training process 0's run.
    """
    setup = distributed.broadcast_json(None)
    if not isinstance(setup, dict):  # process 0 sent something else: it is running another command line
        raise ConfigError(f"process {distributed.process_index()} was started with other flags than process 0 "
                          "(--resume in one of them only?); start every process with the same command line")
    if setup["error"] is not None:
        raise distributed.ProcessGroupError(f"process 0 stopped before training: {setup['error']}")
    _check_same_run(setup, run_dir, mine, my_options, resume, my_grid)
    config, options = split_run_dict(setup["run"])
    grid = None if setup.get("grid") is None else dict(setup["grid"])  # a list of pairs: the fields' order kept
    start = None
    if setup["step"] is not None:
        step, abstract = int(setup["step"]), _abstract_state(config, options.num_seeds, grid)
        leading = (options.num_seeds,) if grid is None else (len(grid_settings(grid)), options.num_seeds)
        history = {k: jax.ShapeDtypeStruct((*leading, step), np.dtype(d)) for k, d in setup["history"].items()}
        state, metrics = distributed.broadcast_arrays(None, (host_template(abstract), history))
        start = StartPoint(step, from_host(state, abstract), metrics)
    try:
        result = train_seeds_chunked(config, options.num_seeds, options.seed, on_chunk=on_chunk or (lambda _: None),
                                     plan=[int(n) for n in setup["plan"]], start=start, devices=devices,
                                     seeds_per_batch=options.seeds_per_batch or None, grid=grid)
    except TrainingDiverged as err:
        err.last_checkpoint = None  # process 0 names it
        raise
    return _finished_timing(result, setup["timing"])


def _same_out(ours: str, theirs: str) -> bool:
    """Whether two run directories name the same run; the CLI's default names (``...-YYYYmmdd-HHMMSS``) are
    stamped by each process, so their time stamps may differ by a second."""
    stamp = re.compile(r"-\d{8}-\d{6}$")
    if stamp.search(ours) and stamp.search(theirs):
        return stamp.sub("", ours) == stamp.sub("", theirs)
    return ours == theirs


def _check_same_run(setup: dict[str, Any], run_dir: Path, config: BaseConfig | None, options: RunOptions | None,
                    resume: bool, grid: Mapping[str, Sequence[float]] | None = None) -> None:
    """Refuse (one-line :class:`ConfigError`) when this process was asked for another run than process 0 sent."""
    differ = []
    if "resume" in setup and bool(setup["resume"]) != resume:
        differ.append(f"--resume: {'given' if setup['resume'] else 'absent'} in process 0, "
                      f"{'given' if resume else 'absent'} here")
    if setup.get("out") is not None and not _same_out(str(run_dir), str(setup["out"])):
        differ.append(f"{'--resume' if resume else '--out'}: {setup['out']} in process 0, {run_dir} here")
    if config is not None and not resume:
        ours = json.loads(json.dumps(run_dict(config, options or RunOptions())))  # as process 0's went: JSON
        theirs = setup["run"]
        for name in [*theirs, *(k for k in ours if k not in theirs)]:
            if ours.get(name) != theirs.get(name):
                differ.append(f"--{name.replace('_', '-')}: {theirs.get(name)!r} in process 0, "
                              f"{ours.get(name)!r} here")
    if grid is not None and not resume:
        ours = json.loads(json.dumps([[name, list(values)] for name, values in grid.items()]))
        if ours != setup.get("grid"):
            differ.append(f"--set: {setup.get('grid')} in process 0, {ours} here")
    if differ:
        raise ConfigError(f"process {distributed.process_index()} was started with other flags than process 0 "
                          f"({'; '.join(differ)}); start every process of the group with the same command line")


def _finished_timing(result: RunResult, timing: dict[str, Any] | None) -> RunResult:
    """A finished run resumed (no update ran): the timings of the process that finished it."""
    if result.updates_run == 0 and timing:
        return dataclasses.replace(result, compile_seconds=float(timing["compile_seconds"]),
                                   run_seconds=float(timing["run_seconds"]), updates_run=int(timing["updates_run"]))
    return result


def _drop_progress(run_dir: Path) -> None:
    """For ``--restart``: remove the checkpoints and the completion marker (logs are rewritten from update 0)."""
    marker = run_dir / rundir.COMPLETE_FILE
    if marker.exists():
        marker.unlink()
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        trash = run_dir / ".checkpoints-dropped"
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(checkpoints, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _train_locked(run_dir, config, options, plan, info, resume, restart, command, on_chunk, on_compile,
                  devices, announce, grid=None) -> RunResult:
    """The body of :func:`train_durable`, run while holding the run directory's lock."""
    checkpointer = Checkpointer(run_dir / "checkpoints", keep=options.keep_checkpoints)
    meta = {"config": config.to_dict(), "options": options.to_dict(), "plan": plan}
    if grid is not None:  # a list of pairs: the order of the fields (the points axis) is compared too
        meta["grid"] = [[name, values] for name, values in grid.items()]
    start, timing = (None, None)
    if resume and not restart:
        start, timing = _restore_start(run_dir, checkpointer, config, options, meta, grid)
    if resume:
        info = rundir.record_resume(run_dir, info, command, 0 if start is None else start.updates_done)
    if start is None or start.updates_done < config.num_updates:  # training again: not finished until saved
        (run_dir / rundir.COMPLETE_FILE).unlink(missing_ok=True)
    if grid is None:
        sinks = _open_sinks(run_dir, config, options, info, start)
    else:  # one sink group per grid point, in points/<setting>/
        def open_point(directory: Path, i: int) -> ls.SinkGroup:
            history = None if start is None else {k: v[i] for k, v in start.metrics.items()}
            return _open_sinks(directory, config, options, info, start and dataclasses.replace(start, metrics=history))

        sinks = sweep_files.PointSinks(run_dir, [setting_label(s) for s in grid_settings(grid)], open_point)
    announce.ready(config, options, plan, start, timing, grid)
    logged = 0 if start is None else start.updates_done
    collapse = _CollapseCheck(config, options)
    runs = options.num_seeds * (1 if grid is None else len(grid_settings(grid)))
    clock = ls.WallClock(runs, config.batch_size, logged, timing)  # continues the checkpoint's

    def after_chunk(report: ChunkReport) -> None:
        nonlocal logged
        sinks.write(report.chunk_metrics)
        sinks.write_timing(clock.record(report.updates_done, report.run_seconds))
        logged = report.updates_done
        collapse(report.chunk_metrics, report.updates_done - report.chunk_metrics["env_steps"].shape[-1])
        if (report.index + 1) % options.checkpoint_every == 0 or report.updates_done == config.num_updates:
            timing_now = {"compile_seconds": report.compile_seconds, "run_seconds": report.run_seconds,
                          "updates_run": report.updates_run, **clock.checkpoint_timing()}
            checkpointer.save(report.updates_done, report.state, report.metrics, {**meta, "timing": timing_now})
        if on_chunk is not None:
            on_chunk(report)

    try:  # after_chunk on every process: with several, each chunk's state is gathered to all (a collective)
        result = train_seeds_chunked(config, options.num_seeds, options.seed, on_chunk=after_chunk, plan=plan,
                                     start=start, devices=devices, seeds_per_batch=options.seeds_per_batch or None,
                                     on_compile=on_compile if start is None or start.updates_done < config.num_updates
                                     else None, grid=grid)
    except TrainingDiverged as err:
        tail = {k: v[..., logged:err.update] for k, v in err.metrics.items()}
        sinks.write(tail)  # show the run up to and including the update that diverged, no further
        err.last_checkpoint = checkpointer.last_verified()
        raise
    finally:
        sinks.close()
        checkpointer.close()
    return dataclasses.replace(_finished_timing(result, timing), wall_clock=clock.table())


class _CollapseCheck:
    """Warn (once per kind) when a seed's entropy or value loss crosses the options' collapse thresholds."""

    def __init__(self, config: BaseConfig, options: RunOptions):
        discrete = build_env(config.env_name).action_space.discrete
        self.limits = {}
        if options.collapse_entropy > 0 and discrete:  # a Gaussian's differential entropy may be negative
            self.limits["entropy"] = (options.collapse_entropy, np.less, "fell below",
                                      "the policy has collapsed to deterministic actions")
        if options.collapse_value_loss > 0:
            self.limits["value_loss"] = (options.collapse_value_loss, np.greater, "exceeded",
                                         "the value estimates are exploding")

    def __call__(self, chunk: dict[str, np.ndarray], offset: int) -> None:
        for name in list(self.limits):
            if name not in chunk:
                continue
            limit, compare, verb, meaning = self.limits[name]
            with np.errstate(invalid="ignore"):
                hit = compare(np.asarray(chunk[name]), limit)  # [seeds, n], a sweep's [points, seeds, n]
            if hit.any():
                update = offset + int(np.argmax(hit.reshape(-1, hit.shape[-1]).any(axis=0))) + 1
                rows = np.argwhere(hit.any(axis=-1))  # (seed,) or (point, seed) of each run that crossed
                shown = ", ".join("/".join(map(str, r)) for r in rows[:8]) + (", ..." if len(rows) > 8 else "")
                unit = "seeds" if hit.ndim == 2 else "point/seed"
                warnings.warn(f"{name} {verb} {limit:g} at update {update} ({unit} {shown}): {meaning}; "
                              "consider a smaller learning rate or see the collapse_* options",
                              CollapseWarning, stacklevel=2)
                del self.limits[name]  # once per kind and run


def _differences(saved: Any, current: Any) -> str:
    """``key: saved -> current`` for the keys of two dicts that differ (or the values themselves)."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return f"{saved} -> {current}"
    keys = sorted(set(saved) | set(current), key=str)
    return ", ".join(f"{k}: {saved.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}"
                     for k in keys if saved.get(k, "(absent)") != current.get(k, "(absent)"))


def _restore_start(run_dir: Path, checkpointer, config: BaseConfig, options, meta: dict[str, Any],
                   grid: dict[str, list[float]] | None = None) -> tuple[StartPoint | None, dict[str, Any] | None]:
    """The newest intact checkpoint as a :class:`StartPoint` (checked against the run's config) and its timings."""
    repair = f"python -m purejaxrl_ppo {'train' if grid is None else 'sweep'} --resume {run_dir} --restart"
    try:
        restored = checkpointer.restore_latest(_abstract_state(config, options.num_seeds, grid))
    except CheckpointError as err:
        raise CheckpointError(f"{err}; every checkpoint was quarantined to {run_dir / 'corrupt_checkpoints'}; to "
                              f"start again from update 0: {repair}") from None
    if restored is None:
        quarantine = run_dir / "corrupt_checkpoints"
        if quarantine.is_dir() and any(quarantine.iterdir()):
            raise RunDirError(f"{run_dir} has no usable checkpoint: every one was quarantined to {quarantine}; "
                              f"to start again from update 0: {repair}")
        return None, None
    saved = dict(restored.meta)
    if isinstance(saved.get("options"), dict):  # options added since the checkpoint was written: their defaults
        saved["options"] = {**type(options)().to_dict(), **saved["options"]}
    if isinstance(saved.get("config"), dict):  # config fields added since (e.g. ``policy``): their defaults
        saved["config"] = {**type(config)().to_dict(), **type(config).upgrade_dict(saved["config"])}
    for name in meta:  # config, options, plan (and a sweep's grid)
        if saved.get(name) != meta[name]:
            raise RunDirError(
                f"checkpoint {checkpointer.directory / str(restored.step)} was written with a different {name} "
                f"than {run_dir / 'config.yaml'} / run.json ({_differences(saved.get(name), meta[name])}); "
                f"restore the run file or start a new run with --config {run_dir / 'config.yaml'}"
            )
    return StartPoint(restored.step, restored.state, restored.history), saved.get("timing")


def _open_sinks(run_dir: Path, config: BaseConfig, options, info: dict[str, Any],
                start: StartPoint | None) -> ls.SinkGroup:
    """CSV and JSONL always; TensorBoard and W&B if asked. A resume rewrites CSV/JSONL from the history."""
    sinks = ls.SinkGroup([ls.CSVSink(run_dir, config.batch_size), ls.JSONLSink(run_dir, config.batch_size)])
    if start is not None and start.metrics:
        sinks.write(start.metrics)
    purge = None if start is None else (start.updates_done + 1) * config.batch_size
    if options.tensorboard:
        sinks.append(ls.TensorBoardSink(run_dir, options.num_seeds, options.log_seeds, purge_step=purge))
    if options.wandb:
        sinks.append(ls.WandbSink(run_dir, options.wandb_project, info["wandb_id"], run_dir.name,
                                  run_dict(config, options), options.num_seeds, options.log_seeds, config.batch_size))
    return sinks
