"""Reward-model over-optimisation on the synthetic language, measured as Gao et al. 2022 measure it.

One SFT model; for each reward-model size (``--rm-pairs``: preference pairs in its training set):

* **best-of-n**: ``--samples`` responses of the SFT policy to each of ``--prompts`` held-out prompts, scored
  by gold and by the proxy; the expected gold and proxy of best-of-n for n = 1, 2, 4, ..., ``--samples``
  (the unbiased estimator over ranks), its KL measured on the samples beside ``log n - (n-1)/n``, and
  Gao's form ``R(d) = d(α - βd)`` fitted to the gold gain against d = √KL;
* **RL**: for the first reward model, PPO at every β of ``--kl-coefs`` and TRPO at every β of
  ``--trpo-kl-coefs`` (each algorithm one vmapped program over β × ``--seeds``); for the others PPO at β = 0.
  Gold, proxy and KL along training are each iteration's rollout statistics (``--rollout-batch`` fresh
  prompts per seed, sampled before the update); Gao's RL form ``R(d) = d(α - β log d)`` is fitted to
  the β = 0 trajectories (median over seeds per iteration).

Then the checks of Gao's qualitative findings, computed from the data: whether gold peaks and falls
(best-of-n; RL at β = 0, per seed), whether RL needs more KL than best-of-n for the same gold, how far the
KL-penalised runs end from the β = 0 frontier, and whether the larger reward model peaks later.

    PYTHONPATH=$PWD python benchmarks/rlhf_overoptimisation.py --out benchmarks/results/rlhf

The task (``TASK``) has one positive token and a repeat penalty of 2: the base distribution rarely repeats
a token (4%), so the reward model learns little about repeats, while a policy pushed towards the positive
token repeats it. Writes ``overoptimisation.json`` (command, machine, date, versions, code) and
``overoptimisation_gao.png``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import purejaxrl_ppo  # noqa: F401,I001  (first: applies the XLA:CPU workaround)

import jax
import jax.numpy as jnp
import numpy as np

from purejaxrl_ppo.analysis import overoptimisation as oo
from purejaxrl_ppo.analysis.rlhf_plots import GaoCurve, plot_gao, sqrt_kl
from purejaxrl_ppo.core.rlhf import rl, stages
from purejaxrl_ppo.core.rlhf.best_of_n import sample_and_score
from purejaxrl_ppo.core.rlhf.config import RLHFConfig
from purejaxrl_ppo.core.rlhf.task import make_task, sample_prompts
from purejaxrl_ppo.launch.rlhf import seed_keys, stage_key
from purejaxrl_ppo.runs.provenance import code_version, machine_description, versions

#: The task under which gold peaks: one positive token, repeats cost 2 × their fraction (CLI defaults otherwise).
TASK = {"task_positive": 1, "task_repeat_penalty": 2.0}
#: Bootstrap resamples for the drop-after-peak intervals.
BOOTSTRAP = 2000


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the mean of ``values [k]``."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(BOOTSTRAP, len(values)), replace=True).mean(1)
    return [float(x) for x in np.percentile(means, [2.5, 97.5])]


def best_of_n(cfg: RLHFConfig, sft, rm, task, args) -> dict[str, Any]:
    """Best-of-n statistics over ``args.samples`` SFT responses per prompt (see the module docstring)."""
    prompts = sample_prompts(task, cfg, jax.random.PRNGKey(1), args.prompts)
    start = time.perf_counter()
    samples = jax.device_get(sample_and_score(cfg, sft, rm, task, prompts, jax.random.PRNGKey(2), args.samples))
    seconds = time.perf_counter() - start
    ns = [2 ** k for k in range(int(np.log2(args.samples)) + 1)]
    curve = oo.best_of_n_curve(samples.gold, samples.proxy, ns)
    kl = oo.best_of_n_kl_measured(samples.responses, samples.proxy, ns)
    gain = curve["gold"] - samples.gold.mean()
    d = np.sqrt(kl)
    fit = oo.fit_gao(d, gain, "bon")
    # per-prompt curves for the interval of the drop from the peak to the largest n
    per_prompt = np.stack([oo.best_of_n_curve(g[None], p[None], ns)["gold"] for g, p in zip(samples.gold,
                                                                                             samples.proxy)])
    peak = int(np.argmax(gain))
    drop = per_prompt[:, peak] - per_prompt[:, -1]
    return {"n": ns, "kl_measured": kl.tolist(), "kl_formula": oo.best_of_n_kl_formula(ns).tolist(),
            "d": d.tolist(), "gold_gain": gain.tolist(), "proxy": curve["proxy"].tolist(),
            "gold_reference": float(samples.gold.mean()), "fit": fit._asdict(),
            "peak": {"n": ns[peak], "d": float(d[peak]), "gold_gain": float(gain[peak]), "interior": peak < len(ns) - 1,
                     "drop_to_last": float(drop.mean()), "drop_ci95": bootstrap_mean_ci(drop)},
            "sample_seconds": seconds, "prompts": args.prompts, "samples_per_prompt": args.samples}


def train_rl(cfg: RLHFConfig, sft, rm, task, kl_coefs: list[float], args) -> dict[str, np.ndarray]:
    """Every β of ``kl_coefs`` × ``args.seeds`` seeds in one vmapped program: metrics ``[β, seeds, iterations]``."""
    keys = jnp.tile(seed_keys(0, args.seeds), (len(kl_coefs), 1))
    betas = jnp.repeat(jnp.asarray(kl_coefs, jnp.float32), args.seeds)
    init = jax.jit(jax.vmap(lambda k, b: rl.rl_init(cfg, sft, rm, k, b)))(keys, betas)
    chunk = jax.jit(jax.vmap(lambda s: rl.rl_chunk(cfg, task, sft, rm, s, cfg.num_iterations)[1]))
    metrics = jax.device_get(chunk(init))
    return {k: np.asarray(metrics[k]).reshape(len(kl_coefs), args.seeds, -1)
            for k in ("gold_score", "proxy_score", "kl_to_reference")}


def rl_settings(algo: str, kl_coefs: list[float], metrics: dict[str, np.ndarray], gold_reference: float,
                seconds: float) -> list[dict[str, Any]]:
    """Per β: per-seed curves, the median trajectory in d, and (β = 0) the per-seed drop after the peak."""
    settings = []
    for i, beta in enumerate(kl_coefs):
        gold, proxy, kl = (metrics[k][i] for k in ("gold_score", "proxy_score", "kl_to_reference"))
        gain = np.median(gold, 0) - gold_reference
        setting = {"algo": algo, "kl_coef": beta, "gold": gold.tolist(), "proxy": proxy.tolist(), "kl": kl.tolist(),
                   "d_median": sqrt_kl(np.median(kl, 0)).tolist(), "gold_gain_median": gain.tolist(),
                   "proxy_median": np.median(proxy, 0).tolist(), "seconds": seconds}
        final = slice(-5, None)  # the last 5 iterations: less sampling noise than one
        setting["final"] = {"d": float(sqrt_kl(np.median(kl[:, final]))),
                            "gold_gain": float(np.median(gold[:, final]) - gold_reference)}
        if beta == 0.0:
            d = np.asarray(setting["d_median"])
            setting["peak"] = {**peak_drop(gold), "median": trajectory_peak(d, gain)}
            setting["fit"] = oo.fit_gao(d, gain, "rl")._asdict()
        settings.append(setting)
    return settings


def peak_drop(gold: np.ndarray, window: int = 5) -> dict[str, Any]:
    """How far each seed's gold falls from the peak to the end: ``gold [seeds, iterations]``.

    Curves are ``window``-iteration moving means. The peak iteration for seed i is chosen on the *other*
    seeds' median curve (leave one out), so seed i's own noise does not pick its peak: a curve that only
    rises or stays flat gives drops around 0, not the positive max-minus-last of noise. Returns the per-seed
    drops (peak minus the last window), their mean and its 95% bootstrap interval.
    """
    smooth = np.stack([np.convolve(g, np.ones(window) / window, mode="valid") for g in gold])  # [seeds, it-w+1]
    drops = []
    for i in range(len(smooth)):
        others = np.median(np.delete(smooth, i, axis=0), axis=0)
        drops.append(smooth[i, int(np.argmax(others))] - smooth[i, -1])
    drops = np.asarray(drops)
    return {"per_seed_drop": drops.tolist(), "drop_mean": float(drops.mean()), "drop_ci95": bootstrap_mean_ci(drops),
            "window": window, "rule": "leave-one-out peak"}


def falls(peak: dict[str, Any]) -> bool:
    """Whether gold fell after its peak: the 95% interval of the drop lies above 0."""
    return peak["drop_ci95"][0] > 0


def first_d_reaching(d: np.ndarray, gain: np.ndarray, level: float) -> float | None:
    """The smallest d at which ``gain`` first reaches ``level`` (linear interpolation), ``None`` if never."""
    above = np.nonzero(gain >= level)[0]
    if not len(above):
        return None
    j = above[0]
    if j == 0:
        return float(d[0])
    return float(np.interp(level, [gain[j - 1], gain[j]], [d[j - 1], d[j]]))


def checks(report: dict[str, Any]) -> dict[str, Any]:
    """Gao's qualitative findings, each a number read from the report."""
    main = report["reward_models"][0]
    bon = main["best_of_n"]
    rl0 = next(s for s in main["rl"] if s["algo"] == "ppo" and s["kl_coef"] == 0.0)
    level = 0.8 * bon["peak"]["gold_gain"]
    d_bon = first_d_reaching(np.asarray(bon["d"]), np.asarray(bon["gold_gain"]), level)
    d_rl = first_d_reaching(np.asarray(rl0["d_median"]), np.asarray(rl0["gold_gain_median"]), level)
    frontier = []
    for s in main["rl"]:
        if s["kl_coef"] == 0.0:
            continue
        reference = next(r for r in main["rl"] if r["algo"] == s["algo"] and r["kl_coef"] == 0.0)
        d0, g0 = np.asarray(reference["d_median"]), np.asarray(reference["gold_gain_median"])
        on_frontier = gain_where_d_first_reaches(d0, g0, s["final"]["d"])
        frontier.append({"algo": s["algo"], "kl_coef": s["kl_coef"], "d": s["final"]["d"],
                         "gold_gain": s["final"]["gold_gain"], "beta0_gold_gain_at_d": on_frontier,
                         "difference": s["final"]["gold_gain"] - on_frontier})
    sizes = []
    for m in report["reward_models"]:
        rl_main = next(s for s in m["rl"] if s["algo"] == "ppo" and s["kl_coef"] == 0.0)
        bon_peak = m["best_of_n"]["peak"]
        sizes.append({"rm_pairs": m["rm_pairs"], "bon_peak_d": bon_peak["d"],
                      "bon_falls": bool(bon_peak["interior"] and bon_peak["drop_ci95"][0] > 0),
                      "bon_fit_d_peak": m["best_of_n"]["fit"]["d_peak"], "rl_fit_d_peak": rl_main["fit"]["d_peak"],
                      "rl_peak_d": rl_main["peak"]["median"]["d"], "rl_falls": falls(rl_main["peak"]),
                      "rl_peak_gold_gain": rl_main["peak"]["median"]["gold_gain"]})
    return {"same_gold_level": level, "d_best_of_n": d_bon, "d_rl_beta0": d_rl, "kl_penalty_frontier": frontier,
            "reward_model_sizes": sizes}


def gain_where_d_first_reaches(d: np.ndarray, gain: np.ndarray, target: float) -> float:
    """A trajectory's gold gain where its d first reaches ``target``, interpolated between that iteration and the
    one before (d [iterations] is noisy, not monotone, so only that one step is interpolated); the last gain if
    d never reaches it."""
    above = np.nonzero(d >= target)[0]
    if not len(above):
        return float(gain[-1])
    j = above[0]
    if j == 0:
        return float(gain[0])
    return float(np.interp(target, [d[j - 1], d[j]], [gain[j - 1], gain[j]]))


def trajectory_peak(d_median: np.ndarray, gain_median: np.ndarray, window: int = 5) -> dict[str, float]:
    """The peak of a median trajectory: ``{"d", "gold_gain"}`` where its ``window``-iteration moving mean of the
    gold gain is highest (d averaged over the same window); ``d_median``, ``gain_median`` ``[iterations]``."""
    gain, d = (np.convolve(x, np.ones(window) / window, mode="valid") for x in (gain_median, d_median))
    best = int(np.argmax(gain))
    return {"d": float(d[best]), "gold_gain": float(gain[best])}


def figure(report: dict[str, Any], path: Path) -> None:
    curves = []
    for m in report["reward_models"]:
        bon = m["best_of_n"]
        d = np.asarray(bon["d"])
        curves.append(GaoCurve(f"best-of-n, RM {m['rm_pairs']} pairs", d, np.asarray(bon["gold_gain"]),
                               np.asarray(bon["proxy"]), "o-", oo.GaoFit(**bon["fit"])(d)))
        for s in m["rl"]:
            d = np.asarray(s["d_median"])
            fitted = oo.GaoFit(**s["fit"])(d) if "fit" in s else None
            curves.append(GaoCurve(f"{s['algo'].upper()} β={s['kl_coef']:g}, RM {m['rm_pairs']} pairs", d,
                                   np.asarray(s["gold_gain_median"]), np.asarray(s["proxy_median"]), "-", fitted))
    plot_gao(curves, path, "Over-optimisation on the synthetic language (medians over seeds; Gao et al. 2022 axes)")


def reanalyse(out: Path) -> int:
    """Recompute every RL statistic from the stored curves, and the checks and figure; the device results stay."""
    path = out / "overoptimisation.json"
    report = json.loads(path.read_text())
    for m in report["reward_models"]:
        reference = m["best_of_n"]["gold_reference"]
        bon_peak = m["best_of_n"]["peak"]
        bon_peak["interior"] = bon_peak["n"] != m["best_of_n"]["n"][-1]
        for s in m["rl"]:
            if s["kl_coef"] == 0.0:
                gain, d = np.median(np.asarray(s["gold"]), 0) - reference, np.asarray(s["d_median"])
                s["peak"] = {**peak_drop(np.asarray(s["gold"])), "median": trajectory_peak(d, gain)}
                s["fit"] = oo.fit_gao(d, gain, "rl")._asdict()
    report["checks"] = checks(report)
    report.setdefault("measured_code", report["code"])
    report["code"] = code_version()  # the analysis code now; the device programs are measured_code's
    report["machine"] = {**report["machine"], "code": report["code"]}
    report["reanalysed"] = "PYTHONPATH=$PWD python benchmarks/rlhf_overoptimisation.py --reanalyse"
    path.write_text(json.dumps(report, indent=1))
    figure(report, out / "overoptimisation_gao.png")
    print(json.dumps(report["checks"], indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm-pairs", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4096, help="responses per prompt (a power of 2)")
    parser.add_argument("--kl-coefs", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.2])
    parser.add_argument("--trpo-kl-coefs", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=80)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rlhf"))
    parser.add_argument("--reanalyse", action="store_true",
                        help="recompute the RL peaks, fits, checks and figure from <out>/overoptimisation.json's "
                             "stored per-seed curves (no training; best-of-n's statistics are kept)")
    args = parser.parse_args(argv)
    if args.reanalyse:
        return reanalyse(args.out)
    if args.samples & (args.samples - 1):
        parser.error("--samples must be a power of 2")
    start = time.perf_counter()
    base = RLHFConfig(**TASK, num_iterations=args.iterations)
    task = make_task(base)
    sft, sft_metrics = stages.train_sft(base, task, stage_key(0, "sft"))
    report: dict[str, Any] = {
        "command": "PYTHONPATH=$PWD python " + shlex.join(["benchmarks/rlhf_overoptimisation.py", *sys.argv[1:]]),
        "date": date.today().isoformat(), "machine": machine_description(), "versions": versions(),
        "code": code_version(), "config": base.to_dict(), "seeds": args.seeds,
        "sft_heldout_loss": float(sft_metrics["heldout_loss"]), "reward_models": []}
    for i, pairs in enumerate(args.rm_pairs):
        cfg = base.replace(rm_train_pairs=pairs)
        rm, rm_metrics = stages.train_rm(cfg, task, sft, stage_key(0, "rm"))
        entry: dict[str, Any] = {"rm_pairs": pairs, "rm_accuracy": float(rm_metrics["heldout_accuracy"]),
                                 "rm_gold_accuracy": float(rm_metrics["heldout_gold_accuracy"])}
        entry["best_of_n"] = best_of_n(cfg, sft, rm, task, args)
        gold_reference = entry["best_of_n"]["gold_reference"]
        entry["rl"] = []
        runs = [("ppo", args.kl_coefs), ("trpo", args.trpo_kl_coefs)] if i == 0 else [("ppo", [0.0])]
        for algo, kl_coefs in runs:
            t = time.perf_counter()
            metrics = train_rl(cfg.replace(algo=algo), sft, rm, task, kl_coefs, args)
            entry["rl"] += rl_settings(algo, kl_coefs, metrics, gold_reference, time.perf_counter() - t)
        report["reward_models"].append(entry)
        print(f"RM {pairs} pairs done at {time.perf_counter() - start:.0f} s", flush=True)
    report["checks"] = checks(report)
    report["wall_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overoptimisation.json").write_text(json.dumps(report, indent=1))
    figure(report, args.out / "overoptimisation_gao.png")
    print(json.dumps(report["checks"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
