"""Figures of an RLHF run (matplotlib, headless): training curves and the over-optimisation picture.

* :func:`plot_rlhf_curves`: proxy (reward-model) score, gold score and KL to the reference over RL
  iterations, the median over seeds with an interquartile band, one panel each.
* :func:`plot_overoptimisation`: gold and proxy score, on separate axes, against d = √KL to the reference
  (the axis of Gao et al. 2022, "Scaling laws for reward model over-optimization"): the run's trajectory
  (median over seeds per iteration) and, for each setting of a sweep, its final point (median over seeds,
  interquartile bars in both directions). Gold falling at large d while the proxy still rises would be
  over-optimisation; whether a run shows it is for its data to say.
* :func:`plot_gao`: the over-optimisation benchmark's figure: gold gain against d for best-of-n and RL
  with Gao's fitted forms, and the proxy beside it.
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


def sqrt_kl(kl: np.ndarray) -> np.ndarray:
    """Gao et al.'s axis d = sqrt(KL), KL clipped at 0 (a per-iteration estimate can dip just below it)."""
    return np.sqrt(np.maximum(np.asarray(kl, np.float64), 0.0))


def plot_overoptimisation(trajectory: dict[str, np.ndarray], points: Sequence[SweepPoint], path: Path,
                          title: str = "", trajectory_label: str = "this run") -> None:
    """Gold score (left) and proxy score (right, the reward model's units) against d = sqrt(KL to the reference).

    Two axes because the scores are in different units (gold: the hidden preference; proxy: the reward
    model, normalised to mean 0 / std 1 on the SFT policy). trajectory: ``{"kl_to_reference", "gold_score",
    "proxy_score": [seeds, iterations]}``, the statistics of each RL iteration's responses (sampled before its
    update, so iteration 1 is the SFT policy at KL 0), drawn as the per-iteration median over seeds. points:
    each setting's final evaluation, drawn at its median with interquartile bars on both axes.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120)
    d = sqrt_kl(quartiles(trajectory["kl_to_reference"])[1])
    colors = plt.get_cmap("tab10")
    for ax, name, label in ((axes[0], "gold", "gold score"), (axes[1], "proxy", "proxy score (reward model)")):
        ax.plot(d, quartiles(trajectory[f"{name}_score"])[1], "-", color="0.3", lw=1.5,
                label=f"{trajectory_label} (per iteration)")
        for i, point in enumerate(points):
            d_q = sqrt_kl(np.stack(quartiles(np.asarray(point.kl))))
            low, mid, high = quartiles(np.asarray(getattr(point, name)))
            ax.errorbar([d_q[1]], [mid], xerr=[[d_q[1] - d_q[0]], [d_q[2] - d_q[1]]], yerr=[[mid - low], [high - mid]],
                        fmt="o", color=colors(i % 10), markersize=6, capsize=3, lw=1, label=point.label)
        ax.set_xlabel("d = √KL to the SFT reference (√nats per response)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=7)
    fig.suptitle(title or "Gold and proxy score against √KL (Gao et al. 2022)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class GaoCurve(NamedTuple):
    """One curve of :func:`plot_gao`: label, d ``[k]``, gold gain ``[k]`` and proxy ``[k]``, line style
    (``"-"`` RL, ``"o-"`` best-of-n), and the fitted gold gain at ``d`` (``None``: no fit drawn)."""

    label: str
    d: np.ndarray
    gold_gain: np.ndarray
    proxy: np.ndarray
    style: str
    fitted: np.ndarray | None = None


def plot_gao(curves: Sequence[GaoCurve], path: Path, title: str = "") -> None:
    """Gold gain over the reference (left; fits dashed) and proxy score (right) against d = sqrt(KL)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=120)
    colors = plt.get_cmap("tab10")
    for i, curve in enumerate(curves):
        color = colors(i % 10)
        axes[0].plot(curve.d, curve.gold_gain, curve.style, color=color, ms=3, lw=1.3, label=curve.label)
        if curve.fitted is not None:
            axes[0].plot(curve.d, curve.fitted, "--", color=color, lw=1)
        axes[1].plot(curve.d, curve.proxy, curve.style, color=color, ms=3, lw=1.3, label=curve.label)
    axes[0].axhline(0.0, color="0.5", lw=0.8)
    axes[0].set_ylabel("gold score − the SFT policy's (dashed: Gao et al.'s fitted form)")
    axes[1].set_ylabel("proxy score (reward model, SFT-normalised)")
    for ax in axes:
        ax.set_xlabel("d = √KL to the SFT reference")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
