"""Reward over-optimisation as Gao et al. 2022 measure it ("Scaling laws for reward model over-optimization").

Everything here is NumPy on arrays the device produced; nothing is sampled.

* **Best-of-n** (:func:`best_of_n_curve`): from ``N`` samples of the reference policy per prompt, the
  expected gold and proxy score of the response the proxy ranks best among ``n`` of them, for every
  ``n <= N``, by the unbiased estimator over ranks (the max of a uniformly random ``n``-subset of the
  ``N`` samples is the sample of ascending rank ``i`` with probability ``C(i-1, n-1) / C(N, n)``;
  Nakano et al. 2021, Appendix; Gao et al. 2022, Section 2).
* **Its KL to the reference** has the closed form ``log n - (n-1)/n`` (:func:`best_of_n_kl_formula`) when
  no two responses tie; where the reference repeats a response (short ones often) the best-of-n
  distribution is closer to it. :func:`best_of_n_kl_measured` computes the KL of best-of-n over the
  empirical distribution of the samples, identical responses grouped: below the formula exactly where
  samples repeat (with no repeats it equals the formula to within 1% at ``n = N``).
* **Gao's functional forms** in ``d = sqrt(KL)`` (:func:`fit_gao`): best-of-n ``R(d) = d (α - β d)``,
  RL ``R(d) = d (α - β log d)``, where ``R`` is the gold score's gain over the reference policy; fitted
  by least squares (both are linear in α, β), with R² and the peak ``d*`` (``α / 2β`` and
  ``exp(α/β - 1)``) where the fitted gold is highest.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

#: The two forms of Gao et al. 2022 (eq. 1 and 2): best-of-n and RL.
FORMS = ("bon", "rl")


def best_of_n_weights(num_samples: int, n: int) -> np.ndarray:
    """``[N]`` probabilities that the best (by proxy) of ``n`` distinct samples drawn without replacement
    from ``N`` is the one of ascending rank ``i`` (1-based): ``C(i-1, n-1) / C(N, n)``; they sum to 1."""
    if not 1 <= n <= num_samples:
        raise ValueError(f"best-of-n needs 1 <= n <= N = {num_samples} samples per prompt, got n = {n}")
    total = math.comb(num_samples, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, num_samples + 1)])


def best_of_n_curve(gold: np.ndarray, proxy: np.ndarray, ns: Sequence[int]) -> dict[str, np.ndarray]:
    """Expected gold and proxy score of best-of-n under the proxy, for each ``n`` of ``ns``.

    gold, proxy: ``[prompts, N]`` scores of ``N`` reference samples per prompt. Returns ``{"n": [k],
    "gold": [k], "proxy": [k]}`` (means over prompts; ``n = 1`` gives the reference policy's means).
    Ties in the proxy are broken by sample order; identical responses have identical gold, so their order
    does not matter.
    """
    gold, proxy = np.asarray(gold, np.float64), np.asarray(proxy, np.float64)
    if gold.shape != proxy.shape or gold.ndim != 2:
        raise ValueError(f"gold and proxy must both be [prompts, N]; got {gold.shape} and {proxy.shape}")
    order = np.argsort(proxy, axis=1, kind="stable")
    gold_sorted, proxy_sorted = np.take_along_axis(gold, order, 1), np.take_along_axis(proxy, order, 1)
    weights = np.stack([best_of_n_weights(gold.shape[1], n) for n in ns])  # [k, N]
    return {"n": np.asarray(ns), "gold": (gold_sorted @ weights.T).mean(0), "proxy": (proxy_sorted @ weights.T).mean(0)}


def best_of_n_kl_formula(n: np.ndarray | int) -> np.ndarray:
    """``log n - (n-1)/n``: KL(best-of-n ‖ reference) when responses never tie (an upper bound otherwise)."""
    n = np.asarray(n, np.float64)
    return np.log(n) - (n - 1.0) / n


def _prompt_kl(responses: np.ndarray, proxy: np.ndarray, ns: Sequence[int]) -> np.ndarray:
    """``[k]`` KL of best-of-n over one prompt's empirical distribution; responses ``[N, L]``, proxy ``[N]``."""
    _, first, counts = np.unique(responses, axis=0, return_index=True, return_counts=True)
    order = np.argsort(proxy[first], kind="stable")
    reference = counts[order] / responses.shape[0]  # mass of each distinct response, proxy ascending
    below = np.concatenate([[0.0], np.cumsum(reference)[:-1]])
    kls = []
    for n in ns:
        chosen = (below + reference) ** n - below ** n  # P(best of n draws is this response)
        keep = chosen > 0
        kls.append(float((chosen[keep] * np.log(chosen[keep] / reference[keep])).sum()))
    return np.array(kls)


def best_of_n_kl_measured(responses: np.ndarray, proxy: np.ndarray, ns: Sequence[int]) -> np.ndarray:
    """``[k]`` KL(best-of-n ‖ reference) measured on the samples, mean over prompts.

    responses: ``[prompts, N, L]`` token ids (identical rows are one response); proxy: ``[prompts, N]``.
    Best-of-n over the empirical distribution of the ``N`` samples (draws with replacement): a response
    of empirical mass ``c`` whose proxy lies above a mass ``F`` of the others is chosen with probability
    ``(F + c)^n - F^n``.
    """
    responses, proxy = np.asarray(responses), np.asarray(proxy)
    if responses.ndim != 3 or responses.shape[:2] != proxy.shape:
        raise ValueError(f"responses must be [prompts, N, L] and proxy [prompts, N]; got {responses.shape} and "
                         f"{proxy.shape}")
    return np.mean([_prompt_kl(r, p, ns) for r, p in zip(responses, proxy)], axis=0)


class GaoFit(NamedTuple):
    """A least-squares fit of Gao et al.'s form: ``R(d) = d (α - β d)`` ("bon") or ``d (α - β log d)`` ("rl").

    r2: coefficient of determination on the fitted points; d_peak: where the fitted R is highest (``inf``
    when β <= 0: no peak); r_peak: the fitted R there (``nan`` without a peak).
    """

    form: str
    alpha: float
    beta: float
    r2: float
    d_peak: float
    r_peak: float

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """The fitted ``R(d)``, ``d [k] >= 0``."""
        d = np.asarray(d, np.float64)
        return d * (self.alpha - self.beta * _shape_term(self.form, d))


def _shape_term(form: str, d: np.ndarray) -> np.ndarray:
    if form == "bon":
        return d
    with np.errstate(divide="ignore"):
        return np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), 0.0)  # d log d -> 0 as d -> 0


def fit_gao(d: np.ndarray, gain: np.ndarray, form: str) -> GaoFit:
    """Fit ``gain [k]`` (gold score minus the reference policy's) against ``d [k] = sqrt(KL) >= 0``.

    Both forms are linear in (α, β): least squares on the columns ``d`` and ``-d·d`` (bon) or ``-d·log d``
    (rl), no intercept (R(0) = 0). Needs at least 3 points and two distinct positive ``d``.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    d, gain = np.asarray(d, np.float64), np.asarray(gain, np.float64)
    if d.shape != gain.shape or d.ndim != 1 or len(d) < 3 or np.any(d < 0) or len(np.unique(d[d > 0])) < 2:
        raise ValueError("fit_gao needs matching 1-d d >= 0 and gain with at least 3 points, two distinct d > 0")
    design = np.stack([d, -d * _shape_term(form, d)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gain, rcond=None)
    residual = gain - design @ np.array([alpha, beta])
    total = np.square(gain - gain.mean()).sum()
    r2 = float(1.0 - np.square(residual).sum() / total) if total > 0 else float("nan")
    if beta <= 0:
        return GaoFit(form, float(alpha), float(beta), r2, float("inf"), float("nan"))
    d_peak = alpha / (2.0 * beta) if form == "bon" else math.exp(alpha / beta - 1.0)
    fit = GaoFit(form, float(alpha), float(beta), r2, float(d_peak), float("nan"))
    return fit._replace(r_peak=float(fit(np.array([d_peak]))[0]))
