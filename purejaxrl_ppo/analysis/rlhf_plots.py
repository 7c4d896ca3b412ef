"""Figures of an RLHF run (matplotlib, headless): training curves and the over-optimisation picture.

* :func:`plot_rlhf_curves`: proxy (reward-model) score, gold score and KL to the reference over RL
  iterations, the median over seeds with an interquartile band, one panel each.
* :func:`plot_overoptimisation`: gold and proxy score against KL to the reference (Gao et al. 2022,
  "Scaling laws for reward model over-optimization", fig. 1): the run's trajectory (median over seeds
  per iteration) and, for each setting of a sweep, its final point (median over seeds, interquartile
  bars in both directions). Proxy rising while gold falls is the over-optimisation.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

#: (metric, axis label) of the curve panels, in order.
CURVES = (("proxy_score", "proxy score (reward model)"), ("gold_score", "gold score"),
          ("kl_to_reference", "KL to reference (nats / response)"))


class SweepPoint(NamedTuple):
    """One setting's final evaluation: label and per-seed values ``[seeds]`` of KL, gold and proxy score."""

    label: str
    kl: np.ndarray
    gold: np.ndarray
    proxy: np.ndarray


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quartiles(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(25th percentile, median, 75th percentile)`` of ``values`` along ``axis``, NaNs ignored."""
    values = np.asarray(values, np.float64)
    if values.size == 0:  # e.g. [seeds, 0]: a run of 0 RL iterations
        empty = np.full(np.delete(values.shape, axis), np.nan)
        return empty, empty, empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN, as it should
        low, median, high = np.nanpercentile(np.asarray(values, np.float64), [25, 50, 75], axis=axis)
    return low, median, high


def plot_rlhf_curves(metrics: dict[str, np.ndarray], path: Path, title: str = "") -> None:
    """Proxy score, gold score and KL to the reference vs RL iteration: median over seeds and IQR band.

    metrics: ``{name: [seeds, iterations]}`` holding at least the names of :data:`CURVES`.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.6), dpi=120)
    for ax, (name, label) in zip(axes, CURVES):
        values = np.asarray(metrics[name], np.float64)
        iterations = np.arange(1, values.shape[1] + 1)
        low, median, high = quartiles(values)
        ax.plot(iterations, median, label="median over seeds")
        ax.fill_between(iterations, low, high, alpha=0.25, label="25–75%")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("RL iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_overoptimisation(trajectory: dict[str, np.ndarray], points: Sequence[SweepPoint], path: Path,
                          title: str = "", trajectory_label: str = "this run") -> None:
    """Gold (filled, solid) and proxy (hollow, dashed) score against KL to the reference, one axes.

    trajectory: ``{"kl_to_reference", "gold_score", "proxy_score": [seeds, iterations]}``, the statistics of
    each RL iteration's responses (sampled before its update, so iteration 1 is the SFT policy at KL 0),
    drawn as the per-iteration median over seeds. points: each setting's final evaluation, drawn at its
    median with interquartile bars on both axes, gold and proxy joined by a thin line so the gap between
    what the reward model promised and what was delivered shows.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    kl = quartiles(trajectory["kl_to_reference"])[1]
    gold = quartiles(trajectory["gold_score"])[1]
    proxy = quartiles(trajectory["proxy_score"])[1]
    ax.plot(kl, gold, "-", color="0.3", lw=1.5, label=f"{trajectory_label}: gold (per iteration)")
    ax.plot(kl, proxy, "--", color="0.3", lw=1.5, label=f"{trajectory_label}: proxy")
    colors = plt.get_cmap("tab10")
    for i, point in enumerate(points):
        color = colors(i % 10)
        kl_q, gold_q, proxy_q = (quartiles(np.asarray(v)) for v in (point.kl, point.gold, point.proxy))
        x = kl_q[1]
        xerr = [[x - kl_q[0]], [kl_q[2] - x]]
        for (low, mid, high), filled, name in ((gold_q, True, "gold"), (proxy_q, False, "proxy")):
            ax.errorbar([x], [mid], xerr=xerr, yerr=[[mid - low], [high - mid]], fmt="o", color=color,
                        markerfacecolor=color if filled else "white", markersize=7, capsize=3, lw=1,
                        label=f"{point.label}: {name}")
        ax.plot([x, x], [gold_q[1], proxy_q[1]], ":", color=color, lw=1)
    ax.set_xlabel("KL to the SFT reference (nats per response)")
    ax.set_ylabel("score (gold: hidden preference; proxy: reward model, normalised)")
    ax.set_title(title or "Reward over-optimisation: gold vs proxy score against KL")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7, ncol=2 if len(points) > 3 else 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
