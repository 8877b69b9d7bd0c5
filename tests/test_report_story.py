"""The report tells its version's story: its fate (kept current by the readers), the history with each
version's fate, what changed since the live version (columns, roles, PSI/KS drift), calibration, metrics per
``data.groups`` column, the worst-predicted rows, units and log scale for regression, hyperparameters and data.

Unit tests on small frames and a real SQLite registry (milliseconds to a second each); one end-to-end
train + validate on the penguin table (a few seconds).
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.actions.registration import register
from airflow_bridge.actions.training import TrainingRequest, train
from airflow_bridge.actions.validation import ValidationRules, validate
from airflow_bridge.artifacts import ArtifactStore, load_frame, read_verified
from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import DataError
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for
from airflow_bridge.report import ModelReport, ReportInputs, build_report, summary_markdown
from airflow_bridge.report.drift import changes_since, column_drift, column_profiles
from airflow_bridge.report.fate import candidate_fate, current_page, model_fates
from airflow_bridge.report.storage import stored_report
from airflow_bridge.report.story import worst_rows
from airflow_bridge.report.units import needs_log_scale, unit_of, with_unit
from tests.helpers import EXAMPLES

POLICY = Policy.model_validate(
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "defaults": {"approval_required_for": ["production"]},
        "teams": {"onc": {"approvers": ["alice", "dana", "erin"]}},
    }
)


# -- fate ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fates_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """Model 'm' with a version in every state (see the test)."""
    registry, store = ModelRegistry("sqlite://"), ArtifactStore(f"file://{tmp_path_factory.mktemp('art')}")
    binding = binding_for(POLICY, "team/_policy.yaml")
    for number in range(1, 9):
        registry.register_version(
            "m",
            store.put(f"model {number}".encode(), "models/m", ".joblib"),
            run=RunRef("d", f"r{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="onc"),
            policy=binding,
        )

    def ask(version: int, alias: str = "production") -> None:
        approval.request_approval(
            registry, model="m", version=version, alias=alias, requested_by="alice", approvers=["dana"]
        )

    ask(1)
    approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=True)
    deployment.move(registry, MoveRequest(model="m", version=1, alias="production"), actor="bob")
    ask(2)
    approval.decide(
        registry, model="m", version=2, alias="production", responder="erin", approve=False, comment="leaks the outcome"
    )
    ask(3)
    ask(4)  # closes v3's request: superseded by v4; v4 stays pending
    deployment.move(registry, MoveRequest(model="m", version=6, alias="staging"), actor="bob")
    deployment.move(registry, MoveRequest(model="m", version=5, alias="staging"), actor="bob")  # v6 was live, moved on
    ask(8, "canary")
    approval.decide(registry, model="m", version=8, alias="canary", responder="dana", approve=False)
    ask(8, "canary")  # asked again after the rejection: pending
    return registry


def test_the_fate_of_a_version_in_each_state(fates_registry: ModelRegistry) -> None:
    fates = model_fates(fates_registry, "m")
    assert {n: (f.state, f.text) for n, f in fates.items()} == {
        1: ("live", "live as production, approved by dana"),
        2: ("rejected", "rejected by erin: leaks the outcome"),
        3: ("superseded", "superseded by v4"),
        4: ("pending", "pending approval for production"),
        5: ("live", "live as staging"),
        6: ("superseded", "superseded by v5 (was live as staging)"),
        7: ("registered", "registered (no approval asked)"),
        8: ("pending", "pending approval for canary"),
    }
    assert candidate_fate(False, ["accuracy", "champion comparison"]).text == (
        "failed gate(s) accuracy, champion comparison (candidate, not registered)"
    )


def test_readers_rewrite_the_stored_fates_from_the_registry(
    fates_registry: ModelRegistry, classified: tuple[ReportInputs, ModelReport]
) -> None:
    page = classified[1].html
    assert "<title>Model report: tumours candidate — candidate, passed every gate (registered next)</title>" in page
    assert "<td>v1</td><td><!--fate:1-->pending approval for production<!--/fate--></td>" in page
    current = current_page(fates_registry, "m", 4, page.encode()).decode()
    assert "<title>Model report: m v4 — pending approval for production</title>" in current
    assert (
        "<!--version:self-->v4<!--/version--> — <!--fate:self-->pending approval for production<!--/fate-->" in current
    )
    assert "<td>v1</td><td><!--fate:1-->live as production, approved by dana<!--/fate--></td>" in current
    assert "<td>v2</td><td><!--fate:2-->rejected by erin: leaks the outcome<!--/fate--></td>" in current
    # the report of a version links to its comparison with the live one: the page's route, or the command
    assert "compare with the live v1 (production): <code>airflow-bridge models compare m production 4</code>" in current
    linked = current_page(fates_registry, "m", 4, page.encode(), "/airflow-bridge/models/m/compare").decode()
    assert (
        '<a href="/airflow-bridge/models/m/compare?v=production&amp;v=4">compare with the live v1 (production)</a>'
        in linked
    )
    assert "compare with the live" not in current_page(fates_registry, "m", 1, page.encode()).decode()  # v1 is live
    old = b"<html><title>Model report: m v1</title></html>"  # a report from before fate blocks: left as stored
    assert current_page(fates_registry, "m", 1, old) == old


# -- drift --------------------------------------------------------------------------------------------------


def _frame(rows: int, seed: int, shift: float = 0.0, colours: tuple[str, ...] = ("red", "green", "blue")) -> Any:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.normal(10 + shift, 2, rows),
            "colour": rng.choice(colours, rows),
            "count": rng.integers(0, 3, rows),
        }
    )


ROLES = {"size": {"role": "numeric"}, "colour": {"role": "categorical"}, "count": {"role": "numeric"}}


def test_psi_and_ks_from_stored_profiles_read_a_shift_and_ignore_resampling() -> None:
    base = column_profiles(_frame(2000, 0), ["size", "colour", "count"], ROLES)
    same = column_profiles(_frame(2000, 1), ["size", "colour", "count"], ROLES)
    moved = column_profiles(_frame(2000, 2, shift=2.0, colours=("red", "red", "purple")), ["size", "colour"], ROLES)
    assert base["size"]["kind"] == "numeric" and len(base["size"]["quantiles"]) == 21
    assert base["colour"]["kind"] == "categorical" and set(base["colour"]["top"]) == {"red", "green", "blue"}
    for column in ("size", "colour", "count"):
        drift = column_drift(column, base[column], same[column])
        assert drift is not None and drift.psi < 0.1 and drift.level == "stable", drift
    size = column_drift("size", base["size"], moved["size"])
    colour = column_drift("colour", base["colour"], moved["colour"])
    assert size is not None and size.level == "major shift" and size.ks is not None and size.ks > 0.3
    assert colour is not None and colour.level == "major shift" and colour.ks is None
    assert column_drift("size", base["size"], base["colour"]) is None  # numbers became text: not comparable


def test_changes_since_the_live_version_list_columns_roles_and_drift_worst_first() -> None:
    live = {
        "features": ["size", "colour", "weight"],
        "target": "label",
        "roles": {"size": {"role": "numeric"}, "colour": {"role": "categorical"}, "weight": {"role": "numeric"}},
        "profiles": column_profiles(_frame(500, 0), ["size", "colour"], ROLES),
    }
    new = {
        "features": ["size", "colour", "Lifeboat"],
        "target": "label",
        "roles": {"size": {"role": "numeric"}, "colour": {"role": "text"}, "Lifeboat": {"role": "categorical"}},
        "profiles": column_profiles(_frame(500, 1, shift=3.0), ["size", "colour"], ROLES),
    }
    changes = changes_since(live, 3, "production", new)
    assert (changes.added, changes.removed, changes.roles) == (
        ["Lifeboat"],
        ["weight"],
        [("colour", "categorical", "text")],
    )
    assert [d.column for d in changes.drift] == ["size", "colour"] and changes.drift[0].level == "major shift"
    assert changes.not_compared == ["label"]
    assert changes_since(None, None, "production", new).live_version is None


# -- units, log scale, worst rows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "unit"),
    [
        ("price_usd", "USD"),
        ("Price ($)", "$"),
        ("weight [kg]", "kg"),
        ("MAE (ms)", "ms"),
        ("Body Mass (g)", "g"),
        ("latency_seconds", "s"),
        ("growth_pct", "%"),
        ("price", None),
        ("sales (2019)", None),
        ("s6", None),
        ("class_m", None),
    ],
)
def test_units_are_read_from_the_column_name(column: str, unit: str | None) -> None:
    assert unit_of(column) == unit


def test_metrics_carry_the_unit_and_the_log_scale_needs_positive_values_over_three_orders() -> None:
    assert with_unit("mae", 84.69, "USD") == "84.69 USD" and with_unit("mse", 4.0, "kg") == "4 kg²"
    assert with_unit("r2", 0.973, "USD") == "0.973"
    assert needs_log_scale([0.5, 20.0, 1200.0]) and not needs_log_scale([1.0, 999.0])
    assert not needs_log_scale([-1.0, 5000.0]) and not needs_log_scale([0.0, 5000.0])


def test_worst_rows_are_the_least_probable_true_class_or_the_largest_error() -> None:
    inputs = _classification_inputs()
    holdout = inputs.holdout
    features, labels = holdout[list(inputs.features)], holdout["target"]
    probabilities = inputs.model.predict_proba(features)
    positions, losses, what = worst_rows(inputs, labels, inputs.model.predict(features), probabilities=probabilities)
    truth_index = (labels.to_numpy() == inputs.model.classes_[1]).astype(int)
    p_true = probabilities[np.arange(len(labels)), truth_index]
    assert what == "probability of the true class" and len(positions) == 10
    assert losses == sorted(losses) and losses[0] == pytest.approx(p_true.min())
    regression = ReportInputs(**{**inputs.__dict__, "task_kind": "regression"})
    positions, losses, what = worst_rows(regression, pd.Series([1.0, 5.0, 2.0]), np.array([1.5, 1.0, 2.0]), top=2)
    assert (positions, losses, what) == ([1, 0], [4.0, 0.5], "absolute error")


# -- the page ---------------------------------------------------------------------------------------------


def _classification_inputs(**extra: Any) -> ReportInputs:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=240), "b": rng.normal(size=240)})
    frame["sex"] = rng.choice(["female", "male", "<b>x</b>"], 240)
    frame["target"] = np.where(frame["a"] + rng.normal(scale=0.7, size=240) > 0, "yes", "no")
    model = LogisticRegression().fit(frame.iloc[:160][["a", "b"]], frame.iloc[:160]["target"])
    history = [{"version": v, "created_at": "2026-01-05", "metrics": {"accuracy": 0.7}} for v in (1, 2)]
    return ReportInputs(
        model=model,
        holdout=frame.iloc[160:].reset_index(drop=True),
        features=["a", "b"],
        target="target",
        task_kind="classification",
        model_name="tumours",
        metrics={"accuracy": 0.8},
        history=history,
        estimator="LogisticRegression",
        profile={"uri": "data/t.csv", "sha256": "ab" * 32, "rows": 240},
        params={"C": 1.0, "penalty": "l2"},
        **{"groups": ["sex"], **extra},
    )


@pytest.fixture(scope="module")
def classified() -> tuple[ReportInputs, ModelReport]:
    """A binary classifier's report at validate time, v1 and v2 earlier (their fates as then)."""
    inputs = _classification_inputs(fates={1: "pending approval for production", 2: "registered"})
    return inputs, build_report(inputs)


def test_classification_report_has_calibration_groups_worst_rows_params_and_checksum(
    classified: tuple[ReportInputs, ModelReport],
) -> None:
    inputs, report = classified
    html = report.html
    assert "calibration.png" in report.pngs
    groups = html[html.index('<section id="groups">') : html.index('<section id="worst">')]
    assert '<tr><td><i>all rows</i></td><td class="num">80</td><td class="num">0.7750</td>' in groups
    assert "<h3>By sex</h3>" in groups and "<td>female</td>" in groups and "&lt;b&gt;x&lt;/b&gt;" in groups
    assert "<b>x</b>" not in html  # data is escaped
    worst = html[html.index('<section id="worst">') : html.index('<section id="importance">')]
    assert worst.count("<tr><td>") == 10 and "<th>probability of the true class</th>" in worst
    model = html[html.index('<section id="model">') :]
    assert "<td>C</td><td>1.0</td>" in model and "<td>penalty</td><td>&quot;l2&quot;</td>" in model
    assert f"<td>sha256</td><td>{'ab' * 32}</td>" in model and "<td>rows</td><td>240</td>" in model
    assert "Not compared: this report was built without the registry." in html
    assert build_report(inputs).html == html  # deterministic


def test_regression_report_shows_the_target_distribution_with_its_unit_on_a_log_scale() -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"cores": rng.integers(1, 200, 120).astype(float)})
    frame["Price ($)"] = frame["cores"] ** 2 * 0.05 + rng.uniform(0.01, 0.5, 120)
    model = LinearRegression().fit(frame[["cores"]], frame["Price ($)"])
    inputs = ReportInputs(
        model=model,
        holdout=frame,
        features=["cores"],
        target="Price ($)",
        task_kind="regression",
        model_name="ec2",
        metrics={"mae": 84.69, "r2": 0.9},
    )
    report = build_report(inputs)
    target = report.html[report.html.index('<section id="target">') : report.html.index('<section id="performance">')]
    assert "target_distribution.png" in report.pngs and "Unit <b>$</b>" in target
    assert "log scale" in target and '<td>mae</td><td class="num">84.69 $</td>' in target
    assert '<td>r2</td><td class="num">0.9</td>' in target


# -- data.groups: validate and train ------------------------------------------------------------------------


def test_a_groups_column_that_does_not_exist_is_refused_by_validate_and_by_training(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    spec = tmp_path / "groups.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            apiVersion: airflow-bridge/v1
            kind: Experiment
            owner: alice
            team: growth
            name: groups
            data:
              training: {uri: data/penguins_raw.csv, target: Species}
              groups: [Island, Sexx]
            model: {estimator: sklearn.ensemble.RandomForestClassifier}
            """
        )
    )
    result = CliRunner().invoke(app, ["validate", "--format", "json", str(spec)])
    assert result.exit_code == 1
    issues = [
        f"{i['line']}:{i['col']}: {i['field']}: {i['message']} ({i['hint']})"
        for i in json.loads(result.stdout)["files"][0]["issues"]
    ]
    assert any(
        re.match(
            r"8:\d+: data\.groups\[1\]: groups column 'Sexx' is not in data/penguins_raw\.csv.*did you mean 'Sex'", i
        )
        for i in issues
    ), issues
    request = TrainingRequest(
        model="p", data_uri=str(tmp_path / "data/penguins_raw.csv"), target="Species", estimator="x", groups=["Sexx"]
    )
    with pytest.raises(DataError, match=r"groups column 'Sexx' \(data.groups\) is not in .*did you mean 'Sex'"):
        train(request, ArtifactStore(f"file://{tmp_path / 'art'}"))
    assert not (tmp_path / "art").exists()  # nothing was fitted or stored


def test_train_validate_register_and_the_next_version_shows_groups_changes_and_fates(tmp_path: Path) -> None:
    """End to end on the penguin table: v1 goes live as staging, v2's data has heavier birds."""
    store, registry = ArtifactStore(f"file://{tmp_path / 'art'}"), ModelRegistry("sqlite://")
    raw = pd.read_csv(EXAMPLES / "data/penguins_raw.csv")
    heavier = raw.assign(**{"Body Mass (g)": raw["Body Mass (g)"] * 1.5})
    rules = ValidationRules(thresholds={"accuracy": {"min": 0.8}}, champion_alias="staging")
    reports, summaries = [], []
    for number, frame in ((1, raw), (2, heavier)):
        path = tmp_path / f"penguins{number}.csv"
        frame.to_csv(path, index=False)
        request = TrainingRequest(
            model="penguins",
            data_uri=str(path),
            target="Species",
            estimator="sklearn.linear_model.LogisticRegression",
            features=["Culmen Length (mm)", "Flipper Length (mm)", "Body Mass (g)", "Island"],
            params={"max_iter": 300},
            groups=["Sex", "Island"],
            seed=11,
        )
        training = train(request, store)
        assert "Sex" in load_frame(read_verified(training.holdout)).columns  # kept for the report, not fitted
        assert "Sex" not in training.data.features
        result = validate(training, rules, registry, store)
        assert result.passed and result.report is not None
        reports.append(read_verified(stored_report({"report": result.report}, "p").html).decode())
        summaries.append(summary_markdown(result.report["summary"]))
        register(training, result, registry=registry, actor="alice", run=RunRef("d", f"r{number}", "register"))
        if number == 1:
            registry.move_alias("penguins", "staging", 1, actor="alice")
    first, second = reports
    assert "<h3>By Sex</h3>" in first and "<h3>By Island</h3>" in first and "<td>MALE</td>" in first
    assert "Nothing is live behind alias staging" in first
    changes = second[second.index('<section id="changes">') : second.index('<section id="data">')]
    assert "Compared with v1, live as staging." in changes
    assert re.search(
        r"<td>Body Mass \(g\)</td><td>numeric</td><td class=\"num\">[\d.]+</td><td><span class=\"fail\">major shift",
        changes,
    )
    assert "<td>v1</td><td><!--fate:1-->live as staging<!--/fate--></td>" in second
    assert "Since live" not in summaries[0]  # the approval summary says what changed
    assert re.search(r"- Since live v1 \(staging\): `Body Mass \(g\)` major shift \(PSI [\d.]+\)\.", summaries[1])
    assert "The calibration curve is drawn for two classes only." in second
