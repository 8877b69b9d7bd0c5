"""Context for a version's metrics: a dummy baseline, bootstrap intervals, k-fold cross-validation.

- Baseline: scikit-learn's ``DummyClassifier(strategy="most_frequent")`` / ``DummyRegressor(strategy="mean")``
  fitted on the training rows inside the train action (only the held-out rows are stored) and scored on
  the same held-out rows as the model.
- Bootstrap (when the spec asks for no cross-validation): the held-out predictions resampled with
  replacement :data:`BOOTSTRAP_RESAMPLES` times (seeded, :func:`airflow_bridge.ml.seeding.rng`); nothing
  is refitted, so it costs a few hundred milliseconds at most.
- Cross-validation (``validation.cross_validation.folds``): the same pipeline refitted on k folds of the
  training rows (seeded folds), mean and standard deviation per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_bridge.exceptions import DataError
from airflow_bridge.ml.catalogue import LOWER_IS_BETTER
from airflow_bridge.ml.gates import GateResult

BOOTSTRAP_RESAMPLES = 200
LEVEL = 0.95


def baseline(task_kind: str, train_rows: Any, test_rows: Any, features: Sequence[str], target: str) -> dict[str, Any]:
    """The dummy baseline's metrics on the held-out rows, fitted on the training rows."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    from airflow_bridge.ml.metrics import compute_metrics

    if task_kind == "regression":
        dummy: Any = DummyRegressor(strategy="mean")
        strategy = "mean"
    else:
        dummy = DummyClassifier(strategy="most_frequent")
        strategy = "most_frequent"
    dummy.fit(train_rows[list(features)], train_rows[target])
    metrics = compute_metrics(task_kind, dummy, test_rows[list(features)], test_rows[target])
    return {"strategy": strategy, "fitted_on": "training rows", "metrics": metrics}


def improvement(metric: str, value: float, base: float) -> float:
    """How much better ``value`` is than ``base`` (positive: better), whichever way the metric points."""
    return base - value if metric in LOWER_IS_BETTER else value - base


def baseline_gate(
    metric: str, min_improvement: float, metrics: Mapping[str, Any], base: Mapping[str, Any] | None
) -> GateResult:
    """The gate ``validation.baseline``: the model beats the dummy by at least ``min_improvement`` on ``metric``."""
    value = metrics.get(metric)
    reference = ((base or {}).get("metrics") or {}).get(metric)
    gained = (
        improvement(metric, float(value), float(reference))
        if isinstance(value, int | float) and isinstance(reference, int | float)
        else None
    )
    passed = gained is not None and not math.isnan(gained) and gained >= min_improvement
    return GateResult(
        f"baseline_{metric}", "baseline", gained, min_improvement, passed=passed, metric=metric, baseline=reference
    )


def bootstrap(
    task_kind: str, model: Any, features: Any, labels: Any, *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, Any]:
    """95 % percentile intervals of the held-out metrics, from resampled predictions (no refit)."""
    import numpy as np

    from airflow_bridge.ml.metrics import probabilities
    from airflow_bridge.ml.seeding import rng

    truth = np.asarray(labels)
    predicted = np.asarray(model.predict(features))
    scores, classes = None, None
    if task_kind != "regression":
        classes = list(getattr(model, "classes_", np.unique(truth)))
        scores = probabilities(model, features)
    draws = rng(seed, "bootstrap").integers(0, len(truth), size=(resamples, len(truth)))
    values: dict[str, list[float]] = {}
    for rows in draws:
        resampled = None if scores is None else scores[rows]
        sample = fast_metrics(task_kind, truth[rows], predicted[rows], resampled, classes)
        for name, value in sample.items():
            values.setdefault(name, []).append(value)
    tail = (1 - LEVEL) / 2 * 100
    intervals = {}
    for name, found in values.items():
        finite = np.asarray([v for v in found if np.isfinite(v)])
        if len(finite) >= resamples // 2:
            low, high = np.percentile(finite, [tail, 100 - tail])
            intervals[name] = {"low": float(low), "high": float(high)}
    return {"method": "bootstrap", "resamples": resamples, "level": LEVEL, "metrics": intervals}


def fast_metrics(
    task_kind: str, truth: Any, predicted: Any, proba: Any | None, classes: list[Any] | None
) -> dict[str, float]:
    """The metrics of :func:`airflow_bridge.ml.metrics.compute_metrics` in plain numpy (one resample costs
    microseconds instead of scikit-learn's per-call checks)."""
    import numpy as np

    if task_kind == "regression":
        y, p = truth.astype("float64"), predicted.astype("float64")
        error = y - p
        mse = float(np.mean(error**2))
        spread = float(np.sum((y - y.mean()) ** 2))
        eps = np.finfo(np.float64).eps
        return {
            "r2": 1 - float(np.sum(error**2)) / spread if spread else float("nan"),
            "mae": float(np.mean(np.abs(error))),
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(y), eps))),
        }
    assert classes is not None
    result = {"accuracy": float(np.mean(truth == predicted))}
    present = [c for c in classes if np.any(truth == c)]
    recalls = {c: float(np.mean(predicted[truth == c] == c)) for c in present}
    result["balanced_accuracy"] = float(np.mean(list(recalls.values())))
    labels = classes[-1:] if len(classes) == 2 else sorted(set(present) | set(np.unique(predicted)), key=classes.index)
    precision, recall, f1 = [], [], []
    for c in labels:
        tp = float(np.sum((predicted == c) & (truth == c)))
        p_den, r_den = float(np.sum(predicted == c)), float(np.sum(truth == c))
        pr, rc = (tp / p_den if p_den else 0.0), (tp / r_den if r_den else 0.0)
        precision.append(pr)
        recall.append(rc)
        f1.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    result.update(precision=float(np.mean(precision)), recall=float(np.mean(recall)), f1=float(np.mean(f1)))
    if proba is not None:
        if len(classes) == 2:
            result["roc_auc"] = _auc(truth == classes[1], proba[:, 1])
        elif len(present) == len(classes):
            result["roc_auc"] = float(np.mean([_auc(truth == c, proba[:, i]) for i, c in enumerate(classes)]))
        index = np.searchsorted(np.asarray(classes), truth) if _sortable(classes) else None
        if index is not None:
            picked = np.clip(proba[np.arange(len(truth)), index], np.finfo(proba.dtype).eps, 1)
            result["log_loss"] = float(-np.mean(np.log(picked)))
    return result


def _sortable(classes: list[Any]) -> bool:
    return list(classes) == sorted(classes)


def _auc(positive: Any, score: Any) -> float:
    """Area under the ROC curve by the rank-sum (ties averaged); NaN when one class is absent."""
    import numpy as np
    from scipy.stats import rankdata

    n_pos = int(np.sum(positive))
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((np.sum(ranks[positive]) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def seeded_folds(
    x: Any, y: Any, task_kind: str, folds: int, seed: int, *, setting: str, otherwise: str = ""
) -> list[tuple[Any, Any]]:
    """``folds`` shuffled folds of the rows, seeded (stratified for classification); too few rows, or too few of
    the rarest class, is a ``DataError`` naming ``setting`` (the spec key that asked for the folds) and, when
    given, the ``otherwise`` way out ("remove cross_validation")."""
    alternative = f" or {otherwise}" if otherwise else ""
    from sklearn.model_selection import KFold, StratifiedKFold

    if task_kind == "classification":
        smallest = int(y.value_counts().min())
        if smallest < folds:
            raise DataError(
                f"{setting} is {folds} but the training rows hold only {smallest} row(s) of the rarest class of "
                f"'{y.name}'; use at most {max(2, smallest)} folds{alternative}"
            )
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        if len(y) < folds:
            raise DataError(
                f"{setting} is {folds} but there are only {len(y)} training rows; "
                f"use at most {len(y)} folds{alternative}"
            )
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(x, y))


def cross_validate(
    pipeline: Any, rows: Any, features: Sequence[str], target: str, task_kind: str, *, folds: int, seed: int
) -> dict[str, Any]:
    """Mean and standard deviation of each metric over ``folds`` seeded folds of the training rows.

    ``bound`` is the pessimistic end a gate may use (``gate_on: lower_bound``): mean - std for scores,
    mean + std for errors (lower is better).
    """
    import numpy as np
    from sklearn.base import clone

    from airflow_bridge.ml.metrics import compute_metrics

    x, y = rows[list(features)], rows[target]
    splits = seeded_folds(
        x, y, task_kind, folds, seed, setting="validation.cross_validation.folds", otherwise="remove cross_validation"
    )
    per_fold: list[dict[str, float]] = []
    for fit_rows, score_rows in splits:
        model = clone(pipeline).fit(x.iloc[fit_rows], y.iloc[fit_rows])
        per_fold.append(compute_metrics(task_kind, model, x.iloc[score_rows], y.iloc[score_rows]))
    summary = {}
    for name in per_fold[0]:
        values = np.asarray([fold.get(name, float("nan")) for fold in per_fold], dtype="float64")
        if np.all(np.isfinite(values)):
            mean, std = float(values.mean()), float(values.std())
            bound = mean + std if name in LOWER_IS_BETTER else mean - std
            summary[name] = {"mean": mean, "std": std, "bound": bound}
    return {"method": "cross_validation", "folds": folds, "metrics": summary}
