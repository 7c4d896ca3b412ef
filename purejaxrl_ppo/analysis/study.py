"""Statistics for comparing algorithms across seeds and environments (rliable).

Follows Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice":
scores are normalised per environment, aggregated with the interquartile mean
(IQM) and the mean, and given 95% stratified-bootstrap confidence intervals
(runs resampled with replacement within each environment); performance
profiles and the probability of improvement complete the picture. The rliable
library does the bootstrap; this module fixes the definitions:

* **Normalised score** of a return ``R`` on an environment with range
  ``(low, high)``: ``(R - low) / (high - low)``: 0 is the random policy, 1 the
  reference score (see ``benchmarks/sample_efficiency.py`` for the table).
* **Learning curve**: the library's return curve
  (:func:`~purejaxrl_ppo.analysis.stats.return_curves`): the per-update mean return of
  the episodes that ended in that update's rollout, forward-filled over updates where
  none ended (leading updates before the first episode ended stay NaN).
* **Final score**: the library's final return of the normalised curve
  (:func:`~purejaxrl_ppo.analysis.stats.final_returns`, the mean over the last
  ``FINAL_RETURN_WINDOW`` updates of the forward-filled curve; :func:`final_scores`).
* **AUC**: the mean of the normalised learning curve over all updates (NaN
  leading updates ignored): 1 means the reference score from the first update on.
* **Steps to threshold**: the env steps at the first update where the running
  mean of the learning curve over the last ``window`` updates (fewer at the
  start) reaches the threshold; ``inf`` if it never does (censored).

Score arrays follow rliable: ``{algorithm: [runs, tasks]}``.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from purejaxrl_ppo.analysis.stats import final_returns, forward_fill
from purejaxrl_ppo.analysis.stats import iqm  # noqa: F401  (re-exported: the study's point IQM, NaNs dropped)

#: Updates in the running mean that must reach the threshold (:func:`steps_to_threshold`).
THRESHOLD_WINDOW = 10


def _rliable():
    # imported lazily: rliable pulls in arch/statsmodels/pandas, which training never needs
    from rliable import library, metrics

    # rliable 1.2 seeds arch's bootstrap with `random_state`, which arch 7 deprecates (but honours)
    warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
    return library, metrics


def normalize_scores(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(scores - low) / (high - low)``; raises if ``high == low``."""
    if high == low:
        raise ValueError(f"normalisation range is empty: low = high = {low}")
    return (np.asarray(scores, np.float64) - low) / (high - low)


def final_scores(curves: np.ndarray) -> np.ndarray:
    """Final score per run: mean of the forward-filled curves ``[..., updates]`` over the last updates -> ``[...]``."""
    return final_returns(curves)


def area_under_curve(curves: np.ndarray) -> np.ndarray:
    """Mean over updates of (forward-filled) curves ``[..., updates]`` -> ``[...]``, NaNs ignored."""
    filled = forward_fill(curves)
    valid = ~np.isnan(filled)
    count = valid.sum(-1)
    total = np.where(valid, filled, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def running_mean(curves: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` entries (fewer at the start), NaNs ignored."""
    x = np.asarray(curves, np.float64)
    valid = ~np.isnan(x)
    csum = np.cumsum(np.where(valid, x, 0.0), axis=-1)
    ccount = np.cumsum(valid, axis=-1)
    pad = [(0, 0)] * (x.ndim - 1) + [(window, 0)]
    csum_lag = np.pad(csum, pad)[..., : x.shape[-1]]
    ccount_lag = np.pad(ccount, pad)[..., : x.shape[-1]]
    total, count = csum - csum_lag, ccount - ccount_lag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def steps_to_threshold(
    curves: np.ndarray, env_steps: np.ndarray, threshold: float, window: int = THRESHOLD_WINDOW
) -> np.ndarray:
    """Env steps at which the ``window``-update running mean first reaches ``threshold``.

    curves: ``[..., updates]`` returns (raw or normalised, matching ``threshold``);
    env_steps: ``[updates]`` cumulative env steps after each update.
    Returns ``[...]`` float64, ``inf`` where the threshold is never reached.
    """
    reached = running_mean(forward_fill(curves), window) >= threshold
    first = np.argmax(reached, axis=-1)
    steps = np.asarray(env_steps, np.float64)[first]
    return np.where(reached.any(-1), steps, np.inf)


def aggregate_estimates(
    score_dict: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, tuple[float, float]]]]:
    """IQM and mean of ``{algorithm: [runs, tasks]}`` scores with 95% stratified-bootstrap CIs.

    Returns ``(points, intervals)``: ``points[algo]["iqm"|"mean"]`` and
    ``intervals[algo]["iqm"|"mean"] = (low, high)``.
    """
    library, metrics = _rliable()

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    point, interval = library.get_interval_estimates(
        dict(score_dict), aggregate, reps=reps, random_state=np.random.RandomState(seed)
    )
    names = ("iqm", "mean")
    points = {a: {n: float(point[a][i]) for i, n in enumerate(names)} for a in point}
    intervals = {a: {n: (float(interval[a][0, i]), float(interval[a][1, i])) for i, n in enumerate(names)} for a in interval}
    return points, intervals


def probability_of_improvement(
    x_scores: np.ndarray, y_scores: np.ndarray, reps: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """P(X > Y): the chance a run of X beats a run of Y on a random task, with a 95% CI.

    x_scores, y_scores: ``[runs, tasks]`` (runs may differ). Ties count ½
    (Mann–Whitney U per task, averaged over tasks).
    """
    library, metrics = _rliable()
    point, interval = library.get_interval_estimates(
        {"pair": [np.asarray(x_scores), np.asarray(y_scores)]}, metrics.probability_of_improvement,
        reps=reps, random_state=np.random.RandomState(seed),
    )
    low, high = np.ravel(interval["pair"])
    return float(np.squeeze(point["pair"])), (float(low), float(high))


def performance_profiles(
    score_dict: Mapping[str, np.ndarray], taus: Sequence[float], reps: int = 2000
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs with normalised score > τ for each τ, with bootstrap CIs (rliable)."""
    library, _ = _rliable()
    return library.create_performance_profile(dict(score_dict), np.asarray(taus), reps=reps)


def iqm_curves(
    curves: Mapping[str, np.ndarray], reps: int = 500, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-update IQM across runs of ``{algorithm: [runs, updates]}`` curves, with 95% bootstrap CIs.

    Runs are resampled as whole curves. Returns ``(iqm [updates], ci [2, updates])`` per algorithm;
    NaN entries (no episode ended yet) should be forward-filled first.
    """
    library, _ = _rliable()

    def per_update_iqm(x: np.ndarray) -> np.ndarray:  # x: [runs, 1, updates]
        return scipy_stats.trim_mean(x[:, 0, :], proportiontocut=0.25, axis=0)

    score_dict = {k: np.asarray(v, np.float64)[:, None, :] for k, v in curves.items()}
    return library.get_interval_estimates(score_dict, per_update_iqm, reps=reps,
                                          random_state=np.random.RandomState(seed))
