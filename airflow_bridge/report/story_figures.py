"""The figures of the report's story sections: the calibration curve and the target's distribution."""

from __future__ import annotations

from typing import Any

from airflow_bridge.report.figures import NEW_COLOUR, OLD_COLOUR, STYLE, _figure, _png


def calibration(truth: Any, probabilities: Any, positive: Any, bins: int) -> bytes:
    """The share of positives against the mean predicted probability in each bin, with the diagonal."""
    import matplotlib
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(truth, probabilities, n_bins=bins, strategy="uniform")
    with matplotlib.rc_context(STYLE):
        figure = _figure(4.4, 4.0)
        ax = figure.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
        ax.plot(predicted, observed, "o-", color=OLD_COLOUR, markersize=4, label="this version")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"mean predicted probability of {_plain(positive)}")
        ax.set_ylabel(f"share of rows that are {_plain(positive)}")
        ax.set_title(f"Calibration ({bins} bins, held-out rows)")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
        return _png(figure)


def target_histogram(values: Any, target: str, unit: str | None, log: bool) -> bytes:
    """The target's distribution over the held-out rows (log-spaced bins on a log axis when ``log``)."""
    import matplotlib
    import numpy as np

    numbers = np.asarray(values, dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    bins: Any = 30
    if log:
        bins = np.logspace(np.log10(numbers.min()), np.log10(numbers.max()), 31)
    with matplotlib.rc_context(STYLE):
        figure = _figure(4.8, 3.2)
        ax = figure.add_subplot()
        ax.hist(numbers, bins=bins, color=OLD_COLOUR, edgecolor="white", linewidth=0.4)
        ax.axvline(float(np.median(numbers)), color=NEW_COLOUR, linewidth=1, label="median")
        if log:
            ax.set_xscale("log")
        shown = target if not unit or unit in target else f"{target} ({unit})"
        ax.set_xlabel(_plain(shown) + (", log scale" if log else ""))
        ax.set_ylabel("rows")
        ax.set_title("Target distribution (held-out rows)")
        ax.legend(loc="upper right", fontsize=7, frameon=False)
        return _png(figure)


def _plain(text: Any) -> str:
    """A label shown as written: matplotlib reads text between two ``$`` as math."""
    return str(text).replace("$", r"\$")
