"""study_stats on synthetic scores with known answers."""

import numpy as np
import pytest

from purejaxrl_ppo.analysis import study as ss
from purejaxrl_ppo.analysis.stats import final_returns


def test_normalize_scores_maps_random_to_0_and_reference_to_1():
    np.testing.assert_allclose(ss.normalize_scores([20.0, 500.0, 260.0], 20.0, 500.0), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(ss.normalize_scores([-500.0, -100.0], -500.0, -100.0), [0.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        ss.normalize_scores([1.0], 3.0, 3.0)


def test_iqm_of_a_known_array():
    # 8 values, sorted -50, 1, ..., 6, 100: the middle 50% are 2, 3, 4, 5
    assert ss.iqm(np.array([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0])) == pytest.approx(3.5)
    assert ss.iqm(np.arange(12.0).reshape(4, 3)) == pytest.approx(np.mean(np.arange(3, 9)))


def test_forward_fill_and_auc():
    curves = np.array([[np.nan, 1.0, np.nan, 3.0], [0.0, np.nan, np.nan, np.nan], [np.nan] * 4])
    filled = ss.forward_fill(curves)
    np.testing.assert_array_equal(filled[0], [np.nan, 1.0, 1.0, 3.0])
    np.testing.assert_array_equal(filled[1], [0.0, 0.0, 0.0, 0.0])
    auc = ss.area_under_curve(curves)
    assert auc[0] == pytest.approx((1 + 1 + 3) / 3)  # leading NaN ignored
    assert auc[1] == 0.0 and np.isnan(auc[2])
    # a linear ramp 0 -> 1 over 101 updates has AUC 0.5
    assert ss.area_under_curve(np.linspace(0, 1, 101)) == pytest.approx(0.5)


def test_final_score_carries_the_last_finished_episode_into_the_window():
    # 15 updates; the window is the last 10. Run 0 finished its last episode before the window (a long
    # episode still running), run 1 has one episode inside it, run 2 never finished one.
    curves = np.full((3, 15), np.nan)
    curves[0, 2] = 0.9
    curves[1, 3], curves[1, 12] = 0.2, 0.6
    final = ss.final_scores(curves)
    assert final[0] == pytest.approx(0.9)
    assert final[1] == pytest.approx((7 * 0.2 + 3 * 0.6) / 10)  # 0.2 carried over updates 5-11, 0.6 over 12-14
    assert np.isnan(final[2])
    np.testing.assert_array_equal(final_returns(curves), final)  # the study's final score is the library's


def test_running_mean_and_steps_to_threshold():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(ss.running_mean(x, 2), [0.0, 0.5, 1.5, 2.5, 3.5])
    steps = np.array([10, 20, 30, 40, 50])
    curves = np.array([x, x * 0.1, [0.0, 0.0, 9.0, 0.0, 0.0]])
    out = ss.steps_to_threshold(curves, steps, threshold=2.5, window=2)
    # row 0: running mean reaches 2.5 at index 3; row 1 never; row 2: mean(0, 9) = 4.5 at index 2
    np.testing.assert_array_equal(out, [40.0, np.inf, 30.0])
    # window 1 = the raw curve
    assert ss.steps_to_threshold(x, steps, 2.0, window=1) == 30.0


def test_aggregate_estimates_known_point_and_ci_width():
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(1.0, 0.1, size=(200, 2)), "b": np.full((50, 3), 0.25)}
    points, intervals = ss.aggregate_estimates(scores, reps=500)
    assert points["b"]["iqm"] == pytest.approx(0.25) and points["b"]["mean"] == pytest.approx(0.25)
    assert intervals["b"]["mean"] == pytest.approx((0.25, 0.25))  # no variance, no width
    assert points["a"]["mean"] == pytest.approx(scores["a"].mean())
    lo, hi = intervals["a"]["mean"]
    # mean of 400 N(1, 0.1²) values: 95% CI ≈ ±1.96·0.1/√400 ≈ ±0.0098
    assert lo < scores["a"].mean() < hi
    assert 0.012 < hi - lo < 0.028


def test_bootstrap_ci_covers_the_true_mean_in_most_repeats():
    rng = np.random.default_rng(1)
    covered = 0
    repeats = 40
    for i in range(repeats):
        scores = {"x": rng.exponential(1.0, size=(30, 2))}  # true mean 1, skewed
        _, intervals = ss.aggregate_estimates(scores, reps=300, seed=i)
        lo, hi = intervals["x"]["mean"]
        covered += lo <= 1.0 <= hi
    # nominal 95%; percentile bootstrap on n = 60 undercovers a little. Binomial(40, 0.93): ≥ 33 w.p. > 0.97
    assert covered >= 33


def test_probability_of_improvement_known_answers():
    x = np.array([[2.0], [3.0], [4.0]])
    y = np.array([[1.0], [1.5], [0.0]])
    p, (lo, hi) = ss.probability_of_improvement(x, y, reps=200)
    assert p == pytest.approx(1.0) and lo == pytest.approx(1.0)
    p, _ = ss.probability_of_improvement(y, x, reps=200)
    assert p == pytest.approx(0.0)
    # ties count one half
    p, _ = ss.probability_of_improvement(np.ones((4, 2)), np.ones((5, 2)), reps=200)
    assert p == pytest.approx(0.5)
    # x = [1, 3], y = [2]: one of two pairs wins
    p, _ = ss.probability_of_improvement(np.array([[1.0], [3.0]]), np.array([[2.0]]), reps=200)
    assert p == pytest.approx(0.5)


def test_performance_profile_is_the_fraction_above_tau():
    scores = {"a": np.array([[0.1, 0.6], [0.4, 0.9]])}
    profiles, _ = ss.performance_profiles(scores, [0.0, 0.5, 1.0], reps=50)
    np.testing.assert_allclose(profiles["a"], [1.0, 0.5, 0.0])


def test_iqm_curves_point_and_band():
    rng = np.random.default_rng(2)
    curves = {"a": np.linspace(0, 1, 20)[None, :] + rng.normal(0, 0.05, size=(16, 20))}
    point, ci = ss.iqm_curves(curves, reps=200)
    assert point["a"].shape == (20,) and ci["a"].shape == (2, 20)
    assert np.all(ci["a"][0] <= point["a"] + 1e-12) and np.all(point["a"] <= ci["a"][1] + 1e-12)
    np.testing.assert_allclose(point["a"], np.linspace(0, 1, 20), atol=0.06)
