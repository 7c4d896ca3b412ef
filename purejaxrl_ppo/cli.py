"""Command line: ``python -m purejaxrl_ppo train|compare|render`` (also the ``purejaxrl-ppo`` script).

``train`` exposes every config field as a flag (``--num-envs 8``,
``--clip-eps 0.1``, ``--no-anneal-lr``, ``--hidden-sizes 64 64``; with
``--env brax/...`` the per-task defaults of :mod:`purejaxrl_ppo.presets` apply
under the flags given), trains
``--num-seeds`` seeds in one vmapped program with a progress bar, prints a
summary table and writes metrics, a JSON summary and a learning-curve PNG.
``compare`` prints the summaries of several run directories side by side.
``render --run DIR`` writes a Brax HTML viewer or a gymnax GIF of a run's policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

# Importing any purejaxrl_ppo module runs the package __init__ first, which applies
# the XLA:CPU deadlock workaround before jax starts its backend.
from purejaxrl_ppo.config import CONFIGS, BaseConfig, ConfigError
from purejaxrl_ppo.presets import brax_preset
from purejaxrl_ppo.stats import FINAL_RETURN_WINDOW


def _default_note(name: str) -> str:
    """``[default: x]``, ``[PPO: x, TRPO: y]`` or ``[TRPO only, default: y]`` for a field."""
    defaults = {algo: f.default for algo, cls in CONFIGS.items() for f in dataclasses.fields(cls) if f.name == name}
    shown = {algo: " ".join(map(str, v)) if isinstance(v, tuple) else str(v) for algo, v in defaults.items()}
    if len(shown) == 1:
        (algo, value), = shown.items()
        return f"[{algo.upper()} only, default: {value}]"
    if len(set(shown.values())) == 1:
        return f"[default: {next(iter(shown.values()))}]"
    return "[" + ", ".join(f"{algo.upper()}: {value}" for algo, value in shown.items()) + "]"


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of any config class; defaults come from the chosen class."""
    seen: set[str] = set()
    for cls in CONFIGS.values():
        for field in dataclasses.fields(cls):
            if field.name in seen:
                continue
            seen.add(field.name)
            flag = "--" + field.name.replace("_", "-")
            names = [flag, "--env"] if field.name == "env_name" else [flag]
            help_text = f"{field.metadata.get('help', '')} {_default_note(field.name)}"
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            if kind == "bool":
                parser.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            elif kind.startswith("tuple"):
                parser.add_argument(*names, dest=field.name, type=int, nargs="+", default=None, help=help_text)
            else:
                caster = {"int": int, "float": float, "str": str}[kind]
                parser.add_argument(*names, dest=field.name, type=caster, default=None, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purejaxrl-ppo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train many seeds of PPO or TRPO")
    train.add_argument("--algo", choices=sorted(CONFIGS), default="ppo", help="algorithm [default: ppo]")
    train.add_argument("--num-seeds", type=int, default=8, help="independent seeds, vmapped in one program [default: 8]")
    train.add_argument("--seed", type=int, default=0, help="master seed; seed i uses split(PRNGKey(seed))[i] [default: 0]")
    train.add_argument("--out", type=Path, default=None, help="run directory (default runs/<algo>-<env>-<timestamp>)")
    train.add_argument("--overwrite", action="store_true", help="allow writing into an existing non-empty --out")
    train.add_argument("--quiet", action="store_true", help="no progress bar or table; print the summary path only")
    train.add_argument("--progress-chunks", type=int, default=20, help="about how many progress updates (compiled chunks) [default: 20]")
    _add_config_flags(train)

    render = sub.add_parser("render", help="write a Brax HTML viewer or a gymnax GIF of a saved run's policy")
    render.add_argument("--run", type=Path, required=True, help="run directory written by `train`")
    render.add_argument("--out", type=Path, default=None, help="output file (default <run>/render.html or .gif)")
    render.add_argument("--seed-index", type=int, default=0, help="which trained seed's policy [default: 0]")
    render.add_argument("--seed", type=int, default=0, help="PRNG seed of the rendered episode [default: 0]")

    compare = sub.add_parser("compare", help="compare the summaries of finished runs")
    compare.add_argument("runs", type=Path, nargs="+", help="run directories holding summary.json")
    compare.add_argument("--plot", type=Path, default=None, help="also write a combined learning-curve PNG here")
    return parser


def config_from_args(args: argparse.Namespace) -> BaseConfig:
    """The chosen algorithm's config with every flag the user gave applied."""
    cls = CONFIGS[args.algo]
    names = {f.name for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    other = {f.name for c in CONFIGS.values() for f in dataclasses.fields(c)} - names
    misplaced = sorted(name for name in other if getattr(args, name, None) is not None)
    if misplaced:
        flags = ", ".join("--" + n.replace("_", "-") for n in misplaced)
        raise ConfigError(f"{flags} do(es) not apply to --algo {args.algo}")
    if "hidden_sizes" in given:
        given["hidden_sizes"] = tuple(given["hidden_sizes"])
    try:
        preset = brax_preset(args.algo, given.get("env_name"))  # Brax per-task defaults under the flags
    except ValueError as err:
        raise ConfigError(f"env_name: {err}") from None
    return cls(**{**preset, **given})


def _default_out(config: BaseConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.algo_name}-{config.env_name}-{stamp}"


def _fmt(x: float, digits: int = 1) -> str:
    return "nan" if x != x else f"{x:,.{digits}f}"


def summary_table(summaries: Sequence[dict[str, Any]], title: str):
    """A rich table with one row per run summary."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("algo", "env", "seeds", "steps/seed", "median", "IQM", "min", "env-steps/s", "compile s"):
        table.add_column(col, justify="left" if col in ("algo", "env") else "right")
    for s in summaries:
        r = s["final_return"]
        table.add_row(
            s["algo"].upper(), s["env_name"], str(s["num_seeds"]), f"{s['total_timesteps_per_seed']:,}",
            _fmt(r["median"]), _fmt(r["iqm"]), _fmt(r["min"]), f"{s['env_steps_per_second']:,.0f}",
            _fmt(s["compile_seconds"]),
        )
    table.caption = (
        f"final return = mean over each seed's last {FINAL_RETURN_WINDOW} updates; median/IQM/min across seeds"
    )
    return table


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from purejaxrl_ppo.runner import save_run, train_seeds_chunked

    console = Console(stderr=True, quiet=args.quiet, width=None if sys.stderr.isatty() else 120)
    if args.num_seeds < 1:
        raise ConfigError(f"--num-seeds must be a positive integer, got {args.num_seeds}")
    config = config_from_args(args)
    out = args.out or _default_out(config)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(f"run directory {out} exists and is not empty; pass --overwrite or choose another --out")

    total = config.num_updates
    console.print(
        f"[bold]{config.algo_name.upper()}[/] on {config.env_name}: {args.num_seeds} seeds × "
        f"{total * config.batch_size:,} env steps ({total} updates of {config.num_envs}×{config.num_steps})"
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} updates"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("compiling", total=total, info="")
        if not console.is_terminal:
            console.print("compiling ...")

        def on_chunk(done: int, metrics: dict[str, np.ndarray], seconds: float) -> None:
            steps = done * config.batch_size * args.num_seeds
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # seeds with no finished episode yet
                median = float(np.nanmedian(np.nanmean(metrics["episode_return"][:, -5:], axis=1)))
            info = f"median return {_fmt(median)} · {steps / max(seconds, 1e-9):,.0f} env-steps/s"
            progress.update(task, completed=done, description="training", info=info)
            if not console.is_terminal:  # a live bar only renders on a terminal: log a line per chunk
                console.print(f"update {done}/{total} · {info} · {seconds:.0f} s")

        result = train_seeds_chunked(config, args.num_seeds, args.seed, args.progress_chunks, on_chunk=on_chunk)
    command = "python -m purejaxrl_ppo " + " ".join(shlex.quote(a) for a in args.argv)
    summary, paths = save_run(result, out, command=command)
    console.print(summary_table([summary], "Training summary"))
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if args.quiet:
        print(paths["summary"])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from purejaxrl_ppo.runner import plot_learning_curves

    summaries = []
    for run in args.runs:
        path = run / "summary.json"
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; is {run} a finished run directory?")
        summaries.append(json.loads(path.read_text()))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(summaries, "Comparison"))
    if args.plot is not None:
        runs = []
        for run, s in zip(args.runs, summaries):
            with np.load(run / "metrics.npz") as data:
                runs.append((s["algo"].upper(), {k: data[k] for k in ("episode_return", "env_steps")}))
        envs = sorted({s["env_name"] for s in summaries})
        plot_learning_curves(runs, args.plot, title=", ".join(envs))
        console.print(f"wrote {args.plot}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from purejaxrl_ppo.render import render_run

    path, episode_return, length = render_run(args.run, args.out, args.seed_index, args.seed)
    print(f"wrote {path} (deterministic episode: return {episode_return:.1f}, {length} steps)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return {"train": cmd_train, "compare": cmd_compare, "render": cmd_render}[args.command](args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
