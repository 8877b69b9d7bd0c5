"""Metrics on the held-out split, per task kind."""

from __future__ import annotations

from typing import Any

import numpy as np


def probabilities(model: Any, features: Any) -> Any | None:
    """``model.predict_proba(features)``, or None when the model gives no probabilities: it lacks the method,
    or exposes one it cannot use (e.g. ``SVC(probability=False)``)."""
    if not hasattr(model, "predict_proba"):
        return None
    try:
        return model.predict_proba(features)
    except AttributeError:
        return None


def compute_metrics(task_kind: str, estimator: Any, features: Any, labels: Any) -> dict[str, float]:
    """Classification: accuracy, balanced accuracy, precision/recall/f1 (binary for two classes,
    macro-averaged otherwise), roc_auc and log_loss when probabilities exist. Regression: r2, mae,
    mse, rmse, mape."""
    from sklearn import metrics as m

    predictions = estimator.predict(features)
    if task_kind == "regression":
        mse = float(m.mean_squared_error(labels, predictions))
        return {
            "r2": float(m.r2_score(labels, predictions)),
            "mae": float(m.mean_absolute_error(labels, predictions)),
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mape": float(m.mean_absolute_percentage_error(labels, predictions)),
        }
    classes = list(getattr(estimator, "classes_", np.unique(labels)))
    binary = len(classes) == 2
    average: Any = "binary" if binary else "macro"
    extra: dict[str, Any] = {"pos_label": classes[-1]} if binary else {}
    result = {
        "accuracy": float(m.accuracy_score(labels, predictions)),
        "balanced_accuracy": float(m.balanced_accuracy_score(labels, predictions)),
        "precision": float(m.precision_score(labels, predictions, average=average, zero_division=0, **extra)),
        "recall": float(m.recall_score(labels, predictions, average=average, zero_division=0, **extra)),
        "f1": float(m.f1_score(labels, predictions, average=average, zero_division=0, **extra)),
    }
    if hasattr(estimator, "predict_proba"):
        proba = probabilities(estimator, features)
        if proba is not None:
            if binary:
                result["roc_auc"] = float(m.roc_auc_score(labels, proba[:, 1]))
            elif len(np.unique(labels)) == len(classes):
                result["roc_auc"] = float(m.roc_auc_score(labels, proba, multi_class="ovr", labels=classes))
            result["log_loss"] = float(m.log_loss(labels, proba, labels=classes))
    elif binary and hasattr(estimator, "decision_function"):
        result["roc_auc"] = float(m.roc_auc_score(labels, estimator.decision_function(features)))
    return result
