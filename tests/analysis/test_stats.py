"""Across-seed summaries (analysis/stats.py)."""

import numpy as np
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.analysis.stats import nan_iqm


def _reference_final_return(row, last):
    """A loop over updates: the last finished episode's return, carried forward, averaged over the window."""
    carried, window = float("nan"), []
    for t, value in enumerate(row):
        if not np.isnan(value):
            carried = float(value)
        if t >= len(row) - last:
            window.append(carried)
    known = [v for v in window if not np.isnan(v)]
    return sum(known) / len(known) if known else float("nan")


def test_final_returns_carry_the_last_finished_episode_forward():
    returns = np.array([[1.0, 2.0, np.nan, 4.0], [np.nan, np.nan, np.nan, np.nan], [0.0, 10.0, 20.0, np.nan]])
    # row 0: window (2, 2, 4); row 2: window (10, 20, 20); row 1 never finished an episode
    np.testing.assert_allclose(pjp.final_returns(returns, last=3), [8 / 3, np.nan, 50 / 3])
    rng = np.random.default_rng(0)
    random = np.where(rng.random((6, 40)) < 0.3, rng.normal(size=(6, 40)), np.nan)
    np.testing.assert_allclose(pjp.final_returns(random), [_reference_final_return(r, 10) for r in random])
    assert pjp.final_returns(random[None]).shape == (1, 6)  # leading axes (a sweep grid) are kept
    with pytest.raises(ValueError, match="positive"):
        pjp.final_returns(random, last=0)


def test_a_seed_that_stopped_failing_keeps_its_last_return():
    """The user's report: two of four seeds balanced through the whole window, so no episode ended there."""
    returns = np.full((4, 30), np.nan)
    returns[0, 5] = 1000.0  # solved early: one 1000-step episode, then none ended
    returns[1, ::2] = 95.0
    returns[2, 10:] = np.linspace(600.0, 654.0, 20)
    returns[3, 12] = 1000.0
    finals = pjp.final_returns(returns)
    assert finals[0] == 1000.0 and finals[3] == 1000.0
    s = pjp.summarize(finals)
    assert s["seeds"] == 4 and s["of"] == 4 and s["max"] == 1000.0


def test_final_return_metric_prefers_evaluation_where_it_ran():
    from purejaxrl_ppo.analysis.stats import final_return_metric, run_final_returns

    train = np.array([[1.0, 2.0, 3.0]])
    assert final_return_metric({"episode_return": train}) == "episode_return"
    assert final_return_metric({"episode_return": train, "eval_return": np.full((1, 3), np.nan)}) == "episode_return"
    evaluated = {"episode_return": train, "eval_return": np.array([[np.nan, 7.0, np.nan]])}
    finals, name = run_final_returns(evaluated)
    assert name == "eval_return" and finals.tolist() == [7.0]
    with pytest.raises(KeyError, match="no return metric"):
        final_return_metric({"loss": train})


def test_forward_fill_carries_across_chunks():
    from purejaxrl_ppo.analysis.stats import forward_fill

    x = np.array([[np.nan, 1.0, np.nan, np.nan, 5.0, np.nan], [np.nan] * 6])
    whole = forward_fill(x)
    first = forward_fill(x[:, :3])
    np.testing.assert_array_equal(np.concatenate([first, forward_fill(x[:, 3:], first[:, -1])], axis=1), whole)
    np.testing.assert_array_equal(whole[0], [np.nan, 1.0, 1.0, 1.0, 5.0, 5.0])


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.arange(1.0, 9.0)  # 1..8: the middle half is 3, 4, 5, 6
    assert pjp.iqm(x) == pytest.approx(4.5)
    assert pjp.iqm(np.array([np.nan, 1.0, 2.0, 3.0, 100.0])) == pytest.approx(2.5)  # middle of 1,2,3,100


def test_summarize_reports_median_iqm_mean_min_max():
    s = pjp.summarize(np.array([1.0, 2.0, 3.0, np.nan, 10.0]))
    assert s == {"median": 2.5, "iqm": pytest.approx(2.5), "mean": 4.0, "min": 1.0, "max": 10.0, "seeds": 4, "of": 5}
    empty = pjp.summarize(np.array([np.nan]))
    assert empty.pop("seeds") == 0 and empty.pop("of") == 1
    assert all(np.isnan(v) for v in empty.values())


def test_nan_iqm_handles_all_nan_rows():
    x = np.array([[1.0, 2.0, 3.0, 100.0], [np.nan] * 4])
    np.testing.assert_allclose(nan_iqm(x), [2.5, np.nan])
