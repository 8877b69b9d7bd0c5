"""The data mistakes ``airflow-bridge validate`` catches in the values of a file, and newcomers' messages.

Each table is a copy of a shipped one (dag_specs/data) made messy the way lab exports are: text in
a numeric column, a European export with decimal commas, mixed date formats, blank targets, too few
rows, duplicated rows. Each test asserts what the user reads, at its position in the spec.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import DataError
from airflow_bridge.ml.data import duplicates_across, read_table
from tests.helpers import EXAMPLES

HEADER = """\
apiVersion: airflow-bridge/v1
kind: Experiment
owner: alice
team: growth
"""
PENGUINS = pd.read_csv(EXAMPLES / "data" / "penguins_raw.csv")
DIABETES = pd.read_csv(EXAMPLES / "data" / "diabetes.csv")
BREAST = pd.read_csv(EXAMPLES / "data" / "breast_cancer.csv")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def write_spec(folder: Path, name: str, body: str, **parts: str) -> Path:
    """``HEADER`` (lines 1-4), then ``name: NAME`` (line 5), then ``body`` (dedented, then ``parts``
    filled in) from line 6."""
    path = folder / f"{name}.yaml"
    path.write_text(HEADER + f"name: {name}\n" + textwrap.dedent(body).format(**parts), encoding="utf-8")
    return path


def report(spec: Path) -> tuple[int, list[str], list[str]]:
    """Exit code, issues and warnings as ``line:col: field: message (hint)``."""
    result = invoke("validate", "--format", "json", spec)
    [file] = json.loads(result.stdout)["files"]

    def lines(issues: list[dict]) -> list[str]:
        return [
            f"{i['line']}:{i['col']}: {i['field']}: {i['message']}" + (f" ({i['hint']})" if i["hint"] else "")
            for i in issues
        ]

    return result.exit_code, lines(file["issues"]), lines(file.get("warnings") or [])


def penguin_spec(folder: Path, extra: str = "", training: str = "") -> Path:
    return write_spec(
        folder,
        "penguins",
        """\
        data:
          training:
            uri: penguins.csv
            target: Species{training}
          columns:
            Sample Number: ignore
            Individual ID: ignore
            Comments: ignore{extra}
        model:
          estimator: sklearn.ensemble.HistGradientBoostingClassifier
        """,
        training=training,
        extra=extra,
    )


# -- text among numbers -------------------------------------------------------------------------------------------


def test_text_in_a_numeric_column_is_named_counted_and_shown(tmp_path: Path) -> None:
    messy = PENGUINS.astype({"Culmen Length (mm)": object})
    messy.loc[[5, 10, 20, 30], "Culmen Length (mm)"] = ["unknown", "?", "ca. 30", "unknown"]
    messy.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path)

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "8:10: data.training.uri: column 'Culmen Length (mm)' of penguins.csv holds numbers but 4 of its 342 values "
        "are text ('unknown', '?', 'ca. 30'): training would read the whole column as text (if they mean "
        "'missing', list them under data.training.missing_values: [unknown, '?', 'ca. 30']; otherwise fix them in "
        "the file, or use the column as text (under data.columns: 'Culmen Length (mm)': text))"
    ]


def test_missing_values_are_read_as_missing_by_validate_and_training(tmp_path: Path) -> None:
    messy = PENGUINS.astype({"Culmen Length (mm)": object})
    messy.loc[[5, 10, 20], "Culmen Length (mm)"] = ["unknown", "?", "ca. 30"]
    messy.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path, training="\n    missing_values: [unknown, '?']")

    code, issues, _ = report(spec)

    assert code == 1
    assert "1 of its 340 values are text ('ca. 30')" in issues[0]
    frame = read_table(str(tmp_path / "penguins.csv"), missing_values=["unknown", "?", "ca. 30"]).frame
    assert frame["Culmen Length (mm)"].dtype == float and frame["Culmen Length (mm)"].isna().sum() == 2 + 3


def test_a_column_declared_numeric_names_the_text_it_holds(tmp_path: Path) -> None:
    messy = PENGUINS.astype({"Body Mass (g)": object})
    messy.loc[5, "Body Mass (g)"] = "n.d."
    messy.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path, extra="\n    Body Mass (g): numeric")

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "14:20: data.columns.Body Mass (g): column 'Body Mass (g)' is declared numeric but holds 'n.d.' "
        "(fix the value or set another role)"
    ]


# -- decimal commas -----------------------------------------------------------------------------------------------


def _european(path: Path) -> None:
    DIABETES.to_csv(path, sep=";", decimal=",", index=False)


def diabetes_spec(folder: Path, training: str = "", checks: str = "") -> Path:
    return write_spec(
        folder,
        "diabetes",
        """\
        data:
          training:
            uri: diabetes.csv
            target: progression{training}
        {checks}
        model:
          estimator: sklearn.linear_model.Ridge
        """,
        training=training,
        checks=checks,
    )


def test_decimal_commas_suggest_the_decimal_field(tmp_path: Path) -> None:
    _european(tmp_path / "diabetes.csv")
    spec = diabetes_spec(tmp_path, training='\n    delimiter: ";"')

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "8:10: data.training.uri: columns 'age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6', "
        "'progression' of diabetes.csv hold numbers written with a decimal comma (e.g. '59,0'): training would "
        'read them as text (add decimal: "," under data.training (the file\'s numbers are then read as numbers))'
    ]


def test_decimal_comma_trains_with_numeric_columns(tmp_path: Path) -> None:
    from airflow_bridge.actions.training import train
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.policy import OPEN_POLICY
    from airflow_bridge.spec.loader import load_spec

    _european(tmp_path / "diabetes.csv")
    spec = diabetes_spec(tmp_path, training='\n    delimiter: ";"\n    decimal: ","')
    assert report(spec)[:2] == (0, [])

    loaded = load_spec(spec)
    assert loaded.spec is not None
    result = train(training_request(loaded.spec, OPEN_POLICY), ArtifactStore(f"file://{tmp_path / 'art'}"))

    assert {c: r["role"] for c, r in result.data.roles.items() if c in ("bmi", "s5")} == {
        "bmi": "numeric",
        "s5": "numeric",
    }
    assert result.data.columns["bmi"] == "float64"


# -- dates --------------------------------------------------------------------------------------------------------


def test_mixed_date_formats_are_reported_before_training(tmp_path: Path) -> None:
    messy = PENGUINS.copy()
    messy.loc[:40, "Date Egg"] = pd.to_datetime(messy.loc[:40, "Date Egg"]).dt.strftime("%d/%m/%Y")
    messy.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path)

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "8:10: data.training.uri: column 'Date Egg' mixes date formats (YYYY-MM-DD, DD/MM/YYYY or MM/DD/YYYY: "
        "'2007-11-16', '11/11/2007') (write every date one way (ISO YYYY-MM-DD is unambiguous) or set "
        "data.columns.Date Egg: categorical)"
    ]


def test_a_date_column_declared_numeric_suggests_datetime(tmp_path: Path) -> None:
    PENGUINS.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path, extra="\n    Date Egg: numeric")

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "14:15: data.columns.Date Egg: column 'Date Egg' is declared numeric but holds dates (e.g. '2007-11-11') "
        "(set data.columns.Date Egg: datetime, which encodes them as year, month, day and weekday)"
    ]


# -- rows: missing targets, min_rows -------------------------------------------------------------------------------


def test_missing_target_fraction_and_min_rows_fail_at_validate(tmp_path: Path) -> None:
    messy = DIABETES.astype({"progression": object})
    messy.loc[messy.index % 10 < 3, "progression"] = ""
    messy.to_csv(tmp_path / "diabetes.csv", index=False)
    spec = diabetes_spec(tmp_path, checks="  checks: {min_rows: 100000, max_missing_target_fraction: 0.1}")

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "10:22: data.checks.min_rows: diabetes.csv has 308 rows with a target, fewer than min_rows: 100,000: "
        "training would stop at its data checks (use a larger export, or lower min_rows)",
        "10:59: data.checks.max_missing_target_fraction: 134 of 442 rows (30.3%) of diabetes.csv have no value in "
        "target 'progression', over max_missing_target_fraction: 0.1: training would stop at its data checks "
        "(fill in the labels, or raise the bound if dropping those rows is intended)",
    ]


def test_only_a_warning_when_validate_read_the_first_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.spec import datacheck

    monkeypatch.setattr(datacheck, "WHOLE_FILE_BYTES", 1000)
    monkeypatch.setattr(datacheck, "SAMPLE_ROWS", 200)
    DIABETES.to_csv(tmp_path / "diabetes.csv", index=False)
    spec = diabetes_spec(tmp_path, checks="  checks: {min_rows: 400}")

    code, issues, warnings = report(spec)

    assert (code, issues) == (0, [])
    assert warnings == [
        "10:22: data.checks.min_rows: validate read only the first 200 rows of diabetes.csv (200 rows), fewer than "
        "min_rows: 400; training counts the whole file"
    ]


# -- duplicates across the split ----------------------------------------------------------------------------------


def test_duplicates_across_counts_held_out_rows_seen_in_training() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, None], "b": ["x", "y", "z"], "y": [0, 1, 0]})
    test = pd.DataFrame({"a": [1.0, 2.0, None, 1.0], "b": ["x", "y", "z", "x"], "y": [0, 0, 0, 1]})

    assert duplicates_across(train, test, ["a", "b", "y"]) == 2  # (1, x, 0) and (NaN, z, 0)
    assert duplicates_across(train, test, ["a", "b"]) == 4
    assert duplicates_across(train, test.iloc[:0], ["a"]) == 0


def cells_spec(folder: Path, gate: str = "") -> Path:
    """Breast-cancer cells with their first 100 rows exported twice."""
    pd.concat([BREAST, BREAST.head(100)], ignore_index=True).to_csv(folder / "cells.csv", index=False)
    return write_spec(
        folder,
        "cells",
        """\
        data:
          training: {{uri: cells.csv, target: malignant}}
          split: {{seed: 3}}
        model:
          estimator: sklearn.linear_model.LogisticRegression
        {gate}""",
        gate=gate,
    )


@pytest.fixture(scope="module")
def cells_trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """The cells spec (its gate cannot pass), trained and validated as a run does: (folder, training, validation)."""
    from airflow_bridge.actions.training import train
    from airflow_bridge.actions.validation import ValidationRules, validate
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.policy import OPEN_POLICY
    from airflow_bridge.spec.loader import load_spec

    folder = tmp_path_factory.mktemp("cells")
    loaded = load_spec(cells_spec(folder, "validation: {thresholds: {accuracy: {min: 0.999}}}\n"))
    assert loaded.spec is not None, loaded.issues
    store = ArtifactStore(f"file://{folder / 'artifacts'}")
    training = train(training_request(loaded.spec, OPEN_POLICY), store)
    rules = ValidationRules(thresholds={"accuracy": {"min": 0.999, "max": None}})
    return folder, training, validate(training, rules, None, store)


def test_rows_shared_by_training_and_held_out_split_are_a_warning(tmp_path: Path) -> None:
    from airflow_bridge.ml.data import split

    spec = cells_spec(tmp_path)
    doubled = pd.read_csv(tmp_path / "cells.csv")
    train, test = split(
        doubled, "malignant", [c for c in doubled.columns if c != "malignant"], test_size=0.2, seed=3, stratify=True
    )
    expected = duplicates_across(train, test, list(doubled.columns))

    code, issues, warnings = report(spec)

    assert (code, issues) == (0, [])
    assert 0 < expected < 100
    assert warnings == [
        f"8:10: data.split: {expected} held-out rows of cells.csv also occur among the training rows (the same "
        "values in every column the model uses, seed 3, test_size 0.2): the held-out metrics score answers the "
        "model has seen (remove duplicate rows from the export, or check that the rows are really distinct "
        "measurements)"
    ]


def test_training_records_the_rows_validate_warns_about(cells_trained: tuple[Path, Any, Any]) -> None:
    folder, training, _ = cells_trained

    _, _, warnings = report(folder / "cells.yaml")

    assert f"data.split: {training.data.duplicates_across_split} held-out rows" in warnings[0]
    assert training.data.duplicates_across_split > 0


# -- messages for newcomers ---------------------------------------------------------------------------------------


def test_a_mistyped_extension_is_a_missing_file_not_a_format_question(tmp_path: Path) -> None:
    DIABETES.to_csv(tmp_path / "diabetes.csv", index=False)
    spec = write_spec(
        tmp_path,
        "typo",
        """\
        data:
          training: {{uri: diabetes.cvs, target: progression}}
        model:
          estimator: sklearn.linear_model.Ridge
        """,
    )

    for args in ([spec], ["--no-data", spec]):
        result = invoke("validate", "--format", "json", *args)
        [file] = json.loads(result.stdout)["files"]
        assert [(i["message"], i["hint"]) for i in file["issues"]] == [
            (
                f"data file 'diabetes.cvs' not found at {tmp_path / 'diabetes.cvs'}",
                "did you mean 'diabetes.csv'?",
            )
        ]
    with pytest.raises(DataError, match=r"^data not found: .*diabetes\.cvs \(did you mean '.*diabetes\.csv'\?\)$"):
        read_table(str(tmp_path / "diabetes.cvs"))  # at run time: the reader of the train task


@pytest.mark.parametrize(
    ("columns", "issue"),
    [
        ("    Position #: ignore\n", "9:5: data.columns: input should be a valid dictionary, got str 'Position'"),
        ("    bmi: numeric\n    Position #: ignore\n", "11:1: : invalid YAML: while scanning a simple key"),
    ],
    ids=["only-key", "after-other-keys"],
)
def test_a_key_holding_a_comment_mark_gets_the_hint_to_quote_it(tmp_path: Path, columns: str, issue: str) -> None:
    spec = tmp_path / "hash.yaml"
    spec.write_text(
        HEADER
        + "name: hash\ndata:\n  training: {uri: d.csv, target: y}\n  columns:\n"
        + columns
        + "model:\n  estimator: sklearn.linear_model.Ridge\n",
        encoding="utf-8",
    )
    key_line = 8 + columns.count("\n")

    code, issues, _ = report(spec)

    assert code == 1
    [found] = issues
    assert found.startswith(issue)
    assert found.endswith(
        f"(line {key_line}: YAML reads ' #' as the start of a comment, so the key 'Position #' was cut short; "
        'quote the key: "Position #": ignore)'
    )


def test_test_size_as_a_percentage_suggests_the_fraction(tmp_path: Path) -> None:
    spec = diabetes_spec(tmp_path, checks="  split: {test_size: 20}")

    _, issues, _ = report(spec)

    assert issues == [
        "10:22: data.split.test_size: input should be less than 1 (a fraction of the rows: did you mean 0.2 (20 %)?)"
    ]


def test_a_failed_gate_points_at_the_candidates_report(cells_trained: tuple[Path, Any, Any]) -> None:
    from airflow_bridge.cli.run_summary import RunSummary

    _, _, validation = cells_trained
    html = validation.report["html"]

    line = RunSummary("failed", "cells", None, report=html).report_line()

    assert not validation.passed
    path = Path(html["uri"].removeprefix("file://"))
    assert line == f"report: {path}  (the candidate's report; it was not registered, open this file in a browser)"
    assert path.read_bytes().startswith(b"<!doctype html>") and b"cells" in path.read_bytes()
    assert RunSummary("failed", "cells", None, report={**html, "uri": "s3://b/r.html"}).report_line() == (
        "report: s3://b/r.html  (the candidate's report; it was not registered, download this file to read it)"
    )


def test_values_that_are_not_dates_in_a_date_column_are_counted(tmp_path: Path) -> None:
    messy = PENGUINS.copy()
    messy.loc[[4, 8], "Date Egg"] = ["2007-13-45", "2007-02-30"]
    messy.to_csv(tmp_path / "penguins.csv", index=False)
    spec = penguin_spec(tmp_path)

    code, issues, _ = report(spec)

    assert code == 1
    assert issues == [
        "8:10: data.training.uri: column 'Date Egg' of penguins.csv holds dates but 2 of its 344 values are not "
        "dates of that form ('2007-13-45', '2007-02-30'): training would read the whole column as categories or "
        "text, not dates (fix them in the file, or list words that mean 'missing' under "
        "data.training.missing_values)"
    ]


def test_served_rows_read_the_specs_missing_values_as_missing() -> None:
    from airflow_bridge.ml.columns import infer_roles, roles_pipeline_step

    frame = pd.DataFrame({"age": [31.0, 45.0, None] * 10, "y": [0, 1, 0] * 10})
    step = roles_pipeline_step(infer_roles(frame, "y"), ["unknown", "?"]).fit(frame[["age"]])

    served = step.transform(pd.DataFrame({"age": ["unknown", "?", "52"]}))

    assert served["age"].isna().tolist() == [True, True, False] and served["age"].iloc[2] == 52
    with pytest.raises(DataError, match=r"column 'age' takes numbers; got 'ca\. 30'"):
        step.transform(pd.DataFrame({"age": ["ca. 30"]}))
