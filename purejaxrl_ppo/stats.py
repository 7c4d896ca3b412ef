"""Host-side summaries of training metrics across seeds (NumPy, no jax)."""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

#: Updates averaged into a seed's final return (:func:`final_returns`).
FINAL_RETURN_WINDOW = 10


def final_returns(episode_return: np.ndarray, last: int = FINAL_RETURN_WINDOW) -> np.ndarray:
    """Per-seed final return: mean of ``episode_return`` over the last ``last`` updates.

    episode_return: ``[seeds, num_updates]`` (NaN where no episode ended); returns ``[seeds]``.
    Updates with no finished episode are ignored; a seed with none in the window is NaN.
    """
    window = np.asarray(episode_return, dtype=np.float64)[..., -last:]
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(window)
        total = np.where(valid, window, 0.0).sum(-1)
        count = valid.sum(-1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end), NaNs dropped."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(scipy_stats.trim_mean(x, 0.25)) if x.size else float("nan")


def summarize(per_seed: np.ndarray) -> dict[str, float]:
    """Median, IQM, mean, min and max across seeds of a ``[seeds]`` array."""
    x = np.asarray(per_seed, dtype=np.float64)
    finite = x[~np.isnan(x)]
    if not finite.size:
        return {k: float("nan") for k in ("median", "iqm", "mean", "min", "max")}
    return {
        "median": float(np.median(finite)),
        "iqm": iqm(finite),
        "mean": float(finite.mean()),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }
