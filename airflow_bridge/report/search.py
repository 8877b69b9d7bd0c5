"""The report's "Hyperparameter search" section: every trial, the chosen one, the optimisation history and the
parameter importance, drawn from the ``SearchSummary`` JSON the train task recorded (no Optuna needed here)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from airflow_bridge.report.figures import NEW_COLOUR, OLD_COLOUR, STYLE, _figure, _png

SECTION = ("search", "Hyperparameter search")


def search_html(search: Mapping[str, Any]) -> str:
    """How the search ran, the chosen trial, and the table of every trial (the chosen one marked)."""
    from airflow_bridge.report.html import _table

    trials = list(search.get("trials") or [])
    best = search.get("best_trial")
    budget = dict(search.get("budget") or {})
    limits = [f"{budget['trials']} trials"] if budget.get("trials") else []
    limits += [f"{budget['minutes']:g} minutes"] if budget.get("minutes") else []
    aim = "minimising" if search.get("direction") == "minimize" else "maximising"
    states = {s: sum(1 for t in trials if t.get("state") == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    stopped = (
        "the trials budget (reproducible)"
        if search.get("stopped_by") == "trials"
        else "the minutes budget (a rerun may try a different number of trials)"
    )
    intro = (
        f"<p>{escape(str(search.get('library') or 'optuna').capitalize())} tried {len(trials)} parameter "
        f"setting(s) of the estimator ({states['COMPLETE']} complete, {states['PRUNED']} pruned, "
        f"{states['FAIL']} failed), each scored by {aim} <b>{escape(str(search.get('metric')))}</b> over "
        f"{search.get('folds')}-fold cross-validation of the training rows only (the held-out rows stay unseen). "
        f"Sampler {escape(str(search.get('sampler')))}, pruner {escape(str(search.get('pruner')))}; budget "
        f"{escape(' or '.join(limits) or '-')}, stopped by {stopped}.</p>"
        f"<p>Chosen: trial {best} ({escape(str(search.get('metric')))} {_value(search.get('best_value'))}), "
        f"fitted on all training rows with <code>{escape(_params(search.get('best_params') or {}))}</code>: "
        "it is the candidate the gates above judged.</p>"
    )
    names = list((search.get("space") or {}) or (trials[0].get("params") if trials else {}) or {})
    rows = [
        [
            f"<b>{t.get('number')} ✓</b>" if t.get("number") == best else str(t.get("number")),
            escape(str(t.get("state", "")).lower()),
            _value(t.get("value")),
            *[escape(_shown((t.get("params") or {}).get(n, "-"))) for n in names],
            _value(t.get("duration_seconds"), ".2f"),
            escape(str(t.get("error") or "")),
        ]
        for t in trials
    ]
    header = ["trial", "state", str(search.get("metric")), *names, "seconds", "error"]
    numeric = (0, 2, 3 + len(names))
    return intro + _table(header, rows, numeric=numeric)


def history_figure(search: Mapping[str, Any]) -> bytes:
    """Each complete trial's value in order, and the best value so far (Optuna's optimisation history)."""
    import matplotlib

    trials = [t for t in search.get("trials") or [] if t.get("state") == "COMPLETE" and t.get("value") is not None]
    minimise = search.get("direction") == "minimize"
    with matplotlib.rc_context(STYLE):
        figure = _figure(6.4, 3.4)
        ax = figure.add_subplot()
        numbers = [t["number"] for t in trials]
        values = [float(t["value"]) for t in trials]
        ax.plot(numbers, values, "o", color=OLD_COLOUR, markersize=5, label="trial")
        best_so_far, best = [], math.inf if minimise else -math.inf
        for value in values:
            best = min(best, value) if minimise else max(best, value)
            best_so_far.append(best)
        ax.step(numbers, best_so_far, where="post", color=NEW_COLOUR, label="best so far")
        chosen = [t for t in trials if t["number"] == search.get("best_trial")]
        if chosen:
            ax.plot([chosen[0]["number"]], [chosen[0]["value"]], "*", color=NEW_COLOUR, markersize=13, label="chosen")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{search.get('metric')} (mean over {search.get('folds')} folds)")
        ax.set_title("Optimisation history" + (" (lower is better)" if minimise else " (higher is better)"))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7, frameon=False)
        return _png(figure)


def importance_figure(importance: Mapping[str, float]) -> bytes:
    """Each searched parameter's share of the metric's variance over the trials."""
    import matplotlib

    shown = sorted(importance.items(), key=lambda item: item[1])
    with matplotlib.rc_context(STYLE):
        figure = _figure(6.4, 1.2 + 0.35 * len(shown))
        ax = figure.add_subplot()
        ax.barh([name for name, _ in shown], [value for _, value in shown], color=OLD_COLOUR)
        for index, (_, value) in enumerate(shown):
            ax.annotate(f"{value:.2f}", (value, index), xytext=(3, 0), textcoords="offset points", va="center")
        ax.set_xlim(0, max([1.0, *[v * 1.15 for _, v in shown]]))
        ax.set_xlabel("share of the metric's variance over the trials (fANOVA)")
        ax.set_title("Hyperparameter importance")
        return _png(figure)


def _value(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, int | float) and math.isfinite(value) else "-"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {_shown(v)}" for k, v in params.items())
