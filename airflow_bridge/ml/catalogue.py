"""The catalogues: the built-in estimator allow-list and the metrics, each written once.

Specs name estimators by dotted path; only names on an allow-list can be built, so a spec can
never reach ``os.system`` or ``builtins.eval``. The list is static data (no sklearn import at
parse time). Team policy can extend it with more estimators (``governance``); each built-in one's
parameters are in ``spec/estimator_params.py`` (generated from scikit-learn).

Every fact about a metric (its task kind, which way is better, whether it needs probabilities, the
values it can take, its unit) is one :class:`Metric` of :data:`METRIC_CATALOGUE`; the names below are
derived from it for the code that needs one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TaskKind = Literal["classification", "regression"]

_CLASSIFIERS = {
    "sklearn.linear_model": ["LogisticRegression", "RidgeClassifier", "SGDClassifier", "Perceptron"],
    "sklearn.ensemble": [
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "AdaBoostClassifier",
        "BaggingClassifier",
    ],
    "sklearn.tree": ["DecisionTreeClassifier", "ExtraTreeClassifier"],
    "sklearn.neighbors": ["KNeighborsClassifier", "NearestCentroid"],
    "sklearn.svm": ["SVC", "LinearSVC", "NuSVC"],
    "sklearn.naive_bayes": ["GaussianNB", "BernoulliNB", "MultinomialNB", "ComplementNB"],
    "sklearn.discriminant_analysis": ["LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"],
    "sklearn.neural_network": ["MLPClassifier"],
    "sklearn.dummy": ["DummyClassifier"],
}
_REGRESSORS = {
    "sklearn.linear_model": [
        "LinearRegression",
        "Ridge",
        "Lasso",
        "ElasticNet",
        "SGDRegressor",
        "HuberRegressor",
        "BayesianRidge",
        "PoissonRegressor",
    ],
    "sklearn.ensemble": [
        "RandomForestRegressor",
        "ExtraTreesRegressor",
        "GradientBoostingRegressor",
        "HistGradientBoostingRegressor",
        "AdaBoostRegressor",
        "BaggingRegressor",
    ],
    "sklearn.tree": ["DecisionTreeRegressor", "ExtraTreeRegressor"],
    "sklearn.neighbors": ["KNeighborsRegressor"],
    "sklearn.svm": ["SVR", "LinearSVR", "NuSVR"],
    "sklearn.neural_network": ["MLPRegressor"],
    "sklearn.dummy": ["DummyRegressor"],
}


def _flatten(groups: dict[str, list[str]], kind: TaskKind) -> dict[str, TaskKind]:
    return {f"{module}.{name}": kind for module, names in groups.items() for name in names}


OPTIONAL_ESTIMATORS: dict[str, tuple[TaskKind, str]] = {
    "lightgbm.LGBMClassifier": ("classification", "lightgbm"),
    "lightgbm.LGBMRegressor": ("regression", "lightgbm"),
    "xgboost.XGBClassifier": ("classification", "xgboost"),
    "xgboost.XGBRegressor": ("regression", "xgboost"),
    "catboost.CatBoostClassifier": ("classification", "catboost"),
    "catboost.CatBoostRegressor": ("regression", "catboost"),
}
"""Gradient-boosting estimators on the allow-list when their library is installed (the extra of that
name: ``pip install 'airflow-bridge[lightgbm]'``). Found without importing the library."""


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


DEFAULT_ESTIMATORS: dict[str, TaskKind] = {
    **_flatten(_CLASSIFIERS, "classification"),
    **_flatten(_REGRESSORS, "regression"),
    **{name: kind for name, (kind, extra) in OPTIONAL_ESTIMATORS.items() if _installed(extra)},
}

KNOWN_ESTIMATORS: dict[str, TaskKind] = {
    **_flatten(_CLASSIFIERS, "classification"),
    **_flatten(_REGRESSORS, "regression"),
    **{name: kind for name, (kind, _) in OPTIONAL_ESTIMATORS.items()},
}
"""Every built-in estimator, installed or not: what the JSON Schemas offer, the same on every machine."""


def missing_extra(estimator: str) -> str | None:
    """Why a known gradient-boosting estimator is not on the allow-list here: its extra is not installed."""
    found = OPTIONAL_ESTIMATORS.get(estimator)
    if found is None or estimator in DEFAULT_ESTIMATORS:
        return None
    extra = found[1]
    return (
        f"estimator '{estimator}' needs the '{extra}' library, which is not installed where this runs: "
        f"pip install 'airflow-bridge[{extra}]' (on the workers, the dag-processor and the model server)"
    )


@dataclass(frozen=True)
class Metric:
    """A metric a task computes on the held-out rows and a spec may gate on."""

    name: str
    kind: TaskKind
    lower_is_better: bool = False
    """An error: champion comparisons and baselines flip its sign."""
    probabilities: bool = False
    """Computed from predicted probabilities: an estimator without ``predict_proba`` never gets it."""
    low: float | None = None
    high: float | None = None
    """The values it can take (None: unbounded); a gate outside them can never pass."""
    unit_power: int = 0
    """1: in the target's unit (mae), 2: in its square (mse), 0: unitless."""


METRIC_CATALOGUE: tuple[Metric, ...] = (
    Metric("accuracy", "classification", low=0.0, high=1.0),
    Metric("balanced_accuracy", "classification", low=0.0, high=1.0),
    Metric("precision", "classification", low=0.0, high=1.0),
    Metric("recall", "classification", low=0.0, high=1.0),
    Metric("f1", "classification", low=0.0, high=1.0),
    Metric("roc_auc", "classification", probabilities=True, low=0.0, high=1.0),
    Metric("log_loss", "classification", lower_is_better=True, probabilities=True, low=0.0),
    Metric("r2", "regression", high=1.0),
    Metric("mae", "regression", lower_is_better=True, low=0.0, unit_power=1),
    Metric("mse", "regression", lower_is_better=True, low=0.0, unit_power=2),
    Metric("rmse", "regression", lower_is_better=True, low=0.0, unit_power=1),
    Metric("mape", "regression", lower_is_better=True, low=0.0),
)
CLASSIFICATION_METRICS = tuple(m.name for m in METRIC_CATALOGUE if m.kind == "classification")
REGRESSION_METRICS = tuple(m.name for m in METRIC_CATALOGUE if m.kind == "regression")
METRICS: dict[TaskKind, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
LOWER_IS_BETTER = frozenset(m.name for m in METRIC_CATALOGUE if m.lower_is_better)
PROBABILITY_METRICS = tuple(m.name for m in METRIC_CATALOGUE if m.probabilities)
METRIC_RANGES: dict[str, tuple[float | None, float | None]] = {m.name: (m.low, m.high) for m in METRIC_CATALOGUE}
UNIT_POWERS = {m.name: m.unit_power for m in METRIC_CATALOGUE if m.unit_power}
_NO_PROBABILITIES = {
    "sklearn.linear_model.RidgeClassifier": "",
    "sklearn.linear_model.Perceptron": "",
    "sklearn.svm.LinearSVC": "",
    "sklearn.neighbors.NearestCentroid": "",
}


def lacks_probabilities(estimator: str, params: dict[str, object]) -> str | None:
    """Why a built-in classifier with these parameters has no probabilities (None when it has them or is unknown).

    The answer is the hint: which parameter or estimator would give probabilities.
    """
    if estimator in _NO_PROBABILITIES:
        return f"{estimator.rsplit('.', 1)[1]} predicts labels only; use LogisticRegression or a tree ensemble"
    if estimator in ("sklearn.svm.SVC", "sklearn.svm.NuSVC") and params.get("probability") is not True:
        return "set params: {probability: true} (slower to fit), or gate on accuracy, f1 or balanced_accuracy"
    if estimator == "sklearn.linear_model.SGDClassifier" and params.get("loss") not in ("log_loss", "modified_huber"):
        return "set params: {loss: log_loss} (or modified_huber) to get probabilities"
    return None
