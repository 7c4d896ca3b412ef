"""Figures of training metrics across seeds (matplotlib, headless)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def plot_learning_curves(runs: list[tuple[str, dict[str, np.ndarray]]], path: Path, title: str = "") -> None:
    """Median episode return across seeds with an interquartile band, vs env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, metrics in runs:
        returns = np.asarray(metrics["episode_return"], dtype=np.float64)
        steps = np.asarray(metrics["env_steps"])[0]
        with warnings.catch_warnings():  # all-NaN columns (no episode ended yet) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(returns, axis=0)
            low, high = np.nanpercentile(returns, [25, 75], axis=0)
        ax.plot(steps, median, label=f"{label} (median)")
        ax.fill_between(steps, low, high, alpha=0.25, label=f"{label} (25–75%)")
    ax.set_xlabel("environment steps per seed")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
