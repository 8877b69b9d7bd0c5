"""What a target column looks like (classes or a quantity), and each estimator's counterpart for the other task.

Shared by ``validate`` (:mod:`airflow_bridge.spec.datacheck`) and training (``ml.data.split``) so both
say the same thing about a classifier fitted on a continuous target. Imports no scikit-learn; pandas
only inside :func:`target_shape`, which is given a pandas Series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS

_TO_REGRESSOR = {
    "sklearn.linear_model.LogisticRegression": "sklearn.linear_model.Ridge",
    "sklearn.linear_model.RidgeClassifier": "sklearn.linear_model.Ridge",
    "sklearn.linear_model.SGDClassifier": "sklearn.linear_model.SGDRegressor",
    "sklearn.linear_model.Perceptron": "sklearn.linear_model.SGDRegressor",
    "sklearn.ensemble.RandomForestClassifier": "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.ExtraTreesClassifier": "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.ensemble.GradientBoostingClassifier": "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingClassifier": "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.AdaBoostClassifier": "sklearn.ensemble.AdaBoostRegressor",
    "sklearn.ensemble.BaggingClassifier": "sklearn.ensemble.BaggingRegressor",
    "sklearn.tree.DecisionTreeClassifier": "sklearn.tree.DecisionTreeRegressor",
    "sklearn.tree.ExtraTreeClassifier": "sklearn.tree.ExtraTreeRegressor",
    "sklearn.neighbors.KNeighborsClassifier": "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.neighbors.NearestCentroid": "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.svm.SVC": "sklearn.svm.SVR",
    "sklearn.svm.LinearSVC": "sklearn.svm.LinearSVR",
    "sklearn.svm.NuSVC": "sklearn.svm.NuSVR",
    "sklearn.naive_bayes.GaussianNB": "sklearn.linear_model.BayesianRidge",
    "sklearn.naive_bayes.BernoulliNB": "sklearn.linear_model.BayesianRidge",
    "sklearn.naive_bayes.MultinomialNB": "sklearn.linear_model.BayesianRidge",
    "sklearn.naive_bayes.ComplementNB": "sklearn.linear_model.BayesianRidge",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis": "sklearn.linear_model.Ridge",
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis": "sklearn.linear_model.Ridge",
    "sklearn.neural_network.MLPClassifier": "sklearn.neural_network.MLPRegressor",
    "sklearn.dummy.DummyClassifier": "sklearn.dummy.DummyRegressor",
}
_TO_CLASSIFIER = {
    "sklearn.linear_model.LinearRegression": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.Ridge": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.Lasso": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.ElasticNet": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.SGDRegressor": "sklearn.linear_model.SGDClassifier",
    "sklearn.linear_model.HuberRegressor": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.BayesianRidge": "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.PoissonRegressor": "sklearn.linear_model.LogisticRegression",
    "sklearn.ensemble.RandomForestRegressor": "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.ExtraTreesRegressor": "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.GradientBoostingRegressor": "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingRegressor": "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.AdaBoostRegressor": "sklearn.ensemble.AdaBoostClassifier",
    "sklearn.ensemble.BaggingRegressor": "sklearn.ensemble.BaggingClassifier",
    "sklearn.tree.DecisionTreeRegressor": "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.ExtraTreeRegressor": "sklearn.tree.ExtraTreeClassifier",
    "sklearn.neighbors.KNeighborsRegressor": "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.svm.SVR": "sklearn.svm.SVC",
    "sklearn.svm.LinearSVR": "sklearn.svm.LinearSVC",
    "sklearn.svm.NuSVR": "sklearn.svm.NuSVC",
    "sklearn.neural_network.MLPRegressor": "sklearn.neural_network.MLPClassifier",
    "sklearn.dummy.DummyRegressor": "sklearn.dummy.DummyClassifier",
}
_BOOSTING = {
    "lightgbm.LGBMClassifier": "lightgbm.LGBMRegressor",
    "xgboost.XGBClassifier": "xgboost.XGBRegressor",
    "catboost.CatBoostClassifier": "catboost.CatBoostRegressor",
}
COUNTERPARTS: dict[str, str] = {
    **_TO_REGRESSOR,
    **_TO_CLASSIFIER,
    **_BOOSTING,
    **{regressor: classifier for classifier, regressor in _BOOSTING.items()},
}
"""Each allow-listed estimator's closest estimator for the other task (classifier <-> regressor)."""

_FALLBACK = {
    "classification": "sklearn.ensemble.RandomForestClassifier",
    "regression": "sklearn.ensemble.RandomForestRegressor",
}
MIN_DISTINCT_CONTINUOUS = 20
"""Fewer distinct values than this always read as classes (ratings, grades, codes)."""
MIN_ROWS_PER_CLASS = 5
"""Whole-number targets with fewer rows per distinct value than this read as quantities (counts, scores)."""

TargetKind = Literal["empty", "single", "classes", "continuous", "text"]


def counterpart(estimator: str, wanted: str) -> str:
    """The estimator to use for the ``wanted`` task instead of ``estimator``; a common one when unknown."""
    other = COUNTERPARTS.get(estimator)
    if other is not None and DEFAULT_ESTIMATORS.get(other) == wanted:
        return other
    return _FALLBACK[wanted]


@dataclass(frozen=True)
class TargetShape:
    """The non-missing values of a target column, summarised for a task check."""

    kind: TargetKind
    rows: int
    distinct: int
    examples: tuple[str, ...]
    boolean: bool = False

    def describe(self) -> str:
        """E.g. ``312 distinct values in 442 rows, such as 12.5, 13.75, 9.1``."""
        such = f", such as {', '.join(self.examples)}" if self.examples else ""
        return f"{self.distinct} distinct values in {self.rows} rows{such}"


def target_shape(series: Any) -> TargetShape:
    """Empty, a single value, classes, a continuous quantity, or text/booleans (a pandas Series).

    Continuous: numbers with at least 20 distinct values that are not whole numbers, or whole
    numbers with fewer than 5 rows per value on average (e.g. a disease score 25..346).
    """
    import pandas as pd

    values = series.dropna()
    textual = pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)
    if textual:
        values = values[values.astype("string").str.strip() != ""]
    rows = len(values)
    distinct = int(values.nunique()) if rows else 0
    examples = tuple(_short(v) for v in values.drop_duplicates().head(3))
    if rows == 0:
        return TargetShape("empty", 0, 0, ())
    if distinct == 1:
        return TargetShape("single", rows, 1, examples)
    if pd.api.types.is_bool_dtype(values):
        return TargetShape("text", rows, distinct, examples, boolean=True)
    if textual:
        numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
        if numbers.isna().any():
            words = set(values.astype("string").str.strip().str.lower().unique())
            boolean = words <= {"true", "false", "yes", "no", "y", "n", "t", "f"}
            return TargetShape("text", rows, distinct, examples, boolean=boolean)
        values = numbers
    if distinct >= MIN_DISTINCT_CONTINUOUS:
        whole = bool((values.astype(float) % 1 == 0).all())
        if not whole or rows / distinct < MIN_ROWS_PER_CLASS:
            return TargetShape("continuous", rows, distinct, examples)
    return TargetShape("classes", rows, distinct, examples)


def _short(value: Any, limit: int = 24) -> str:
    plain = value.item() if hasattr(value, "item") else value
    if isinstance(plain, str) and len(plain) > limit:
        plain = plain[: limit - 3] + "..."
    return repr(plain)
