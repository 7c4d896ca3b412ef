"""Learning-curve figures across seeds (matplotlib, headless): the one plot of ``train`` and ``compare``.

:func:`plot_learning_curves` draws every learning-curve figure: the ``learning_curve.png`` that
``train`` writes and ``compare --plot``. Per run and update, from the ``[seeds, updates]`` values of
one metric (:func:`run_curves`; by default the return curve of :mod:`purejaxrl_ppo.analysis.stats`):

1. optional smoothing, per seed: each value becomes the mean of the seed's last ``smooth`` values
   (fewer at the start; NaNs left out; :func:`smooth_curves`);
2. the **line** is the interquartile mean (IQM) across seeds;
3. the **band** (:func:`curve_band`) is a 95% percentile-bootstrap confidence interval of that IQM
   (seeds resampled as whole curves, :data:`BOOTSTRAP_SAMPLES` resamples), the 25th–75th percentile of
   the seeds, or nothing.

The figure says which (legend title), and keeps its legend outside the axes.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from purejaxrl_ppo.analysis.stats import final_return_metric, iqm_bootstrap_ci, nan_iqm, return_curves

#: The default metric: each seed's return curve (``eval_return`` where evaluation ran, else
#: ``episode_return``, carried forward; :func:`~purejaxrl_ppo.analysis.stats.return_curves`), the name
#: the logs give it (:data:`purejaxrl_ppo.runs.sinks.RETURN_CURVE`).
RETURN_CURVE = "return_curve"
#: Band choices: ``ci`` (95% bootstrap CI of the IQM), ``iqr`` (25th–75th percentile of the seeds), ``none``.
BANDS = ("ci", "iqr", "none")
#: x-axis choices: ``steps`` (env steps per seed) or ``time`` (seconds of training, from ``timing.csv``).
X_AXES = ("steps", "time")
#: Bootstrap resamples of the CI band (fixed resampling, seed 0: the same figure every time).
BOOTSTRAP_SAMPLES = 1000
#: Line styles cycled with the colours, so that runs stay apart in grey print and for colour-blind readers.
LINE_STYLES = ("-", "--", "-.", ":", (0, (6, 1.5, 1, 1.5, 1, 1.5)))
#: Legend labels wrap at this many characters, so that long run names fit beside the axes.
LABEL_WIDTH = 30
_BAND_TEXT = {"ci": "band: 95% bootstrap CI of the IQM", "iqr": "band: 25th–75th percentile of the seeds", "none": ""}


def metric_names(metrics: Mapping[str, np.ndarray]) -> list[str]:
    """The metrics of a run that :func:`run_curves` can plot: :data:`RETURN_CURVE` and every ``[seeds, updates]``
    metric but ``env_steps`` (the x-axis)."""
    names = sorted(name for name, values in metrics.items() if name != "env_steps" and np.ndim(values) == 2)
    return [RETURN_CURVE, *names] if "episode_return" in metrics else names


def run_curves(metrics: Mapping[str, np.ndarray], metric: str = RETURN_CURVE) -> tuple[np.ndarray, str]:
    """``(curves [seeds, updates] float64, source)`` of one run's ``metrics`` (``{name: [seeds, updates]}``).

    :data:`RETURN_CURVE`: the return curves (source ``eval_return`` or ``episode_return``, see
    :func:`~purejaxrl_ppo.analysis.stats.final_return_metric`); any other name: that metric as stored
    (NaN where it has no value, e.g. ``episode_return`` in an update where no episode ended).
    """
    if metric == RETURN_CURVE:
        source = final_return_metric(metrics)
        return return_curves(metrics[source]), source
    if metric not in metrics or metric == "env_steps":
        raise KeyError(f"unknown metric {metric!r}; available: {', '.join(metric_names(metrics))}")
    return np.asarray(metrics[metric], np.float64), metric


def smooth_curves(curves: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` updates of each curve (``[..., updates]``), NaNs left out.

    Entry ``t`` becomes the mean of the finite values among entries ``t - window + 1 .. t`` (fewer at the
    start; NaN if none is finite). ``window`` 0 or 1: the curves unchanged (as float64).
    """
    if window < 0:
        raise ValueError(f"smoothing window must be >= 0 updates, got {window}")
    from purejaxrl_ppo.analysis.study import running_mean  # (scipy, loaded only when smoothing)

    x = np.asarray(curves, np.float64)
    return x.copy() if window <= 1 else running_mean(x, window)


def curve_band(curves: np.ndarray, band: str = "ci", samples: int = BOOTSTRAP_SAMPLES,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(line, low, high)``, each ``[updates]``, of ``[seeds, updates]`` curves (NaNs left out).

    line: the IQM across seeds (:func:`~purejaxrl_ppo.analysis.stats.nan_iqm`). band ``ci``: the 95%
    percentile-bootstrap interval of that IQM (:func:`~purejaxrl_ppo.analysis.stats.iqm_bootstrap_ci`,
    ``samples`` resamples of whole seeds); ``iqr``: the 25th and 75th percentile of the seeds; ``none``:
    ``low`` and ``high`` are None.
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    x = np.asarray(curves, np.float64)
    line = nan_iqm(x.T)
    if band == "none":
        return line, None, None
    if band == "ci":
        return (line, *iqm_bootstrap_ci(x, samples, seed))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN updates: no episode ended yet
        low, high = np.nanpercentile(x, [25, 75], axis=0)
    return line, low, high


def _y_label(metric: str, sources: list[str]) -> str:
    if metric != RETURN_CURVE:
        return metric
    if set(sources) == {"eval_return"}:
        return "evaluation return (carried forward)"
    if set(sources) == {"episode_return"}:
        return "return (last finished episode, carried forward)"
    return "return (evaluation where it ran, else last\nfinished episode; carried forward)"


def learning_curve_figure(
    runs: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    *,
    title: str = "",
    metric: str = RETURN_CURVE,
    smooth: int = 0,
    x: str = "steps",
    band: str = "ci",
    wall_seconds: Sequence[np.ndarray] | None = None,
):
    """The learning-curve figure (a matplotlib ``Figure``; see the module docstring for what it draws).

    runs: ``(label, metrics)`` pairs, metrics ``{name: [seeds, updates]}`` with ``env_steps``;
    metric: :data:`RETURN_CURVE` or a metric every run has; smooth: trailing-mean window in updates
    (0/1: none); x: ``steps`` (env steps per seed) or ``time``, which needs ``wall_seconds``: one
    ``[updates]`` array per run, seconds of training at the end of each update
    (:func:`~purejaxrl_ppo.runs.sinks.wall_seconds_per_update`); band: one of :data:`BANDS`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if x == "time" and (wall_seconds is None or len(wall_seconds) != len(runs)):
        raise ValueError("x='time' needs wall_seconds: one [updates] array per run")
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120, layout="constrained")
    colors = plt.get_cmap("tab10").colors
    handles, labels, sources = [], [], []
    for i, (label, metrics) in enumerate(runs):
        curves, source = run_curves(metrics, metric)
        sources.append(source)
        line, low, high = curve_band(smooth_curves(curves, smooth), band)
        xs = np.asarray(wall_seconds[i] if x == "time" else np.asarray(metrics["env_steps"])[0], np.float64)
        color, style = colors[i % len(colors)], LINE_STYLES[i % len(LINE_STYLES)]
        (drawn,) = ax.plot(xs, line, color=color, linestyle=style, linewidth=1.8)
        handle = drawn
        if low is not None:
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
            handle = (Patch(color=color, alpha=0.2, linewidth=0), drawn)
        handles.append(handle)
        labels.append(_legend_label(label, curves.shape[0]))
    mixed = metric == RETURN_CURVE and len(set(sources)) > 1
    if mixed:  # say which runs show their evaluation return
        labels = [f"{text} [eval]" if source == "eval_return" else text for text, source in zip(labels, sources)]
    explanation = ["line: IQM across seeds", _BAND_TEXT[band]]
    if smooth > 1:
        explanation.append(f"each seed smoothed: trailing\nmean of its last {smooth} updates")
    fig.legend(handles, labels, loc="outside right upper", title="\n".join(t for t in explanation if t),
               fontsize=8, title_fontsize=8, alignment="left", frameon=False)
    ax.set_xlabel("environment steps per seed" if x == "steps" else "seconds of training (wall clock, compile excluded)")
    ax.set_ylabel(_y_label(metric, sources))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def _legend_label(label: str, seeds: int) -> str:
    """The run's label and its seed count, wrapped to lines of at most :data:`LABEL_WIDTH` characters."""
    return "\n".join(textwrap.wrap(f"{label} ({seeds} seed{'s' if seeds != 1 else ''})", LABEL_WIDTH))


def plot_learning_curves(runs: Sequence[tuple[str, Mapping[str, np.ndarray]]], path: Path, title: str = "",
                         **options) -> None:
    """Write the learning-curve figure of ``runs`` (:func:`learning_curve_figure`, ``options`` passed on) to ``path``."""
    fig = learning_curve_figure(runs, title=title, **options)  # selects the Agg backend before pyplot loads
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
