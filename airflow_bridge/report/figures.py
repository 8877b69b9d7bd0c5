"""The report's figures as PNG bytes, drawn with scikit-learn's ``*Display`` classes where they exist.

Figures are built as ``matplotlib.figure.Figure`` objects on the Agg canvas, never through pyplot's figure
manager, so nothing leaks between reports and no window opens. matplotlib is imported inside functions.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_bridge.report.evaluation import History, Importance

NEW_COLOUR = "#d95f02"
OLD_COLOUR = "#1b6ca8"
STYLE: dict[Any, Any] = {"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False, "axes.spines.right": False}


def _figure(width: float, height: float) -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # the Displays import pyplot: keep it headless unless the caller chose a backend
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def confusion_matrix(labels: Any, predictions: Any, classes: Sequence[Any]) -> bytes:
    """Counts of each (actual, predicted) class pair on the held-out rows."""
    import matplotlib
    from sklearn.metrics import ConfusionMatrixDisplay

    with matplotlib.rc_context(STYLE):
        size = min(9.0, 3.5 + 0.35 * len(classes))
        figure = _figure(size + 1, size)
        ax = figure.add_subplot()
        names = [str(c) for c in classes]
        ConfusionMatrixDisplay.from_predictions(
            labels,
            predictions,
            labels=list(classes),
            display_labels=names,
            include_values=len(classes) <= 15,
            xticks_rotation="vertical" if len(classes) > 6 or max(map(len, names)) > 12 else "horizontal",
            cmap="Blues",
            ax=ax,
        )
        ax.set_title("Confusion matrix (held-out rows)")
        return _png(figure)


def per_class_bars(rows: Sequence[dict[str, Any]]) -> bytes:
    """Precision, recall and f1 of each class side by side."""
    import matplotlib
    import numpy as np

    with matplotlib.rc_context(STYLE):
        figure = _figure(min(12.0, 4.0 + 0.6 * len(rows)), 3.6)
        ax = figure.add_subplot()
        positions = np.arange(len(rows))
        width = 0.27
        for offset, metric in zip((-width, 0.0, width), ("precision", "recall", "f1"), strict=True):
            ax.bar(positions + offset, [r[metric] for r in rows], width, label=metric)
        ax.set_xticks(positions, [r["class"] for r in rows], rotation=90 if len(rows) > 8 else 0)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.set_title("Precision, recall and f1 per class")
        ax.legend(loc="lower right", fontsize=8)
        return _png(figure)


def roc_curve(labels: Any, scores: Any, positive: Any, name: str) -> bytes:
    """The ROC curve of the positive class, with the chance level."""
    import matplotlib
    from sklearn.metrics import RocCurveDisplay

    with matplotlib.rc_context(STYLE):
        figure = _figure(4.8, 4.4)
        ax = figure.add_subplot()
        RocCurveDisplay.from_predictions(labels, scores, pos_label=positive, name=name, ax=ax, plot_chance_level=True)
        ax.set_title(f"ROC curve (positive class: {positive})")
        return _png(figure)


def precision_recall_curve(labels: Any, scores: Any, positive: Any, name: str) -> bytes:
    """Precision against recall of the positive class, with the chance level (its share of rows)."""
    import matplotlib
    from sklearn.metrics import PrecisionRecallDisplay

    with matplotlib.rc_context(STYLE):
        figure = _figure(4.8, 4.4)
        ax = figure.add_subplot()
        PrecisionRecallDisplay.from_predictions(
            labels, scores, pos_label=positive, name=name, ax=ax, plot_chance_level=True
        )
        ax.set_title(f"Precision-recall curve (positive class: {positive})")
        return _png(figure)


def prediction_error(labels: Any, predictions: Any, kind: str, *, log: bool = False) -> bytes:
    """Predicted against actual values (``actual_vs_predicted``) or residuals (``residual_vs_predicted``).

    ``log``: the target spans orders of magnitude, so the value axes are logarithmic (symmetric-log when
    a prediction is not positive)."""
    import matplotlib
    from sklearn.metrics import PredictionErrorDisplay

    titles = {"actual_vs_predicted": "Actual vs predicted", "residual_vs_predicted": "Residuals vs predicted"}
    with matplotlib.rc_context(STYLE):
        figure = _figure(4.8, 4.4)
        ax = figure.add_subplot()
        PredictionErrorDisplay.from_predictions(
            labels, predictions, kind=kind, subsample=1000, random_state=0, ax=ax, scatter_kwargs={"alpha": 0.5}
        )
        if log:
            import numpy as np

            scale = "log" if float(np.min(predictions)) > 0 else "symlog"
            ax.set_xscale(scale)
            if kind == "actual_vs_predicted":
                ax.set_yscale(scale)
        ax.set_title(f"{titles[kind]} (held-out rows)" + (", log scale" if log else ""))
        return _png(figure)


def importance_bars(importance: Importance, top: int) -> bytes:
    """The ``top`` columns whose shuffling hurts the score most, with the spread over repeats."""
    import matplotlib

    shown = importance.features[:top][::-1]
    with matplotlib.rc_context(STYLE):
        figure = _figure(6.4, 1.2 + 0.3 * len(shown))
        ax = figure.add_subplot()
        ax.barh(
            [f["feature"] for f in shown],
            [f["importance"] for f in shown],
            xerr=[f["std"] for f in shown],
            color=OLD_COLOUR,
            capsize=2,
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(f"drop in {importance.scoring} when the column is shuffled")
        repeats = "1 repeat" if importance.repeats == 1 else f"{importance.repeats} repeats"
        ax.set_title(f"Permutation importance, top {len(shown)} ({repeats}, {importance.rows} rows)")
        return _png(figure)


def metric_history(history: History, bounds: Mapping[str, tuple[Any, Any]]) -> bytes:
    """One panel per metric: its value for every version, the new version highlighted, gate bounds dashed."""
    import matplotlib

    versions, series, new_index = history.versions, history.series, history.new_index
    names = list(series)
    with matplotlib.rc_context(STYLE):
        figure = _figure(min(12.0, 4.5 + 0.35 * len(versions)), 0.6 + 1.9 * len(names))
        axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
        positions = list(range(len(versions)))
        for ax, name in zip(axes, names, strict=True):
            values = series[name]
            known = [(x, v) for x, v in zip(positions, values, strict=True) if v is not None and not math.isnan(v)]
            if known:
                ax.plot([x for x, _ in known], [v for _, v in known], "o-", color=OLD_COLOUR, markersize=4)
            new_value = values[new_index]
            if new_value is not None and not math.isnan(new_value):
                ax.plot([new_index], [new_value], "o", color=NEW_COLOUR, markersize=9, zorder=3, label="this version")
                ax.annotate(
                    f"{new_value:.4f}",
                    (new_index, new_value),
                    textcoords="offset points",
                    xytext=(-7, 5),
                    ha="right",
                    va="bottom",
                    color=NEW_COLOUR,
                )
            low, high = bounds.get(name, (None, None))
            for bound, label in ((low, "min"), (high, "max")):
                if bound is not None:
                    ax.axhline(bound, color="#b2182b", linestyle="--", linewidth=1, label=f"gate {label} {bound}")
            ax.margins(x=0.08, y=0.2)
            ax.legend(loc="best", fontsize=7, frameon=False)
            ax.set_ylabel(name)
            ax.grid(axis="y", alpha=0.3)
        axes[-1].set_xticks(positions, versions, rotation=90 if len(versions) > 20 else 0)
        axes[0].set_title("Gate metrics across versions (new version in orange)")
        return _png(figure)
