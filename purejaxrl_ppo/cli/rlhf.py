"""``python -m purejaxrl_ppo rlhf``: SFT → reward model → PPO/TRPO on the synthetic language, in a run directory.

Every :class:`~purejaxrl_ppo.core.rlhf.config.RLHFConfig` field is a flag (``--d-model 128``,
``--algo trpo``, ``--no-normalize-advantages``); the run options are ``--num-seeds``, ``--seed``,
``--chunk-iterations``, ``--sft-from``/``--rm-from`` (reuse an earlier run's stages),
``--sweep-kl-coefs``/``--sweep-max-kls`` (extra RL runs for the over-optimisation plot) and
``--resume DIR`` (with ``--restart``: RL again from iteration 0). What the run directory holds:
:mod:`purejaxrl_ppo.driver.rlhf`.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

from purejaxrl_ppo.cli.flags import add_dataclass_flags
from purejaxrl_ppo.core.config import ConfigError
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.driver.rlhf import OPTION_DEFAULTS
from purejaxrl_ppo.launch.distributed import ENV_COORDINATOR


#: The sections of ``rlhf --help`` for the :class:`RLHFConfig` fields, in order (``tests/cli/test_help.py``
#: fails when a field is in no section or in two).
RLHF_SECTIONS: dict[str, tuple[str, ...]] = {
    "the synthetic task": ("task_seed", "vocab_size", "prompt_len", "response_len", "task_positive", "task_negative",
                           "task_repeat_penalty", "base_mean_length", "bt_scale"),
    "the model": ("d_model", "num_layers", "num_heads", "mlp_ratio"),
    "stage 1: SFT": ("sft_steps", "sft_batch_size", "sft_learning_rate", "eval_size"),
    "stage 2: reward model": ("rm_steps", "rm_batch_size", "rm_learning_rate", "rm_train_pairs",
                              "rm_norm_temperature"),
    "stage 3: RL (PPO and TRPO)": ("algo", "num_iterations", "rollout_batch", "temperature", "kl_coef", "adaptive_kl",
                                   "kl_target", "kl_horizon", "eos_penalty", "whiten_rewards", "reward_whitening",
                                   "normalize_advantages", "advantage_whitening", "gamma", "gae_lambda",
                                   "clip_value_eps"),
    "stage 3: PPO only": ("update_epochs", "num_minibatches", "learning_rate", "clip_eps", "vf_coef", "max_grad_norm"),
    "stage 3: TRPO only": ("max_kl", "cg_iters", "cg_damping", "line_search_steps", "backtrack_coef", "critic_epochs",
                           "critic_learning_rate"),
}


def add_rlhf_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``rlhf`` subcommand's parser, added to the subparsers ``sub``."""
    parser = sub.add_parser("rlhf", help="SFT -> reward model -> PPO/TRPO with a KL penalty, on a synthetic language",
                            description=__doc__.split("\n")[0].replace("``", ""), allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/rlhf-<algo>)")
    parser.add_argument("--num-seeds", type=int, default=None, help="RL seeds, vmapped in one program [default: 4]")
    parser.add_argument("--seed", type=int, default=None,
                        help="PRNG seed of SFT, the reward model and the RL seeds [default: 0]")
    parser.add_argument("--chunk-iterations", type=int, default=None,
                        help="RL iterations per compiled chunk: progress, logs and a checkpoint after each "
                             "[default: 10]")
    parser.add_argument("--sft-from", type=Path, default=None, metavar="RUN_DIR",
                        help="reuse the SFT model of an earlier rlhf run (same model and task fields)")
    parser.add_argument("--rm-from", type=Path, default=None, metavar="RUN_DIR",
                        help="reuse the reward model of an earlier rlhf run, and the SFT model it was trained on")
    parser.add_argument("--sweep-kl-coefs", type=float, nargs="+", default=None, metavar="BETA",
                        help="also train PPO with each KL coefficient β (all in one program; include 0 for no "
                             "penalty) for the over-optimisation plot and sweep.json")
    parser.add_argument("--sweep-max-kls", type=float, nargs="+", default=None, metavar="DELTA",
                        help="also train TRPO with each trust-region bound δ (one program each), with the run's "
                             "--kl-coef")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an existing non-empty --out")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR (its saved config and options) from its finished stages "
                             "and newest intact checkpoints")
    parser.add_argument("--restart", action="store_true",
                        help="with --resume: drop the RL checkpoints and train RL again from iteration 0 (SFT and the "
                             "reward model are kept where intact); for a run whose every RL checkpoint is damaged")
    parser.add_argument("--quiet", action="store_true", help="no progress or table; print the summary path only")
    add_dataclass_flags(parser, RLHFConfig, sections=RLHF_SECTIONS)
    return parser


def _given(args: argparse.Namespace, names: Any) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _fmt(x: Any, digits: int = 3) -> str:
    return "—" if x is None else "nan" if math.isnan(x) else f"{x:.{digits}f}"


def summary_tables(summary: dict[str, Any], sweep: list[dict[str, Any]] | None = None) -> list:
    """Rich tables of an rlhf summary: the stages, the policy before and after RL, and the sweep (if any)."""
    from rich.table import Table

    stages = Table(title="RLHF stages")
    for col in ("stage", "result", "compile s", "run s"):
        stages.add_column(col, justify="left" if col in ("stage", "result") else "right")
    timing = summary["stages"]

    def reused(name: str) -> str:
        return f" (reused from {timing[name]['reused_from']})" if timing[name].get("reused_from") else ""

    rows = [
        ("SFT", f"held-out loss {_fmt(summary['sft_loss'])} (floor {_fmt(summary['sft_entropy_floor'])})"
         + reused("sft"), "sft"),
        ("reward model", f"held-out accuracy {_fmt(summary['rm_accuracy'])} (gold order "
         f"{_fmt(summary['rm_gold_accuracy'])})" + reused("rm"), "rm"),
        (f"RL ({summary['algo'].upper()})", f"{summary['num_iterations']} iterations x {summary['num_seeds']} seeds",
         "rl"),
        ("sweep", ", ".join(summary["sweep"]) or "—", "sweep"),
        ("evaluation", "before and after RL", "evaluate"),
    ]
    for stage, result, key in rows:
        stages.add_row(stage, result, _fmt(timing[key]["compile_seconds"], 1), _fmt(timing[key]["run_seconds"], 1))
    stages.caption = f"wall time {summary['wall_seconds']:.1f} s"

    policy = Table(title="Policy before and after RL (median over seeds, held-out prompts)")
    for col in ("", "SFT (before)", "after RL"):
        policy.add_column(col, justify="left" if not col else "right")
    for name, label in (("gold_score", "gold score"), ("proxy_score", "proxy score (RM)"),
                        ("kl_to_reference", "KL to reference (nats)")):
        policy.add_row(label, _fmt(summary[f"{name}_initial"]), _fmt(summary[name]))
    tables = [stages, policy]
    if sweep:
        table = Table(title="Over-optimisation sweep (final evaluation, median over seeds)")
        for col in ("setting", "KL", "gold", "proxy"):
            table.add_column(col, justify="left" if col == "setting" else "right")
        for s in sweep:
            table.add_row(s["label"], _fmt(s["kl_to_reference"]), _fmt(s["gold_score"]), _fmt(s["proxy_score"]))
        tables.append(table)
    return tables


class _RLHFProgress:
    """Stage lines and a rich progress bar per RL group (one line per chunk when not on a terminal)."""

    def __init__(self, console):
        from purejaxrl_ppo.cli.commands import progress_bar  # late: commands imports this module

        self.console = console
        self.bar = progress_bar(console, "iterations")
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def stage(self, stage: str, message: str) -> None:
        self.console.print(f"{stage}: {message}")

    def __call__(self, report) -> None:
        import numpy as np

        if report.group not in self.tasks:
            self.tasks[report.group] = self.bar.add_task(f"RL {report.label}", total=report.total_iterations, info="")
        last = {k: float(np.median(report.chunk_metrics[k][:, -1])) for k in ("proxy_score", "gold_score",
                                                                              "kl_to_reference")}
        info = (f"proxy {last['proxy_score']:.2f} · gold {last['gold_score']:.2f} · KL {last['kl_to_reference']:.2f}"
                " (median)")
        self.bar.update(self.tasks[report.group], completed=report.iterations_done, info=info)
        if not self.console.is_terminal:
            self.console.print(f"RL {report.label}: iteration {report.iterations_done}/{report.total_iterations} · "
                               f"{info} · {report.run_seconds:.0f} s")


def require_memory(cfg: RLHFConfig, options: dict[str, Any]) -> None:
    """Refuse (one-line :class:`ConfigError`) a new run whose lower-bound memory estimate exceeds the memory there
    is (:func:`purejaxrl_ppo.launch.memory.rlhf_estimate`). Traces only: writes and compiles nothing."""
    import jax

    from purejaxrl_ppo.launch import memory

    reuse_sft = options["sft_from"] is not None or options["rm_from"] is not None
    try:
        estimate = memory.rlhf_estimate(cfg, options["num_seeds"], jax.device_count(), jax.local_device_count(),
                                        train_sft=not reuse_sft, train_rm=options["rm_from"] is None)
    except Exception:  # noqa: BLE001 - what the estimator cannot trace fails later, where it always did
        return
    memory.require_fits(estimate, "lower --d-model, --num-layers, --mlp-ratio, --vocab-size, the lengths or "
                                  "--num-seeds")


def cmd_rlhf(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from purejaxrl_ppo.driver.rlhf import load_rlhf_run, run_rlhf
    from purejaxrl_ppo.runs.checkpoint import CheckpointError, CorruptCheckpointWarning

    if ENV_COORDINATOR in os.environ:  # each process would run the whole pipeline into the same --out
        raise ConfigError(f"rlhf runs in one process (use its --num-seeds and devices), but {ENV_COORDINATOR} is "
                          "set: start it without a jax.distributed process group")
    console = Console(stderr=True, quiet=args.quiet, width=None if sys.stderr.isatty() else 120)
    command = "python -m purejaxrl_ppo " + " ".join(shlex.quote(a) for a in args.argv)
    config_flags = _given(args, RLHFConfig.field_help())
    option_flags = _given(args, OPTION_DEFAULTS)
    if args.resume is not None:
        extra = [f"--{n.replace('_', '-')}" for n in (*config_flags, *option_flags)]
        extra += [flag for flag, value in (("--out", args.out), ("--overwrite", args.overwrite)) if value]
        if extra:
            raise ConfigError(f"--resume continues the saved config and options of {args.resume}; {', '.join(extra)} "
                              "cannot be combined with it")
        out = args.resume
        cfg, options = load_rlhf_run(out)
    else:
        cfg = RLHFConfig(**config_flags)
        options = {**OPTION_DEFAULTS, **option_flags}
        if args.restart:
            raise ConfigError("--restart trains a saved run's RL again from iteration 0; it needs --resume RUN_DIR")
        require_memory(cfg, options)  # before the run directory exists and before compiling
        out = args.out or Path("runs") / f"rlhf-{cfg.algo}"
    options = {**options, "sweep_kl_coefs": tuple(options.get("sweep_kl_coefs") or ()),
               "sweep_max_kls": tuple(options.get("sweep_max_kls") or ())}

    def show_warning(message, category, *rest, **kwargs):  # said plainly, even if --quiet
        if issubclass(category, CorruptCheckpointWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            previous(message, category, *rest, **kwargs)

    warnings.simplefilter("always", CorruptCheckpointWarning)
    previous, warnings.showwarning = warnings.showwarning, show_warning
    try:
        with _RLHFProgress(console) as progress:
            summary = run_rlhf(cfg, out, **options, overwrite=args.overwrite, resume=args.resume is not None,
                               restart=args.restart,
                               on_progress=progress, on_stage=progress.stage, command=command)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; continue with: python -m purejaxrl_ppo rlhf --resume {shlex.quote(str(out))}",
              file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
    sweep_path = out / "sweep.json"
    sweep = json.loads(sweep_path.read_text())["settings"] if sweep_path.is_file() else None
    for table in summary_tables(summary, sweep):
        console.print(table)
    console.print(f"wrote {out / 'summary.json'}, samples.md, rlhf_curves.png, overoptimisation.png and logs in {out}")
    if args.quiet:
        print(out / "summary.json")
    return 0
