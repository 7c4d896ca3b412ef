"""``python -m purejaxrl_ppo export --run RUN --out FILE [--seed-index I]``: one self-contained policy file.

The file (:func:`~purejaxrl_ppo.runs.policy_files.export_policy`) holds the parameters of
every seed, or of seed ``I`` alone, the observation statistics, the config and a format
version; ``pjp.load_run(FILE)`` acts with it anywhere purejaxrl_ppo is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand's parser."""
    export = sub.add_parser("export", help="write a trained policy as one self-contained file (pjp.load_run reads it)",
                            allow_abbrev=False)
    export.add_argument("--run", type=Path, required=True,
                        help="finished run directory written by `train` (or an exported file)")
    export.add_argument("--out", type=Path, required=True, help="the file to write (msgpack), e.g. policy.msgpack")
    export.add_argument("--seed-index", type=int, default=None, metavar="I",
                        help="export seed I alone [default: every seed]")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def cmd_export(args: argparse.Namespace) -> int:
    from purejaxrl_ppo.core.config import ConfigError
    from purejaxrl_ppo.runs.policy_files import export_policy, load_run

    if args.out.exists() and not args.overwrite:
        raise ConfigError(f"--out {args.out} exists; pass --overwrite to replace it")
    policy = load_run(args.run)
    path = export_policy(policy, args.out, args.seed_index)
    seeds = "every seed" if args.seed_index is None else f"seed {args.seed_index}"
    print(f"wrote {path}: {policy.config.algo_name} on {policy.config.env_name}, {seeds} "
          f"({path.stat().st_size / 1024:.0f} KiB); act with pjp.load_run({str(path)!r})")
    return 0
