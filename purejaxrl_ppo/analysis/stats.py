"""Summaries of training metrics across seeds (NumPy, no jax): the one final-return definition, the one IQM.

**Final return** (everywhere: the ``train`` summary, ``compare``, the learning curves, the results pages,
:func:`final_returns`): a seed's *return curve* is, per update, the mean return of the episodes that ended
in that update's rollout, carried forward over updates where none ended (:func:`return_curves`); its final
return is the mean of that curve over the last :data:`FINAL_RETURN_WINDOW` updates. Carrying forward
matters: a policy that stopped failing ends no episode for many updates (a 1000-step Brax episode with
32-step rollouts ends once every ~31 updates), and a mean over finished episodes alone would drop exactly
the seeds that solved the task. Where periodic evaluation runs (``eval_every`` > 0, an ``eval_return``
metric), the evaluation return takes the place of the training return (:func:`final_return_metric`).
A seed that never finished an episode (or was never evaluated) has no final return (NaN); every summary
says how many seeds its numbers cover (:func:`summarize`'s ``seeds``).
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

#: Updates averaged into a seed's final return (:func:`final_returns`).
FINAL_RETURN_WINDOW = 10

#: The return metrics, in the order :func:`final_return_metric` prefers them.
RETURN_METRICS = ("eval_return", "episode_return")


def forward_fill(curves: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
    """Replace NaNs along the last axis by the last finite value before them.

    curves: ``[..., updates]``; initial: ``[...]`` values carried in from before the first update (a
    previous chunk's last filled values; NaN or None: nothing). Leading NaNs with nothing to carry stay NaN.
    Returns float64 ``[..., updates]``.
    """
    x = np.asarray(curves, np.float64)
    if initial is not None:
        x = np.concatenate([np.asarray(initial, np.float64)[..., None], x], axis=-1)
    idx = np.where(np.isnan(x), 0, np.arange(x.shape[-1]))
    idx = np.maximum.accumulate(idx, axis=-1)
    filled = np.take_along_axis(x, idx, axis=-1)
    first_finite = np.maximum.accumulate(~np.isnan(x), axis=-1)
    filled = np.where(first_finite, filled, np.nan)
    return filled if initial is None else filled[..., 1:]


def return_curves(episode_return: np.ndarray) -> np.ndarray:
    """Return curves ``[..., updates]``: the return of the last finished episodes carried forward.

    episode_return: ``[..., updates]``, per update the mean return of the episodes that ended in its
    rollout (NaN where none ended). Updates before the first finished episode stay NaN.
    """
    return forward_fill(episode_return)


def final_returns(episode_return: np.ndarray, last: int = FINAL_RETURN_WINDOW) -> np.ndarray:
    """Per-seed final return: the mean of the return curve (:func:`return_curves`) over the last ``last`` updates.

    episode_return: ``[..., seeds, num_updates]`` (NaN where no episode ended); returns ``[..., seeds]``
    float64, NaN for a seed that never finished an episode. A seed that ended no episode in the window
    keeps the return of its last finished episode.
    """
    if last < 1:
        raise ValueError(f"last must be a positive number of updates, got {last}")
    window = return_curves(episode_return)[..., -last:]
    valid = ~np.isnan(window)
    total = np.where(valid, window, 0.0).sum(-1)
    count = valid.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def final_return_metric(metrics: Mapping[str, np.ndarray]) -> str:
    """The metric final returns are read from: ``eval_return`` where periodic evaluation ran, else ``episode_return``."""
    for name in RETURN_METRICS:
        if name in metrics and np.isfinite(np.asarray(metrics[name], np.float64)).any():
            return name
    if "episode_return" not in metrics:
        raise KeyError(f"no return metric among {sorted(metrics)}; expected one of {RETURN_METRICS}")
    return "episode_return"


def run_final_returns(metrics: Mapping[str, np.ndarray], last: int = FINAL_RETURN_WINDOW) -> tuple[np.ndarray, str]:
    """``(final returns [..., seeds], metric name)`` of a run's metrics ``{name: [..., seeds, updates]}``."""
    name = final_return_metric(metrics)
    return final_returns(metrics[name], last), name


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


def summarize(per_seed: np.ndarray) -> dict[str, float | int]:
    """Median, IQM, mean, min and max across seeds of a ``[seeds]`` array, NaNs left out.

    ``seeds`` is how many seeds those numbers cover (the non-NaN entries) and ``of`` how many there are.
    """
    x = np.asarray(per_seed, dtype=np.float64).ravel()
    finite = x[~np.isnan(x)]
    cover = {"seeds": int(finite.size), "of": int(x.size)}
    if not finite.size:
        return {**{k: float("nan") for k in ("median", "iqm", "mean", "min", "max")}, **cover}
    return {
        "median": float(np.median(finite)),
        "iqm": iqm(finite),
        "mean": float(finite.mean()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        **cover,
    }


def iqm_bootstrap_ci(values: np.ndarray, samples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap confidence interval of the across-seed IQM (:func:`nan_iqm`), per column.

    values: ``[seeds, n]`` (NaN: no value, left out as :func:`nan_iqm` leaves it out). Each of ``samples``
    resamples draws ``seeds`` seeds with replacement (``np.random.default_rng(seed).integers(0, seeds,
    (samples, seeds))``), the same seeds for every column, i.e. whole curves; the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the resampled IQMs. Returns
    ``(low [n], high [n])`` float64, NaN where a column has no finite value.

    A resample's IQM is computed from how often it drew each seed (no resampled array is sorted): the
    seeds are sorted once per column, and each value counts as many times as its copies fall inside the
    middle ranks ``[⌊m/4⌋, m - ⌊m/4⌋)`` of the ``m`` finite values drawn. Same numbers as resampling
    explicitly, up to float rounding, at a fraction of the cost for thousands of seeds.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 2:
        raise ValueError(f"values must be [seeds, n], got shape {x.shape}")
    seeds, n = x.shape
    draws = np.random.default_rng(seed).integers(0, seeds, size=(samples, seeds))
    counts = np.zeros((samples, seeds), np.int64)  # [B, seeds] copies of each seed in each resample
    np.add.at(counts, (np.arange(samples)[:, None], draws), 1)
    order = np.argsort(x, axis=0)  # [seeds, n], NaNs last
    ordered = np.take_along_axis(x, order, axis=0)
    finite = ~np.isnan(ordered)
    iqms = np.empty((samples, n))
    block = max(1, (1 << 23) // max(samples * seeds, 1))  # columns at a time: ~64 MiB of int64 counts
    for first in range(0, n, block):
        cols = slice(first, first + block)
        copies = counts[:, order[:, cols]] * finite[None, :, cols]  # [B, seeds, cols] of the k-th smallest value
        drawn = copies.sum(1)  # [B, cols] finite values in the resample
        cut = drawn // 4  # scipy.stats.trim_mean's int(0.25 * m) per end, as nan_iqm
        end = np.cumsum(copies, axis=1)  # ranks [end - copies, end) hold the copies of the k-th value
        inside = np.minimum(end, (drawn - cut)[:, None]) - np.maximum(end - copies, cut[:, None])
        total = (np.clip(inside, 0, None) * np.nan_to_num(ordered[None, :, cols])).sum(1)
        kept = drawn - 2 * cut
        with np.errstate(invalid="ignore", divide="ignore"):
            iqms[:, cols] = np.where(kept > 0, total / np.maximum(kept, 1), np.nan)
    tail = 50.0 * (1.0 - confidence)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no seed has a value yet)
        low, high = np.nanpercentile(iqms, [tail, 100.0 - tail], axis=0)
    return low, high
