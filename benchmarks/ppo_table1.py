"""The PPO paper's Table 1 (Schulman et al. 2017) on Brax's analogues of its MuJoCo tasks, plus TRPO.

Table 1 compares PPO's policy objectives on 7 MuJoCo tasks (1M steps, 3 seeds): no clipping or
penalty; clipping with ε ∈ {0.1, 0.2, 0.3}; an adaptive KL penalty with d_targ ∈ {0.003, 0.01, 0.03}
(β initialised at 1); a fixed KL penalty with β ∈ {0.3, 1, 3, 10}. Its score is each run's average
total reward over the last 100 training episodes, shifted and scaled per task so that the random
policy scores 0 and the best setting 1, then averaged over tasks and seeds. This script runs that
grid, and TRPO with δ = 0.01, with the paper's settings (:data:`PAPER_BASE`, :data:`PAPER_PPO`) on
the Brax tasks closest to the paper's (:data:`TASKS`), one :func:`purejaxrl_ppo.sweep` (values ×
seeds in one compile) per objective family and task, the families being those of
``benchmarks/sample_efficiency.py`` (:data:`sample_efficiency.FAMILIES`, configs by its
``make_config``).

    PYTHONPATH=$PWD python benchmarks/ppo_table1.py --tasks inverted_pendulum inverted_double_pendulum \\
        --seeds 5 --budget 1000000 --resume

Writes ``benchmarks/results/ppo_table1/ppo_table1.json`` (``--out``): the command, machine, date,
versions and code version; per task its backend, budget, random-policy score, wall seconds per
family and the raw score of every setting and seed; and the summary (normalisation, per-setting
mean normalised score with a 95% stratified-bootstrap CI). ``--resume`` keeps the tasks (and the
families of an unfinished task) already stored with the same seeds and budget; several processes
may fill one file at once (each writes under a lock, re-reading it first). ``--smoke`` runs the
whole pipeline on gymnax's Pendulum-v1 for 2 updates and 2 seeds into a scratch file.

Deviations from the paper's setup, each a choice stated here and on the results page:

* Brax tasks (MJX/generalized/positional physics), not Gym's MuJoCo-v1 tasks; same names, but
  different models, rewards and observation layouts, so raw scores do not compare with the paper's.
* ``num_envs * num_steps = 2048`` with 1M steps gives 488 updates = 999,424 steps.
* Observations are normalised by running mean/std (clipped to ±10): the paper's code (OpenAI
  Baselines ``ppo1``'s ``MlpPolicy``) normalises them (clipped to ±5), though the paper does not say so.
* Advantages are standardised per minibatch of 64 (the library's PPO), ``ppo1`` per batch of 2048.
* No gradient-norm clipping (``max_grad_norm`` 1e9; the paper names none) and ``vf_coef`` 1 (with
  separate actor and critic and Adam, the paper notes c1 is irrelevant).
* "No clipping or penalty" is trained in the fixed-KL program as β = 0: the loss −E[rA] + 0·E[KL],
  equal to the unclipped surrogate −E[rA] (``policy_objective="unclipped"``) in exact arithmetic and
  bit for bit in our check (gymnax Pendulum-v1, this script's configs, 3 updates × 2 seeds: every per-update
  metric of ``sweep`` equal); it saves one compile and one sequential run per task.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
OUT = BENCHMARKS / "results" / "ppo_table1" / "ppo_table1.json"

# ----------------------------------------------------------------------------- what is run
#: Brax task -> physics backend. Hopper: positional, the fastest on this project's 2-core CPU
#: (``benchmarks/results/brax_backends.json``), and so for the other locomotion tasks. Pendulums: generalized;
#: in this program (1 env × 2048 steps, 10 epochs × 32 minibatches, 3 settings × 5 seeds) on the shared 2-core
#: CPU, inverted_pendulum ran 1.70 s per update with generalized and 1.77 s with mjx after compiling in 51 s
#: against 90 s (the update's 320 Adam steps, not the physics, dominate), though mjx led brax_backends.json's
#: 32-env preset program.
TASKS: dict[str, str] = {
    "inverted_pendulum": "generalized",
    "inverted_double_pendulum": "generalized",
    "reacher": "positional",
    "swimmer": "positional",
    "hopper": "positional",
    "walker2d": "positional",
    "halfcheetah": "positional",
}
#: Cheapest first: the order tasks run in when ``--tasks`` is not given.
DEFAULT_TASKS = tuple(TASKS)
#: Brax's default episode length (kept).
EPISODE_LENGTH = 1000

#: Schulman et al. 2017, Table 3 (MuJoCo): one actor, horizon 2048, γ 0.99, λ 0.95; Section 6.1:
#: tanh MLP 64-64, separate policy and value networks, state-independent log-std, no entropy bonus
#: (``sample_efficiency.COMMON`` sets ent_coef 0, no value clipping, 64-64 tanh).
PAPER_BASE: dict[str, Any] = dict(num_envs=1, num_steps=2048, gamma=0.99, gae_lambda=0.95,
                                  normalize_observations=True, shared_torso=False)
#: Table 3: 10 epochs, minibatch 64 (2048 / 32), Adam 3e-4 (not annealed: the paper anneals only on Atari).
PAPER_PPO: dict[str, Any] = dict(update_epochs=10, num_minibatches=32, learning_rate=3e-4, anneal_lr=False,
                                 max_grad_norm=1e9, vf_coef=1.0)
#: TRPO: the library's defaults (CG 10, damping 0.1, Fisher on 1/5 of the batch, Adam critic 1e-3 × 5 epochs
#: × 4 minibatches) on the same rollout; δ = 0.01 (the family's swept value below).
PAPER_TRPO: dict[str, Any] = {}
TRPO_DELTA = 0.01

#: The fixed-KL program also trains "no clipping or penalty" as β = 0 (see the module docstring).
UNCLIPPED_AS_BETA0 = True


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of Table 1: ``label`` (the paper's wording), ``family`` (a ``sample_efficiency.FAMILIES`` key)
    and the value of the family's swept field (``None``: the family sweeps nothing)."""

    label: str
    family: str
    value: float | None


SETTINGS: tuple[Setting, ...] = (
    Setting("No clipping or penalty", "PPO no clip", None),
    Setting("Clipping, ε = 0.1", "PPO clip", 0.1),
    Setting("Clipping, ε = 0.2", "PPO clip", 0.2),
    Setting("Clipping, ε = 0.3", "PPO clip", 0.3),
    Setting("Adaptive KL, d_targ = 0.003", "PPO adaptive KL", 0.003),
    Setting("Adaptive KL, d_targ = 0.01", "PPO adaptive KL", 0.01),
    Setting("Adaptive KL, d_targ = 0.03", "PPO adaptive KL", 0.03),
    Setting("Fixed KL, β = 0.3", "PPO fixed KL", 0.3),
    Setting("Fixed KL, β = 1", "PPO fixed KL", 1.0),
    Setting("Fixed KL, β = 3", "PPO fixed KL", 3.0),
    Setting("Fixed KL, β = 10", "PPO fixed KL", 10.0),
    Setting("TRPO, δ = 0.01", "TRPO", TRPO_DELTA),
)
LABELS = [s.label for s in SETTINGS]
PPO_LABELS = [s.label for s in SETTINGS if s.family != "TRPO"]
NO_CLIP, CLIP_02 = "No clipping or penalty", "Clipping, ε = 0.2"

#: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347, Table 1: average
#: normalised score over 7 MuJoCo tasks × 3 seeds, 1M steps each.
PAPER_TABLE1: dict[str, float] = {
    "No clipping or penalty": -0.39,
    "Clipping, ε = 0.1": 0.76, "Clipping, ε = 0.2": 0.82, "Clipping, ε = 0.3": 0.70,
    "Adaptive KL, d_targ = 0.003": 0.68, "Adaptive KL, d_targ = 0.01": 0.74, "Adaptive KL, d_targ = 0.03": 0.71,
    "Fixed KL, β = 0.3": 0.62, "Fixed KL, β = 1": 0.71, "Fixed KL, β = 3": 0.72, "Fixed KL, β = 10": 0.69,
}
#: Training episodes per seed the paper's score averages.
LAST_EPISODES = 100


def env_name(task: str) -> str:
    """The environment name of ``task``: ``brax/<task>?backend=...`` (a gymnax id passes through)."""
    if task not in TASKS:
        return task
    return f"brax/{task}?backend={TASKS[task]}&episode_length={EPISODE_LENGTH}"


def program_families() -> list[tuple[Any, list[str]]]:
    """``[(Family, [setting labels in its swept order])]``: the compiled programs of one task.

    The families are ``sample_efficiency.FAMILIES`` (TRPO restricted to δ = 0.01); with
    :data:`UNCLIPPED_AS_BETA0` the fixed-KL family sweeps β ∈ {0, 0.3, 1, 3, 10}, its β = 0 row being
    "No clipping or penalty", and the unclipped family is not run separately.
    """
    import sample_efficiency as se

    programs = []
    for family in se.FAMILIES:
        members = [s for s in SETTINGS if s.family == family.key]
        if family.key == "PPO no clip" and UNCLIPPED_AS_BETA0:
            continue
        if family.key == "PPO fixed KL" and UNCLIPPED_AS_BETA0:
            members = [s for s in SETTINGS if s.family == "PPO no clip"] + members
            values = (0.0,) + tuple(s.value for s in members[1:])
        else:
            values = tuple(s.value for s in members) if family.field else ()
        if family.field:
            assert set(values) - {0.0} <= set(family.values), (family.key, values, family.values)
        programs.append((dataclasses.replace(family, values=values), [s.label for s in members]))
    return programs


def make_task_config(task: str, family: Any, budget: int) -> Any:
    """The base config of ``family`` on ``task`` at ``budget`` steps: ``sample_efficiency.make_config`` with the
    paper's settings (:data:`PAPER_BASE` and :data:`PAPER_PPO` or :data:`PAPER_TRPO`)."""
    import sample_efficiency as se

    spec = se.EnvSpec(env_name(task), budget, None, float("nan"), "best PPO setting", PAPER_BASE, PAPER_PPO,
                      PAPER_TRPO)
    return se.make_config(spec, family, budget)


# ----------------------------------------------------------------------------- the score
def last_episodes_mean(episode_return: np.ndarray, episodes_ended: np.ndarray, n: int = LAST_EPISODES) -> np.ndarray:
    """Mean total reward of the last ``n`` training episodes, from the per-update episode metrics.

    episode_return: ``[..., updates]``, the mean return of the episodes that ended in each update's rollout
    (NaN where none ended); episodes_ended: ``[..., updates]`` how many ended. Walking back from the last
    update, each update contributes ``min(count, n - taken so far)`` episodes at its mean return: exact when
    the oldest update used is taken whole, and otherwise that update's mean stands in for the episodes of it
    that are kept (the library records per-update means, not single episodes). Fewer than ``n`` episodes in
    all: the mean of all of them. Returns ``[...]`` float64, NaN where no episode ended.
    """
    count = np.asarray(episodes_ended, np.float64)
    ret = np.asarray(episode_return, np.float64)
    after = np.cumsum(count[..., ::-1], axis=-1)[..., ::-1] - count  # episodes ended after each update
    taken = np.clip(n - after, 0.0, count)
    total = np.where(taken > 0, taken * np.nan_to_num(ret), 0.0).sum(-1)
    kept = taken.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept > 0, total / np.maximum(kept, 1.0), np.nan)


def normalise(raw: Mapping[str, np.ndarray], random_score: float, best_of: Sequence[str] = tuple(PPO_LABELS)
              ) -> tuple[dict[str, np.ndarray], float]:
    """The paper's normalisation on one task: ``(score - random) / (best - random)``.

    raw: setting -> ``[seeds]`` raw scores; ``best`` is the highest mean over seeds among the settings in
    ``best_of`` present in ``raw`` (the PPO grid: TRPO may exceed 1). Returns (setting -> ``[seeds]``, best).
    """
    best = max(float(np.mean(raw[k])) for k in best_of if k in raw)
    if best == random_score:
        raise ValueError(f"best setting's mean equals the random score ({best}): normalisation undefined")
    return {k: (np.asarray(v, np.float64) - random_score) / (best - random_score) for k, v in raw.items()}, best


def ordering_sentence(means: Mapping[str, float]) -> str:
    """One sentence: does the paper's ordering (clipping with ε = 0.2 best, no clipping or penalty worst and
    below 0) hold for these mean normalised scores (setting label -> score; PPO settings ranked)?"""
    ppo = {k: v for k, v in means.items() if k in PPO_LABELS}
    best, worst = max(ppo, key=ppo.get), min(ppo, key=ppo.get)
    tied = [k for k in ppo if ppo[k] >= ppo[best] - 1e-9]  # settings sharing the best score (a saturated task)
    best = CLIP_02 if CLIP_02 in tied else best
    clip_best = best == CLIP_02
    noclip_worst, noclip_negative = worst == NO_CLIP, ppo.get(NO_CLIP, np.nan) < 0
    held = clip_best and noclip_worst and noclip_negative
    shared = f", tied with {', '.join(k for k in tied if k != best)}" if len(tied) > 1 else ""
    parts = [f"the best PPO setting is {best} ({ppo[best]:.2f}{shared}"
             + ("" if clip_best else f"; clipping with ε = 0.2: {ppo[CLIP_02]:.2f}") + ")",
             f"the worst is {worst} ({ppo[worst]:.2f}"
             + ("" if noclip_worst else f"; no clipping or penalty: {ppo[NO_CLIP]:.2f}") + ")",
             f"no clipping or penalty is {'below' if noclip_negative else 'not below'} the random policy"]
    verdict = "The paper's ordering reproduces" if held else "The paper's ordering does not fully reproduce"
    return f"{verdict}: " + ", ".join(parts[:-1]) + " and " + parts[-1] + "."


def summarise(tasks: Mapping[str, dict], reps: int = 2000) -> dict[str, Any]:
    """Normalisation per task and, per setting, the mean (and IQM) normalised score over tasks and seeds with
    95% stratified-bootstrap CIs (``analysis.study.aggregate_estimates``: seeds resampled within each task).

    tasks: task -> the stored task record (``raw``: setting -> ``[seeds]``, ``random_score``); only tasks
    with every PPO setting are used, and TRPO only if every one of those tasks has it (``labels`` says which
    settings the summary holds). Returns a JSON-serialisable dict.
    """
    from purejaxrl_ppo.analysis import study

    done = [t for t, d in tasks.items() if all(k in d.get("raw", {}) for k in PPO_LABELS)]
    if not done:
        return {"tasks": []}
    labels = [k for k in LABELS if all(k in tasks[t]["raw"] for t in done)]
    norm, best = {}, {}
    for t in done:
        raw = {k: np.asarray(tasks[t]["raw"][k]) for k in labels}
        norm[t], best[t] = normalise(raw, tasks[t]["random_score"])
    scores = {k: np.stack([norm[t][k] for t in done], axis=1) for k in labels}  # [seeds, tasks]
    points, intervals = study.aggregate_estimates(scores, reps=reps)
    means = {k: points[k]["mean"] for k in labels}
    return {
        "tasks": done, "labels": labels, "reps": reps, "best_raw": best,
        "normalised": {t: {k: norm[t][k].tolist() for k in labels} for t in done},
        "mean": means, "mean_ci": {k: list(intervals[k]["mean"]) for k in labels},
        "iqm": {k: points[k]["iqm"] for k in labels}, "iqm_ci": {k: list(intervals[k]["iqm"]) for k in labels},
        "per_task_mean": {t: {k: float(np.mean(norm[t][k])) for k in labels} for t in done},
        "ordering": ordering_sentence(means),
    }


# ----------------------------------------------------------------------------- running
def run_family(task: str, family: Any, labels: list[str], seeds: int, budget: int) -> dict[str, Any]:
    """One compiled sweep of ``family`` on ``task``: ``{"raw": label -> [seeds], "seconds", "env_steps",
    "episodes": label -> [seeds] episodes ended in training}``."""
    import purejaxrl_ppo as pjp

    config = make_task_config(task, family, budget)
    grid = {family.field: list(family.values)} if family.field else {}
    result = pjp.sweep(config, grid, num_seeds=seeds)
    shape = (-1, seeds, config.num_updates)
    returns = result.metrics["episode_return"].reshape(shape)
    ended = result.metrics["episodes_ended"].reshape(shape)
    scores = last_episodes_mean(returns, ended)
    return {"raw": {label: scores[i].tolist() for i, label in enumerate(labels)},
            "episodes": {label: ended[i].sum(-1).astype(int).tolist() for i, label in enumerate(labels)},
            "seconds": result.seconds, "env_steps": int(config.num_updates * config.batch_size),
            "updates": config.num_updates}


def random_score(task: str, episodes: int = 100) -> float:
    """Mean return of the uniform-random policy over ``episodes`` episodes (``random_policy_scores.py``, seed 0)."""
    from random_policy_scores import random_returns

    return float(random_returns(env_name(task), episodes).mean())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[dict]:
    """The JSON at ``path`` (``{}`` if absent) under an exclusive lock, written back atomically on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text()) if path.exists() else {}
        yield doc
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
        os.replace(tmp, path)


def run_task(task: str, seeds: int, budget: int, out: Path, resume: bool, log: Callable[[str], None] = print,
             reps: int = 2000, command: str = "") -> None:
    """Every program of ``task``, each stored in ``out`` as soon as it finishes (then the summary)."""
    from purejaxrl_ppo.runs import provenance

    with locked(out) as doc:
        old = doc.get("tasks", {}).get(task, {})
        if not (resume and old.get("seeds") == seeds and old.get("budget") == budget):
            old = {}
        doc.setdefault("tasks", {})[task] = record = {
            "env_name": env_name(task), "backend": TASKS.get(task), "seeds": seeds, "budget": budget,
            "families": old.get("families", {}), "raw": old.get("raw", {}), "episodes": old.get("episodes", {}),
            "random_score": old.get("random_score"), "complete": False, "command": old.get("command") or command}
    if record["random_score"] is None:
        start = time.perf_counter()
        score = random_score(task)
        log(f"  {task}: random policy {score:.2f} ({time.perf_counter() - start:.0f} s)")
        with locked(out) as doc:
            doc["tasks"][task]["random_score"] = score
    for family, labels in program_families():
        if family.key in record["families"]:
            log(f"  {task} {family.key}: kept (--resume)")
            continue
        data = run_family(task, family, labels, seeds, budget)
        log(f"  {task} {family.key}: {len(labels)} setting(s) × {seeds} seeds × {data['env_steps']} steps in "
            f"{data['seconds']:.0f} s; " + ", ".join(f"{k}: {np.mean(v):.1f}" for k, v in data["raw"].items()))
        with locked(out) as doc:
            rec = doc["tasks"][task]
            rec["families"][family.key] = {"seconds": data["seconds"], "env_steps": data["env_steps"],
                                           "updates": data["updates"], "settings": labels,
                                           "values": list(family.values), "field": family.field,
                                           "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            rec["raw"].update(data["raw"])
            rec["episodes"].update(data["episodes"])
        record["families"][family.key] = True
    with locked(out) as doc:
        rec = doc["tasks"][task]
        rec["complete"] = True
        rec["wall_seconds"] = sum(f["seconds"] for f in rec["families"].values())
        rec["machine"] = provenance.machine_description()
        doc["summary"] = summarise(doc["tasks"], reps=reps)
    log(f"  {task}: done in {rec['wall_seconds']:.0f} s of training")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help=f"Brax tasks, from {list(TASKS)}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per setting")
    parser.add_argument("--budget", type=int, default=1_000_000, help="env steps per seed (whole rollouts of 2048)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=OUT, help="the result JSON")
    parser.add_argument("--resume", action="store_true", help="keep tasks (and families) stored with these seeds and budget")
    parser.add_argument("--summary-only", action="store_true",
                        help="recompute the summary from the stored tasks (no training); records this code and machine")
    parser.add_argument("--smoke", action="store_true",
                        help="gymnax Pendulum-v1, 2 seeds, 2 updates, into a scratch file (default /tmp)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCHMARKS))
    import purejaxrl_ppo as pjp  # first jax user: sets XLA_FLAGS
    from purejaxrl_ppo.runs import provenance

    if args.smoke:
        args.tasks, args.seeds, args.budget, args.reps = ["Pendulum-v1"], 2, 2 * 2048, 100
        if args.out == OUT:
            args.out = Path("/tmp/ppo_table1_smoke.json")
    else:
        unknown = [t for t in args.tasks if t not in TASKS]
        if unknown:
            parser.error(f"unknown task(s) {unknown}; known: {list(TASKS)}")
    missing = [t for t in args.tasks if env_name(t).partition("?")[0] not in pjp.registered_env_names()]
    if missing:
        parser.error(f"task(s) {missing} are not available in this install (make_env does not know them)")
    if args.seeds < 2 or args.budget < 2048:
        parser.error("--seeds must be >= 2 (bootstrap over seeds) and --budget >= 2048 (one rollout)")
    command = "PYTHONPATH=$PWD python " + " ".join(map(shlex.quote, ["benchmarks/ppo_table1.py"] + list(
        sys.argv[1:] if argv is None else argv)))
    with locked(args.out) as doc:
        if args.summary_only:  # the training's machine and code stay; this pass's are recorded beside them
            recs = doc.get("tasks", {})
            trained = {json.dumps(r["machine"]["code"], sort_keys=True): r["machine"] for r in recs.values()
                       if r.get("machine")}
            if len(trained) == 1:
                doc["machine"] = next(iter(trained.values()))
                doc["code"] = doc["machine"]["code"]
            doc["summary_machine"] = provenance.machine_description()
            doc["note"] = ("the summary was recomputed by `--summary-only` (its code: summary_machine.code); every task "
                           "was trained by the code in machine.code" + ("" if len(trained) == 1 else
                                                                        " of its own record (tasks.*.machine)"))
            # the command that reproduces every stored task, one after the other
            runs = {(r["seeds"], r["budget"]) for r in recs.values()}
            if len(runs) == 1:
                (seeds, budget), = runs
                doc["command"] = ("PYTHONPATH=$PWD python benchmarks/ppo_table1.py --tasks " + " ".join(recs)
                                  + f" --seeds {seeds} --budget {budget} --resume")
            doc["summary"] = summarise(recs, reps=args.reps)
            print(f"wrote the summary of {doc['summary']['tasks']} to {args.out}")
            return
        if not args.resume:
            doc.pop("tasks", None) if not args.smoke else doc.clear()
        doc.update(machine=provenance.machine_description(), versions=provenance.versions(),
                   code=provenance.code_version(), paper=PAPER_TABLE1,
                   setup={"base": PAPER_BASE, "ppo": PAPER_PPO, "trpo": {**PAPER_TRPO, "max_kl": TRPO_DELTA},
                          "unclipped_as_beta0": UNCLIPPED_AS_BETA0, "last_episodes": LAST_EPISODES},
                   command=command, date=datetime.date.today().isoformat())
    start = time.perf_counter()
    for task in args.tasks:
        run_task(task, args.seeds, args.budget, args.out, args.resume, reps=args.reps, command=command)
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
