"""The RLHF figures draw what they are given: gold and proxy on separate axes against d = √KL."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from purejaxrl_ppo.analysis import rlhf_plots  # noqa: E402


def _axes_of_saved_figure(monkeypatch):
    """Capture the figure each plot function saves (savefig still writes the file)."""
    import matplotlib.figure

    saved = []
    original = matplotlib.figure.Figure.savefig

    def capture(fig, *args, **kwargs):
        saved.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    return saved


def test_overoptimisation_plot_puts_gold_and_proxy_on_separate_axes_against_sqrt_kl(tmp_path, monkeypatch):
    saved = _axes_of_saved_figure(monkeypatch)
    kl = np.array([[0.0, 1.0, 4.0], [0.0, 1.0, 4.0]])
    trajectory = {"kl_to_reference": kl, "gold_score": kl * 0.1, "proxy_score": kl * 0.5}
    point = rlhf_plots.SweepPoint("β=0", np.array([9.0, 9.0]), np.array([0.2, 0.4]), np.array([1.0, 1.2]))
    rlhf_plots.plot_overoptimisation(trajectory, [point], tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 0
    gold_ax, proxy_ax = saved[0].axes
    np.testing.assert_allclose(gold_ax.lines[0].get_xdata(), [0.0, 1.0, 2.0])  # d = √KL of the median
    np.testing.assert_allclose(gold_ax.lines[0].get_ydata(), [0.0, 0.1, 0.4])
    np.testing.assert_allclose(proxy_ax.lines[0].get_ydata(), [0.0, 0.5, 2.0])
    assert "√KL" in gold_ax.get_xlabel() and "proxy" in proxy_ax.get_ylabel()


def test_gao_plot_draws_each_curve_and_its_fit(tmp_path, monkeypatch):
    saved = _axes_of_saved_figure(monkeypatch)
    d = np.array([0.0, 1.0, 2.0])
    curves = [rlhf_plots.GaoCurve("bon", d, d * 0.1, d, "o-", d * 0.09),
              rlhf_plots.GaoCurve("rl", d, d * 0.2, d * 2, "-", None)]
    rlhf_plots.plot_gao(curves, tmp_path / "g.png", "t")
    gold_ax, proxy_ax = saved[0].axes
    assert len(gold_ax.lines) == 4  # two curves, one fit, the zero line
    np.testing.assert_allclose(gold_ax.lines[1].get_ydata(), d * 0.09)
    np.testing.assert_allclose(proxy_ax.lines[1].get_ydata(), d * 2)
