"""``airflow-bridge validate`` catches data mistakes before a run: what a user sees, where, and the exit code.

Reading the local training data (the default; ``--no-data`` skips it): a missing or unreadable file,
columns the spec names that the file lacks, a target that does not suit the task, empty columns.
Without data (always): estimator parameters that do not exist or have the wrong type, gates no model
can pass. Every problem is reported in one run at its ``file:line:col``; the example specs stay valid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import DataError
from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS
from airflow_bridge.ml.data import split
from airflow_bridge.ml.targets import COUNTERPARTS
from tests.helpers import EXAMPLES, REPO

HEADER = """\
apiVersion: airflow-bridge/v1
kind: Experiment
owner: alice
team: growth
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A specs folder with the example data files (no team policy)."""
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    return tmp_path


def write_spec(folder: Path, name: str, body: str) -> Path:
    """``HEADER`` (lines 1-4), then ``name: NAME`` (line 5), then ``body`` from line 6."""
    path = folder / f"{name}.yaml"
    path.write_text(HEADER + f"name: {name}\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def report(*args: str | Path) -> tuple[int, dict[str, dict]]:
    """Exit code and the JSON report's files by path."""
    result = invoke("validate", "--format", "json", *args)
    return result.exit_code, {f["path"]: f for f in json.loads(result.stdout)["files"]}


def lines(issues: list[dict]) -> list[str]:
    return [
        f"{i['line']}:{i['col']}: {i['field']}: {i['message']}" + (f" ({i['hint']})" if i["hint"] else "")
        for i in issues
    ]


# -- the examples -----------------------------------------------------------------------------------------------------


def test_example_specs_are_valid_with_their_data() -> None:
    result = invoke("validate", EXAMPLES)

    assert result.exit_code == 0, result.output
    assert "0 invalid spec(s)" in result.stdout
    assert "warning" not in result.stdout


# -- every mistake at once, at its position -------------------------------------------------------------------------


def test_every_mistake_is_reported_in_one_run_at_its_position(folder: Path) -> None:
    spec = write_spec(
        folder,
        "many_mistakes",
        """\
        data:
          training:
            uri: data/breast_cancer.csv
            target: malignent
            features: [mean_radius, mean_textur]
          checks:
            required_columns: [mean_area, worst_perimetr]
          columns:
            mean_smothness: numeric
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
          params:
            n_estimator: 100
            max_depth: 2.5
            min_samples_leaf: "3"
            criterion: gin
        validation:
          thresholds:
            f1: {min: 1.01}
            accuracy: {max: -0.5}
          champion: {metric: roc_auc, min_improvement: 1.5}
        """,
    )

    code, files = report(spec)

    assert code == 1
    assert lines(files[str(spec)]["issues"]) == [
        "9:13: data.training.target: target column 'malignent' is not in data/breast_cancer.csv "
        "(did you mean 'malignant'?)",
        "10:29: data.training.features[1]: feature column 'mean_textur' is not in data/breast_cancer.csv "
        "(did you mean 'mean_texture'?)",
        "12:35: data.checks.required_columns[1]: required column 'worst_perimetr' is not in data/breast_cancer.csv "
        "(did you mean 'worst_perimeter'?)",
        "14:21: data.columns.mean_smothness: column 'mean_smothness' is not in data/breast_cancer.csv "
        "(did you mean 'mean_smoothness'?)",
        "18:18: model.params.n_estimator: RandomForestClassifier has no parameter 'n_estimator' "
        "(did you mean 'n_estimators'?)",
        "19:16: model.params.max_depth: 'max_depth' takes an integer >= 1 or null; got number 2.5",
        "20:23: model.params.min_samples_leaf: 'min_samples_leaf' takes an integer >= 1 or a decimal number "
        "in (0, 1); got string '3' (write the number without quotes: min_samples_leaf: 3)",
        "21:16: model.params.criterion: 'criterion' takes one of 'entropy', 'gini', 'log_loss'; got string 'gin' "
        "(did you mean 'gini'?)",
        "24:15: validation.thresholds.f1.min: f1 is at most 1, so min: 1.01 can never pass (use a min of at most 1)",
        "25:21: validation.thresholds.accuracy.max: accuracy is never below 0, so max: -0.5 can never pass "
        "(use a max of at least 0, e.g. max: 0.5)",
        "26:48: validation.champion.min_improvement: roc_auc lies between 0 and 1, so an improvement of 1.5 can "
        "never be reached (use a small margin such as 0.01, or 0.0 to accept a model as good as the live one)",
    ]


def test_text_output_shows_path_line_and_column(folder: Path) -> None:
    spec = write_spec(
        folder,
        "typo",
        """\
        data:
          training: {uri: data/diabetes.csv, target: progresion}
        model:
          estimator: sklearn.linear_model.Ridge
          params: {alpha: "1.0"}
        """,
    )

    result = invoke("validate", spec)

    assert result.exit_code == 1
    assert (
        f"{spec}:7:46: data.training.target: target column 'progresion' is not in data/diabetes.csv "
        "(did you mean 'progression'?)"
    ) in result.stdout
    assert (
        f"{spec}:10:19: model.params.alpha: 'alpha' takes a number >= 0 or a list; got string '1.0' "
        "(write the number without quotes: alpha: 1.0)"
    ) in result.stdout
    assert "0 valid, 1 invalid spec(s)" in result.stdout


# -- the data file --------------------------------------------------------------------------------------------------


def test_missing_file_suggests_the_file_next_to_it(folder: Path) -> None:
    spec = write_spec(
        folder,
        "missing_file",
        """\
        data:
          training: {uri: data/breast_cancr.csv, target: malignant}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )

    code, files = report(spec)

    assert code == 1
    assert lines(files[str(spec)]["issues"]) == [
        f"7:19: data.training.uri: data file 'data/breast_cancr.csv' not found at {folder / 'data/breast_cancr.csv'} "
        "(did you mean 'data/breast_cancer.csv'?)"
    ]


def _write_parquet_with_a_list_column(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sizes": [[1, 2], [3]], "weight": [1.0, 2.0], "label": ["a", "b"]}), path)


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("semi.csv", b"size;weight;label\n1;2;a\n3;4;b\n", ["looks ';'-separated", "data.training.delimiter: ';'"]),
        ("latin.csv", b"name,label\ncaf\xe9,a\nbar,b\n", ["is not UTF-8 text", "data.training.encoding"]),
        ("header.csv", b"size,weight,label\n", ["holds only a header"]),
        ("nested.parquet", None, ["nested columns (sizes", "Flatten them"]),
    ],
    ids=["wrong-delimiter", "wrong-encoding", "header-only", "parquet-nested"],
)
def test_unreadable_file_says_why_and_the_fix(
    tmp_path: Path, file: str, content: bytes | None, expected: list[str]
) -> None:
    data = tmp_path / "d" / file
    data.parent.mkdir()
    if content is None:
        _write_parquet_with_a_list_column(data)
    else:
        data.write_bytes(content)
    spec = write_spec(
        tmp_path,
        "unreadable",
        f"""\
        data:
          training: {{uri: d/{file}, target: label}}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )

    code, files = report(spec)

    assert code == 1
    [issue] = files[str(spec)]["issues"]
    assert (issue["line"], issue["col"], issue["field"]) == (7, 19, "data.training.uri")
    assert issue["message"].startswith(f"d/{file} "), issue["message"]  # as the spec writes it
    for fragment in expected:
        assert fragment in issue["message"]


def test_the_delimiter_and_encoding_the_spec_names_are_used(tmp_path: Path) -> None:
    (tmp_path / "latin_semi.csv").write_bytes(
        b"size;colour;label\n" + "".join(f"{i};caf\xe9;{i % 2}\n" for i in range(30)).encode("latin-1")
    )
    spec = write_spec(
        tmp_path,
        "latin_semi",
        """\
        data:
          training: {uri: latin_semi.csv, target: label, delimiter: ";", encoding: latin-1}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )

    assert invoke("validate", spec).exit_code == 0


# -- the target against the task ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("classifier", "regressor"),
    [
        ("sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor"),
        ("sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge"),
        ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.HistGradientBoostingRegressor"),
        ("sklearn.svm.SVC", "sklearn.svm.SVR"),
    ],
)
def test_classifier_on_a_continuous_target_names_the_regressor(folder: Path, classifier: str, regressor: str) -> None:
    spec = write_spec(
        folder,
        "continuous",
        f"""\
        data:
          training: {{uri: data/diabetes.csv, target: progression}}
        model:
          estimator: {classifier}
        """,
    )

    code, files = report(spec)

    assert code == 1
    short = classifier.rsplit(".", 1)[-1]
    assert lines(files[str(spec)]["issues"]) == [
        f"9:14: model.estimator: {short} is a classifier but target 'progression' looks continuous: 214 distinct "
        "values in 442 rows, such as 151.0, 75.0, 141.0 (to predict a quantity use a regressor, "
        f"{regressor}, and regression metrics such as r2 or mae)"
    ]


def test_regressor_on_a_text_target_names_the_classifier(folder: Path) -> None:
    spec = write_spec(
        folder,
        "text_target",
        """\
        data:
          training: {uri: data/penguins_raw.csv, target: Species}
        model:
          estimator: sklearn.ensemble.GradientBoostingRegressor
        """,
    )

    code, files = report(spec)

    assert code == 1
    [issue] = lines(files[str(spec)]["issues"])
    assert issue.startswith(
        "9:14: model.estimator: GradientBoostingRegressor is a regressor but target 'Species' holds text "
        "('Adelie Penguin (Pygos...', 'Gentoo penguin (Pygos...', 'Chinstrap penguin (Py...') "
    )
    assert issue.endswith(
        "(to predict classes use a classifier, sklearn.ensemble.GradientBoostingClassifier, "
        "and classification metrics such as accuracy or f1)"
    )


def test_regressor_on_a_boolean_target_and_the_task_set_in_the_spec(tmp_path: Path) -> None:
    pd.DataFrame({"size": range(40), "churned": [True, False] * 20}).to_csv(tmp_path / "churn.csv", index=False)
    spec = write_spec(
        tmp_path,
        "bool_target",
        """\
        data:
          training: {uri: churn.csv, target: churned}
        model:
          estimator: sklearn.linear_model.Ridge
          task: regression
        """,
    )

    code, files = report(spec)

    assert code == 1
    assert lines(files[str(spec)]["issues"]) == [
        "10:9: model.task: Ridge is a regressor but target 'churned' holds true/false values (True, False) "
        "(to predict classes use a classifier, sklearn.linear_model.LogisticRegression, and classification "
        "metrics such as accuracy or f1, with task: classification)"
    ]


def test_single_class_and_empty_targets(tmp_path: Path) -> None:
    pd.DataFrame({"size": range(30), "label": ["yes"] * 30, "blank": [None] * 30}).to_csv(
        tmp_path / "one_class.csv", index=False
    )
    single = write_spec(
        tmp_path,
        "single_class",
        """\
        data:
          training: {uri: one_class.csv, target: label}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )
    empty = write_spec(
        tmp_path,
        "empty_target",
        """\
        data:
          training: {uri: one_class.csv, target: blank}
        model:
          estimator: sklearn.linear_model.Ridge
        """,
    )

    code, files = report(tmp_path)

    assert code == 1
    assert lines(files[str(single)]["issues"]) == [
        "7:42: data.training.target: target 'label' has a single class ('yes') in all 30 rows of one_class.csv: "
        "a classifier needs at least two (check the export (a filtered file?))"
    ]
    assert lines(files[str(empty)]["issues"]) == [
        "7:42: data.training.target: target column 'blank' is empty in every row of one_class.csv "
        "(point data.training.target at the column that holds the labels)"
    ]


# -- empty columns ----------------------------------------------------------------------------------------------------


def test_an_empty_column_is_a_warning_unless_the_spec_uses_it(tmp_path: Path) -> None:
    frame = pd.DataFrame({"size": range(30), "Unnamed: 2": [None] * 30, "label": [0, 1, 2] * 10})
    frame.to_csv(tmp_path / "export.csv", index=False)
    unused = write_spec(
        tmp_path,
        "empty_unused",
        """\
        data:
          training: {uri: export.csv, target: label}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )
    used = write_spec(
        tmp_path,
        "empty_used",
        """\
        data:
          training: {uri: export.csv, target: label, features: [size, "Unnamed: 2"]}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )

    code, files = report(tmp_path)

    assert code == 1  # the spec that uses the column
    assert files[str(unused)]["valid"] is True and files[str(unused)]["issues"] == []
    assert lines(files[str(unused)]["warnings"]) == [
        "7:19: data.training.uri: column 'Unnamed: 2' is empty in every row of export.csv: training excludes it "
        "(nothing to fix; remove the column from the file to silence this warning)"
    ]
    assert lines(files[str(used)]["issues"]) == [
        "7:63: data.training.features[1]: column 'Unnamed: 2' is empty in every row of export.csv: training would "
        "exclude it (fill it in, or remove it from features)"
    ]

    only_unused = invoke("validate", unused)
    assert only_unused.exit_code == 0
    assert f"warning: {unused}:7:19: data.training.uri: column 'Unnamed: 2' is empty" in only_unused.stdout
    assert "1 valid, 0 invalid spec(s), 1 warning(s)" in only_unused.stdout
    github = invoke("validate", "--format", "github", unused)
    assert github.exit_code == 0
    assert github.stdout.startswith(f"::warning file={unused},line=7,col=19,title=airflow-bridge")


# -- what is not read -------------------------------------------------------------------------------------------------


def test_no_data_skips_reading_but_keeps_the_static_checks(folder: Path) -> None:
    spec = write_spec(
        folder,
        "no_data",
        """\
        data:
          training: {uri: data/not_there.csv, target: label}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )
    assert invoke("validate", spec).exit_code == 1
    assert invoke("validate", "--no-data", spec).exit_code == 0

    spec.write_text(spec.read_text().replace("RandomForestClassifier", "RandomForestClassifier\n  params: {n_jobs: x}"))
    result = invoke("validate", "--no-data", spec)
    assert result.exit_code == 1
    assert f"{spec}:10:20: model.params.n_jobs: 'n_jobs' takes an integer or null; got string 'x'" in result.stdout


def test_remote_data_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "_policy.yaml").write_text("apiVersion: airflow-bridge/v1\nkind: Policy\ndata_roots: [s3://ml-data/]\n")
    spec = write_spec(
        tmp_path,
        "remote",
        """\
        data:
          training: {uri: s3://ml-data/churn.csv, target: churned, conn_id: aws_ml}
        model:
          estimator: sklearn.ensemble.RandomForestClassifier
        """,
    )

    result = invoke("validate", spec)

    assert result.exit_code == 0, result.output


def test_a_policy_estimator_is_checked_only_when_data_is_read(folder: Path) -> None:
    (folder / "_policy.yaml").write_text(
        "apiVersion: airflow-bridge/v1\nkind: Policy\nestimators: {sklearn.linear_model.LassoCV: regression}\n"
    )
    spec = write_spec(
        folder,
        "policy_estimator",
        """\
        data:
          training: {uri: data/diabetes.csv, target: progression}
        model:
          estimator: sklearn.linear_model.LassoCV
          params: {max_iters: 50}
        """,
    )

    assert invoke("validate", "--no-data", spec).exit_code == 0  # not in the committed table: not checked
    code, files = report(spec)
    assert code == 1
    assert lines(files[str(spec)]["issues"]) == [
        "10:23: model.params.max_iters: LassoCV has no parameter 'max_iters' (did you mean 'max_iter'?)"
    ]


def test_validate_reading_data_imports_neither_airflow_nor_sklearn() -> None:
    code = (
        "import sys\n"
        "from airflow_bridge.cli.main import app\n"
        "try:\n"
        f"    app(['validate', {str(EXAMPLES)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'sklearn', 'pandas'}))\n"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)

    assert done.stdout.splitlines()[-1] == "['pandas']"


# -- the parameter table and the counterparts ------------------------------------------------------------------------


def test_the_parameter_table_matches_the_installed_scikit_learn() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "dev" / "gen_estimator_params.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("estimator", sorted(DEFAULT_ESTIMATORS))
def test_every_default_parameter_value_passes_the_table(estimator: str) -> None:
    """No false alarm: what scikit-learn itself uses as defaults (when YAML can write it) is accepted."""
    import importlib

    from airflow_bridge.spec.params import builtin_table, check_params

    module, _, name = estimator.rpartition(".")
    defaults = getattr(importlib.import_module(module), name)().get_params(deep=False)
    writable = {k: v for k, v in defaults.items() if v is None or isinstance(v, bool | int | float | str)}
    table = builtin_table(estimator)

    assert table is not None and set(defaults) <= set(table)
    if estimator.startswith("sklearn."):  # generated from scikit-learn: exactly its parameters
        assert set(table) == set(defaults)
    assert list(check_params(estimator, writable, table)) == []


def test_every_estimator_has_a_counterpart_for_the_other_task() -> None:
    for estimator, kind in DEFAULT_ESTIMATORS.items():
        other = COUNTERPARTS[estimator]
        assert DEFAULT_ESTIMATORS[other] != kind, (estimator, other)


# -- training points at the regressor too --------------------------------------------------------------------------


def test_split_on_a_continuous_target_points_at_the_regressor() -> None:
    frame = pd.read_csv(EXAMPLES / "data" / "diabetes.csv")

    with pytest.raises(DataError) as caught:
        split(
            frame,
            "progression",
            ["bmi", "bp"],
            test_size=0.2,
            seed=0,
            stratify=True,
            estimator="sklearn.ensemble.RandomForestClassifier",
        )

    message = str(caught.value)
    assert message.startswith("target 'progression' looks continuous (214 distinct values in 442 rows")
    assert "model.estimator: sklearn.ensemble.RandomForestRegressor" in message
    assert "stratify" not in message  # turning stratification off would only hide the mistake


@pytest.mark.parametrize(
    ("estimator", "params", "hint"),
    [
        ("sklearn.svm.LinearSVC", "{}", "LinearSVC predicts labels only"),
        ("sklearn.svm.SVC", "{C: 1.0}", "set params: {probability: true}"),
        ("sklearn.linear_model.SGDClassifier", "{loss: hinge}", "set params: {loss: log_loss}"),
    ],
)
def test_probability_gates_on_a_classifier_without_probabilities_are_flagged(
    folder: Path, estimator: str, params: str, hint: str
) -> None:
    spec = write_spec(
        folder,
        "no_proba",
        f"""\
        data:
          training: {{uri: data/breast_cancer.csv, target: malignant}}
        model:
          estimator: {estimator}
          params: {params}
        validation:
          thresholds:
            roc_auc: {{min: 0.9}}
          champion: {{metric: log_loss}}
        """,
    )
    code, files = report("--no-data", spec)
    issues = lines(files[str(spec)]["issues"])
    assert code == 1
    assert [issue.split(": ", 2)[1] for issue in issues] == [
        "validation.thresholds.roc_auc",
        "validation.champion.metric",
    ]
    assert all("is never computed and this gate never passes" in i and hint in i for i in issues)


def test_probability_gates_pass_validate_when_the_estimator_gives_probabilities(folder: Path) -> None:
    spec = write_spec(
        folder,
        "with_proba",
        """\
        data:
          training: {uri: data/breast_cancer.csv, target: malignant}
        model:
          estimator: sklearn.svm.SVC
          params: {probability: true}
        validation:
          thresholds:
            roc_auc: {min: 0.9}
        """,
    )
    code, _ = report("--no-data", spec)
    assert code == 0
