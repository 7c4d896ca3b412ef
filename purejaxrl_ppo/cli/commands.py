"""The parser of every ``python -m purejaxrl_ppo`` subcommand, and the ``train``, ``render`` and ``compare`` commands.

``train`` exposes every config field as a flag (``--num-envs 8``,
``--clip-eps 0.1``, ``--no-anneal-lr``, ``--hidden-sizes 64 64``; with
``--env brax/...`` the per-task defaults of :mod:`purejaxrl_ppo.cli.presets` apply
under the flags given), trains
``--num-seeds`` seeds (split over every local device, vmapped) with a progress bar, prints a
summary table and writes metrics, a JSON summary and a learning-curve PNG.
``compare`` prints the summaries of several run directories side by side and, with ``--plot``, draws
their learning curves (``--metric``, ``--smooth``, ``--x steps|time``, ``--band ci|iqr|none``).
``render --run DIR`` writes an HTML viewer (Brax), a GIF or an MP4 of a run's deterministic policy;
``export --run DIR --out FILE`` writes its policy as one self-contained file (:mod:`purejaxrl_ppo.cli.export`).
``check-env --env NAME`` checks that an environment follows the env protocol (:mod:`purejaxrl_ppo.cli.check_env`).
``rlhf`` runs SFT, a reward model and PPO/TRPO on a synthetic language (:mod:`purejaxrl_ppo.cli.rlhf`).
``sweep --set FIELD=V1,V2,...`` trains a grid of numeric hyperparameters × seeds like ``train``, durably, and
prints a table per setting (:mod:`purejaxrl_ppo.cli.sweep`).
``launch --processes N -- train ...`` runs ``train`` as N local ``jax.distributed`` processes
(:mod:`purejaxrl_ppo.launch.processes`); ``train`` joins such a process group from the environment
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), from
``--coordinator-address``/``--num-processes``/``--process-id``, or, with ``--distributed``, from what jax
detects (SLURM, TPU pods). Process 0 alone prints and writes the run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn, Sequence

# Importing any purejaxrl_ppo module runs the package __init__ first, which applies
# the XLA:CPU deadlock workaround before jax starts its backend.
from purejaxrl_ppo.analysis.plots import BANDS, RETURN_CURVE, X_AXES
from purejaxrl_ppo.analysis.stats import FINAL_RETURN_WINDOW, run_final_returns, summarize
from purejaxrl_ppo.cli.flags import (
    add_config_flags,
    add_option_flags,
    flag_values,
)
from purejaxrl_ppo.cli.check_env import add_check_env_parser, cmd_check_env
from purejaxrl_ppo.cli.export import add_export_parser, cmd_export
from purejaxrl_ppo.cli.presets import brax_preset
from purejaxrl_ppo.cli.rlhf import add_rlhf_parser, cmd_rlhf
from purejaxrl_ppo.cli.sweep import add_sweep_parser, cmd_sweep
from purejaxrl_ppo.launch import distributed
from purejaxrl_ppo.core.algos import config_classes
from purejaxrl_ppo.core.config import BaseConfig, ConfigError
from purejaxrl_ppo.launch.processes import add_launch_parser, cmd_launch, seconds_type
from purejaxrl_ppo.runs.options import RunOptions
from purejaxrl_ppo.runs.run_files import (
    SUFFIXES,
    check_run_info,
    read_run_file,
    saved_run_kind,
    split_run_dict,
    write_run_file,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; no parser accepts abbreviated flags. The top-level description names
    the subcommands registered below, so it lists each one added here."""
    parser = argparse.ArgumentParser(prog="purejaxrl-ppo", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train many seeds of PPO or TRPO (resumable, logged)", allow_abbrev=False)
    train.add_argument("--config", type=Path, default=None, metavar="FILE",
                       help="YAML or TOML run file (examples/ppo_cartpole.yaml); flags override its values")
    train.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its newest intact checkpoint (same config); a "
                            "finished run whose final files are missing or damaged gets them rewritten")
    train.add_argument("--restart", action="store_true",
                       help="with --resume: start the run again from update 0 (drops its checkpoints), e.g. after "
                            "every checkpoint was found damaged")
    train.add_argument("--algo", choices=sorted(config_classes()), default=None, help="algorithm [default: ppo]")
    train.add_argument("--out", type=Path, default=None, help="run directory (default runs/<algo>-<env>-<timestamp>)")
    train.add_argument("--overwrite", action="store_true",
                       help="start afresh in an existing non-empty --out; replace an existing --dump-config FILE")
    train.add_argument("--quiet", action="store_true", help="no progress bar or table; print the summary path only")
    train.add_argument("--cpu-devices", default=None, metavar="N|auto",
                       help="on a CPU, split it into N XLA devices (auto: one per core) and shard the seeds over them "
                            "(pjp.use_cpu_devices); faster on multi-core CPUs. With --seeds-per-batch fixed, every "
                            "seed's results are bit-identical on any N; without it, each device vmaps fewer seeds, "
                            "float rounding differs and training amplifies it: individual seeds' returns differ, "
                            "their distribution does not")
    train.add_argument("--dump-config", type=Path, default=None, metavar="FILE",
                       help="write the resolved run file (.yaml or .toml; parent directories are created, an "
                            "existing FILE only with --overwrite) and exit without training")
    group = train.add_argument_group("several processes (jax.distributed; see also the launch command)")
    group.add_argument("--distributed", action="store_true",
                       help="join a jax.distributed process group whose parameters jax detects (SLURM, TPU pods)")
    group.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                       help="process 0's address (else $JAX_COORDINATOR_ADDRESS); implies --distributed")
    group.add_argument("--num-processes", type=int, default=None, metavar="N", help="processes in the group")
    group.add_argument("--process-id", type=int, default=None, metavar="I", help="this process's index, 0..N-1")
    group.add_argument("--init-timeout", type=seconds_type(0, strict=True), default=None, metavar="S",
                       help="seconds to wait for the process group to form before failing with one line (default "
                            "$PUREJAXRL_PPO_INIT_TIMEOUT, else 120)")
    add_option_flags(train)
    add_config_flags(train)

    render = sub.add_parser("render", help="write an HTML viewer (Brax), a GIF or an MP4 of a saved policy's episode",
                            allow_abbrev=False)
    render.add_argument("--run", type=Path, required=True,
                        help="run directory written by `train`, or a file written by `export`")
    render.add_argument("--out", type=Path, default=None,
                        help="output file: .html (Brax), .gif or .mp4 (needs the render extra) "
                             "[default: <run>/render.html for Brax, else <run>/render.gif]")
    render.add_argument("--seed-index", type=int, default=0, help="which trained seed's policy [default: 0]")
    render.add_argument("--seed", type=int, default=0, help="PRNG seed of the rendered episode [default: 0]")
    render.add_argument("--viewer", choices=("offline", "brax"), default="offline",
                        help="for .html: a self-contained page that works without network, or Brax's own viewer "
                             "(loads three.js and its scripts from CDNs) [default: offline]")

    compare = sub.add_parser("compare", help="compare the summaries of finished runs", allow_abbrev=False)
    compare.add_argument("runs", type=Path, nargs="+", help="run directories holding summary.json")
    compare.add_argument("--plot", type=Path, default=None, help="also write a combined learning-curve PNG here")
    look = compare.add_argument_group("the plot (with --plot; line: IQM across seeds)")
    look.add_argument("--metric", default=None, metavar="NAME",
                      help=f"any per-update metric of the runs' metrics.npz [default: {RETURN_CURVE}: the evaluation "
                           "return where evaluation ran, else the last finished episode's return, carried forward]")
    look.add_argument("--smooth", type=int, default=None, metavar="K",
                      help="replace each seed's value by the mean of its last K updates (NaNs left out, fewer at the "
                           "start) before the statistics across seeds; 0 or 1: off [default: 0]")
    look.add_argument("--x", choices=X_AXES, default=None,
                      help="x-axis: env steps per seed, or seconds of training (wall clock, compile excluded, from "
                           "each run's timing.csv) [default: steps]")
    look.add_argument("--band", choices=BANDS, default=None,
                      help="band around the line: 95%% bootstrap CI of the IQM, the seeds' 25th-75th percentile, "
                           "or none [default: ci]")

    add_sweep_parser(sub, train)
    add_rlhf_parser(sub)
    add_launch_parser(sub)
    add_export_parser(sub)
    add_check_env_parser(sub)
    parser.description = (f"PPO and TRPO, each run compiled into one jax.lax.scan, many seeds at once. Commands: "
                          f"{', '.join(sub.choices)}; `python -m purejaxrl_ppo COMMAND --help` explains each.")
    return parser


def resolve_run(args: argparse.Namespace, values: dict[str, Any] | None = None) -> tuple[BaseConfig, RunOptions]:
    """Defaults, then the ``--config`` file, then flags: the run's config and options.

    ``values``: the ``--config`` file's mapping, when the caller has read it already (``sweep`` takes its grid out).
    """
    if values is None:
        values = read_run_file(args.config) if args.config is not None else {}
    flags = flag_values(args)
    algo = flags.get("algo", values.get("algo", "ppo"))
    configs = config_classes()
    if algo in configs:
        own = {f.name for f in dataclasses.fields(configs[algo])}
        other = {f.name for c in configs.values() for f in dataclasses.fields(c)} - own
        misplaced = sorted(name for name in other if name in flags)
        if misplaced:
            names = ", ".join("--" + n.replace("_", "-") for n in misplaced)
            raise ConfigError(f"{names} do(es) not apply to --algo {algo}")
    if "hidden_sizes" in flags:
        flags["hidden_sizes"] = tuple(flags["hidden_sizes"])
    source = None
    if args.config is not None:
        source = str(args.config) + (" with command-line overrides" if flags else "")
    merged = {**values, **flags}
    try:  # Brax per-task defaults go underneath the file and the flags
        preset = brax_preset(algo, merged.get("env_name")) if algo in configs else {}
    except ValueError as err:
        raise ConfigError(f"env_name: {err}") from None
    return split_run_dict({**preset, **merged}, source=source)


def config_from_args(args: argparse.Namespace) -> BaseConfig:
    """The chosen algorithm's config with the ``--config`` file and every flag applied."""
    return resolve_run(args)[0]


def _default_out(config: BaseConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.algo_name}-{config.env_name}-{stamp}"


def _fmt(x: float, digits: int = 1) -> str:
    return "nan" if x != x else f"{x:,.{digits}f}"


def summary_table(summaries: Sequence[dict[str, Any]], title: str, labels: Sequence[str] | None = None):
    """A rich table with one row per run summary; ``labels`` (one per summary) add a first "run" column."""
    from rich.table import Table

    table = Table(title=title)
    columns = ("algo", "env", "seeds", "steps/seed", "median", "IQM", "min", "env-steps/s", "compile s")
    for col in ("run", *columns) if labels is not None else columns:
        table.add_column(col, justify="left" if col in ("run", "algo", "env") else "right",
                         overflow="fold" if col == "run" else "ellipsis")  # a long label wraps, never cut
    partial, evaluated = False, False
    for i, s in enumerate(summaries):
        r = s["final_return"]
        covered = r.get("seeds", s["num_seeds"])
        partial |= covered != s["num_seeds"]
        evaluated |= s.get("final_return_metric") == "eval_return"
        table.add_row(
            *([labels[i]] if labels is not None else []),
            s["algo"].upper(), s["env_name"],
            str(s["num_seeds"]) if covered == s["num_seeds"] else f"{covered}/{s['num_seeds']}",
            f"{s['total_timesteps_per_seed']:,}",
            _fmt(r["median"]), _fmt(r["iqm"]), _fmt(r["min"]), f"{s['env_steps_per_second']:,.0f}",
            _fmt(s["compile_seconds"]),
        )
    table.caption = final_return_caption(partial, evaluated)
    return table


def final_return_caption(partial: bool = False, evaluated: bool = False,
                         statistics: str = "median/IQM/min across seeds") -> str:
    """The definition of the final return in one sentence, for tables (:mod:`purejaxrl_ppo.analysis.stats`):
    ``partial`` when some seed has none, ``evaluated`` when read from evaluation, ``statistics`` the table's."""
    source = "the return of the last finished episode" + (" (evaluation return where evaluation ran)"
                                                          if evaluated else "")
    text = (f"final return = {source}, carried forward, averaged over each seed's last {FINAL_RETURN_WINDOW} "
            f"updates; {statistics}")
    if partial:
        text += "; n/N seeds: only n of N seeds ever finished an episode"
    return text


@dataclasses.dataclass(frozen=True)
class DurableCommand:
    """What a durable command (``train``, ``sweep``) does differently; :func:`run_durable_command` does the rest.

    name:          the subcommand (its ``--resume`` continues the run)
    noun:          what it trains, in messages ("run", "sweep")
    resolve:       ``args -> (config, options, grid)`` for a new run (``grid`` None for ``train``)
    write_file:    ``(path, config, options, grid)``: the run file ``--dump-config`` writes
    default_out:   ``config -> Path`` when no ``--out`` is given
    progress:      ``(console, grid)`` -> a context manager called after every chunk, with ``compiling()``
                   and ``task`` (None until a chunk ran)
    saved_grid:    ``run_dir -> grid`` of a run to resume (for the progress bar), None if it has none
    finish:        ``(result, out, command, console) -> path of summary.json``: write and print the outputs
    logs:          ``out`` -> where the per-update logs are (named when training diverges)
    resume_flags:  ``(flag, args attribute)`` that cannot be combined with ``--resume``, besides the config flags
    check_resume:  ``run_dir -> None``: refuse (raise) a directory this kind cannot resume, before anything else
    """

    name: str
    noun: str
    resolve: Any
    write_file: Any
    default_out: Any
    progress: Any
    saved_grid: Any
    finish: Any
    logs: Any = lambda out: out  # noqa: E731
    resume_flags: tuple[tuple[str, str], ...] = ()
    check_resume: Any = lambda out: None  # noqa: E731


def run_durable_command(args: argparse.Namespace, kind: DurableCommand) -> int:
    """The life of a durable command: devices and process group, resume or new run (or ``--dump-config``),
    training in the run directory with progress, plain warnings, divergence, Ctrl-C and process-group failures
    handled, then the kind's outputs. Returns the exit code. The run directory stays locked until the kind's
    driver has written the final files and ``complete.json`` (:func:`~purejaxrl_ppo.driver.control.train_durable`):
    a ``--resume`` or ``--overwrite`` arriving while a run finishes is refused."""
    from rich.console import Console

    from purejaxrl_ppo.launch.chunked import TrainingDiverged
    from purejaxrl_ppo.runs.checkpoint import CheckpointError, CorruptCheckpointWarning
    from purejaxrl_ppo.driver.control import CollapseWarning, train_durable
    from purejaxrl_ppo.runs.rundir import finished_problem

    if args.cpu_devices is not None:  # before anything starts jax's CPU backend
        from purejaxrl_ppo.platform import use_cpu_devices

        try:
            use_cpu_devices(args.cpu_devices if args.cpu_devices == "auto" else int(args.cpu_devices))
        except ValueError as err:
            hint = (" (under `launch`, each process's device count is its --devices-per-process)"
                    if distributed.ENV_COORDINATOR in os.environ else "")
            raise ConfigError(f"--cpu-devices: {err}{hint}") from None
    primary = _join_process_group(args)
    console = Console(stderr=True, quiet=args.quiet or not primary, width=None if sys.stderr.isatty() else 120)
    command = "python -m purejaxrl_ppo " + " ".join(shlex.quote(a) for a in args.argv)
    if args.restart and args.resume is None:
        raise ConfigError(f"--restart starts a saved {kind.noun} again from update 0; it needs --resume RUN_DIR")
    if args.resume is not None:
        extra = [f"--{n.replace('_', '-')}" for n in flag_values(args)]
        given = (("--config", "config"), ("--out", "out"), *kind.resume_flags, ("--overwrite", "overwrite"),
                 ("--dump-config", "dump_config"))
        extra += [flag for flag, name in given if getattr(args, name)]
        if extra:
            raise ConfigError(f"--resume continues the saved {kind.noun} of {args.resume}; {', '.join(extra)} cannot "
                              f"be combined with it (start a new {kind.noun} with --config {args.resume}/config.yaml "
                              "instead)")
        out, config, options = args.resume, None, None
        if primary:
            kind.check_resume(out)
        if not args.restart and distributed.broadcast_json(primary and finished_problem(out) is None):
            if primary:
                print(f"{out} has finished and its final files are intact; nothing to do", file=sys.stderr)
            return 0
        grid = kind.saved_grid(out) if primary else None
    else:
        config, options, grid = kind.resolve(args)
        if args.dump_config is not None:
            if args.dump_config.is_dir():
                raise ConfigError(f"--dump-config {args.dump_config} is a directory; give a file name")
            if not primary:
                return 0
            if args.dump_config.exists() and not args.overwrite:
                raise ConfigError(f"--dump-config {args.dump_config} exists; pass --overwrite to replace it")
            if args.dump_config.suffix in SUFFIXES:  # else write_run_file refuses it, naming the suffixes
                args.dump_config.parent.mkdir(parents=True, exist_ok=True)
            kind.write_file(args.dump_config, config, options, grid)
            print(f"wrote {args.dump_config}")
            return 0
        require_memory(config, options, grid)  # before the run directory exists and before compiling
        out = args.out or kind.default_out(config)

    def show_warning(message, category, *rest, **kwargs):  # say these plainly, even if --quiet
        if not primary:  # process 0 says it once
            return
        if issubclass(category, (CorruptCheckpointWarning, CollapseWarning)):
            print(f"warning: {message}", file=sys.stderr)
        else:
            previous(message, category, *rest, **kwargs)

    warnings.simplefilter("always", CorruptCheckpointWarning)
    warnings.simplefilter("always", CollapseWarning)
    previous, warnings.showwarning = warnings.showwarning, show_warning
    sweep = {} if kind.name == "train" else {"kind": kind.name, "grid": None if args.resume is not None else grid}
    try:
        with kind.progress(console, grid) as progress:
            result = train_durable(out, config, options, resume=args.resume is not None, overwrite=args.overwrite,
                                   restart=args.restart, command=command, on_chunk=progress,
                                   on_compile=progress.compiling, **sweep)
    except distributed.ProcessGroupError:
        return 2  # process 0 printed why
    except TrainingDiverged as err:  # every process sees the same gathered metrics, so all stop here together
        if not primary:
            return 3
        kept = (f"the last verified checkpoint is {err.last_checkpoint}" if err.last_checkpoint
                else "no verified checkpoint exists")
        print(f"error: training stopped: {err}; that state was not saved, {kept}; the logs in {kind.logs(out)} end "
              f"with update {err.update}", file=sys.stderr)
        return 3
    except Exception as err:
        if distributed.process_count() > 1 and not getattr(err, "told_process_group", False):
            _leave_process_group(err, out, kind.name)
        if not isinstance(err, CheckpointError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # orbax's writer threads of an interrupted save fail at exit with a traceback: not news after Ctrl-C.
        logging.getLogger("absl").setLevel(logging.CRITICAL)
        if not primary:
            return 130
        print(f"interrupted; continue with: python -m purejaxrl_ppo {kind.name} --resume {shlex.quote(str(out))}",
              file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
    if not primary:
        return 0
    if args.resume is not None and progress.task is None:  # no chunk ran: the run had finished before
        print(f"{out} had finished all {result.config.num_updates} updates; rewriting its final files",
              file=sys.stderr)
    summary_path = kind.finish(result, out, command, console)
    if args.quiet:
        print(summary_path)
    return 0


def written_files(out: Path) -> tuple[dict[str, Any], list[Path]]:
    """The summary and the final files (the logs aside) of a run the driver has just finished: those its
    ``complete.json`` lists, in the order they were written."""
    from purejaxrl_ppo.runs.rundir import COMPLETE_FILE, LOG_FILES

    names = json.loads((out / COMPLETE_FILE).read_text())["files"]
    return (json.loads((out / "summary.json").read_text()),
            [out / name for name in names if Path(name).name not in LOG_FILES])


def _finish_train(result, out: Path, command: str, console) -> Path:
    summary, files = written_files(out)
    console.print(summary_table([summary], "Training summary"))
    console.print(f"wrote {', '.join(map(str, files))} and logs in {out}")
    return out / "summary.json"


def check_resumable(out: Path, command: str) -> None:
    """The resume errors ``train`` and ``sweep`` share, before the lock: a directory another command wrote (an
    ``rlhf`` run), a ``run.json`` without a usable chunk plan (:func:`~purejaxrl_ppo.runs.run_files.check_run_info`)."""
    kind = saved_run_kind(out)
    if kind == "rlhf":
        raise ConfigError(f"{out} holds an rlhf run, not a {command} run; continue it with: python -m purejaxrl_ppo "
                          f"rlhf --resume {shlex.quote(str(out))}")
    check_run_info(out, kind or command)


TRAIN = DurableCommand(
    name="train", noun="run",
    resolve=lambda args: (*resolve_run(args), None),
    write_file=lambda path, config, options, grid: write_run_file(path, config, options),
    default_out=_default_out,
    progress=lambda console, grid: _progress(console),
    saved_grid=lambda out: None,
    finish=_finish_train,
    check_resume=lambda out: check_resumable(out, "train"),
)


def cmd_train(args: argparse.Namespace) -> int:
    return run_durable_command(args, TRAIN)


#: Exit code of ``train`` when another process of a ``jax.distributed`` group died.
LOST_PROCESS_EXIT = distributed.LOST_PROCESS_EXIT


def _leave_process_group(err: BaseException, out: Path, command: str = "train") -> NoReturn:
    """Training with several processes failed in this process after the set-up: say why and exit at once.

    An error raised inside jax (a collective that failed, e.g. gloo's "Connection reset by peer"): ask the
    coordination service which process died (it declares one within the heartbeat timeout), name it and exit
    with :data:`LOST_PROCESS_EXIT`. Any other error, or one no death explains, is this process's own: print
    it as one process would (``error: ...``, or the traceback of an unexpected error) and exit with 2 (a
    checkpoint or configuration error) or 1; the others, left in a collective, then stop with
    :data:`LOST_PROCESS_EXIT` naming this process. Exits with ``os._exit``: jax's own shutdown would wait in
    a barrier for processes that are not coming. ``command``: the subcommand whose ``--resume`` continues the run.
    """
    import traceback

    from purejaxrl_ppo.runs.checkpoint import CheckpointError

    me = distributed.process_index()
    resume = f"python -m purejaxrl_ppo {command} --resume {shlex.quote(str(out))} (any process count)"
    dead = distributed.dead_processes() if _raised_in_jax(err) else []
    if dead:
        first = str(err).splitlines()[0][:200] if str(err) else ""
        print(f"error: process {me} stopped: process(es) {', '.join(map(str, dead))} of the group died "
              f"({type(err).__name__}: {first}); the last complete checkpoint is kept, continue with: {resume}",
              file=sys.stderr, flush=True)
        code = LOST_PROCESS_EXIT
    else:
        expected = isinstance(err, (ConfigError, CheckpointError))
        if expected:
            print(f"error: {err}", file=sys.stderr)
        else:
            traceback.print_exception(err)
        print(f"error: process {me} failed, so every process of the group stops; the last complete checkpoint "
              f"is kept, continue with: {resume}", file=sys.stderr, flush=True)
        code = 2 if expected else 1
    sys.stdout.flush()
    os._exit(code)


def _raised_in_jax(err: BaseException) -> bool:
    """True if ``err`` came from jax's own code (its innermost frame is in a ``jax``/``jaxlib`` module)."""
    from jax.errors import JaxRuntimeError

    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = "" if tb is None else tb.tb_frame.f_globals.get("__name__", "")
    return isinstance(err, JaxRuntimeError) or module.split(".")[0] in ("jax", "jaxlib")


def require_memory(config: BaseConfig, options: RunOptions, grid: dict[str, list[float]] | None = None) -> None:
    """Refuse (one-line :class:`ConfigError`) a ``train`` run or a sweep (``grid``) whose lower-bound memory estimate
    exceeds the memory there is (:mod:`purejaxrl_ppo.launch.memory`). Traces only: writes and compiles nothing.
    In a process group each process checks its own devices' share."""
    import math

    import jax

    from purejaxrl_ppo.core.envs import build_env
    from purejaxrl_ppo.launch import memory

    build_env(config.env_name)  # a bad env name: its own one-line error, not the estimator's
    points = math.prod(len(values) for values in grid.values()) if grid else 1
    try:
        estimate = memory.train_estimate(config, options.num_seeds, jax.device_count(), jax.local_device_count(),
                                         options.seeds_per_batch, points)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a config the estimator cannot trace fails later, where it always did
        return
    lower = "--num-seeds, --num-envs, --num-steps or the grid's values" if grid else (
        "--num-seeds, --num-envs or --num-steps, or set --seeds-per-batch N (only N seeds' rollouts at once per "
        "device)")
    memory.require_fits(estimate, f"lower {lower}")


def _join_process_group(args: argparse.Namespace) -> bool:
    """Initialise ``jax.distributed`` if the flags or the environment ask for it; True in process 0 (or alone)."""
    given = [args.coordinator_address, args.num_processes, args.process_id]
    try:
        if any(value is not None for value in given) or args.distributed:
            distributed.initialize(*given, initialization_timeout=getattr(args, "init_timeout", None))
        else:
            distributed.initialize_from_environment(getattr(args, "init_timeout", None))
    except ValueError as err:
        raise ConfigError(f"jax.distributed: {err}") from None
    return distributed.is_primary()


def progress_bar(console, unit: str):
    """A rich ``Progress`` counting ``unit`` (``"updates"``, ``"iterations"``) with an ``info`` field; hidden when
    ``console`` is not a terminal (the callers then print one line per chunk)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False,
        disable=not console.is_terminal,
    )


class _progress:
    """A rich progress bar (or one line per chunk when not on a terminal), updated once per chunk."""

    def __init__(self, console):
        self.console = console
        self.bar = progress_bar(console, "updates")
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def compiling(self) -> None:
        """Called when compiling starts (not for a resumed run that is already finished)."""
        self.console.print("compiling ...")

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, report) -> None:
        seeds, done = report.metrics["env_steps"].shape
        batch = int(report.metrics["env_steps"][0, 0])  # env steps per update per seed (update 1's count)
        if self.task is None:
            self.task = self.bar.add_task("training", total=report.total_updates, info="")
        steps = report.updates_run * batch * seeds
        finals = summarize(run_final_returns(report.metrics)[0])  # the summary's final return, so far
        covered = "" if finals["seeds"] == finals["of"] else f" ({finals['seeds']}/{finals['of']} seeds)"
        info = (f"median return {_fmt(finals['median'])}{covered} · "
                f"{steps / max(report.run_seconds, 1e-9):,.0f} env-steps/s")
        self.bar.update(self.task, completed=done, info=info)
        if not self.console.is_terminal:  # a live bar only renders on a terminal: log a line per chunk
            self.console.print(f"update {done}/{report.total_updates} · {info} · {report.run_seconds:.0f} s")


def run_labels(runs: Sequence[Path]) -> list[str]:
    """Each run directory's name; the path as given where two runs share a name."""
    names = [run.name or run.resolve().name or str(run) for run in runs]
    return [name if names.count(name) == 1 else str(run) for name, run in zip(names, runs)]


def _read_summary(run: Path) -> dict[str, Any]:
    """``run``'s summary.json; a :class:`ConfigError` naming the file and the repair if it cannot be read."""
    path = run / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; is {run} a finished run directory?")
    repair = f"python -m purejaxrl_ppo {saved_run_kind(run) or 'train'} --resume {shlex.quote(str(run))}"
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); rewrite it with: {repair}") from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path} is not a run summary (a JSON object); rewrite it with: {repair}")
    return summary


def with_final_returns(summary: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with its final-return fields computed from the run's ``metrics`` (``{name: [seeds, updates]}``)
    by this version's definition, so runs written by earlier versions compare on equal terms."""
    finals, metric = run_final_returns(metrics)
    return {**summary, "final_return": summarize(finals), "final_return_metric": metric,
            "final_return_per_seed": [None if f != f else float(f) for f in finals],
            "final_return_window_updates": FINAL_RETURN_WINDOW}


def compared_entries(label: str, summary: dict[str, Any], metrics: dict[str, Any]):
    """What ``compare`` shows of one run directory: ``[(label, summary, metrics [seeds, updates])]``.

    A ``train`` run is one entry; a sweep (``summary["kind"] == "sweep"``, metrics ``[*grid sizes, seed,
    update]``) is one entry per setting, labelled ``"<run> clip_eps=0.1"``, in the order of its summary.
    """
    import numpy as np

    if summary.get("kind") != "sweep":
        return [(label, summary, metrics)]
    shape = tuple(summary["shape"][:-2])
    entries = []
    for i, row in enumerate(summary["settings"]):
        index = np.unravel_index(i, shape)
        setting = ",".join(f"{name}={value:g}" for name, value in row["setting"].items())
        entries.append((f"{label} {setting}", summary, {k: np.asarray(v)[index] for k, v in metrics.items()}))
    return entries


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from purejaxrl_ppo.analysis.plots import plot_learning_curves
    from purejaxrl_ppo.runs.rundir import require_finished

    for run in args.runs:  # every run checked before anything is printed
        if saved_run_kind(run) == "rlhf":
            raise ConfigError(f"{run} is an rlhf run; compare compares train and sweep runs (an rlhf run's results: "
                              f"{run / 'summary.json'}, rlhf_curves.png and overoptimisation.png)")
        require_finished(run)
    look = _plot_options(args)
    runs, labels, summaries, metrics = [], [], [], []
    for run, label in zip(args.runs, run_labels(args.runs)):
        with np.load(run / "metrics.npz") as data:
            run_metrics = {k: data[k] for k in data.files}
        for name, summary, point in compared_entries(label, _read_summary(run), run_metrics):
            try:
                summaries.append(with_final_returns(summary, point))
            except KeyError as err:  # metrics without returns: not a train or sweep run
                raise ConfigError(f"{run / 'metrics.npz'}: {err.args[0]}; compare compares train and sweep "
                                  "runs") from None
            runs.append(run)
            labels.append(name)
            metrics.append(point)
    if args.plot is not None:
        _check_metric(look["metric"], metrics, labels)
        if look["x"] == "time":
            look["wall_seconds"] = [_wall_seconds(run, m) for run, m in zip(runs, metrics)]
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(summaries, "Comparison", labels))
    if args.plot is not None:
        runs = list(zip(labels, metrics))
        envs = sorted({s["env_name"] for s in summaries})
        plot_learning_curves(runs, args.plot, title=", ".join(envs), **look)
        console.print(f"wrote {args.plot}")
    return 0


def _plot_options(args: argparse.Namespace) -> dict[str, Any]:
    """``compare``'s plot flags as :func:`~purejaxrl_ppo.analysis.plots.learning_curve_figure` options."""
    given = [f"--{name}" for name in ("metric", "smooth", "x", "band") if getattr(args, name) is not None]
    if given and args.plot is None:
        raise ConfigError(f"{', '.join(given)} shape(s) the learning-curve plot; add --plot FILE.png")
    if args.smooth is not None and args.smooth < 0:
        raise ConfigError(f"--smooth must be a number of updates >= 0 (0 or 1: no smoothing), got {args.smooth}")
    return {"metric": args.metric or RETURN_CURVE, "smooth": args.smooth or 0, "x": args.x or "steps",
            "band": args.band or "ci"}


def _check_metric(metric: str, metrics: Sequence[dict[str, Any]], labels: Sequence[str]) -> None:
    """A :class:`ConfigError` (one line, listing what every run has) unless each run has ``metric``."""
    from purejaxrl_ppo.analysis.plots import metric_names

    names = [metric_names(m) for m in metrics]
    common = [n for n in names[0] if all(n in other for other in names[1:])]
    if metric in common:
        return
    lacking = [label for label, have in zip(labels, names) if metric not in have]
    where = "" if len(lacking) == len(labels) else f" in {', '.join(lacking)}"
    raise ConfigError(f"--metric {metric}: no such metric{where}; every run has: {', '.join(common)}")


def _wall_seconds(run: Path, metrics: dict[str, Any]):
    """``[updates]`` seconds of training at each update of ``run`` (its ``timing.csv``), for ``--x time``."""
    from purejaxrl_ppo.runs import sinks

    path = run / sinks.TIMING_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: {run} was trained before wall time was recorded (or resumed "
                          "from such a checkpoint); plot it against --x steps")
    try:
        return sinks.wall_seconds_per_update(sinks.read_timing(path), metrics["env_steps"].shape[1])
    except ValueError as err:
        raise ConfigError(f"--x time: {err}") from None


def cmd_render(args: argparse.Namespace) -> int:
    from purejaxrl_ppo.analysis.render import render_run

    path, episode_return, length = render_run(args.run, args.out, args.seed_index, args.seed, args.viewer)
    print(f"wrote {path} (deterministic episode: return {episode_return:.1f}, {length} steps)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return {"train": cmd_train, "compare": cmd_compare, "render": cmd_render,
                "rlhf": cmd_rlhf, "launch": cmd_launch, "sweep": cmd_sweep, "export": cmd_export,
                "check-env": cmd_check_env}[args.command](args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
