"""Leakage and sanity warnings, baselines and uncertainty (issue 17, items 3 and 4).

Unit tests of ``ml/sanity.py`` and ``ml/uncertainty.py`` on small frames, the policy that turns a warning
into a failed gate, the bad input that must be refused, and one end to end run through the train and
validate actions: the breast-cancer table sorted by its target with a row-number column ``Position #``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from airflow_bridge.actions import deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.actions.registration import register
from airflow_bridge.actions.results import DataSummary, TrainingResult
from airflow_bridge.actions.training import TrainingRequest, train
from airflow_bridge.actions.validation import ValidationRules, _threshold_gates, validate
from airflow_bridge.artifacts import ArtifactRef, ArtifactStore, read_verified
from airflow_bridge.exceptions import DataError
from airflow_bridge.governance.policy import Policy
from airflow_bridge.ml.columns import feature_columns, infer_roles
from airflow_bridge.ml.metrics import compute_metrics
from airflow_bridge.ml.sanity import run_warnings, warning_gates
from airflow_bridge.ml.uncertainty import baseline, baseline_gate, bootstrap, cross_validate, fast_metrics
from airflow_bridge.registry import ModelRegistry
from airflow_bridge.report import summary_markdown
from airflow_bridge.spec.loader import load_spec_text
from tests.helpers import EXAMPLES

BREAST_CANCER = EXAMPLES / "data" / "breast_cancer.csv"
ROWS = 60


def _lab(rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    outcome = np.sort(rng.choice([0, 1], rows))  # a file sorted by outcome
    return pd.DataFrame(
        {
            "Position #": np.arange(1, rows + 1),
            "row": rng.permutation(rows),  # 0..n-1 in any order
            "dose": np.sort(rng.normal(5, 1, rows)),  # sorted and unique, but a measurement
            "count": rng.choice(np.arange(1000), rows, replace=False),  # unique whole numbers, unsorted
            "outcome": outcome,
        }
    )


def test_row_numbers_are_ignored_unless_the_spec_keeps_them_then_flagged() -> None:
    roles = infer_roles(_lab(), "outcome")
    assert roles["Position #"].role == "ignore"
    assert roles["Position #"].reason == (
        "a row number: unique per row and increasing through the file: an identifier, not a feature; "
        "set its role in data.columns to keep it"
    )
    assert roles["row"].role == "ignore" and "the numbers 0..59, once each" in roles["row"].reason
    assert feature_columns(roles) == ["dose", "count"]  # float measurements and unsorted counts stay
    assert "warning" not in roles["dose"].to_dict()
    assert infer_roles(_lab(10), "outcome")["Position #"].role == "numeric"  # too few rows to tell

    kept = infer_roles(_lab(), "outcome", overrides={"Position #": "numeric"})["Position #"]
    assert (kept.role, kept.reason) == ("numeric", "set in the spec (data.columns)")
    assert kept.to_dict()["warning"] == "a row number: unique per row and increasing through the file"
    found = run_warnings(metrics={}, roles={"Position #": kept.to_dict()})
    assert [w["code"] for w in found] == ["id_like_column"]
    assert "'Position #'" in found[0]["message"] and found[0]["column"] == "Position #"


def _importance(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"feature": name, "importance": value} for name, value in pairs]


def test_each_warning_rule_and_what_stays_quiet() -> None:
    quiet = run_warnings(
        metrics={"accuracy": 0.972, "balanced_accuracy": 0.962, "roc_auc": 0.9954},  # the breast-cancer example
        importance=_importance(("worst_texture", 0.021), ("mean_concavity", 0.014), ("mean_texture", 0.007)),
        live_features=["worst_texture", "mean_concavity", "mean_texture"],
        live_version=1,
    )
    assert quiet == []
    leaky = run_warnings(
        metrics={"accuracy": 1.0, "balanced_accuracy": 1.0, "roc_auc": 1.0},
        importance=_importance(("Lifeboat", 0.30), ("Sex", 0.05), ("Age", 0.01)),
        scoring="accuracy",
        duplicates_across_split=3,
        live_features=["Sex", "Age"],
        live_version=4,
        held_out_rows=179,
        fail_on=["dominant_feature"],
    )
    assert [w["code"] for w in leaky] == [
        "near_perfect_score",
        "dominant_feature",
        "new_dominant_column",
        "train_test_duplicates",
    ]
    near, dominant, new, duplicates = leaky
    assert near["message"].startswith("balanced_accuracy 1.0000 on 179 held-out rows is near perfect")
    assert "'Lifeboat' carries 83% of the feature importance" in dominant["message"]
    assert "new since the live v4" in new["message"] and new["column"] == "Lifeboat"
    assert duplicates["message"].startswith("3 held-out row(s) also appear in the training rows")
    assert [w["failing"] for w in leaky] == [False, True, False, False]
    assert [g.to_json() for g in warning_gates(leaky)] == [
        {
            "name": "dominant_feature",
            "kind": "warning",
            "value": "raised",
            "min": None,
            "max": None,
            "column": "Lifeboat",
            "passed": False,
            "message": dominant["message"],
        }
    ]
    small_drop = run_warnings(metrics={}, importance=_importance(("a", 0.02), ("b", 0.001)))
    assert small_drop == []  # 95 % of a tiny drop is noise, not dominance
    assert run_warnings(metrics={"r2": 0.995}, held_out_rows=53)[0]["code"] == "near_perfect_score"


def test_a_team_policy_validates_and_names_its_failing_warnings() -> None:
    base = {"apiVersion": "airflow-bridge/v1", "kind": "Policy"}
    policy = Policy.model_validate({**base, "teams": {"oncology": {"fail_on_warnings": ["near_perfect_score"]}}})
    assert policy.warnings_failing_for("oncology") == ("near_perfect_score",)
    assert policy.warnings_failing_for("elsewhere") == ()
    assert "fail_on_warnings" not in Policy.model_validate({**base, "teams": {"x": {}}}).document()["teams"]["x"]
    with pytest.raises(ValidationError, match=r"'near_perfect' is not a warning airflow-bridge raises") as caught:
        Policy.model_validate({**base, "teams": {"oncology": {"fail_on_warnings": ["near_perfect"]}}})
    assert "near_perfect_score" in caught.value.errors()[0]["ctx"]["hint"]


def _frame(task: str, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=rows) > 0).astype(int) if task == "binary" else None
    if task == "multiclass":
        y = np.digitize(x[:, 0] + 0.3 * rng.normal(size=rows), [-0.5, 0.5])
    if task == "regression":
        y = 3 * x[:, 0] + rng.normal(size=rows)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_bootstrap_metrics_match_scikit_learn_and_are_seeded_and_cheap(task: str) -> None:
    frame = _frame(task)
    kind = "regression" if task == "regression" else "classification"
    model = (LinearRegression() if kind == "regression" else LogisticRegression()).fit(frame[["a", "b", "c"]], frame.y)
    features, labels = frame[["a", "b", "c"]], frame.y
    expected = compute_metrics(kind, model, features, labels)
    proba = model.predict_proba(features) if kind == "classification" else None
    classes = list(model.classes_) if kind == "classification" else None
    fast = fast_metrics(kind, labels.to_numpy(), model.predict(features), proba, classes)
    assert fast.keys() == expected.keys()
    for name, value in expected.items():
        assert fast[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    started = time.perf_counter()
    first = bootstrap(kind, model, features, labels, seed=42)
    took = time.perf_counter() - started
    assert took < 1.0  # 200 resamples of predictions, no refit
    assert first == bootstrap(kind, model, features, labels, seed=42)
    assert first != bootstrap(kind, model, features, labels, seed=43)
    assert first["method"] == "bootstrap" and first["resamples"] == 200
    for name, interval in first["metrics"].items():
        assert interval["low"] <= expected[name] <= interval["high"], name


def test_the_dummy_baseline_and_its_gate() -> None:
    frame = _frame("binary")
    train_rows, test_rows = frame.iloc[:90], frame.iloc[90:]
    found = baseline("classification", train_rows, test_rows, ["a", "b", "c"], "y")
    majority = train_rows.y.mode()[0]
    assert found["strategy"] == "most_frequent" and found["fitted_on"] == "training rows"
    assert found["metrics"]["accuracy"] == pytest.approx(float((test_rows.y == majority).mean()))
    assert found["metrics"]["roc_auc"] == 0.5
    metrics = {"roc_auc": 0.62, "log_loss": 0.4}
    gate = baseline_gate("roc_auc", 0.05, metrics, found)
    assert gate.passed and gate.value == pytest.approx(0.12) and gate.kind == "baseline"
    assert not baseline_gate("roc_auc", 0.2, metrics, found).passed
    lower = baseline_gate("log_loss", 0.1, metrics, found)  # an error: improvement = baseline - value
    assert lower.value == pytest.approx(found["metrics"]["log_loss"] - 0.4) and lower.passed
    assert not baseline_gate("r2", 0.0, metrics, found).passed  # not computed: never passes
    regression = baseline("regression", _frame("regression").iloc[:90], _frame("regression").iloc[90:], ["a"], "y")
    assert regression["strategy"] == "mean" and regression["metrics"]["r2"] <= 0


def test_cross_validation_reports_mean_and_spread_and_gates_may_use_the_lower_bound() -> None:
    frame = _frame("binary")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    cv = cross_validate(pipeline, frame, ["a", "b", "c"], "y", "classification", folds=4, seed=42)
    assert cv == cross_validate(pipeline, frame, ["a", "b", "c"], "y", "classification", folds=4, seed=42)
    assert cv["method"] == "cross_validation" and cv["folds"] == 4
    accuracy = cv["metrics"]["accuracy"]
    assert accuracy["bound"] == pytest.approx(accuracy["mean"] - accuracy["std"]) and accuracy["std"] > 0
    log_loss = cv["metrics"]["log_loss"]
    assert log_loss["bound"] == pytest.approx(log_loss["mean"] + log_loss["std"])  # errors: the upper end
    training = TrainingResult("m", "e", "classification", ArtifactRef("", "", 0), DataSummary("u"), cross_validation=cv)
    threshold = {"accuracy": {"min": accuracy["mean"] - accuracy["std"] / 2, "max": None}}
    on_holdout = _threshold_gates(training, ValidationRules(thresholds=threshold), {"accuracy": 0.99})
    assert on_holdout[0].passed and "basis" not in on_holdout[0].to_json()
    on_bound = _threshold_gates(training, ValidationRules(thresholds=threshold, gate_on="lower_bound"), {})
    assert not on_bound[0].passed and on_bound[0].value == accuracy["bound"]
    assert on_bound[0].basis == "cross-validation lower bound (4 folds)"
    rare = frame.iloc[:40].assign(y=[1] * 3 + [0] * 37)
    with pytest.raises(DataError, match=r"folds is 4 but the training rows hold only 3 row\(s\) of the rarest") as few:
        cross_validate(pipeline, rare, ["a"], "y", "classification", folds=4, seed=1)
    assert str(few.value).endswith("; use at most 3 folds or remove cross_validation")
    with pytest.raises(DataError) as short:
        three = frame.iloc[:3].assign(y=[0.1, 0.2, 0.3])
        cross_validate(LinearRegression(), three, ["a"], "y", "regression", folds=4, seed=1)
    assert str(short.value) == (
        "validation.cross_validation.folds is 4 but there are only 3 training rows; "
        "use at most 3 folds or remove cross_validation"
    )


SPEC = (EXAMPLES / "breast_cancer_classifier.yaml").read_text()


def _issues(validation: str) -> list[str]:
    text = SPEC.replace("  champion: {metric: roc_auc, min_improvement: 0.0}\n", validation)
    loaded = load_spec_text(text, str(EXAMPLES / "x.yaml"))
    return [f"{i.field}: {i.message} ({i.hint})" for i in loaded.issues]


def test_bad_cross_validation_and_baseline_settings_are_clear_errors() -> None:
    assert _issues("  baseline: {metric: roc_auc, min_improvement: 0.05}\n  cross_validation: {folds: 5}\n") == []
    (folds,) = _issues("  cross_validation: {folds: 1}\n")
    assert folds.startswith("validation.cross_validation.folds: folds: 1 is not cross-validation")
    assert "use folds: 5" in folds
    (metric,) = _issues("  baseline: {metric: r2}\n")
    assert metric.startswith("validation.baseline.metric: 'r2' is not a classification metric")
    (typo,) = _issues("  baseline: {metric: rocauc}\n")
    assert "did you mean 'roc_auc'" in typo


# -- end to end: a leaky table through the train and validate actions -------------------------------------------------


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The breast-cancer table sorted by its target, with the file's row number as ``Position #``."""
    frame = pd.read_csv(BREAST_CANCER).sort_values("malignant", kind="stable")
    frame.insert(0, "Position #", np.arange(1, len(frame) + 1))
    path = tmp_path_factory.mktemp("leaky") / "sorted.csv"
    frame.to_csv(path, index=False)
    return path


def _request(path: Path, **changes: Any) -> TrainingRequest:
    fields: dict[str, Any] = {
        "model": "leaky",
        "data_uri": str(path),
        "target": "malignant",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 30, "max_depth": 4},
        "test_size": 0.25,
    }
    return TrainingRequest(**{**fields, **changes})


def test_a_row_number_of_a_sorted_file_is_ignored_or_flagged_at_the_top_of_the_report(
    leaky: Path, tmp_path: Path
) -> None:
    store = ArtifactStore(f"file://{tmp_path}")
    safe = train(_request(leaky), store)
    assert "Position #" not in safe.data.features
    assert safe.data.roles["Position #"]["reason"].startswith("a row number: unique per row and increasing")
    assert safe.baseline is not None and safe.baseline["metrics"]["accuracy"] == pytest.approx(0.6294, abs=1e-3)

    registry = ModelRegistry("sqlite://")
    checked = validate(safe, ValidationRules(), registry)  # no artifact store: no report, quick
    assert checked.passed and checked.warnings == []
    live = register(safe, checked, registry=registry, actor="alice")
    stored = registry.resolve("leaky", live.version).validation  # recorded with the version
    assert stored["baseline"]["strategy"] == "most_frequent" and stored["uncertainty"]["method"] == "bootstrap"
    deployment.move(registry, MoveRequest(model="leaky", version=live.version, alias="staging"), actor="bob")

    forced = train(_request(leaky, column_roles={"Position #": "numeric"}), store)
    assert "Position #" in forced.data.features
    rules = ValidationRules(
        thresholds={"roc_auc": {"min": 0.97}},
        baseline_metric="roc_auc",
        baseline_min_improvement=0.05,
        fail_on_warnings=("id_like_column",),
        champion_alias="staging",
    )
    report = validate(forced, rules, registry, store)
    codes = [w["code"] for w in report.warnings]
    assert {"id_like_column", "near_perfect_score", "new_dominant_column"} <= set(codes), report.warnings
    new = next(w for w in report.warnings if w["code"] == "new_dominant_column")
    assert new["column"] == "Position #" and f"new since the live v{live.version}" in new["message"]
    assert not report.passed  # the team policy fails the row number
    failed = {g.name: g.kind for g in report.failed_gates}
    assert failed == {"id_like_column": "warning"}
    assert "FAIL  id_like_column = raised (column Position #)" in report.failure_message()
    baseline_gate_result = next(g for g in report.gates if g.kind == "baseline")
    assert baseline_gate_result.passed and baseline_gate_result.baseline == 0.5
    interval = report.uncertainty["metrics"]["accuracy"]  # type: ignore[index]
    assert interval["low"] <= report.metrics["accuracy"] <= interval["high"]

    assert report.report is not None
    html = read_verified(ArtifactRef(**report.report["html"])).decode()
    box = html.index('<section class="warnings"')
    assert box < html.index("<nav>") < html.index('id="gates"')  # at the top, before everything else
    assert "id_like_column</b> (fails: team policy)" in html and "near_perfect_score" in html
    assert "baseline (most frequent class)" in html and "95% interval" in html
    approval = summary_markdown(report.report["summary"])
    assert "- **FAIL** `id_like_column`: column 'Position #' looks like a row number" in approval
    assert "- **Warning** `near_perfect_score`" in approval
    assert "- Baseline (always the most frequent class) on the same rows: `accuracy` 0.6" in approval


def test_the_run_output_prints_the_warnings_after_the_gates(tmp_path: Path) -> None:
    from airflow_bridge.actions.names import REPORT_XCOM_KEY, TaskId
    from airflow_bridge.actions.results import ValidationReport
    from airflow_bridge.cli.common import console
    from airflow_bridge.cli.run_progress import Progress

    warnings = run_warnings(metrics={"roc_auc": 1.0}, held_out_rows=143, fail_on=["near_perfect_score"])
    report = ValidationReport("leaky", {"roc_auc": 1.0}, warning_gates(warnings), warnings=warnings)
    progress = Progress(console, 0.0)
    progress.result = {"state": "failed", "xcoms": {TaskId.VALIDATE: {REPORT_XCOM_KEY: report.to_xcom()}}}
    summary = progress.summary(tmp_path, 1)
    assert summary.warnings == warnings
    with console.capture() as captured:
        summary.print()
    text = captured.get()
    assert text.index("near_perfect_score") < text.index("FAIL near_perfect_score: roc_auc 1.0000 on 143 held-out")


def test_the_dag_factory_passes_baseline_cross_validation_and_failing_warnings_on() -> None:
    from airflow_bridge.actions.validation import ValidationRules
    from airflow_bridge.factory.build import dag_doc, training_request, validation_rules

    text = SPEC.replace(
        "  champion: {metric: roc_auc, min_improvement: 0.0}\n",
        "  baseline: {metric: roc_auc, min_improvement: 0.05}\n  cross_validation: {folds: 5, gate_on: lower_bound}\n",
    )
    spec = load_spec_text(text, str(EXAMPLES / "x.yaml")).spec
    assert spec is not None
    policy = Policy.model_validate(
        {
            "apiVersion": "airflow-bridge/v1",
            "kind": "Policy",
            "teams": {"oncology": {"fail_on_warnings": ["id_like_column"]}},
        }
    )
    assert training_request(spec, policy).cross_validation_folds == 5
    rules = validation_rules(spec, policy)
    assert (rules.baseline_metric, rules.baseline_min_improvement, rules.gate_on, rules.fail_on_warnings) == (
        "roc_auc",
        0.05,
        "lower_bound",
        ("id_like_column",),
    )
    assert isinstance(rules, ValidationRules) and rules.champion_metric is None
    assert "roc_auc ≥ dummy baseline + 0.05, no id_like_column warning" in dag_doc(spec, None, policy)


def test_train_cross_validates_when_asked_and_validate_reports_and_gates_on_it(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    _frame("binary").to_csv(path, index=False)
    request = TrainingRequest(
        model="lab",
        data_uri=str(path),
        target="y",
        estimator="sklearn.linear_model.LogisticRegression",
        cross_validation_folds=3,
    )
    trained = train(request, ArtifactStore(f"file://{tmp_path}"))
    assert TrainingResult.from_xcom(trained.to_xcom()) == trained  # baseline and cross-validation travel by XCom
    assert trained.cross_validation is not None and trained.cross_validation["folds"] == 3
    rules = ValidationRules(thresholds={"accuracy": {"min": 0.5}}, gate_on="lower_bound")
    report = validate(trained, rules, None)
    assert report.uncertainty == trained.cross_validation
    (gate,) = report.gates
    assert gate.value == trained.cross_validation["metrics"]["accuracy"]["bound"]
    assert gate.basis == "cross-validation lower bound (3 folds)"
