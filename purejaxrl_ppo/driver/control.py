"""``train`` and ``sweep`` as clients of the durable-run driver: a run of seeds (or a grid × seeds) in a run
directory with checkpoints and logs after every chunk; resume; the final files.

:func:`train_durable` is one chunked stage of the driver (:mod:`purejaxrl_ppo.driver.run`): its programs are
:class:`~purejaxrl_ppo.launch.programs.SeedPrograms` (a sweep's
:class:`~purejaxrl_ppo.launch.programs.GridPrograms`), its run file ``config.yaml`` + ``run.json``
(:mod:`purejaxrl_ppo.runs.rundir`, :mod:`purejaxrl_ppo.runs.sweep_files`), its logs CSV/JSONL (TensorBoard, W&B),
its final files those of :func:`~purejaxrl_ppo.driver.outputs.save_run` (a sweep's
:func:`~purejaxrl_ppo.driver.outputs.save_sweep`), written before the lock is released.

What survives which fault (tested in ``tests/driver/test_faults.py`` and, for sweeps,
``tests/driver/test_sweep_faults.py``):

* a kill (``SIGKILL``) anywhere: ``--resume`` continues from the newest complete
  checkpoint and ends with metrics, logs and final state equal to the
  uninterrupted run's bit for bit; a kill while finishing leaves no completion
  marker, and ``--resume`` regenerates the final files from the last checkpoint;
* damaged checkpoint files (truncated, bit-flipped, missing manifest): named,
  quarantined with a warning, and the run falls back to an older checkpoint;
  when none is left, ``--resume`` refuses until ``--restart`` is given;
* damaged final files: ``compare``/``render`` refuse the run with a one-line
  error, ``--resume`` rewrites them;
* two writers: the second one stops with an error naming the first (lock); the lock is held until the final
  files and ``complete.json`` are written, so a ``--resume`` or ``--overwrite`` arriving while a run finishes
  is refused too;
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
import json
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.core.envs import build_env
from purejaxrl_ppo.driver import run as driver
from purejaxrl_ppo.driver.outputs import save_run, save_sweep
from purejaxrl_ppo.launch import distributed
from purejaxrl_ppo.launch.chunked import ChunkReport, RunResult, StartPoint, TrainingDiverged, chunk_plan, \
    divergence, train_seeds_chunked
from purejaxrl_ppo.launch.layout import seed_layout
from purejaxrl_ppo.launch.programs import SeedPrograms, abstract_grid_state, abstract_train_state
from purejaxrl_ppo.launch.sweep import check_grid, grid_programs, grid_settings, setting_label
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls
from purejaxrl_ppo.runs import sweep_files
from purejaxrl_ppo.runs.checkpoint import from_host, host_template, to_host
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.run_files import run_dict, split_run_dict


class CollapseWarning(UserWarning):
    """Training went on, but a seed's policy or value function looks collapsed (see ``RunOptions``)."""


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
    save: bool = True,
) -> RunResult:
    """Train in ``run_dir`` with checkpoints and logs after every chunk; resumable; the final files written.

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
    the timings of the process that finished it, and rewrites its final files.

    With ``save`` (the default) the final files (:func:`~purejaxrl_ppo.driver.outputs.save_run`, a sweep's
    :func:`~purejaxrl_ppo.driver.outputs.save_sweep`) and ``complete.json`` are written before the run
    directory's lock is released: one writer from start to finish. ``command`` is recorded in ``run.json``
    and ``summary.json``. A non-finite metric raises :class:`TrainingDiverged`; the logs end with the update
    that diverged and the last verified checkpoint is named in ``err.last_checkpoint``. A seed whose entropy
    or value loss crosses the ``collapse_*`` thresholds of the options triggers one :class:`CollapseWarning`
    per kind. ``on_compile()`` runs just before compiling. The seeds are split over ``devices`` (default:
    every local device); checkpoints hold unsharded ``[num_seeds, ...]`` arrays, so a run may resume on a
    different number of devices. With several processes, see the module docstring: process 0 alone reads
    and writes ``run_dir``.

    ``kind="sweep"`` trains a grid of numeric hyperparameters × the seeds instead (``grid``:
    ``{field: values}``, required for a new sweep, read from ``run_dir`` on a resume), through the same
    path: the state, checkpoints and metrics get a leading ``[points]`` axis
    (:class:`~purejaxrl_ppo.launch.programs.GridPrograms`), the grid is part of the run file, and each
    point logs to ``points/<setting>/`` (:mod:`~purejaxrl_ppo.runs.sweep_files`). Resuming a directory of
    the other kind raises :class:`RunDirError`.
    """
    run_dir = Path(run_dir)
    if not distributed.is_primary():
        return _follow(run_dir, config, options, resume, on_chunk, devices, grid)
    announce = _Announcer(run_dir, resume)
    try:
        with rundir.disk_errors(run_dir):  # a full or read-only disk: one line, not a traceback
            return _train_primary(run_dir, config, options, resume, overwrite, restart, command, on_chunk,
                                  on_compile, devices, announce, kind, grid, save)
    except BaseException as err:
        if announce.error(err):  # the other processes stop with this message instead of waiting for process 0
            err.told_process_group = True  # so the CLI exits as with one process: nobody is left waiting
        raise


def _train_primary(run_dir, config, options, resume, overwrite, restart, command, on_chunk, on_compile, devices,
                   announce, kind="train", grid=None, save=True) -> RunResult:
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
    owned = rundir.OWNED if kind == "train" else sweep_files.SWEEP_OWNED
    with driver.open_run(run_dir, command, new=not resume, overwrite=overwrite, owned=owned):
        if resume:
            config, options, grid, info = sweep_files.load_existing(run_dir, kind)
            if grid is not None:
                grid = _check_sweep(config, options, grid)
            build_env(config.env_name)
            plan = [int(n) for n in info["plan"]]
        else:
            options = options or RunOptions()
            plan = chunk_plan(config.num_updates, options.progress_chunks, options.chunk_updates)
            info = rundir.write_metadata(run_dir, config, options, plan, command, grid)
        if restart:
            driver.drop_progress(run_dir, run_dir / "checkpoints")
        result = _train_locked(run_dir, config, options, plan, info, resume, restart, command, on_chunk, on_compile,
                               devices, announce, grid)
        if save:
            (save_run(result, run_dir, command=command, options=options) if grid is None
             else save_sweep(result, run_dir, command=command))
        return result


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


def _upgrade_saved(config: BaseConfig, options: RunOptions) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A checkpoint's meta as this version writes it: options and config fields added since, at their defaults."""
    def upgrade(saved: dict[str, Any]) -> dict[str, Any]:
        if isinstance(saved.get("options"), dict):
            saved["options"] = {**type(options)().to_dict(), **saved["options"]}
        if isinstance(saved.get("config"), dict):
            saved["config"] = {**type(config)().to_dict(), **type(config).upgrade_dict(saved["config"])}
        return saved

    return upgrade


def _train_locked(run_dir, config, options, plan, info, resume, restart, command, on_chunk, on_compile, devices,
                  announce, grid=None) -> RunResult:
    """The run's one chunked stage (:func:`~purejaxrl_ppo.driver.run.run_chunked_stage`), holding the lock."""
    layout = seed_layout(options.num_seeds, devices, options.seeds_per_batch or None)
    programs = SeedPrograms(config, layout) if grid is None else grid_programs(config, grid, layout)
    keys = jax.random.split(jax.random.PRNGKey(options.seed), options.num_seeds)
    meta = {"config": config.to_dict(), "options": options.to_dict(), "plan": plan}
    if grid is not None:  # a list of pairs: the order of the fields (the points axis) is compared too
        meta["grid"] = [[name, values] for name, values in grid.items()]
    command_name = "train" if grid is None else "sweep"
    stage = driver.ChunkedStage(
        name=command_name, programs=programs, plan=plan, init=lambda: programs.init(keys),
        abstract_state=_abstract_state(config, options.num_seeds, grid), meta=meta,
        checkpoints=run_dir / "checkpoints", keep=options.keep_checkpoints, checkpoint_every=options.checkpoint_every,
        repair=f"python -m purejaxrl_ppo {command_name} --resume {run_dir} --restart",
        upgrade_saved=_upgrade_saved(config, options), diverged=divergence(options.num_seeds, grid))
    runs = options.num_seeds * (1 if grid is None else len(grid_settings(grid)))
    collapse = _CollapseCheck(config, options)
    opened: dict[str, Any] = {}

    def on_start(start: StartPoint | None, timing: dict[str, Any] | None) -> None:
        nonlocal info
        if resume:
            info = rundir.record_resume(run_dir, info, command, 0 if start is None else start.updates_done)
        if start is None or start.updates_done < config.num_updates:  # training again: not finished until saved
            (run_dir / rundir.COMPLETE_FILE).unlink(missing_ok=True)
        announce.ready(config, options, plan, start, timing, grid)
        opened["clock"] = ls.WallClock(runs, config.batch_size, 0 if start is None else start.updates_done, timing)

    def open_sinks(start: StartPoint | None) -> Any:
        if grid is None:
            opened["sinks"] = _open_sinks(run_dir, config, options, info, start)
        else:  # one sink group per grid point, in points/<setting>/
            def open_point(directory: Path, i: int) -> ls.SinkGroup:
                history = None if start is None else {k: v[i] for k, v in start.metrics.items()}
                return _open_sinks(directory, config, options, info,
                                   start and dataclasses.replace(start, metrics=history))

            opened["sinks"] = sweep_files.PointSinks(run_dir, [setting_label(s) for s in grid_settings(grid)],
                                                     open_point)
        return opened["sinks"]

    def timing(report: ChunkReport) -> dict[str, Any]:
        return {"compile_seconds": report.compile_seconds, "run_seconds": report.run_seconds,
                "updates_run": report.updates_run, **opened["clock"].checkpoint_timing()}

    def logged(report: ChunkReport) -> None:
        opened["sinks"].write_timing(opened["clock"].record(report.updates_done, report.run_seconds))
        collapse(report.chunk_metrics, report.updates_done - report.chunk_metrics["env_steps"].shape[-1])

    done = driver.run_chunked_stage(stage, resume=resume and not restart,
                                    source=f"{run_dir / 'config.yaml'} / run.json", open_sinks=open_sinks, timing=timing, on_start=on_start, on_logged=logged,
                                    on_chunk=on_chunk, on_compile=on_compile)
    chunks = done.chunks
    result = RunResult(config, options.num_seeds, options.seed, chunks.metrics, chunks.state, chunks.compile_seconds,
                       chunks.run_seconds, chunks.updates_run, grid=grid)
    return dataclasses.replace(_finished_timing(result, done.saved_timing), wall_clock=opened["clock"].table())


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
