"""Build a model report: score the held-out rows once, draw the figures, render the page and key figures."""

from __future__ import annotations

from typing import Any

from airflow_bridge.report import figures
from airflow_bridge.report.evaluation import (
    Importance,
    class_labels,
    metric_series,
    per_class,
    permutation,
    positive_scores,
)
from airflow_bridge.report.html import Content, Plot, render
from airflow_bridge.report.inputs import ModelReport, ReportInputs
from airflow_bridge.report.story import add_story, changes_figures
from airflow_bridge.report.units import needs_log_scale

HEADLINE = {"classification": ("accuracy", "roc_auc", "f1"), "regression": ("r2", "rmse", "mae")}
"""Metrics shown when the spec gates none."""


def build_report(inputs: ReportInputs, *, top_features: int = 10) -> ModelReport:
    """The report of one model version: gates, champion, per-kind figures, permutation importance of the
    ``top_features`` raw columns, the metric history (when there are earlier versions) and the data profile.

    Deterministic: the same model, rows and numbers give the same bytes (fixed random states, no timestamp).
    Raises :class:`~airflow_bridge.exceptions.BridgeError` subclasses for unusable inputs.
    """
    inputs.check()
    features = inputs.holdout[list(inputs.features)]
    labels = inputs.holdout[inputs.target]
    content = Content(inputs, held_out_rows=len(features))
    predictions = inputs.model.predict(features)
    probabilities = None
    if inputs.task_kind == "classification":
        from airflow_bridge.ml.metrics import probabilities as predict_probabilities

        probabilities = predict_probabilities(inputs.model, features)  # once, for every figure that needs them
        _classification(content, features, labels, predictions, probabilities)
    else:
        _regression(content, labels, predictions)
    importance = inputs.importance or permutation(inputs.model, features, labels, inputs.task_kind, seed=inputs.seed)
    content.importance = importance
    shown = min(top_features, len(importance.features))
    content.plots.append(
        Plot(
            "feature_importance.png",
            "importance",
            f"The {shown} raw columns the model relies on most (bars: mean score drop"
            + ("; lines: spread over repeats)." if importance.repeats > 1 else ")."),
            figures.importance_bars(importance, top_features),
        )
    )
    add_story(content, features, labels, predictions, probabilities)
    _search(content)
    _history(content)
    passed = all(g.passed for g in inputs.gates) and (inputs.champion is None or inputs.champion.passed)
    return ModelReport(
        html=render(content, passed),
        pngs={plot.name: plot.png for plot in content.plots},
        key_figures=key_figures(inputs, importance, passed, top_features),
    )


def _classification(content: Content, features: Any, labels: Any, predictions: Any, probabilities: Any) -> None:
    model, name = content.inputs.model, content.inputs.model_name
    classes = class_labels(model, labels)
    content.per_class = per_class(labels, predictions, classes)
    content.plots += [
        Plot(
            "confusion_matrix.png",
            "performance",
            "Rows: the actual class; columns: the predicted class. The diagonal holds the correct predictions.",
            figures.confusion_matrix(labels, predictions, classes),
        ),
        Plot(
            "per_class.png",
            "performance",
            "Precision: of the rows predicted as the class, the share that are. Recall: of the rows of the class, "
            "the share found.",
            figures.per_class_bars(content.per_class),
        ),
    ]
    if len(classes) != 2:
        content.note(
            "performance", f"ROC and precision-recall curves are drawn for two classes only ({len(classes)} here)."
        )
        return
    scores = positive_scores(model, features, classes, probabilities)
    if scores is None:
        content.note("performance", "The model gives no scores or probabilities: no ROC or precision-recall curve.")
        return
    if labels.nunique() < 2:
        content.note("performance", "The held-out rows hold one class only: no ROC or precision-recall curve.")
        return
    positive = classes[-1]
    content.plots += [
        Plot(
            "roc_curve.png",
            "performance",
            f"True against false positive rate of class {positive} at every threshold; the area under it is roc_auc.",
            figures.roc_curve(labels, scores, positive, name),
        ),
        Plot(
            "precision_recall.png",
            "performance",
            f"Precision against recall of class {positive} at every threshold; useful when the class is rare.",
            figures.precision_recall_curve(labels, scores, positive, name),
        ),
    ]


def _regression(content: Content, labels: Any, predictions: Any) -> None:
    log = needs_log_scale(labels)
    content.plots += [
        Plot(
            "prediction_error.png",
            "performance",
            "Each dot is a held-out row: perfect predictions lie on the diagonal.",
            figures.prediction_error(labels, predictions, "actual_vs_predicted", log=log),
        ),
        Plot(
            "residuals.png",
            "performance",
            "Actual minus predicted value: a pattern (a curve, a funnel) means errors the model could avoid.",
            figures.prediction_error(labels, predictions, "residual_vs_predicted", log=log),
        ),
    ]


def _search(content: Content) -> None:
    """The search section's figures: the optimisation history and, when it could be told, parameter importance."""
    search = content.inputs.search
    if not search:
        return
    from airflow_bridge.report import search as search_section

    content.plots.append(
        Plot(
            "search_history.png",
            "search",
            "Each complete trial's cross-validated score in the order tried; the line is the best so far, the star "
            "the trial chosen.",
            search_section.history_figure(search),
        )
    )
    importance = search.get("importance") or {}
    if importance:
        content.plots.append(
            Plot(
                "search_importance.png",
                "search",
                "How much of the score's variation across trials each searched parameter explains (Optuna's fANOVA).",
                search_section.importance_figure(importance),
            )
        )
    else:
        content.note("search", "Too few complete trials (or too little variation) to tell parameter importance.")


def _history(content: Content) -> None:
    inputs = content.inputs
    if not inputs.history:
        content.note("history", "No earlier versions of this model: nothing to compare over time yet.")
        return
    names = list(dict.fromkeys(g.name for g in inputs.gates if g.kind == "metric"))
    if inputs.champion is not None and inputs.champion.metric not in names:
        names.append(inputs.champion.metric)
    if not names:
        names = [m for m in HEADLINE[inputs.task_kind] if m in inputs.metrics]
    history = metric_series(inputs.history, inputs.metrics, inputs.version, names)
    if not history.series:
        content.note("history", "The earlier versions recorded none of the gate metrics.")
        return
    content.history = history
    bounds = {g.name: (g.min, g.max) for g in inputs.gates if g.kind == "metric"}
    content.plots.append(
        Plot(
            "metric_history.png",
            "history",
            "Each gate metric for every version of the model; the new version is the orange dot, gates are dashed.",
            figures.metric_history(history, bounds),
        )
    )


def key_figures(inputs: ReportInputs, importance: Importance, passed: bool, top: int = 10) -> dict[str, Any]:
    """The numbers an approver needs first, JSON-ready (store them with the version or pass them through XCom)."""
    figures = {
        "model": inputs.model_name,
        "version": inputs.version,
        "task_kind": inputs.task_kind,
        "passed": passed,
        "gates": [g.to_json() for g in inputs.gates],
        "champion": inputs.champion.to_json() if inputs.champion is not None else None,
        "metrics": {k: v for k, v in inputs.metrics.items() if k in HEADLINE[inputs.task_kind]},
        "importance_scoring": importance.scoring,
        "top_features": importance.features[:top],
        "changes": changes_figures(inputs.changes),
        "warnings": [dict(w) for w in inputs.warnings],
        "baseline": dict(inputs.baseline) if inputs.baseline else None,
        "uncertainty": dict(inputs.uncertainty) if inputs.uncertainty else None,
    }
    if inputs.search:
        figures["search"] = _search_figures(inputs.search)
    return figures


def _search_figures(search: Any) -> dict[str, Any]:
    """The search in a few numbers (the trials stay in the report and the training result)."""
    states = [t.get("state") for t in search.get("trials") or []]
    return {
        "metric": search.get("metric"),
        "trials": len(states),
        "complete": states.count("COMPLETE"),
        "best_trial": search.get("best_trial"),
        "best_value": search.get("best_value"),
        "best_params": search.get("best_params"),
    }
