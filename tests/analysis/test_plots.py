"""Learning-curve figures (analysis/plots.py) and the IQM's bootstrap CI (analysis/stats.py) on synthetic
curves, against NumPy/SciPy loops: smoothing, the line, the bands, the legend's place, the x-axis."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from purejaxrl_ppo.analysis import plots
from purejaxrl_ppo.analysis.stats import iqm_bootstrap_ci, return_curves


def synthetic_curves(seeds: int, updates: int, seed: int = 0) -> np.ndarray:
    """``[seeds, updates]`` rising curves with NaNs: an all-NaN first update, scattered gaps, one seed late."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(5, 10, (seeds, updates)), axis=1)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 0] = np.nan
    x[0, :4] = np.nan
    return x


def trimmed_mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return scipy_stats.trim_mean(finite, 0.25) if finite.size else np.nan


def test_smoothing_is_a_trailing_nan_aware_mean():
    curves = synthetic_curves(4, 20)
    for window in (0, 1, 3, 7):
        smoothed = plots.smooth_curves(curves, window)
        expected = np.full(curves.shape, np.nan)
        for s in range(curves.shape[0]):
            for t in range(curves.shape[1]):
                values = curves[s, max(0, t - max(window, 1) + 1): t + 1]
                values = values[~np.isnan(values)]
                if values.size:
                    expected[s, t] = values.mean()
        np.testing.assert_allclose(smoothed, expected, rtol=1e-12, err_msg=f"window {window}")
    with pytest.raises(ValueError, match=">= 0"):
        plots.smooth_curves(curves, -1)


@pytest.mark.parametrize("seeds", [1, 2, 7, 40])
def test_ci_band_is_the_percentile_bootstrap_of_the_iqm(seeds):
    """Reference: resample whole seeds explicitly, the IQM of each column's finite values with scipy."""
    curves, samples, seed = synthetic_curves(seeds, 9, seed=seeds), 300, 5
    line, low, high = plots.curve_band(curves, "ci", samples=samples, seed=seed)
    draws = np.random.default_rng(seed).integers(0, seeds, size=(samples, seeds))
    iqms = np.array([[trimmed_mean(curves[draw, j]) for j in range(curves.shape[1])] for draw in draws])
    for j in range(curves.shape[1]):
        assert line[j] == pytest.approx(trimmed_mean(curves[:, j]), rel=1e-12, nan_ok=True)
        column = iqms[:, j][~np.isnan(iqms[:, j])]
        if not column.size:  # no seed has a value yet
            assert np.isnan(low[j]) and np.isnan(high[j])
            continue
        ref_low, ref_high = np.percentile(column, [2.5, 97.5])
        assert low[j] == pytest.approx(ref_low, rel=1e-12) and high[j] == pytest.approx(ref_high, rel=1e-12)
    assert np.isnan(line[0]) and np.all((low <= line + 1e-9) | np.isnan(line))


def test_ci_confidence_and_shape_checks():
    curves = synthetic_curves(12, 5)
    wide = iqm_bootstrap_ci(curves, 200, seed=1, confidence=0.99)
    narrow = iqm_bootstrap_ci(curves, 200, seed=1, confidence=0.5)
    finite = ~np.isnan(wide[0])
    assert np.all(wide[0][finite] <= narrow[0][finite]) and np.all(wide[1][finite] >= narrow[1][finite])
    with pytest.raises(ValueError, match=r"\[seeds, n\]"):
        iqm_bootstrap_ci(curves[0], 10)


def test_iqr_band_and_no_band():
    curves = synthetic_curves(9, 6)
    line, low, high = plots.curve_band(curves, "iqr")
    for j in range(1, 6):
        finite = curves[:, j][~np.isnan(curves[:, j])]
        assert (low[j], high[j]) == pytest.approx(tuple(np.percentile(finite, [25, 75])), rel=1e-12)
    _, low, high = plots.curve_band(curves, "none")
    assert low is None and high is None
    with pytest.raises(ValueError, match="ci, iqr, none"):
        plots.curve_band(curves, "std")


def run_metrics(seeds: int, updates: int, seed: int, batch: int = 64) -> dict:
    rng = np.random.default_rng(seed)
    returns = synthetic_curves(seeds, updates, seed)
    return {
        "episode_return": returns.astype(np.float32),
        "value_loss": rng.random((seeds, updates)).astype(np.float32),
        "env_steps": np.broadcast_to(np.arange(1, updates + 1) * batch, (seeds, updates)).copy(),
    }


def figure_boxes(fig):
    """``(axes bbox, legend bbox, figure bbox)`` in display pixels, after drawing."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    return ax.get_window_extent(renderer), fig.legends[0].get_window_extent(renderer), fig.bbox


def test_five_runs_are_told_apart_and_the_legend_sits_outside_the_axes():
    labels = ["ppo-CartPole-v1-20261207-101500", "trpo-CartPole-v1-20261207-101500", "ppo lr 3e-4", "b", "c"]
    runs = [(label, run_metrics(8, 15, i)) for i, label in enumerate(labels)]
    fig = plots.learning_curve_figure(runs, title="CartPole-v1")
    axes, legend, figure = figure_boxes(fig)
    assert not axes.overlaps(legend)  # outside the data area
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 and figure.y0 <= legend.y0 and legend.y1 <= figure.y1
    lines = fig.axes[0].get_lines()
    styles = {(line.get_color(), str(line.get_linestyle())) for line in lines}
    assert len(lines) == 5 and len(styles) == 5 and len({c for c, _ in styles}) == 5
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all(len(row) <= plots.LABEL_WIDTH for text in texts for row in text.split("\n"))
    assert texts[3] == "b (8 seeds)" and "".join(texts[0].split("\n")).replace(" ", "").startswith(labels[0])
    title = fig.legends[0].get_title().get_text()
    assert "line: IQM across seeds" in title and "95% bootstrap CI of the IQM" in title
    assert fig.get_size_inches()[0] >= 8 and fig.axes[0].get_xlabel() == "environment steps per seed"


def test_line_is_the_iqm_of_the_metric_at_each_runs_x():
    metrics = run_metrics(6, 10, 3)
    fig = plots.learning_curve_figure([("a", metrics)], metric="value_loss", band="none", smooth=3)
    (line,) = fig.axes[0].get_lines()
    smoothed = plots.smooth_curves(metrics["value_loss"], 3)
    np.testing.assert_allclose(line.get_ydata(), [trimmed_mean(smoothed[:, j]) for j in range(10)], rtol=1e-12)
    np.testing.assert_array_equal(line.get_xdata(), metrics["env_steps"][0])
    assert fig.axes[0].get_ylabel() == "value_loss" and not fig.axes[0].collections  # no band
    assert "trailing\nmean of its last 3 updates" in fig.legends[0].get_title().get_text()

    fig = plots.learning_curve_figure([("a", metrics)])  # the default: the return curve, carried forward
    (line,) = fig.axes[0].get_lines()
    curves = return_curves(metrics["episode_return"])
    np.testing.assert_allclose(line.get_ydata(), [trimmed_mean(curves[:, j]) for j in range(10)], rtol=1e-12)
    assert "carried forward" in fig.axes[0].get_ylabel()


def test_evaluation_return_is_plotted_where_it_ran_and_marked_when_runs_mix():
    trained, evaluated = run_metrics(4, 8, 1), run_metrics(4, 8, 2)
    evaluated["eval_return"] = np.full((4, 8), np.nan, np.float32)
    evaluated["eval_return"][:, 3::4] = 200.0
    fig = plots.learning_curve_figure([("t", trained), ("e", evaluated)], band="iqr")
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["t (4 seeds)", "e (4 seeds) [eval]"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[1].get_ydata()[3:], 200.0)
    assert "25th–75th percentile" in fig.legends[0].get_title().get_text()


def test_time_axis_uses_the_wall_seconds_given():
    runs = [("a", run_metrics(3, 5, 0)), ("b", run_metrics(3, 5, 1))]
    wall = [np.array([0.5, 1.0, 1.5, 2.5, 3.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])]
    fig = plots.learning_curve_figure(runs, x="time", wall_seconds=wall)
    for line, seconds in zip(fig.axes[0].get_lines(), wall):
        np.testing.assert_array_equal(line.get_xdata(), seconds)
    assert "seconds of training" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="wall_seconds"):
        plots.learning_curve_figure(runs, x="time")
    with pytest.raises(ValueError, match="steps, time"):
        plots.learning_curve_figure(runs, x="updates")


def test_unknown_metric_names_the_available_ones(tmp_path):
    metrics = run_metrics(2, 3, 0)
    assert plots.metric_names(metrics) == ["return_curve", "episode_return", "value_loss"]
    with pytest.raises(KeyError, match="available: return_curve, episode_return, value_loss"):
        plots.run_curves(metrics, "kl")
    path = tmp_path / "curves.png"
    plots.plot_learning_curves([("a", metrics)], path, title="t", band="none")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
