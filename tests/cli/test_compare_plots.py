"""``compare --plot`` with its plot flags (--metric, --smooth, --x, --band) on copies of one finished run
(in-process): the figure it draws, read back from matplotlib, and the one-line errors."""

import json
import shutil

import numpy as np
import pytest
from scipy import stats as scipy_stats

from purejaxrl_ppo.analysis import plots
from purejaxrl_ppo.cli import main
from purejaxrl_ppo.runs import rundir
from purejaxrl_ppo.runs import sinks as ls

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch):
    """The figures ``compare`` draws, kept for inspection."""
    drawn = []
    original = plots.learning_curve_figure

    def keep(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "learning_curve_figure", keep)
    return drawn


def copies(finished_run, tmp_path, names):
    for name in names:
        shutil.copytree(finished_run, tmp_path / name)
    return [str(tmp_path / name) for name in names]


def assert_one_line_error(code, capsys, *parts):
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error:") and captured.err.count("\n") == 1, captured.err
    assert not captured.out  # checked before the table is printed
    for part in parts:
        assert part in captured.err, (part, captured.err)


def test_five_runs_give_a_png_with_the_legend_outside_the_axes(finished_run, tmp_path, figures, capsys):
    names = ["ppo-Breakout-MinAtar-20261207-120000", "trpo", "ppo-lr-1e-3", "ppo-clip-0.1", "ppo-clip-0.3"]
    runs = copies(finished_run, tmp_path, names)
    capsys.readouterr()
    assert main(["compare", *runs, "--plot", str(tmp_path / "cmp.png")]) == 0
    assert (tmp_path / "cmp.png").read_bytes()[:8] == PNG
    table = capsys.readouterr().out
    assert all(name[:20] in table for name in names) and "median" in table  # the summary table still comes first
    (fig,) = figures
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # compare closed the figure after saving it: draw it again to measure it
    canvas.draw()
    renderer = canvas.get_renderer()
    axes, legend = fig.axes[0].get_window_extent(renderer), fig.legends[0].get_window_extent(renderer)
    assert not axes.overlaps(legend) and legend.x0 >= axes.x1 and legend.x1 <= fig.bbox.x1
    lines = fig.axes[0].get_lines()
    assert len({(line.get_color(), str(line.get_linestyle())) for line in lines}) == 5
    assert len(fig.axes[0].collections) == 5  # one band per run
    assert "95% bootstrap CI of the IQM" in fig.legends[0].get_title().get_text()


def test_metric_and_smoothing_plot_that_metric_smoothed(finished_run, tmp_path, figures):
    (run,) = copies(finished_run, tmp_path, ["a"])
    assert main(["compare", run, "--plot", str(tmp_path / "v.png"), "--metric", "value_loss", "--smooth", "2",
                 "--band", "none"]) == 0
    with np.load(finished_run / "metrics.npz") as data:
        values, steps = data["value_loss"].astype(np.float64), data["env_steps"][0]
    expected = []  # trailing mean of each seed's last 2 updates, then the IQM across seeds
    for t in range(values.shape[1]):
        smoothed = values[:, max(0, t - 1): t + 1].mean(axis=1)
        expected.append(scipy_stats.trim_mean(smoothed, 0.25))
    (line,) = figures[0].axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-6)
    np.testing.assert_array_equal(line.get_xdata(), steps)
    assert figures[0].axes[0].get_ylabel() == "value_loss" and not figures[0].axes[0].collections


def test_unknown_metric_is_a_one_line_error_listing_the_metrics(finished_run, tmp_path, capsys):
    (run,) = copies(finished_run, tmp_path, ["a"])
    capsys.readouterr()
    assert_one_line_error(main(["compare", run, "--plot", str(tmp_path / "x.png"), "--metric", "kl"]), capsys,
                          "--metric kl", "return_curve", "value_loss", "entropy")
    assert not (tmp_path / "x.png").exists()


def test_plot_flags_need_a_plot_and_a_sensible_window(finished_run, tmp_path, capsys):
    (run,) = copies(finished_run, tmp_path, ["a"])
    capsys.readouterr()
    assert_one_line_error(main(["compare", run, "--smooth", "5", "--x", "time"]), capsys, "--smooth, --x", "--plot")
    assert_one_line_error(main(["compare", run, "--plot", str(tmp_path / "s.png"), "--smooth", "-2"]), capsys,
                          "--smooth", ">= 0")
    with pytest.raises(SystemExit):
        main(["compare", run, "--plot", str(tmp_path / "b.png"), "--band", "std"])


def test_time_axis_is_the_recorded_wall_time(finished_run, tmp_path, figures):
    runs = copies(finished_run, tmp_path, ["a", "b"])
    assert main(["compare", *runs, "--plot", str(tmp_path / "t.png"), "--x", "time"]) == 0
    table = ls.read_timing(finished_run / ls.TIMING_FILE)
    with np.load(finished_run / "metrics.npz") as data:
        updates = data["env_steps"].shape[1]
    assert table["update"][-1] == updates
    at_chunk_ends = table["update"] - 1  # each chunk's last update sits at the chunk's recorded time
    for line in figures[0].axes[0].get_lines():
        np.testing.assert_array_equal(line.get_xdata()[at_chunk_ends], table["wall_seconds"])
        np.testing.assert_array_equal(line.get_xdata(), ls.wall_seconds_per_update(table, updates))
    assert "seconds of training" in figures[0].axes[0].get_xlabel()


def test_time_axis_of_a_run_without_timing_is_a_one_line_error(finished_run, tmp_path, capsys):
    (run,) = copies(finished_run, tmp_path, ["old"])
    old = tmp_path / "old"
    (old / ls.TIMING_FILE).unlink()  # as a run finished before wall time was recorded
    names = tuple(n for n in json.loads((old / rundir.COMPLETE_FILE).read_text())["files"] if n != ls.TIMING_FILE)
    rundir.mark_complete(old, names)
    capsys.readouterr()
    assert_one_line_error(main(["compare", run, "--plot", str(tmp_path / "t.png"), "--x", "time"]), capsys,
                          "timing.csv", "--x steps")
    assert main(["compare", run, "--plot", str(tmp_path / "s.png")]) == 0  # against env steps it plots
