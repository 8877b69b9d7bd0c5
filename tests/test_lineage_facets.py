"""OpenLineage without running a DAG: dataset names, facet schemas, each operator's lineage, configuration.

Events are checked against the OpenLineage spec files in ``tests/fixtures/standards/openlineage-spec`` (offline) and our
facets against the schemas committed in ``airflow_bridge/lineage/schemas``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.governance.policy import Policy
from airflow_bridge.lineage import SCHEMA_DIR
from airflow_bridge.lineage.naming import DatasetId, registry_namespace, storage_dataset
from airflow_bridge.registry.records import binding_for
from tests.helpers import EXAMPLES, REPO

OL_BASE = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/"
SHA = "ab" * 32
TRAINING: dict[str, Any] = {
    "model": "churn",
    "estimator": "sklearn.linear_model.Ridge",
    "task_kind": "regression",
    "params": {"alpha": 0.5},
    "effective_params": {"alpha": 0.5, "solver": "auto", "random_state": 7},
    "artifact": {"uri": "file:///art/models/churn/a.joblib", "sha256": SHA, "size": 10},
    "holdout": {"uri": "s3://bucket/holdout/churn/h.parquet", "sha256": "cd" * 32, "size": 20},
    "data": {
        "uri": "s3://bucket/data/churn.csv",
        "format": "csv",
        "sha256": "ef" * 32,
        "size": 999,
        "rows": 500,
        "columns": {"tenure": "int64", "spend": "float64", "churned": "int64"},
        "features": ["tenure", "spend"],
        "target": "churned",
        "test_size": 0.2,
        "seed": 7,
    },
}
REPORT: dict[str, Any] = {
    "model": "churn",
    "metrics": {"r2": 0.41, "mae": float("nan")},
    "gates": [
        {"name": "min_rows", "kind": "data", "value": 500, "min": 400, "max": None, "passed": True},
        {"name": "required_columns", "kind": "data", "value": ["x"], "min": None, "max": None, "passed": False},
        {"name": "r2", "kind": "metric", "value": 0.41, "min": 0.99, "max": None, "passed": False},
    ],
    "champion": {
        "metric": "r2",
        "candidate": 0.41,
        "champion": 0.5,
        "champion_version": 3,
        "improvement": -0.09,
        "min_improvement": 0.0,
        "passed": False,
        "alias": "production",
    },
    "passed": False,
}
CONTEXT = {"experiment": "churn_model", "model": "churn", "owner": "alice", "team": "growth", "description": "Churn."}
REGISTRY_NS = "model-registry://db.internal:5432/model_registry"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/churn.csv", ("file", "/data/churn.csv")),
        ("file:///data/churn.csv", ("file", "/data/churn.csv")),
        ("data/churn.csv", ("file", os.path.abspath("data/churn.csv"))),
        ("s3://bucket/raw/churn.parquet", ("s3://bucket", "raw/churn.parquet")),
        ("s3://key:secret@bucket/churn.csv", ("s3://bucket", "churn.csv")),
        ("gs://bucket/churn.csv", ("gs://bucket", "churn.csv")),
        ("gcs://bucket/churn.csv", ("gs://bucket", "churn.csv")),
        ("abfss://data@acct.dfs.core.windows.net/raw/c.csv", ("abfss://data@acct.dfs.core.windows.net", "raw/c.csv")),
        ("wasbs://data@acct.blob.core.windows.net/c.csv", ("wasbs://data@acct.blob.core.windows.net", "c.csv")),
        ("postgresql://u:pw@db:5433/analytics/public/churn", ("postgres://db:5433", "analytics.public.churn")),
        ("hdfs://namenode:8020/data/c.csv", ("hdfs://namenode:8020", "data/c.csv")),
    ],
)
def test_dataset_names_follow_the_openlineage_naming_spec(uri: str, expected: tuple[str, str]) -> None:
    assert storage_dataset(uri) == DatasetId(*expected)


def test_registry_namespace_is_stable_and_never_holds_credentials(tmp_path: Path) -> None:
    with_password = registry_namespace("postgresql+psycopg2://writer:s3cret@db.internal/model_registry")
    assert with_password == REGISTRY_NS
    assert registry_namespace("postgresql://reader@db.internal:5432/model_registry") == REGISTRY_NS
    assert "s3cret" not in with_password and "writer" not in with_password
    assert registry_namespace(f"sqlite:///{tmp_path}/r.db") == f"model-registry://sqlite{tmp_path}/r.db"


def test_custom_facet_schemas_are_openlineage_style() -> None:
    from jsonschema import Draft202012Validator

    from airflow_bridge.lineage.facets import KEYS, SCHEMA_BASE

    files = {p.stem: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    assert set(files) == {cls.__name__ for cls in KEYS}
    for cls, key in KEYS.items():
        name, schema = cls.__name__, files[cls.__name__]
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"{SCHEMA_BASE}/{name}.json"
        kind = next(k for k in ("RunFacet", "JobFacet", "DatasetFacet") if name.endswith(k))
        assert schema["$defs"][name]["allOf"][0] == {"$ref": OL_BASE + kind}
        assert schema["properties"] == {key: {"$ref": f"#/$defs/{name}"}}
        assert key.startswith("airflowBridge_")
        assert cls._get_schema() == f"{schema['$id']}#/$defs/{name}"


def _event(lineage: Any, event_type: str) -> dict[str, Any]:
    """A RunEvent as the provider would build it from an operator's OperatorLineage."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde

    event = RunEvent(
        eventType=RunState[event_type],
        eventTime="2026-01-01T00:00:00+00:00",
        run=Run(runId=str(uuid.uuid4()), facets=lineage.run_facets),
        job=Job(namespace="default", name="dag.task", facets=lineage.job_facets),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
        producer="https://example.com/test",
    )
    return json.loads(Serde.to_json(event))


def _valid(ol_registry: Any, lineage: Any, event_type: str = "COMPLETE") -> dict[str, Any]:
    from airflow_bridge.lineage.validation import event_errors

    event = _event(lineage, event_type)
    assert event_errors(event, ol_registry) == []
    return event


def _ids(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def test_every_operator_emits_valid_lineage_at_start_complete_and_failure(ol_registry: Any) -> None:
    from airflow_bridge.actions.results import (
        ApprovalDecision,
        DeploymentResult,
        Registration,
        TrainingResult,
        ValidationReport,
    )
    from airflow_bridge.artifacts import ArtifactRef
    from airflow_bridge.operators.approve import ModelApprovalOperator
    from airflow_bridge.operators.deploy import DeployModelOperator
    from airflow_bridge.operators.register import RegisterModelOperator
    from airflow_bridge.operators.rollback import RollbackModelOperator
    from airflow_bridge.operators.train import TrainModelOperator
    from airflow_bridge.operators.validate import ValidateModelOperator

    registration = {"model": "churn", "version": 4, "artifact": TRAINING["artifact"], "metrics": {"r2": 0.41}}
    train = TrainModelOperator(
        task_id="train", model_name="churn", data_uri="s3://bucket/data/churn.csv", target="churned",
        estimator="sklearn.linear_model.Ridge", lineage_context=CONTEXT,
    )  # fmt: skip
    validate = ValidateModelOperator(task_id="validate", training=TRAINING, lineage_context=CONTEXT)
    register = RegisterModelOperator(task_id="register", training=TRAINING, lineage_context=CONTEXT)
    approve = ModelApprovalOperator(
        task_id="approve", registration=registration, alias="production", approvers=["dana", "alice"], author="alice"
    )
    deploy = DeployModelOperator(task_id="deploy", registration=registration, lineage_context=CONTEXT)
    rollback = RollbackModelOperator(task_id="rollback", model_name="churn")
    operators = [train, validate, register, approve, deploy, rollback]
    for op in operators:  # before execute: what is known from arguments and upstream XComs
        _valid(ol_registry, op.get_openlineage_facets_on_start(), "START")

    train._remember(result=TrainingResult.from_xcom(TRAINING))
    validate._remember(report=ValidationReport.from_xcom({**REPORT, "passed": True}))
    for op in (register, approve, deploy, rollback):
        op._remember(registry_namespace=REGISTRY_NS)
    registered = Registration.from_xcom(registration)
    register._remember(registration=registered)
    approve._remember(decision=ApprovalDecision("churn", 4, "production", "granted", "dana"))
    moved = {"model": "churn", "alias": "production", "target": "local", "endpoint": "registry://churn@production"}
    deploy._remember(
        registration=registered,
        result=DeploymentResult(**moved, version=4, previous_version=3, action="deployed", actor="dana"),
    )
    rollback._remember(
        registration=Registration("churn", 3, ArtifactRef(**TRAINING["artifact"])),
        result=DeploymentResult(**moved, version=3, previous_version=4, action="rolled_back", actor="erin"),
    )
    events = {op.task_id: _valid(ol_registry, op.get_openlineage_facets_on_complete(None)) for op in operators}
    for op in operators:
        _valid(ol_registry, op.get_openlineage_facets_on_failure(None), "FAIL")

    assert _ids(events["train"]["inputs"]) == [("s3://bucket", "data/churn.csv")]
    assert _ids(events["validate"]["inputs"])[0] == ("s3://bucket", "data/churn.csv")
    model = (REGISTRY_NS, "model/churn")
    assert _ids(events["register"]["outputs"]) == [model]
    assert events["register"]["outputs"][0]["facets"]["version"]["datasetVersion"] == "4"
    assert _ids(events["deploy"]["inputs"]) == [model] == _ids(events["approve"]["inputs"])
    assert _ids(events["deploy"]["outputs"]) == [(REGISTRY_NS, "model/churn@production")]
    assert events["rollback"]["outputs"][0]["facets"]["version"]["datasetVersion"] == "3"
    assert events["approve"]["run"]["facets"]["airflowBridge_approval"]["approver"] == "dana"
    data = events["train"]["inputs"][0]
    assert data["facets"]["version"]["datasetVersion"] == TRAINING["data"]["sha256"]
    assert [f["name"] for f in data["facets"]["schema"]["fields"]] == ["tenure", "spend", "churned"]
    job = events["train"]["job"]["facets"]
    assert job["ownership"]["owners"] == [
        {"name": "user:alice", "type": "OWNER"},
        {"name": "team:growth", "type": "TEAM"},
    ]
    assert job["documentation"]["description"] == "Churn."
    assert (job["jobType"]["processingType"], job["jobType"]["integration"], job["jobType"]["jobType"]) == (
        "BATCH",
        "AIRFLOW",
        "TASK",
    )
    assert events["validate"]["run"]["facets"]["airflowBridge_champion"]["championVersion"] == 3


def test_failed_gates_are_in_the_failure_lineage(ol_registry: Any) -> None:
    from airflow_bridge.actions.results import ValidationReport
    from airflow_bridge.operators.train import TrainModelOperator
    from airflow_bridge.operators.validate import ValidateModelOperator

    validate = ValidateModelOperator(task_id="validate", training=TRAINING)
    validate._remember(report=ValidationReport.from_xcom(REPORT))  # what execute keeps before a failed gate raises
    event = _valid(ol_registry, validate.get_openlineage_facets_on_failure(None), "FAIL")
    gates = event["run"]["facets"]["airflowBridge_gates"]
    assert gates["passed"] is False
    assert [(g["name"], g["passed"]) for g in gates["gates"]] == [
        ("min_rows", True),
        ("required_columns", False),
        ("r2", False),
    ]
    assert event["run"]["facets"]["airflowBridge_metrics"]["metrics"] == {"r2": 0.41}  # NaN is dropped, not emitted

    train = TrainModelOperator(task_id="train", model_name="m", data_uri="/d.csv", target="y", estimator="E")
    train._remember(data={"uri": "/d.csv", "sha256": SHA, "rows": 3}, checks=REPORT["gates"][:2])
    failed = _valid(ol_registry, train.get_openlineage_facets_on_failure(None), "FAIL")
    assert failed["run"]["facets"]["airflowBridge_gates"]["passed"] is False
    assert failed["inputs"][0]["facets"]["version"]["datasetVersion"] == SHA


def test_the_provider_stays_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.openlineage import conf

    for name in [k for k in os.environ if k.startswith(("AIRFLOW__OPENLINEAGE__", "OPENLINEAGE"))]:
        monkeypatch.delenv(name)
    assert conf.is_disabled()  # unconfigured: no transport, so no listener and no events
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": "/tmp/x"}))
    assert not conf.is_disabled()
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "true")
    assert conf.is_disabled()


def test_local_runs_write_lineage_to_the_run_folder(tmp_path: Path) -> None:
    from airflow_bridge.cli.local_run import lineage_environment

    env = lineage_environment(tmp_path / "run", tmp_path, {})
    assert json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"]) == {
        "type": "file",
        "log_file_path": str(tmp_path / "run" / "openlineage.jsonl"),
        "append": True,
    }
    assert env["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "airflow-bridge-local"
    assert "AIRFLOW_BRIDGE_GIT_COMMIT" not in env  # tmp_path is not a git checkout
    marquez = {"type": "http", "url": "http://marquez:5000"}
    env = lineage_environment(tmp_path, tmp_path, {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(marquez)})
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["type"] == "composite" and transport["transports"]["configured"] == marquez
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in lineage_environment(
        tmp_path, tmp_path, {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}
    )
    if (REPO / ".git").exists():
        commit = lineage_environment(tmp_path, EXAMPLES, {})["AIRFLOW_BRIDGE_GIT_COMMIT"]
        assert len(commit.removesuffix("-dirty")) == 40


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, env=env, timeout=300
    )


PARSE = """
import json, sys

def loaded():
    return {m for m in sys.modules if m.split(".")[0] == "openlineage" or m.startswith("airflow.providers.openlineage")}

import airflow
baseline = loaded()  # what Airflow itself imports (its provider discovery reads get_provider_info)
from airflow_bridge.factory import build_dag, load_dag_specs
built = load_dag_specs(folder=sys.argv[1])
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[2])
print(json.dumps({"built": sorted(built), "bag": sorted(bag.dags), "baseline": sorted(baseline),
                  "new": sorted(loaded() - baseline)}))
"""


def test_building_and_parsing_dags_never_imports_openlineage(tmp_path: Path) -> None:
    loader = tmp_path / "loader.py"
    loader.write_text(
        f"from airflow_bridge.factory import load_dag_specs\nload_dag_specs(globals(), folder={str(EXAMPLES)!r})\n"
    )
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__DISABLED": "False"}
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(tmp_path / "ol")})
    done = _python(PARSE, str(EXAMPLES), str(loader), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    examples = ["breast_cancer_classifier", "breast_cancer_search", "diabetes_progression", "penguin_species"]
    assert found["built"] == found["bag"] == examples
    assert found["new"] == []
    assert set(found["baseline"]) <= {
        "airflow.providers.openlineage",
        "airflow.providers.openlineage.get_provider_info",
    }


CLI = """
import sys
from airflow_bridge.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
if any(m == "airflow" or m.startswith("airflow.") for m in sys.modules):
    print("AIRFLOW-IMPORTED", file=sys.stderr)
sys.exit(code)
"""


GROWTH_POLICY = binding_for(
    Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"growth": {"approvers": ["dana"]}}}
    ),
    "specs/_policy.yaml",
)


def test_lineage_command_answers_from_the_registry_alone(tmp_path: Path) -> None:
    from airflow_bridge.registry import ArtifactRef, ModelCard, ModelRegistry, RunRef

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = ModelRegistry(url)
    for number in (1, 2):
        run = RunRef("churn_model", f"manual__{number}", "register")
        registry.register_version(
            "churn",
            ArtifactRef(f"file:///art/{number}.joblib", str(number) * 64, 10),
            estimator="sklearn.linear_model.Ridge",
            metrics={"r2": 0.4},
            validation={"gates": REPORT["gates"][:1], "champion": None},
            data={"uri": "s3://bucket/data/churn.csv", "sha256": "ef" * 32, "rows": 500},
            spec_sha256=SHA,
            run=run,
            actor="alice",
            card=ModelCard(description="Churn.", owner="alice", team="growth"),
            policy=GROWTH_POLICY,
        )
        registry.record_decision(
            "approval_granted", actor="dana", model="churn", version=number, alias="production", run=run, reason=""
        )
        registry.deploy("churn", number, alias="production", target="local", actor="dana", run=run)

    done = _python(CLI, "lineage", "churn", "--registry-url", url, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "AIRFLOW-IMPORTED" not in done.stderr
    chain = json.loads(done.stdout)
    assert chain["dataset"] == {"namespace": registry_namespace(url), "name": "model/churn"}
    first, second = chain["versions"]
    assert first["data"]["dataset"] == {"namespace": "s3://bucket", "name": "data/churn.csv"}
    assert first["data"]["sha256"] == "ef" * 32
    assert first["run"] == {"dag_id": "churn_model", "run_id": "manual__1", "task_id": "register"}
    assert [(a["decision"], a["actor"]) for a in first["approvals"]] == [("granted", "dana")]
    assert [d["action"] for d in first["deployments"]] == ["deployed"]
    assert first["alias_periods"][0]["to"] is not None and second["alias_periods"][0]["to"] is None
    assert chain["aliases"] == {"production": 2}

    text = _python(CLI, "lineage", "churn", "--registry-url", url, "--version", "1")
    assert text.returncode == 0, text.stderr
    assert "v1  registered" in text.stdout and "v2  registered" not in text.stdout
    assert "s3://bucket  data/churn.csv" in text.stdout and "approval  granted by dana" in text.stdout
    missing = _python(CLI, "lineage", "nope", "--registry-url", url)
    assert missing.returncode == 1 and "not in the registry" in missing.stderr
