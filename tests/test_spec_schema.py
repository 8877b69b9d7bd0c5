"""The JSON Schemas editors use (specs and team policy), the modelines that point editors at them, the
example specs, and what importing the spec package costs."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from airflow_bridge.cli.schema import SCHEMA_KINDS, schema_filename, schema_for, schema_id, schema_text
from airflow_bridge.governance.policy import Policy
from airflow_bridge.spec import SpecContext, discover_specs, load_spec, load_spec_text

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "experiment-v1.json"
SCHEMA_DIRS = {"schemas": REPO / "schemas", "package": REPO / "airflow_bridge" / "schemas"}
EXAMPLES = REPO / "dag_specs"
EXAMPLE_POLICY = EXAMPLES / "_policy.yaml"
INVALID = Path(__file__).resolve().parent / "fixtures" / "invalid"
EXAMPLE_SPECS = [Path(p) for p in discover_specs(EXAMPLES)]
MODELINE = "# yaml-language-server: $schema=../schemas/experiment-v1.json"
REGENERATE = "airflow-bridge schema --out-dir schemas --out-dir airflow_bridge/schemas"
# How the YAML language server (VS Code's YAML extension) finds a modeline and its target; the
# second form, '# $schema: PATH', is the one JetBrains IDEs document.
_MODELINE = re.compile(r"^#\s+(?:yaml-language-server\s*:|\$schema:)")
_TARGET = re.compile(r"\$schema(?:=|:\s*)(\S+)")


def as_json(path: Path) -> Any:
    """The file as the JSON an editor's schema validator sees (dates become strings)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


def schema_errors(instance: Any, kind: str = "experiment") -> list[str]:
    validator = jsonschema.Draft202012Validator(schema_for(kind))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def modeline_targets(path: Path) -> list[Path]:
    """Every schema a modeline in the file points at, resolved as the editor does (from the file's folder)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    targets = [m.group(1) for line in lines if _MODELINE.match(line) and (m := _TARGET.search(line))]
    assert all("://" not in t for t in targets), f"{path}: a modeline points at a URL: {targets}"
    return [(path.parent / target).resolve() for target in targets]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


# -- the committed schemas --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", SCHEMA_DIRS)
@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_committed_schemas_are_up_to_date(kind: str, where: str) -> None:
    committed = SCHEMA_DIRS[where] / schema_filename(kind)

    assert committed.is_file(), f"{committed} is missing; generate it with: {REGENERATE}"
    assert committed.read_text(encoding="utf-8") == schema_text(kind), (
        f"{committed.relative_to(REPO)} is out of date with the models; regenerate both copies with: {REGENERATE}"
    )


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    schema = json.loads((SCHEMA_DIRS["schemas"] / schema_filename(kind)).read_text(encoding="utf-8"))

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schema_id(kind)
    assert "://" not in schema["$id"]  # an identifier, not an address that serves nothing
    assert schema["additionalProperties"] is False  # unknown keys are flagged in the editor too


def test_schema_command_prints_the_policy_schema() -> None:
    result = invoke("schema", "policy")

    assert result.exit_code == 0, result.output
    assert result.stdout == schema_text("policy")


def test_schema_command_writes_every_kind_into_each_out_dir(tmp_path: Path) -> None:
    result = invoke("schema", "--out-dir", tmp_path / "a", "--out-dir", tmp_path / "b" / "schemas")

    assert result.exit_code == 0, result.output
    for folder in (tmp_path / "a", tmp_path / "b" / "schemas"):
        assert sorted(p.name for p in folder.iterdir()) == ["experiment-v1.json", "policy-v1.json"]
        assert (folder / "policy-v1.json").read_text() == schema_text("policy")
        assert f"wrote {folder / 'experiment-v1.json'}" in result.stderr


def test_schema_command_refuses_out_and_out_dir_together(tmp_path: Path) -> None:
    result = invoke("schema", "-o", tmp_path / "x.json", "--out-dir", tmp_path)

    assert result.exit_code == 2
    assert "either --out or --out-dir" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- the examples and their modelines ---------------------------------------------------------------------------------


def test_there_are_example_specs() -> None:
    assert len(EXAMPLE_SPECS) >= 2


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_validates_against_the_schema(path: Path) -> None:
    assert schema_errors(as_json(path)) == []


def test_example_policy_validates_against_the_policy_schema() -> None:
    assert schema_errors(as_json(EXAMPLE_POLICY), "policy") == []


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_loads_without_issues(path: Path) -> None:
    loaded = load_spec(path, SpecContext())

    assert [issue.format() for issue in loaded.issues] == []
    assert loaded.spec is not None


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_starts_with_a_schema_modeline(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]

    assert first_line == MODELINE
    assert modeline_targets(path)[0] == SCHEMA_FILE.resolve()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.y*ml")), ids=lambda p: p.name)
def test_every_modeline_in_dag_specs_resolves_to_the_schema_of_its_kind(path: Path) -> None:
    kind = "policy" if path.name.startswith("_policy") else "experiment"

    targets = modeline_targets(path)

    assert targets, f"{path.name} has no schema modeline"
    for target in targets:
        assert target.is_file(), f"{path.name}: the modeline points at {target}, which does not exist"
        assert target.name == schema_filename(kind)


# -- the modeline 'init' writes ---------------------------------------------------------------------------------------


def init_spec(folder: Path, name: str = "churn_model") -> tuple[Result, Path]:
    result = invoke("init", name, "--dir", folder, "--owner", "alice")
    assert result.exit_code == 0, result.output
    return result, folder / f"{name}.yaml"


def test_init_outside_a_checkout_copies_the_schemas_next_to_the_spec(tmp_path: Path) -> None:
    folder = tmp_path / "anywhere" / "specs"

    result, spec = init_spec(folder)

    lines = spec.read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=schemas/experiment-v1.json"
    assert lines[1] == "# $schema: schemas/experiment-v1.json"
    [target, jetbrains_target] = modeline_targets(spec)
    assert target == jetbrains_target == (folder / "schemas" / "experiment-v1.json").resolve()
    assert target.read_text() == schema_text("experiment")
    assert (folder / "schemas" / "policy-v1.json").read_text() == schema_text("policy")  # for a _policy.yaml there
    assert f"wrote {folder / 'schemas' / 'experiment-v1.json'}" in result.stdout
    # the starter spec is valid for the schema it points at
    assert jsonschema.Draft202012Validator(json.loads(target.read_text())).is_valid(as_json(spec))


def test_init_reuses_the_copied_schemas_and_never_overwrites_them(tmp_path: Path) -> None:
    init_spec(tmp_path, "first")
    copied = tmp_path / "schemas" / "experiment-v1.json"
    copied.write_text(copied.read_text().replace("Experiment", "Experimentt", 1))  # an older or edited copy

    result, spec = init_spec(tmp_path, "second")

    assert modeline_targets(spec)[0] == copied.resolve()
    assert "Experimentt" in copied.read_text()
    assert "wrote" not in result.stdout.replace(f"wrote {spec}", "")
    assert f"note: {copied} is not this airflow-bridge version's schema" in result.stderr
    assert f"airflow-bridge schema --out-dir {copied.parent}" in result.stderr


@pytest.mark.parametrize("subfolder", ["dag_specs", "dag_specs/team_a/drafts"])
def test_init_inside_a_checkout_points_at_its_schemas_folder(subfolder: str, tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    assert invoke("schema", "--out-dir", checkout / "schemas").exit_code == 0
    folder = checkout / subfolder

    result, spec = init_spec(folder)

    depth = len(Path(subfolder).parts)
    assert (
        spec.read_text().splitlines()[0] == f"# yaml-language-server: $schema={'../' * depth}schemas/experiment-v1.json"
    )
    assert modeline_targets(spec)[0] == (checkout / "schemas" / "experiment-v1.json").resolve()
    assert not (folder / "schemas").exists()
    assert "is not this airflow-bridge version's schema" not in result.stderr


def test_init_in_this_repository_points_at_the_committed_schema() -> None:
    from airflow_bridge.cli.schema import schema_reference

    reference = schema_reference(EXAMPLES, "experiment")  # what 'init NAME' writes here, without writing a spec

    assert reference.path == "../schemas/experiment-v1.json"
    assert reference.written == () and not reference.stale


# -- what editors flag ------------------------------------------------------------------------------------------------

SPEC: dict[str, Any] = {
    "apiVersion": "airflow-bridge/v1",
    "kind": "Experiment",
    "name": "churn",
    "owner": "alice",
    "team": "growth",
    "data": {"training": {"uri": "data/churn.csv", "target": "churned"}},
    "model": {"estimator": "sklearn.ensemble.RandomForestClassifier"},
    "validation": {"thresholds": {"accuracy": {"min": 0.8}}},
}
SPEC_CONTEXT = SpecContext(data_roots=("s3://bucket/",), estimators={"xgboost.XGBRegressor": "regression"})
POLICY: dict[str, Any] = {"apiVersion": "airflow-bridge/v1", "kind": "Policy"}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with values set at dotted paths (``data.training.uri``)."""
    document = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = document
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return document


SPEC_CASES = {  # id: (changes, valid)
    "threshold-empty": ({"validation.thresholds.accuracy": {}}, False),
    "threshold-null-bound": ({"validation.thresholds.accuracy": {"min": None}}, False),
    "threshold-max-only": ({"validation.thresholds.accuracy": {"max": 0.99}}, True),
    "threshold-both": ({"validation.thresholds.accuracy": {"min": 0.1, "max": 0.9}}, True),
    "unknown-metric": ({"validation.thresholds.acuracy": {"min": 0.8}}, False),
    "regression-metric-on-a-classifier": ({"validation.thresholds.r2": {"min": 0.5}}, False),
    "regression-champion-on-a-classifier": ({"validation.champion": {"metric": "rmse"}}, False),
    "task-overrides-the-estimator": (
        {"model.task": "regression", "validation.thresholds": {"r2": {"min": 0.1}}},
        True,
    ),
    "regressor-with-r2": (
        {"model.estimator": "sklearn.linear_model.Ridge", "validation.thresholds": {"r2": {"min": 0.1}}},
        True,
    ),
    "classification-metric-on-a-regressor": ({"model.estimator": "sklearn.linear_model.Ridge"}, False),
    "policy-estimator-with-its-metric": (
        {"model.estimator": "xgboost.XGBRegressor", "validation.thresholds": {"mae": {"max": 3.0}}},
        True,
    ),
    "schedule-misspelt-preset": ({"schedule": "@weekley"}, False),
    "schedule-four-fields": ({"schedule": "0 6 * *"}, False),
    "schedule-prose": ({"schedule": "every day"}, False),
    "schedule-cron": ({"schedule": "30 2 * * MON-FRI"}, True),
    "schedule-preset": ({"schedule": "@daily"}, True),
    "conn-id-uri": ({"data.training.conn_id": "postgres://u:p@db/x"}, False),
    "conn-id-space": ({"data.training.conn_id": "my conn"}, False),
    "conn-id-ok": ({"data.training.uri": "s3://bucket/x.csv", "data.training.conn_id": "s3_train.data-1"}, True),
    "registry-conn-id-colon": ({"registry.conn_id": "host:5432"}, False),
    "uri-with-credentials": ({"data.training.uri": "s3://user:secret@bucket/x.csv"}, False),
    "uri-with-at-in-the-path": ({"data.training.uri": "s3://bucket/team@x/x.csv"}, True),
    "uri-relative-with-at": ({"data.training.uri": "data/a@b.csv"}, True),
    "uri-control-character": ({"data.training.uri": "data/a\tb.csv"}, False),
    "tag-too-long": ({"tags": ["x" * 101]}, False),
    "tag-longest": ({"tags": ["x" * 100]}, True),
    "team-too-long-for-a-tag": ({"team": "t" * 96}, False),
    "bad-name": ({"name": "Churn"}, False),
    "test-size-out-of-range": ({"data.split.test_size": 1.0}, False),
    "unknown-column-role": ({"data.columns": {"city": "categorial"}}, False),
}


@pytest.mark.parametrize(("changes", "valid"), SPEC_CASES.values(), ids=SPEC_CASES.keys())
def test_editor_and_validate_agree_on_specs(changes: dict[str, Any], valid: bool, tmp_path: Path) -> None:
    document = changed(SPEC, **changes)

    loaded = load_spec_text(json.dumps(document), str(tmp_path / "spec.yaml"), SPEC_CONTEXT)
    errors = schema_errors(document)

    assert loaded.ok is valid, [i.format() for i in loaded.issues]
    assert (errors == []) is valid, errors


def test_a_threshold_without_bounds_is_flagged_where_it_is_written() -> None:
    errors = schema_errors(changed(SPEC, **{"validation.thresholds.accuracy": {}}))

    assert errors and all(e.startswith("validation/thresholds/accuracy: ") for e in errors), errors


POLICY_CASES = {
    "forbidden-module": ({"estimators": {"os.system": "classification"}}, False),
    "undotted-estimator": ({"estimators": {"xgboost": "regression"}}, False),
    "unknown-task-kind": ({"estimators": {"xgboost.XGBClassifier": "clustering"}}, False),
    "estimator-ok": ({"estimators": {"xgboost.XGBClassifier": "classification"}}, True),
    "team-alias-not-a-name": ({"teams": {"a": {"approval_required_for": ["Production"]}}}, False),
    "team-aliases-ok": ({"teams": {"a": {"approval_required_for": ["production", "staging_2"]}}}, True),
    "no-concurrency": ({"teams": {"a": {"max_active_runs": 0}}}, False),
    "misspelt-key": ({"teams": {"a": {"approverz": ["dana"]}}}, False),
    "opt-out-flag": ({"defaults": {"allow_enforcement_opt_out": True}}, True),
}


@pytest.mark.parametrize(("changes", "valid"), POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_editor_and_validate_agree_on_policies(changes: dict[str, Any], valid: bool) -> None:
    document = changed(POLICY, **changes)

    try:
        Policy.model_validate(document)
        accepted = True
    except ValidationError:
        accepted = False
    errors = schema_errors(document, "policy")

    assert accepted is valid
    assert (errors == []) is valid, errors


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("unknown_keys.yaml", ""),  # schedul: -> additional property at the top
        ("wrong_types.yaml", "data/split/test_size"),
        ("missing_keys.yaml", ""),
        ("bad_name.yaml", "name"),
        ("broken_churn.yaml", ""),
    ],
)
def test_schema_flags_structural_mistakes_in_the_editor(name: str, where: str) -> None:
    errors = schema_errors(as_json(INVALID / name))

    assert errors
    assert any(e.startswith(f"{where}: ") for e in errors), errors


IMPORT_CHECK = """
import json, sys
import airflow_bridge.spec
from airflow_bridge.spec import load_spec
issues = [issue.format() for path in sys.argv[1:] for issue in load_spec(path).issues]
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"airflow", "sklearn", "sqlalchemy", "pandas"})
print(json.dumps({"heavy": heavy, "issues": issues}))
"""


def test_the_spec_package_imports_no_airflow_or_ml_stack() -> None:
    # A fresh interpreter: this test process has imported Airflow already.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, *map(str, EXAMPLE_SPECS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=120,
    )

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "issues": []}
