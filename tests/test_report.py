"""Model reports: the self-contained HTML page, its figures, the approval summary and ``models report``.

Real scikit-learn (and skrub) models on small synthetic tables; reports are built once per module.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import BridgeError, DataError
from airflow_bridge.ml.gates import GateResult, compare_champion, evaluate_thresholds
from airflow_bridge.ml.metrics import compute_metrics
from airflow_bridge.registry import ModelRegistry, RunRef
from airflow_bridge.report import ModelReport, ReportInputs, build_report, store_report, summary_markdown
from tests.helpers import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("gates", "champion", "metrics", "performance", "importance", "history", "data")


def _frame(task: str, rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric noise columns, one string column, and a target driven mostly by the column 'signal'."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"noise_{i}": rng.normal(size=rows) for i in range(4)})
    frame["signal"] = rng.normal(size=rows)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=rows)
    drive = 3 * frame["signal"] + 0.5 * frame["noise_0"] + rng.normal(scale=0.3, size=rows)
    if task == "binary":
        frame["target"] = np.where(drive > 0, "malignant", "benign")
    elif task == "multiclass":
        frame["target"] = pd.cut(drive, [-np.inf, -1.5, 1.5, np.inf], labels=["low", "mid", "high"]).astype(str)
    else:
        frame["target"] = drive * 10 + 50
    return frame


FEATURES = ["noise_0", "noise_1", "noise_2", "noise_3", "signal", "colour"]


def _inputs(task: str, model: Any, *, version: int | None, history: list[dict[str, Any]]) -> ReportInputs:
    frame = _frame(task)
    train, test = frame.iloc[:200], frame.iloc[200:]
    model.fit(train[FEATURES], train["target"])
    kind = "regression" if task == "regression" else "classification"
    metrics = compute_metrics(kind, model, test[FEATURES], test["target"])
    thresholds = {"r2": {"min": 0.8}, "rmse": {"max": 1000.0}} if kind == "regression" else {"accuracy": {"min": 0.7}}
    gates = [GateResult("min_rows", "data", len(frame), 100, None, True), *evaluate_thresholds(metrics, thresholds)]
    champion_metric = "r2" if kind == "regression" else "accuracy"
    champion = compare_champion(
        champion_metric, metrics[champion_metric], 0.5, 0.0, 1 if history else None, alias="production"
    )
    profile = {
        "rows": len(frame),
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
        "roles": {
            "colour": {"role": "categorical", "reason": "3 distinct text values: one-hot encoded", "distinct": 3},
            "noise_3": {"role": "ignore", "reason": "set in the spec (data.columns)", "missing": 0.25},
        },
    }
    return ReportInputs(
        model=model,
        holdout=test,
        features=FEATURES,
        target="target",
        task_kind=kind,
        model_name="tumours",
        version=version,
        metrics=metrics,
        gates=gates,
        champion=champion,
        profile=profile,
        history=history,
        estimator=type(model).__name__,
    )


HISTORY = [
    {"version": 1, "created_at": "2026-01-05T10:00:00+00:00", "metrics": {"accuracy": 0.71, "r2": 0.6, "rmse": 9.0}},
    {"version": 2, "created_at": "2026-02-05T10:00:00+00:00", "metrics": {"accuracy": 0.74, "r2": 0.7, "rmse": 8.0}},
]


@pytest.fixture(scope="module")
def binary() -> tuple[ReportInputs, ModelReport]:
    import skrub
    from sklearn.ensemble import RandomForestClassifier

    inputs = _inputs(
        "binary",
        skrub.tabular_pipeline(RandomForestClassifier(n_estimators=30, random_state=0)),
        version=3,
        history=HISTORY,
    )
    return inputs, build_report(inputs)


@pytest.fixture(scope="module")
def multiclass() -> tuple[ReportInputs, ModelReport]:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough")
    inputs = _inputs("multiclass", make_pipeline(encode, LogisticRegression(max_iter=500)), version=None, history=[])
    return inputs, build_report(inputs)


@pytest.fixture(scope="module")
def regression() -> tuple[ReportInputs, ModelReport]:
    import skrub
    from sklearn.linear_model import Ridge

    history = [*HISTORY, {"version": 3, "created_at": "2026-03-05", "metrics": {"r2": 0.1}}]  # itself: shown once
    inputs = _inputs("regression", skrub.tabular_pipeline(Ridge()), version=3, history=history)
    return inputs, build_report(inputs)


_FATE = re.compile(r"<!--(fate:\w+|version:self)-->.*?<!--/(fate|version)-->|<title>.*?</title>")


def _figures_in(html: str) -> set[str]:
    return set(re.findall(r'<figure id="fig-([a-z_]+)"', html))


def _assert_self_contained(report: ModelReport) -> None:
    html = report.html
    assert html.startswith("<!doctype html>") and "</html>" in html
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may hold any letters
    assert not re.search(r"https?:|//[a-z]|<script|<link|@import|url\(", text, re.IGNORECASE)
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
    for name, png in report.pngs.items():
        assert name.endswith(".png") and png.startswith(PNG_SIGNATURE) and len(png) > 2000
        assert base64.b64encode(png).decode() in html  # the page embeds exactly the PNGs handed out
    assert len(sources) == len(report.pngs)


def test_binary_report_is_self_contained_with_gates_champion_curves_importance_history_and_roles(
    binary: tuple[ReportInputs, ModelReport],
) -> None:
    inputs, report = binary
    _assert_self_contained(report)
    html = report.html
    assert all(f'<section id="{s}">' in html for s in SECTIONS)
    assert set(report.pngs) == {
        "confusion_matrix.png",
        "per_class.png",
        "roc_curve.png",
        "precision_recall.png",
        "feature_importance.png",
        "metric_history.png",
        "calibration.png",
    }
    assert _figures_in(html) == {name.removesuffix(".png") for name in report.pngs}
    assert (
        "<title>Model report: tumours v3 — registered</title>" in html and "RandomForestClassifier" not in html
    )  # a skrub Pipeline
    accuracy = inputs.metrics["accuracy"]
    assert f'<td>accuracy</td><td>metric</td><td class="num">{accuracy:.4f}</td><td>&gt;= 0.7</td>' in html
    assert "<td>min_rows</td><td>data</td>" in html and "Passed every gate" in html
    assert f"{accuracy - 0.5:+.4f}" in html and "(v1, alias production)" in html  # the champion delta
    assert "<td>malignant</td>" in html and "<td>benign</td>" in html  # per-class table
    assert "<td>colour</td><td>str</td><td>categorical</td><td>3 distinct text values: one-hot encoded</td>" in html
    assert (
        '<td>ignore</td><td>set in the spec (data.columns)</td><td class="num">-</td><td class="num">25.0%</td>' in html
    )
    assert "<td>v1</td><td><!--fate:1--><!--/fate--></td><td>2026-01-05</td>" in html
    assert "<td><!--version:self-->v3<!--/version--></td><td><!--fate:self-->this version<!--/fate--></td>" in html


def test_multiclass_report_has_per_class_figures_and_no_curves_or_history(
    multiclass: tuple[ReportInputs, ModelReport],
) -> None:
    _, report = multiclass
    _assert_self_contained(report)
    assert set(report.pngs) == {"confusion_matrix.png", "per_class.png", "feature_importance.png"}
    html = report.html
    assert "ROC and precision-recall curves are drawn for two classes only (3 here)." in html
    assert "No earlier versions of this model" in html
    assert "<title>Model report: tumours candidate — candidate, passed every gate (registered next)</title>" in html
    assert all(f"<td>{c}</td>" in html for c in ("low", "mid", "high"))
    assert "No live version to compare with" in html


def test_regression_report_plots_errors_and_residuals_and_shows_each_version_once(
    regression: tuple[ReportInputs, ModelReport],
) -> None:
    inputs, report = regression
    _assert_self_contained(report)
    assert set(report.pngs) == {
        "prediction_error.png",
        "residuals.png",
        "feature_importance.png",
        "metric_history.png",
        "target_distribution.png",
    }
    html = report.html
    assert "confusion" not in html.lower()
    assert (
        html.count("<!--version:self-->v3<!--/version--></td>") == 1
        and "<td>v3</td>" not in html
        and f'<td class="num">{inputs.metrics["r2"]:.4f}</td>' in html
    )
    assert "<th>r2</th><th>rmse</th>" in html  # the gate metrics, in the spec's order


def test_reports_are_deterministic(binary: tuple[ReportInputs, ModelReport]) -> None:
    inputs, report = binary
    again = build_report(inputs)
    assert again.html == report.html and again.pngs == report.pngs


def test_summary_has_the_verdict_gate_numbers_champion_delta_and_top_features(
    binary: tuple[ReportInputs, ModelReport], regression: tuple[ReportInputs, ModelReport]
) -> None:
    inputs, report = binary
    summary = report.summary_markdown()
    lines = summary.splitlines()
    assert 3 <= len(lines) <= 6, summary
    assert lines[0] == "**`tumours` v3** (classification): passes all 2 gates."
    assert f"`accuracy` {inputs.metrics['accuracy']:.4f} (>= 0.7, pass)" in summary
    assert f"vs live v1 (production) 0.5000: improvement {inputs.metrics['accuracy'] - 0.5:+.4f}" in summary
    top = report.key_figures["top_features"][:3]
    assert top[0]["feature"] == "signal"  # the column that drives the target matters most
    assert (
        "Top features (drop in accuracy when shuffled): "
        + ", ".join(f"`{f['feature']}` {f['importance']:.3f}" for f in top)
        in summary
    )
    # The key figures travel as JSON (registry, XCom): the summary renders the same from them.
    assert summary_markdown(json.loads(json.dumps(report.key_figures))) == summary

    reg_inputs, reg_report = regression
    reg_summary = summary_markdown(reg_report)
    assert f"`r2` {reg_inputs.metrics['r2']:.4f} (>= 0.8, pass)" in reg_summary
    assert "`rmse`" in reg_summary and "(<= 1000.0, pass)" in reg_summary


def test_summary_names_failed_gates_and_the_missing_champion() -> None:
    figures = {
        "model": "churn",
        "version": None,
        "task_kind": "classification",
        "gates": [{"name": "roc_auc", "kind": "metric", "value": 0.81, "min": 0.85, "max": None, "passed": False}],
        "champion": {
            "metric": "roc_auc",
            "candidate": 0.81,
            "champion": None,
            "note": "no live version to compare with",
        },
        "top_features": [],
    }
    summary = summary_markdown(figures)
    assert summary.splitlines()[0] == "**`churn` (candidate)** (classification): fails `roc_auc`."
    assert "`roc_auc` 0.8100 (>= 0.85, **FAIL**)" in summary
    assert "- **Champion comparison:** no live version to compare with (`roc_auc` 0.8100)." in summary


def test_unusable_inputs_are_refused_with_the_fix(binary: tuple[ReportInputs, ModelReport]) -> None:
    inputs, _ = binary
    holdout = inputs.holdout.drop(columns=["signal"])
    with pytest.raises(DataError, match="lacks column\\(s\\) signal; pass the held-out rows with every feature"):
        build_report(ReportInputs(**{**inputs.__dict__, "holdout": holdout}))
    with pytest.raises(BridgeError, match="task kind 'clustering' is not one of classification, regression"):
        build_report(ReportInputs(**{**inputs.__dict__, "task_kind": "clustering"}))


# -- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def registry_url(tmp_path: Path, binary: tuple[ReportInputs, ModelReport]) -> str:
    """'tumours' v1 (alias staging) with a stored report, v2 without one."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store, registry = ArtifactStore(f"file://{tmp_path / 'artifacts'}"), ModelRegistry(url)
    record = store_report(binary[1], store, "reports/tumours")
    for number, validation in ((1, {"passed": True, "report": record}), (2, {"passed": True})):
        registry.register_version(
            "tumours",
            store.put(f"model {number}".encode(), "models/tumours", ".joblib"),
            task_kind="classification",
            validation=validation,
            run=RunRef("dag", f"run{number}", "register"),
            actor="alice",
        )
    registry.move_alias("tumours", "staging", 1, actor="alice")
    return url


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


def test_models_report_writes_the_page_and_figures_and_prints_their_paths(
    tmp_path: Path, registry_url: str, binary: tuple[ReportInputs, ModelReport]
) -> None:
    report = binary[1]
    out = tmp_path / "out"
    code, output = _invoke(
        "models",
        "report",
        "tumours",
        "--version",
        "1",
        "--out",
        str(out),
        "--registry-url",
        registry_url,
        "--format",
        "json",
    )
    assert code == 0, output
    written = json.loads(output)
    assert written["model"] == "tumours" and written["version"] == 1
    assert Path(written["html"]) == out.resolve() / "report.html"
    page_text = Path(written["html"]).read_text()  # the stored page with its fates as the registry says now
    assert _FATE.sub("", page_text) == _FATE.sub("", report.html) and page_text != report.html
    assert "<title>Model report: tumours v1 — live as staging</title>" in page_text
    assert set(written["pngs"]) == set(report.pngs)
    for name, path in written["pngs"].items():
        assert Path(path).parent == out.resolve() and Path(path).read_bytes() == report.pngs[name]

    page = tmp_path / "pages" / "tumours.html"  # --out FILE.html: figures next to it
    code, output = _invoke("models", "report", "tumours", "-v", "1", "-o", str(page), "--registry-url", registry_url)
    assert code == 0, output
    assert "wrote the report of tumours v1 (7 figures next to it)" in output and str(page.resolve()) in output
    assert page.read_text() == page_text
    assert (page.parent / "roc_curve.png").read_bytes() == report.pngs["roc_curve.png"]


def test_models_report_resolves_an_alias_and_defaults_to_a_folder_in_the_current_directory(
    tmp_path: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _invoke("models", "report", "tumours", "--version", "staging", "--registry-url", registry_url)
    assert code == 0, output
    assert (tmp_path / "tumours-v1-report" / "report.html").is_file()
    assert (tmp_path / "tumours-v1-report" / "metric_history.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_version_without_a_report_exits_1_and_says_so(registry_url: str) -> None:
    code, output = _invoke("models", "report", "tumours", "--registry-url", registry_url)  # newest: v2
    assert code == 1
    assert "tumours v2 has no model report" in output
    assert "airflow-bridge models show tumours --version 2" in output


def test_a_modified_report_artifact_is_refused(tmp_path: Path, registry_url: str) -> None:
    record = ModelRegistry(registry_url).get_version("tumours", 1).validation["report"]
    Path(record["html"]["uri"].removeprefix("file://")).write_text("<html>forged</html>")
    code, output = _invoke(
        "models", "report", "tumours", "-v", "1", "-o", str(tmp_path / "x"), "--registry-url", registry_url
    )
    assert code == 1
    assert "cannot read the report of 'tumours'" in output and "was modified after registration" in output
    assert not (tmp_path / "x").exists()


def test_open_launches_the_browser_on_the_written_page(
    tmp_path: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened.txt"
    recorder = f"import pathlib, sys; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    monkeypatch.setenv("BROWSER", f"{shlex.quote(sys.executable)} -c {shlex.quote(recorder)} %s")
    out = tmp_path / "opened-report"
    result = cli("models", "report", "tumours", "-v", "1", "--out", out, "--open", "--registry-url", registry_url)
    assert result.returncode == 0, result.stderr
    assert opened.read_text() == (out / "report.html").resolve().as_uri()
