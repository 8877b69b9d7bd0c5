"""Permutation importance in the model report: the column that carries the signal ranks first, every time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from airflow_bridge.report.evaluation import permutation


def _table(rows: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.RandomState(1)
    frame = pd.DataFrame({"signal": rng.normal(size=rows), "noise": rng.normal(size=rows)})
    return frame, frame["signal"] * 3 + rng.normal(scale=0.1, size=rows)


def test_regression_importance_ranks_the_signal_first_and_is_repeatable() -> None:
    frame, target = _table()
    model = LinearRegression().fit(frame, target)
    first = permutation(model, frame, target, "regression")
    again = permutation(model, frame, target, "regression")
    assert first == again
    assert [f["feature"] for f in first.features] == ["signal", "noise"]
    assert first.scoring == "r2" and first.repeats == 5 and first.rows == 300
    assert first.features[0]["importance"] > 1.0 > abs(first.features[1]["importance"]) * 100


def test_classification_importance_on_a_non_default_index_and_sampled_rows() -> None:
    frame, target = _table(1500)
    labels = (target > 0).map({True: "yes", False: "no"})
    frame.index = frame.index + 10_000  # a held-out split keeps the original row labels
    labels.index = frame.index
    model = LogisticRegression().fit(frame, labels)
    result = permutation(model, frame, labels, "classification")
    assert result.scoring == "accuracy" and result.rows == 1000
    assert result.features[0]["feature"] == "signal" and result.features[0]["importance"] > 0.3


@pytest.mark.parametrize("seed", [0, 7])
def test_importances_equal_scikit_learns_permutation_importance(seed: int) -> None:
    """The shuffles are drawn from the run's seed, as scikit-learn draws them for ``random_state=seed``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.inspection import permutation_importance

    frame, target = _table(200)
    labels = target > 0
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, labels)
    ours = permutation(model, frame, labels, "classification", seed=seed)
    theirs = permutation_importance(model, frame, labels, scoring="accuracy", n_repeats=ours.repeats, random_state=seed)
    by_name = {f["feature"]: f for f in ours.features}
    for index, column in enumerate(frame.columns):
        assert by_name[column]["importance"] == pytest.approx(theirs.importances_mean[index])
        assert by_name[column]["std"] == pytest.approx(theirs.importances_std[index])
