"""The built-in estimator allow-list.

Specs name estimators by dotted path; only names on an allow-list can be built, so a spec can
never reach ``os.system`` or ``builtins.eval``. The list is static data (no sklearn import at
parse time). Team policy can extend it with more estimators (``governance``).
"""

from __future__ import annotations

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


DEFAULT_ESTIMATORS: dict[str, TaskKind] = {
    **_flatten(_CLASSIFIERS, "classification"),
    **_flatten(_REGRESSORS, "regression"),
}

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("r2", "mae", "mse", "rmse", "mape")
METRICS: dict[TaskKind, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
# Metrics where smaller is better; champion comparisons flip their sign.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "mse", "rmse", "mape"})

PROBABILITY_METRICS = ("roc_auc", "log_loss")
"""Metrics computed from predicted probabilities: an estimator without ``predict_proba`` never gets them."""
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
