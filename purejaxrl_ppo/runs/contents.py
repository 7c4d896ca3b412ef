"""What each entry of a run directory holds: the one description the documentation's tables come from.

:data:`TRAIN_RUN_FILES` describes a ``train`` run (:func:`~purejaxrl_ppo.driver.control.train_durable`),
:data:`RLHF_RUN_FILES` an ``rlhf`` run (:func:`~purejaxrl_ppo.driver.rlhf.run_rlhf`): entry name (a folder
ends in ``/``) -> what it holds. :func:`markdown_table` renders one for the docs (``docs/conf.py`` writes
them into the pages at every build). ``tests/cli/test_run_dir_docs.py`` checks the names against
:data:`~purejaxrl_ppo.runs.rundir.OWNED` and :data:`~purejaxrl_ppo.runs.rundir.RLHF_OWNED` (what
``--overwrite`` removes) and against the listing of a real run of each kind, so a file added to a run
directory without a line here fails a test.
"""

from __future__ import annotations

from typing import Mapping

#: A ``train`` run directory, in the order a run writes it.
TRAIN_RUN_FILES: dict[str, str] = {
    "config.yaml": "the resolved config and run options (load it with `--config` to rerun)",
    "run.json": "package versions, machine, chunk plan and every command line that ran in the directory "
                "(the first and each `--resume`)",
    "checkpoints/": "orbax checkpoints `checkpoints/<updates done>/`, the newest `--keep-checkpoints` of them",
    "corrupt_checkpoints/": "checkpoints found damaged on `--resume`, moved aside with a warning",
    "metrics.csv": "one row per update and seed, appended after each chunk",
    "metrics_aggregate.csv": "per update, across seeds: median and IQM of every metric and a 95% bootstrap CI "
                             "of the return's IQM",
    "metrics.jsonl": "one JSON object per update with both",
    "tensorboard/": "with `--tensorboard`: `aggregate/` and `seed_<i>/` for the first `--log-seeds` seeds "
                    "(x-axis: env steps per seed); `aggregate/` also has `time/wall_seconds` and "
                    "`time/env_steps_per_second` at each chunk's last step",
    "wandb/": "with `--wandb`: one W&B run, with the same `time/` scalars (`WANDB_MODE=offline` needs no network; "
              "`wandb sync` uploads it)",
    "metrics.npz": "when finished: every metric, `[seeds, num_updates]`",
    "summary.json": "when finished: the summary table's numbers, per-seed final returns, the machine, the "
                    "resolved config and the command line",
    "config.json": "when finished: the resolved config as JSON (what `render` reads)",
    "policy.msgpack": "when finished: every seed's final parameters (and observation statistics when "
                      "normalised)",
    "learning_curve.png": "when finished: the IQM of the return curve across seeds with a 95% bootstrap CI band "
                          "(the plot of `compare`)",
    "timing.csv": "when finished: one row per chunk, `update, env_steps, wall_seconds, env_steps_per_second`: "
                  "seconds of training since the run started (compile excluded; a resume continues from its "
                  "checkpoint's value) and the chunk's env steps per second, all seeds; what `compare --x time` "
                  "plots against. Kept out of the metrics and logs, which a resume reproduces bit for bit",
    "video.gif": "when finished, with `--video gif`: seed 0's deterministic episode (at most 500 steps), where "
                 "the env can be drawn with the installed packages (the `render` extra)",
    "video.mp4": "the same with `--video mp4`",
    "complete.json": "written last: the SHA-256 of each final file; the run is finished only when it exists "
                     "and every file matches it",
    ".lock": "who writes the run (pid, host, command); one writer at a time",
}

#: An ``rlhf`` run directory, in the order a run writes it.
RLHF_RUN_FILES: dict[str, str] = {
    "config.json": "the `RLHFConfig` of the run",
    "run.json": "the run options, package versions, machine and every command line that ran in the directory",
    "sft/": "stage 1: the SFT language model (`params.msgpack`) and `metrics.json` (held-out loss, the base "
            "distribution's entropy as its floor, loss curve, timings); `checksums.json`, written last, hashes both "
            "and is verified before the stage is reused",
    "rm/": "stage 2: the reward model (`params.msgpack`, its score normalised on the SFT policy) and "
           "`metrics.json` (held-out pair accuracy against the labels and against gold, curves, timings); "
           "`checksums.json` as for `sft/`",
    "checkpoints/": "stage 3: orbax checkpoints of every seed's RL state and metrics after each chunk "
                    "(verified, staged, renamed, as for `train`; the newest 3)",
    "corrupt_checkpoints/": "checkpoints and stage outputs (`sft/`, `rm/`) found damaged on `--resume`, moved "
                            "aside with a warning (the stage is then computed again)",
    "metrics.csv": "every RL metric, one row per iteration and seed, appended after each chunk",
    "metrics_aggregate.csv": "per iteration, across seeds: median and IQM of every RL metric",
    "metrics.jsonl": "one JSON object per iteration with both",
    "metrics.npz": "every RL metric `[seeds, iterations]`",
    "summary.json": "`sft_loss` and `sft_entropy_floor`; `rm_accuracy` and `rm_gold_accuracy`; before and after "
                    "RL, `gold_score`, `proxy_score` and `kl_to_reference` (medians over seeds, plus per-seed "
                    "lists); timings per stage",
    "samples.md": "generations for 8 held-out prompts, before and after RL, with gold and proxy scores",
    "rlhf_curves.png": "proxy score, gold score and KL over iterations",
    "overoptimisation.png": "gold and proxy against KL for this run and every sweep setting",
    "sweep.json": "with `--sweep-kl-coefs` / `--sweep-max-kls`: each setting's final evaluation",
    "sweep_metrics.npz": "with a sweep: every setting's RL metrics",
    "sweep_checkpoints/": "with a sweep: its checkpoints, as `checkpoints/`",
    "complete.json": "written last: the SHA-256 of each final file (the run is finished)",
    ".lock": "who writes the run (pid, host, command); one writer at a time",
}


def markdown_table(files: Mapping[str, str]) -> str:
    """``files`` (entry -> what it holds) as a two-column Markdown table, in order."""
    lines = ["| file | contents |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in files.items()]
    return "\n".join(lines)
