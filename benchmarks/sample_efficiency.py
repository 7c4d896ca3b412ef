"""TRPO vs PPO sample efficiency: the PPO paper's objective comparison, plus TRPO.

Reproduces the design of Schulman et al. 2017, Table 1 on environments we can
run: PPO with no clipping or penalty; clipping with ε ∈ {0.1, 0.2, 0.3};
adaptive KL penalty with d_targ ∈ {0.003, 0.01, 0.03}; fixed KL penalty with
β ∈ {0.3, 1, 3, 10}; and TRPO with δ ∈ {0.005, 0.01, 0.02}. Every variant of a
family is trained by one :func:`purejaxrl_ppo.sweep` (values × seeds in one
compile). Raw per-seed learning curves go to ``<out>/curves_<env>.npz``; the
statistics (rliable: IQM and mean with 95% stratified-bootstrap CIs,
performance profiles, probability of improvement; AUC and steps to threshold),
three figures and ``<out>/sample_efficiency.md`` are generated from them.

    PYTHONPATH=$PWD python benchmarks/sample_efficiency.py --envs CartPole-v1 Acrobot-v1 \\
        --seeds 32 --budget-scale 1.0 --out benchmarks/results/

``--budget-scale`` multiplies each environment's full env-step budget
(``ENV_SPECS``), ``--budget ENV=STEPS`` sets one environment's budget
outright (the report states the steps each env actually ran); ``--analyse-only`` recomputes statistics, figures and the
report from the saved curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import purejaxrl_ppo as pjp  # noqa: I001  (first: sets XLA_FLAGS before jax runs)

import numpy as np

from purejaxrl_ppo.analysis import study as ss
from purejaxrl_ppo.cli.presets import brax_preset
from purejaxrl_ppo.runs.provenance import machine_description

# ----------------------------------------------------------------------------- what is run
#: Shared by every variant on every environment, so only the policy update differs.
COMMON = dict(ent_coef=0.0, clip_value_loss=False, hidden_sizes=(64, 64), activation="tanh")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """One environment of the study.

    budget:          full env steps per seed (``--budget-scale`` multiplies it)
    random_score:    mean return of the uniform-random policy (normalised 0); ``None`` = measure at run time
    reference_score: normalised 1 (``reference_note`` says where it comes from)
    base/ppo/trpo:   config overrides shared by all variants / PPO-only / TRPO-only
    """

    name: str
    budget: int
    random_score: float | None
    reference_score: float
    reference_note: str
    base: dict[str, Any]
    ppo: dict[str, Any] = dataclasses.field(default_factory=dict)
    trpo: dict[str, Any] = dataclasses.field(default_factory=dict)


# Random-policy scores: `benchmarks/random_policy_scores.py <env> --episodes 1000` (seed 0).
_CLASSIC = dict(num_envs=4, num_steps=128, gamma=0.99, gae_lambda=0.95)
_CLASSIC_PPO = dict(update_epochs=4, num_minibatches=4, learning_rate=2.5e-4)
_CONTINUOUS = dict(num_envs=8, num_steps=256, gamma=0.99, gae_lambda=0.95)
_CONTINUOUS_PPO = dict(update_epochs=10, num_minibatches=32, learning_rate=3e-4)  # the PPO paper's MuJoCo values


def _brax(algo: str, env_name: str) -> dict[str, Any]:
    """``presets.brax_preset(algo, env_name)`` less the fields the study sets: budget and swept δ."""
    return {k: v for k, v in brax_preset(algo, env_name).items() if k not in ("total_timesteps", "max_kl")}


def _brax_spec(name: str, reference: float, note: str) -> EnvSpec:
    """A Brax task run in the library's preset regime (random score measured at run time)."""
    return EnvSpec(name, 1_000_000, None, reference, note, {}, _brax("ppo", name), _brax("trpo", name))


ENV_SPECS: dict[str, EnvSpec] = {
    "CartPole-v1": EnvSpec("CartPole-v1", 500_000, 21.92, 500.0, "maximum return (500-step limit)",
                           _CLASSIC, _CLASSIC_PPO),
    "Acrobot-v1": EnvSpec("Acrobot-v1", 500_000, -499.12, -100.0, "Gym's reward_threshold for Acrobot-v1",
                          _CLASSIC, _CLASSIC_PPO),
    "Pendulum-v1": EnvSpec("Pendulum-v1", 1_000_000, -1208.29, 0.0, "upper bound of the return (reward ≤ 0)",
                           {**_CONTINUOUS, "gamma": 0.95}, {**_CONTINUOUS_PPO, "learning_rate": 1e-3}),
    "Breakout-MinAtar": EnvSpec("Breakout-MinAtar", 5_000_000, 0.37, 30.0, "chosen reference (no standard one)",
                                # 16 envs x 128 steps: 48 updates in 1e5 steps (the CPU study's budget)
                                dict(num_envs=16, num_steps=128, gamma=0.99, gae_lambda=0.95),
                                dict(update_epochs=4, num_minibatches=4, learning_rate=1e-3)),
    # Brax: the balancing tasks' preset (`purejaxrl_ppo.brax_preset`: short unrolls over
    # 32 envs, observation normalisation, γ 0.97), shared by every variant.
    "brax/inverted_pendulum": _brax_spec("brax/inverted_pendulum", 1000.0,
                                         "maximum return (1 per step, 1000 steps)"),
    "brax/inverted_double_pendulum": _brax_spec("brax/inverted_double_pendulum", 9100.0,
                                                "Gym's reward_threshold for InvertedDoublePendulum"),
}

#: Normalised score a learning curve must reach for "steps to threshold".
THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Family:
    """Variants sharing a compiled program: ``field`` swept over ``values`` (or none)."""

    key: str
    algo: str
    overrides: dict[str, Any]
    field: str | None
    values: tuple[float, ...]
    symbol: str

    def variant_ids(self) -> list[str]:
        if self.field is None:
            return [self.key]
        return [f"{self.key} {self.symbol}={v:g}" for v in self.values]


FAMILIES = (
    Family("PPO no clip", "ppo", {"policy_objective": "unclipped"}, None, (), ""),
    Family("PPO clip", "ppo", {"policy_objective": "clip"}, "clip_eps", (0.1, 0.2, 0.3), "ε"),
    Family("PPO adaptive KL", "ppo", {"policy_objective": "kl_adaptive", "kl_coef": 1.0}, "kl_target",
           (0.003, 0.01, 0.03), "d"),
    Family("PPO fixed KL", "ppo", {"policy_objective": "kl_fixed"}, "kl_coef", (0.3, 1.0, 3.0, 10.0), "β"),
    Family("TRPO", "trpo", {}, "max_kl", (0.005, 0.01, 0.02), "δ"),
)
VARIANTS = [v for f in FAMILIES for v in f.variant_ids()]
#: The headline pair: the PPO paper's recommended setting vs TRPO's default.
PPO_HEADLINE, TRPO_HEADLINE = "PPO clip ε=0.2", "TRPO δ=0.01"
#: One variant per family (the papers' defaults), for the uncluttered figures.
REPRESENTATIVES = ["PPO no clip", "PPO clip ε=0.2", "PPO adaptive KL d=0.01", "PPO fixed KL β=1", "TRPO δ=0.01"]


def make_config(spec: EnvSpec, family: Family, budget: int) -> pjp.PPOConfig | pjp.TRPOConfig:
    """The base config of ``family`` on ``spec`` at ``budget`` env steps (rounded down to whole rollouts)."""
    cls = pjp.PPOConfig if family.algo == "ppo" else pjp.TRPOConfig
    algo_overrides = spec.ppo if family.algo == "ppo" else spec.trpo
    values = {**COMMON, **spec.base, **algo_overrides, **family.overrides}
    if family.algo == "trpo":
        values.pop("clip_value_loss")
    batch = values["num_envs"] * values["num_steps"]
    return cls(env_name=spec.name, total_timesteps=max(batch, budget // batch * batch), **values)


def run_env(
    spec: EnvSpec,
    seeds: int,
    budget_scale: float,
    log: Callable[[str], None] = print,
    done: dict[str, pjp.SweepResult] | None = None,
    budget: int | None = None,
) -> dict[str, Any]:
    """Every variant on one environment: ``{"returns": {variant: [seeds, updates]}, "env_steps", "seconds"}``.

    ``done`` maps family keys to sweeps already run with the same settings (they are reused);
    ``budget`` (env steps per seed) replaces ``spec.budget * budget_scale`` when given.
    """
    budget = int(spec.budget * budget_scale) if budget is None else budget
    returns, seconds, env_steps = {}, {}, None
    for family in FAMILIES:
        config = make_config(spec, family, budget)
        grid = {family.field: list(family.values)} if family.field else {}
        result = (done or {}).get(family.key) or pjp.sweep(config, grid, num_seeds=seeds)
        seconds[family.key] = result.seconds
        curves = result.metrics["episode_return"].reshape(-1, seeds, config.num_updates)
        for variant, curve in zip(family.variant_ids(), curves):
            returns[variant] = curve
        env_steps = result.metrics["env_steps"].reshape(-1, config.num_updates)[0]
        log(f"  {spec.name} {family.key}: {len(family.variant_ids())} variant(s) × {seeds} seeds × "
            f"{config.num_updates * config.batch_size} steps in {result.seconds:.0f} s (one compile)")
    return {"returns": returns, "env_steps": env_steps, "seconds": seconds, "budget": int(env_steps[-1])}


def random_score(spec: EnvSpec) -> float:
    if spec.random_score is not None:
        return spec.random_score
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from random_policy_scores import random_returns

    return float(random_returns(spec.name, 100).mean())


def save_env(out: Path, env_name: str, data: dict[str, Any], low: float, high: float) -> Path:
    """Raw per-seed curves: ``curves_<env>.npz`` with one ``[seeds, updates]`` array per variant."""
    path = out / f"curves_{env_name.replace('/', '_')}.npz"
    np.savez_compressed(path, env_steps=data["env_steps"], normalisation=np.array([low, high]),
                        **{f"returns/{v}": r for v, r in data["returns"].items()})
    return path


def load_env(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        returns = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("returns/")}
        return {"returns": returns, "env_steps": z["env_steps"], "normalisation": tuple(z["normalisation"])}


# ----------------------------------------------------------------------------- statistics
def analyse(curves: dict[str, dict[str, Any]], reps: int = 2000) -> dict[str, Any]:
    """All statistics of the study from ``{env: load_env(...)}``; JSON-serialisable."""
    envs = list(curves)
    variants = [v for v in VARIANTS if all(v in curves[e]["returns"] for e in envs)]
    norm = {e: {v: ss.normalize_scores(curves[e]["returns"][v], *curves[e]["normalisation"]) for v in variants}
            for e in envs}
    final = {v: np.stack([ss.final_scores(norm[e][v]) for e in envs], axis=1) for v in variants}  # [runs, tasks]
    auc = {v: np.stack([ss.area_under_curve(norm[e][v]) for e in envs], axis=1) for v in variants}
    stats: dict[str, Any] = {"envs": envs, "variants": variants, "reps": reps, "threshold": THRESHOLD}
    for name, scores in (("final", final), ("auc", auc)):
        points, intervals = ss.aggregate_estimates(scores, reps=reps)
        stats[f"aggregate_{name}"] = {"points": points, "intervals": intervals}
        per_env = {}
        for i, e in enumerate(envs):
            p, ci = ss.aggregate_estimates({v: scores[v][:, i:i + 1] for v in variants}, reps=reps)
            per_env[e] = {"points": p, "intervals": ci}
        stats[f"per_env_{name}"] = per_env
    stats["steps_to_threshold"] = {
        e: {v: ss.steps_to_threshold(norm[e][v], curves[e]["env_steps"], THRESHOLD).tolist() for v in variants}
        for e in envs}
    poi = {}
    if PPO_HEADLINE in variants:
        for other in [v for v in variants if v.startswith("TRPO")]:
            for name, scores in (("final", final), ("auc", auc)):
                p, ci = ss.probability_of_improvement(scores[PPO_HEADLINE], scores[other], reps=reps)
                poi[f"{PPO_HEADLINE} > {other} ({name})"] = {"point": p, "interval": ci}
    stats["probability_of_improvement"] = poi
    stats["_final_scores"] = final  # arrays for the figures (dropped before JSON)
    stats["_norm_curves"] = norm
    return stats


# ----------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write and close ``fig``; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_learning_curves(stats: dict[str, Any], curves: dict[str, Any], path: Path, variants=None) -> Path:
    """Per env: IQM of the normalised (forward-filled) learning curves with 95% bootstrap CI bands."""
    plt = _plt()
    variants = [v for v in (variants or REPRESENTATIVES) if v in stats["variants"]]
    envs = stats["envs"]
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), dpi=110, squeeze=False)
    for ax, env in zip(axes[0], envs):
        filled = {v: ss.forward_fill(stats["_norm_curves"][env][v]) for v in variants}
        start = max(int(np.argmax(~np.isnan(c).any(0))) for c in filled.values())  # first update all seeds have
        filled = {v: c[:, start:] for v, c in filled.items()}
        point, ci = ss.iqm_curves(filled, reps=min(stats["reps"], 500))
        steps = curves[env]["env_steps"][start:]
        for v in variants:
            ax.plot(steps, point[v], label=v, lw=1.4)
            ax.fill_between(steps, ci[v][0], ci[v][1], alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("env steps per seed")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalised return (IQM, 95% CI)")
    axes[0][-1].legend(fontsize=7, loc="best")
    return _save(plt, fig, path)


def plot_aggregate(stats: dict[str, Any], path: Path) -> Path:
    """IQM and mean of the final normalised score across envs and seeds, every variant, 95% CIs."""
    plt = _plt()
    agg = stats["aggregate_final"]
    variants = stats["variants"][::-1]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.35 * len(variants) + 1.2), dpi=110, sharey=True)
    for ax, metric in zip(axes, ("iqm", "mean")):
        for y, v in enumerate(variants):
            lo, hi = agg["intervals"][v][metric]
            color = "C3" if v.startswith("TRPO") else "C0"
            ax.plot([lo, hi], [y, y], color=color, lw=6, alpha=0.5, solid_capstyle="butt")
            ax.plot([agg["points"][v][metric]], [y], "|", color="k", ms=12)
        ax.set_title(f"{metric.upper()} of final normalised score")
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(variants)), variants, fontsize=8)
    return _save(plt, fig, path)


def plot_profile(stats: dict[str, Any], path: Path) -> Path:
    """Performance profile: fraction of runs (all envs) with final normalised score > τ, 95% CI."""
    plt = _plt()
    variants = [v for v in REPRESENTATIVES if v in stats["variants"]]
    taus = np.linspace(-0.25, 1.25, 61)
    profiles, cis = ss.performance_profiles({v: stats["_final_scores"][v] for v in variants}, taus,
                                            reps=min(stats["reps"], 1000))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for v in variants:
        ax.plot(taus, profiles[v], label=v)
        ax.fill_between(taus, cis[v][0], cis[v][1], alpha=0.2)
    ax.set_xlabel("normalised final score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


# ----------------------------------------------------------------------------- the report
def _ci(points, intervals, v, metric="iqm", digits=2) -> str:
    lo, hi = intervals[v][metric]
    return f"{points[v][metric]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _versions() -> str:
    names = ["purejaxrl_ppo", "jax", "flax", "optax", "distrax", "gymnax", "numpy", "rliable", "arch", "matplotlib"]
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            out.append(f"{n} {pjp.__version__}" if n == "purejaxrl_ppo" else f"{n} (not installed)")
    return ", ".join(out)


def _steps_cell(steps: list[float]) -> str:
    s = np.asarray(steps)
    reached = np.isfinite(s)
    if not reached.any():
        return f"– (0/{s.size})"
    return f"{np.median(s[reached]) / 1000:.0f}k ({reached.sum()}/{s.size})"  # censored seeds left out


PAPER_CONCLUSION = (
    "In the PPO paper's Table 1 (7 MuJoCo tasks, 1M steps, 3 seeds each, scores normalised so that the "
    "random policy is 0 and the best result per task 1), clipping with ε = 0.2 had the best average "
    "normalised score, the surrogate without clipping or penalty the worst (below the random policy), and "
    "the adaptive and fixed KL penalties fell in between; TRPO was compared separately (Figure 3), where the "
    "paper reports PPO-clip ahead of TRPO and its other baselines on almost all of those tasks."
)


def _paper_comparison(stats: dict[str, Any]) -> list[str]:
    """Families ranked by their best variant's final-score IQM, next to the paper's conclusion."""
    points, intervals = stats["aggregate_final"]["points"], stats["aggregate_final"]["intervals"]
    rows = []
    for family in FAMILIES:
        members = [v for v in family.variant_ids() if v in points]
        if members:
            top = max(members, key=lambda v: points[v]["iqm"])
            rows.append((points[top]["iqm"], family.key, top))
    lines = ["## Comparison with the PPO paper", "", PAPER_CONCLUSION, "",
             "Here, each family's best variant by final-score IQM (95% CI), best first:", ""]
    for _, key, top in sorted(rows, reverse=True):
        lines.append(f"1. {key}: {top}, {_ci(points, intervals, top)}")
    lines.append("")
    return lines


def write_report(stats: dict[str, Any], run_info: dict[str, Any], curves: dict[str, Any], out: Path) -> Path:
    """``sample_efficiency.md``: setup, tables, figures, command, versions, machine, wall time."""
    envs, variants = stats["envs"], stats["variants"]
    seeds = next(iter(curves[envs[0]]["returns"].values())).shape[0]
    lines = [
        "# Sample efficiency: TRPO vs PPO (Schulman et al. 2017, Table 1 design)",
        "",
        f"Generated by `benchmarks/sample_efficiency.py`. **Budget: {run_info['budget_note']}; "
        f"{seeds} seeds per variant.**",
        "",
        f"- Command: `{run_info['command']}`",
        f"- Wall time: training (sum over the sweeps, compiles included) {run_info['train_seconds']:.0f} s; "
        f"the generating command end to end (with --resume: statistics and figures only) "
        f"{run_info.get('total_seconds', float('nan')):.0f} s",
        f"- Machine: {run_info['machine']}",
        f"- Versions: {run_info['versions']}",
        "",
        "## Setup",
        "",
        "Every variant shares the rollout, network (tanh MLP 64-64, separate actor and critic), GAE and "
        "critic settings of its environment; only the policy update differs. No entropy bonus (as in the "
        "paper's Section 6.1 comparison) and no value-function clipping (not part of the paper's objectives). PPO variants share epochs, "
        "minibatches and the (linearly annealed) Adam learning rate; TRPO uses its defaults "
        "(CG 10 iterations, damping 0.1, backtracking line search, Adam critic 1e-3 × 5 epochs). "
        "Brax tasks add running observation normalisation, use γ 0.97 and fit TRPO's critic in 8 minibatches "
        "(`brax_preset`'s balancing regime).",
        "",
        "| env | env steps / seed | updates | rollout (envs × steps) | random score (→0) | reference (→1) |",
        "|---|---|---|---|---|---|",
    ]
    for e in envs:
        low, high = curves[e]["normalisation"]
        steps = curves[e]["env_steps"]
        note = ENV_SPECS[e].reference_note if e in ENV_SPECS else ""
        spec = ENV_SPECS.get(e)
        sizes = {**spec.base, **spec.ppo} if spec else {}  # Brax tasks take their sizes from the preset (spec.ppo)
        rollout = f"{sizes['num_envs']} × {sizes['num_steps']}" if "num_envs" in sizes else "?"
        lines.append(f"| {e} | {int(steps[-1]):,} | {steps.size} | {rollout} | {low:.1f} | {high:.1f} ({note}) |")
    lines += [
        "",
        "**Definitions.** Normalised score = (return − random) / (reference − random), the random score being "
        "the mean return of the uniform-random policy over 1000 episodes (100, measured at run time, for the "
        "Brax tasks). *Learning curve*: per-update mean return of the episodes ending in that rollout, "
        "forward-filled where none ended (a 1000-step Brax episode spans ~31 updates). *Final score*: mean "
        "normalised learning curve over the last 10 updates. *AUC*: the same over all updates. "
        f"*Steps to threshold*: env steps when the 10-update running mean first reaches {THRESHOLD} "
        "normalised (median over the seeds that reached it, and how many did). IQM = interquartile mean over "
        "all runs of all environments; CIs are 95% stratified-bootstrap intervals "
        f"({stats['reps']} resamples, rliable).",
        "",
        "## Aggregate over environments",
        "",
        "| variant | final IQM [95% CI] | final mean [95% CI] | AUC IQM [95% CI] | AUC mean [95% CI] |",
        "|---|---|---|---|---|",
    ]
    fa, aa = stats["aggregate_final"], stats["aggregate_auc"]
    for v in variants:
        lines.append(f"| {v} | {_ci(fa['points'], fa['intervals'], v)} | "
                     f"{_ci(fa['points'], fa['intervals'], v, 'mean')} | {_ci(aa['points'], aa['intervals'], v)} | "
                     f"{_ci(aa['points'], aa['intervals'], v, 'mean')} |")
    best = max(variants, key=lambda v: fa["points"][v]["iqm"])
    best_auc = max(variants, key=lambda v: aa["points"][v]["iqm"])
    lines += ["", f"Highest final-score IQM: **{best}**; highest AUC IQM: **{best_auc}**.", ""]
    lines += _paper_comparison(stats)
    if stats["probability_of_improvement"]:
        lines += ["## Probability of improvement", "",
                  "P(X > Y): probability that a run of X scores higher than a run of Y on a randomly chosen "
                  "environment (Mann–Whitney U statistic averaged over environments), 95% CI.", "",
                  "| comparison | P(X > Y) [95% CI] |", "|---|---|"]
        for k, d in stats["probability_of_improvement"].items():
            lines.append(f"| {k} | {d['point']:.2f} [{d['interval'][0]:.2f}, {d['interval'][1]:.2f}] |")
        lines.append("")
    for name, title in (("final", "Final normalised score"), ("auc", "AUC (normalised)")):
        lines += [f"## {title} per environment (IQM over seeds [95% CI])", "",
                  "| variant | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]
        per = stats[f"per_env_{name}"]
        for v in variants:
            lines.append(f"| {v} | " + " | ".join(_ci(per[e]["points"], per[e]["intervals"], v) for e in envs) + " |")
        lines.append("")
    lines += [f"## Env steps to reach {THRESHOLD} normalised (median of seeds that reached it, reached/total)", "",
              "| variant | " + " | ".join(envs) + " |", "|---" * (len(envs) + 1) + "|"]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(_steps_cell(stats["steps_to_threshold"][e][v]) for e in envs) + " |")
    lines += [
        "",
        "## Figures",
        "",
        "Learning curves (IQM across seeds, 95% bootstrap CI band; one variant per family):",
        "",
        "![learning curves](learning_curves.png)",
        "",
        "Aggregate metrics (final normalised score, every variant):",
        "",
        "![aggregate metrics](aggregate_metrics.png)",
        "",
        "Performance profile (final normalised score, all runs of all environments):",
        "",
        "![performance profile](performance_profile.png)",
        "",
        "## Training time per family (one compile each, seconds)",
        "",
        "| env | " + " | ".join(f.key for f in FAMILIES) + " |",
        "|---" * (len(FAMILIES) + 1) + "|",
    ]
    for e in envs:
        secs = run_info["seconds"].get(e, {})
        lines.append(f"| {e} | " + " | ".join(f"{secs[f.key]:.0f}" if f.key in secs else "–" for f in FAMILIES) + " |")
    lines.append("")
    path = out / "sample_efficiency.md"
    path.write_text("\n".join(lines))
    return path


def generate_outputs(curves: dict[str, Any], run_info: dict[str, Any], out: Path, reps: int,
                     start: float | None = None) -> dict[str, Any]:
    """Statistics, figures, ``stats.json`` and the markdown report from the curves.

    ``start`` (a ``time.perf_counter()`` value) sets ``run_info["total_seconds"]`` when given.
    """
    stats = analyse(curves, reps=reps)
    plot_learning_curves(stats, curves, out / "learning_curves.png")
    plot_aggregate(stats, out / "aggregate_metrics.png")
    plot_profile(stats, out / "performance_profile.png")
    if start is not None:
        run_info["total_seconds"] = time.perf_counter() - start
    public = {k: v for k, v in stats.items() if not k.startswith("_")}
    (out / "stats.json").write_text(json.dumps({"run": run_info, **public}, indent=1, default=float) + "\n")
    write_report(stats, run_info, curves, out)
    return stats


def parse_budgets(items: list[str], envs: list[str], error: Callable[[str], None]) -> dict[str, int]:
    """``["Pendulum-v1=200000", ...]`` -> ``{"Pendulum-v1": 200000}``; bad items go to ``error``."""
    budgets = {}
    for item in items:
        env, _, steps = item.rpartition("=")
        if env not in envs or not steps.isdigit() or int(steps) <= 0:
            error(f"--budget {item!r}: expected ENV=STEPS with ENV one of --envs {envs} and STEPS a positive integer")
        budgets[env] = int(steps)
    return budgets


def check_resumable(out: Path, env: str, seeds: int, error: Callable[[str], None]) -> None:
    """Refuse to reuse saved curves of ``env`` that were run with a different seed count."""
    saved = load_env(out / f"curves_{env.replace('/', '_')}.npz")["returns"]
    counts = {r.shape[0] for r in saved.values()}
    if counts != {seeds}:
        error(f"--resume: {out}/curves_{env.replace('/', '_')}.npz has {sorted(counts)} seeds per variant, "
              f"not --seeds {seeds}; use another --out or the same --seeds")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar"],
                        help=f"environments, from {sorted(ENV_SPECS)}")
    parser.add_argument("--seeds", type=int, default=32, help="seeds per variant")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies each env's full step budget")
    parser.add_argument("--budget", action="append", default=[], metavar="ENV=STEPS",
                        help="env steps per seed for one env, instead of --budget-scale (repeatable)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--analyse-only", action="store_true", help="reuse saved curves_*.npz and run_info.json")
    parser.add_argument("--resume", action="store_true",
                        help="skip training an env whose curves_<env>.npz and seconds_<env>.json are in --out")
    args = parser.parse_args(argv)
    unknown = [e for e in args.envs if e not in ENV_SPECS]
    if unknown:
        parser.error(f"unknown env(s) {unknown}; known: {sorted(ENV_SPECS)}")
    missing = [e for e in args.envs if e not in pjp.registered_env_names()]
    if missing:
        parser.error(f"environment(s) {missing} are not available in this install (make_env does not know them)")
    budgets = parse_budgets(args.budget, args.envs, parser.error)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    info_path = args.out / "run_info.json"
    if args.analyse_only:
        if not info_path.exists():
            parser.error(f"{info_path} is missing: --analyse-only needs a completed run's run_info.json")
        run_info = json.loads(info_path.read_text())
    else:
        run_info = {"command": "PYTHONPATH=$PWD python " + " ".join(map(shlex.quote, [sys.argv[0]] + (argv or sys.argv[1:]))),
                    "seconds": {}, "machine": "", "versions": _versions()}
        for env in args.envs:
            spec = ENV_SPECS[env]
            seconds_path = args.out / f"seconds_{env.replace('/', '_')}.json"
            if args.resume and seconds_path.exists():
                check_resumable(args.out, env, args.seeds, parser.error)
                print(f"  {env}: reusing saved curves (--resume)")
            else:
                data = run_env(spec, args.seeds, args.budget_scale, budget=budgets.get(env))
                save_env(args.out, env, data, random_score(spec), spec.reference_score)
                seconds_path.write_text(json.dumps(data["seconds"]) + "\n")
            run_info["seconds"][env] = json.loads(seconds_path.read_text())
        m = machine_description()
        run_info["machine"] = (f"{m['processor']}, {m['cpu_count']} CPUs ({platform.system()}), jax backend "
                               f"{m['jax_backend']} [{m['devices']}], {m['date']}")
        run_info["code"] = m["code"]
        run_info["train_seconds"] = sum(sum(d.values()) for d in run_info["seconds"].values())
    curves = {e: load_env(args.out / f"curves_{e.replace('/', '_')}.npz") for e in args.envs}
    if not args.analyse_only:
        run_info["budget_note"] = "env steps per seed: " + ", ".join(
            f"{e} {int(curves[e]['env_steps'][-1]):,}" for e in args.envs)
    generate_outputs(curves, run_info, args.out, args.reps, start=None if args.analyse_only else start)
    if not args.analyse_only:
        info_path.write_text(json.dumps(run_info, indent=1) + "\n")
    print(f"wrote {args.out / 'sample_efficiency.md'}")


if __name__ == "__main__":
    main()
