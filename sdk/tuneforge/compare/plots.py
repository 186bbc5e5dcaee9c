"""Loss and metric curves drawn with matplotlib (Agg, no display), rendered to PNG bytes.

Figures are built with `matplotlib.figure.Figure` and an Agg canvas, never through pyplot's
global state, so reports can be rendered from threads and nothing opens a window.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from tuneforge.api import EvalMetric
from tuneforge.compare.sources import RunData
from tuneforge.contract import Metric
from tuneforge.errors import ConfigurationError

METRIC_TITLES = {
    EvalMetric.DINO: "DINO (subject fidelity)",
    EvalMetric.CLIP_I: "CLIP-I (subject fidelity)",
    EvalMetric.CLIP_T: "CLIP-T (prompt fidelity)",
}
DPI = 100


def _figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ConfigurationError(
            "tuneforge compare draws its curves with matplotlib, which is not installed: "
            "pip install 'tuneforge[compare]'"
        ) from error
    return Figure


def _integer_steps(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def loss_curves(runs: Sequence[RunData]) -> bytes | None:
    """One line per run: training loss by step (None when no run logged a loss)."""
    if not any(run.histories.get(Metric.LOSS) for run in runs):
        return None
    figure = _figure_class()(figsize=(8, 3.6), layout="constrained")
    axes = figure.add_subplot()
    for run in runs:
        points = run.histories.get(Metric.LOSS) or []
        if points:
            axes.plot([p.step for p in points], [p.value for p in points], label=run.label)
    axes.set_title("Training loss")
    axes.set_xlabel("step")
    _integer_steps(axes)
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return _png(figure)


def metric_curves(runs: Sequence[RunData]) -> bytes | None:
    """DINO, CLIP-I and CLIP-T by step, one panel each, one line per run (step 0: the base)."""
    metrics = [m for m in EvalMetric if any(run.histories.get(m.mlflow_key) for run in runs)]
    if not metrics:
        return None
    figure = _figure_class()(figsize=(4 * len(metrics), 3.6), layout="constrained")
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        for run in runs:
            points = run.histories.get(metric.mlflow_key) or []
            if points:
                axes.plot(
                    [p.step for p in points], [p.value for p in points], marker="o", label=run.label
                )
        axes.set_title(METRIC_TITLES[metric])
        axes.set_xlabel("step (0 = base model)")
        _integer_steps(axes)
        axes.grid(True, alpha=0.3)
        if index == 0:
            axes.legend(loc="best", fontsize="small")
    return _png(figure)
