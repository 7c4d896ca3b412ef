"""Across-seed summaries (analysis/stats.py)."""

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.analysis.stats import nan_iqm


def test_final_returns_average_the_last_updates_ignoring_nan():
    returns = np.array([[1.0, 2.0, np.nan, 4.0], [np.nan, np.nan, np.nan, np.nan], [0.0, 10.0, 20.0, np.nan]])
    np.testing.assert_allclose(pjp.final_returns(returns, last=3), [3.0, np.nan, 15.0])


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.arange(1.0, 9.0)  # 1..8: the middle half is 3, 4, 5, 6
    assert pjp.iqm(x) == pytest.approx(4.5)
    assert pjp.iqm(np.array([np.nan, 1.0, 2.0, 3.0, 100.0])) == pytest.approx(2.5)  # middle of 1,2,3,100


def test_summarize_reports_median_iqm_mean_min_max():
    s = pjp.summarize(np.array([1.0, 2.0, 3.0, np.nan, 10.0]))
    assert s == {"median": 2.5, "iqm": pytest.approx(2.5), "mean": 4.0, "min": 1.0, "max": 10.0}
    assert all(np.isnan(v) for v in pjp.summarize(np.array([np.nan])).values())


def test_nan_iqm_handles_all_nan_rows():
    x = np.array([[1.0, 2.0, 3.0, 100.0], [np.nan] * 4])
    np.testing.assert_allclose(nan_iqm(x), [2.5, np.nan])
