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
