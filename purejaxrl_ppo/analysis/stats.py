"""Summaries of training metrics across seeds (NumPy, no jax): final returns, the one IQM, summaries."""

from __future__ import annotations

import numpy as np

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


def nan_iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last axis ignoring NaNs (the definition :func:`iqm` uses), vectorised.

    ``x``: ``[..., seeds]`` -> ``[...]``; all-NaN rows give NaN.
    """
    x = np.sort(np.asarray(x, np.float64), axis=-1)  # NaNs sort last
    count = (~np.isnan(x)).sum(-1)
    cut = np.floor(count * 0.25).astype(int)  # scipy.stats.trim_mean's int(0.25 * n) per end
    rank = np.arange(x.shape[-1])
    keep = (rank >= cut[..., None]) & (rank < (count - cut)[..., None])
    total = np.where(keep, np.nan_to_num(x), 0.0).sum(-1)
    kept = keep.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(kept > 0, total / np.maximum(kept, 1), np.nan)


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end), NaNs dropped."""
    return float(nan_iqm(np.asarray(x, dtype=np.float64).ravel()))


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
