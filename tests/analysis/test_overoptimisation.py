"""Best-of-n estimators and Gao et al.'s fits against brute force on hand-made arrays."""

import itertools

import numpy as np
import pytest

from purejaxrl_ppo.analysis import overoptimisation as oo


def brute_force_best_of_n(gold: np.ndarray, proxy: np.ndarray, n: int) -> tuple[float, float]:
    """Mean over prompts and over every n-subset of the samples of the gold/proxy of the proxy's best."""
    golds, proxies = [], []
    for g, p in zip(gold, proxy):
        picks = [max(subset, key=lambda i: (p[i], i)) for subset in itertools.combinations(range(len(p)), n)]
        golds.append(np.mean(g[picks]))
        proxies.append(np.mean(p[picks]))
    return float(np.mean(golds)), float(np.mean(proxies))


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_best_of_n_equals_the_average_over_every_subset(n):
    rng = np.random.default_rng(0)
    gold, proxy = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    curve = oo.best_of_n_curve(gold, proxy, [n])
    expected = brute_force_best_of_n(gold, proxy, n)
    np.testing.assert_allclose([curve["gold"][0], curve["proxy"][0]], expected, rtol=1e-12)
    np.testing.assert_allclose(oo.best_of_n_weights(6, n).sum(), 1.0, rtol=1e-12)


def test_best_of_n_refuses_n_beyond_the_samples():
    with pytest.raises(ValueError, match="1 <= n <= N = 4"):
        oo.best_of_n_weights(4, 5)
    with pytest.raises(ValueError, match=r"\[prompts, N\]"):
        oo.best_of_n_curve(np.zeros(4), np.zeros(4), [1])


def test_measured_kl_is_the_formula_without_ties_and_below_it_with_ties():
    rng = np.random.default_rng(1)
    ns = [1, 2, 8, 64, 256]
    distinct = np.arange(2 * 256).reshape(2, 256, 1)  # every response different
    proxy = rng.normal(size=(2, 256))
    np.testing.assert_allclose(oo.best_of_n_kl_measured(distinct, proxy, ns), oo.best_of_n_kl_formula(ns),
                               rtol=0.01, atol=1e-12)
    # a response repeated: half the samples are the same (top-ranked) response
    tied = distinct.copy()
    tied[:, :128] = -1
    proxy_tied = proxy.copy()
    proxy_tied[:, :128] = 10.0
    measured = oo.best_of_n_kl_measured(tied, proxy_tied, ns)
    # by hand: the repeated response has mass 1/2 and is best; best-of-n picks it with 1 - (1/2)^n,
    # each other response (mass 1/256, rank j of 128 below it) with ((j+1)/256)^n - (j/256)^n
    for n, kl in zip(ns, measured):
        top = 1 - 0.5 ** n
        below = [((j + 1) / 256) ** n - (j / 256) ** n for j in range(128)]
        expected = top * np.log(top / 0.5) + sum(q * np.log(q * 256) for q in below if q > 0)
        np.testing.assert_allclose(kl, expected, rtol=1e-9, atol=1e-12)
    assert np.all(measured[1:] < oo.best_of_n_kl_formula(ns)[1:])


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_recovers_the_parameters_and_the_peak(form):
    d = np.linspace(0.0, 4.0, 30)
    truth = oo.GaoFit(form, 0.6, 0.2, 1.0, 0.0, 0.0)
    fit = oo.fit_gao(d, truth(d), form)
    np.testing.assert_allclose([fit.alpha, fit.beta, fit.r2], [0.6, 0.2, 1.0], rtol=1e-9)
    grid = np.linspace(1e-6, 50.0, 2_000_001)
    np.testing.assert_allclose(fit.d_peak, grid[np.argmax(fit(grid))], atol=1e-4)
    np.testing.assert_allclose(fit.r_peak, fit(grid).max(), rtol=1e-9)
    noisy = oo.fit_gao(d, truth(d) + np.random.default_rng(2).normal(scale=0.05, size=d.shape), form)
    assert 0.8 < noisy.r2 < 1.0


def test_fit_without_a_peak_and_bad_input():
    d = np.linspace(0.0, 3.0, 10)
    rising = oo.fit_gao(d, 0.5 * d + 0.1 * d * d, "bon")  # β < 0: no peak
    assert rising.beta < 0 and rising.d_peak == np.inf and np.isnan(rising.r_peak)
    with pytest.raises(ValueError, match="form"):
        oo.fit_gao(d, d, "ppo")
    with pytest.raises(ValueError, match="at least 3"):
        oo.fit_gao(d[:2], d[:2], "bon")
