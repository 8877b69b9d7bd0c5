"""The numbers behind the report's figures: predictions, scores, per-class metrics, permutation importance.

scikit-learn and numpy are imported inside the functions, never at import time.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_IMPORTANCE_ROWS = 1000
"""Permutation importance uses at most this many held-out rows (a fixed random sample beyond it)."""
IMPORTANCE_PREDICTIONS = 30
"""Budget of model predictions for permutation importance: repeats = budget // columns, within 1..5, so a wide
table costs one prediction per column (a pipeline's preprocessing makes each prediction cost tens of ms)."""


@dataclass(frozen=True)
class Importance:
    """Permutation importance of the raw columns: mean and std of the score drop, sorted high to low."""

    scoring: str
    repeats: int
    rows: int
    features: list[dict[str, Any]]


def class_labels(model: Any, labels: Any) -> list[Any]:
    """The classes in the model's order (``classes_``), else the sorted labels seen."""
    import numpy as np

    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else list(np.unique(labels))


def positive_scores(model: Any, features: Any, classes: Sequence[Any], probabilities: Any | None) -> Any | None:
    """Scores of the positive class (the last one, as in the metrics) for ROC and precision-recall curves.

    ``probabilities`` (the model's ``predict_proba`` of ``features``, see
    :func:`airflow_bridge.ml.metrics.probabilities`) when the model has them, else ``decision_function``;
    None when it has neither.
    """
    if probabilities is not None:
        return probabilities[:, len(classes) - 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(features)
    return None


def per_class(labels: Any, predictions: Any, classes: Sequence[Any]) -> list[dict[str, Any]]:
    """Precision, recall, f1 and support of each class."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=list(classes), zero_division=0
    )
    return [
        {"class": str(c), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    ]


def permutation(model: Any, features: Any, labels: Any, task_kind: str, *, seed: int = 0) -> Importance:
    """How much the held-out score drops when each raw column is shuffled (bounded rows and repeats).

    The score is accuracy for classification and r2 for regression; the row sample and the shuffles are
    drawn from ``seed`` (the spec's ``data.split.seed``), so the same model and rows give the same
    importances. The shuffled copies are stacked and predicted in a few large calls rather than one call
    per copy: a pipeline's per-call overhead dominates on small held-out splits.
    """
    import numpy as np
    import pandas as pd
    from sklearn.metrics import accuracy_score, r2_score

    if len(features) > MAX_IMPORTANCE_ROWS:
        sample = features.sample(MAX_IMPORTANCE_ROWS, random_state=seed)
        features, labels = sample, labels.loc[sample.index]
    features = features.reset_index(drop=True)
    truth = np.asarray(labels)
    columns = [str(c) for c in features.columns]
    repeats = max(1, min(5, IMPORTANCE_PREDICTIONS // max(1, len(columns))))
    scoring = "accuracy" if task_kind == "classification" else "r2"
    score = accuracy_score if scoring == "accuracy" else r2_score
    baseline = float(score(truth, model.predict(features)))
    copies = [(c, order) for c in features.columns for order in _orders(len(features), repeats, seed)]
    drops: dict[str, list[float]] = {str(c): [] for c in features.columns}
    per_call = max(1, STACKED_ROWS // max(1, len(features)))
    for start in range(0, len(copies), per_call):
        batch = copies[start : start + per_call]
        stacked = pd.concat([_shuffled(features, column, order) for column, order in batch], ignore_index=True)
        predicted = np.asarray(model.predict(stacked)).reshape(len(batch), len(features), *np.shape(truth)[1:])
        for (column, _), chunk in zip(batch, predicted, strict=True):
            drops[str(column)].append(baseline - float(score(truth, chunk)))
    ranked: list[dict[str, Any]] = [
        {"feature": name, "importance": float(np.mean(drops[name])), "std": float(np.std(drops[name]))}
        for name in columns
    ]
    ranked.sort(key=lambda item: (-item["importance"], item["feature"]))
    return Importance(scoring=scoring, repeats=repeats, rows=len(features), features=ranked)


STACKED_ROWS = 50_000
"""Most rows predicted in one call of permutation importance (bounds its memory on wide, long tables)."""


def _orders(rows: int, repeats: int, seed: int) -> list[Any]:
    """The row orders of each repeat: the same for every column, drawn as scikit-learn's
    ``permutation_importance(random_state=seed)`` draws them, so both give the same importances."""
    import numpy as np

    drawn = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    state, shuffle, order, orders = np.random.RandomState(drawn), np.arange(rows), np.arange(rows), []
    for _ in range(repeats):
        state.shuffle(shuffle)
        order = order[shuffle]  # scikit-learn shuffles the already shuffled column again
        orders.append(order)
    return orders


def _shuffled(features: Any, column: Any, order: Any) -> Any:
    """A copy of ``features`` with ``column``'s values in ``order`` (its dtype kept)."""
    copy = features.copy()
    copy[column] = features[column].iloc[order].set_axis(features.index)
    return copy


@dataclass(frozen=True)
class History:
    """Each metric's value per version, oldest first and the new version last."""

    versions: list[str]
    dates: list[str]
    series: dict[str, list[float | None]]

    @property
    def new_index(self) -> int:
        return len(self.versions) - 1


def metric_series(
    history: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], version: int | None, names: Sequence[str]
) -> History:
    """The history of ``names`` over the earlier versions plus the new one. An earlier entry with the new
    version's number is dropped (the new version is shown once); metrics no version has are left out."""
    earlier = sorted(
        (h for h in history if version is None or int(h.get("version", 0)) != version),
        key=lambda h: int(h.get("version", 0)),
    )
    series: dict[str, list[float | None]] = {}
    for name in names:
        values = [_number((h.get("metrics") or {}).get(name)) for h in earlier] + [_number(metrics.get(name))]
        if any(v is not None for v in values):
            series[name] = values
    return History(
        versions=[f"v{int(h.get('version', 0))}" for h in earlier] + [f"v{version}" if version is not None else "new"],
        dates=[_date(h.get("created_at")) for h in earlier] + ["this report"],
        series=series,
    )


def _date(value: Any) -> str:
    """A ``created_at`` (datetime or ISO string) as a date."""
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d}"
    return str(value or "")[:10]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)
