"""OpenLineage end to end: ``airflow-bridge run`` with the real provider listener in ``dag.test()``.

The test session keeps OpenLineage disabled (the provider's listener is loaded once per process), so
lineage runs go through ``airflow-bridge run`` in a child process: a fresh Airflow home (copied from
a DB migrated once per module), OpenLineage's file transport writing ``<run dir>/openlineage.jsonl``.
Every event is checked against the OpenLineage spec and every facet against its schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_bridge.lineage.naming import registry_namespace
from airflow_bridge.registry import ModelRegistry
from tests.helpers import EXAMPLES, task_states

pytestmark = pytest.mark.slow
GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without this session's Airflow settings (the run sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPENLINEAGE"))}
    return {**env, "GIT_COMMIT": GIT_COMMIT, **extra}


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata DB migrated once; each run starts from a copy."""
    home = tmp_path_factory.mktemp("ol-template")
    env = _clean_env(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}")
    code = "from airflow.utils import db; db.upgradedb()"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return home / "airflow.db"


def run_cli(spec: Path, home: Path, migrated_db: Path, *args: str, **env: str) -> dict[str, Any]:
    """``airflow-bridge run SPEC --format json``; returns the summary (with the lineage file)."""
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(migrated_db, home / "airflow.db")
    command = [sys.executable, "-m", "airflow_bridge.cli.main", "run", str(spec), "--home", str(home), "--format"]
    done = subprocess.run(
        [*command, "json", *args], env=_clean_env(**env), capture_output=True, text=True, check=False, timeout=600
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout)


def read_events(summary: dict[str, Any], ol_registry: Any) -> list[dict[str, Any]]:
    from airflow_bridge.lineage.validation import event_errors

    lineage = summary["lineage"]
    assert lineage["file"] == str(Path(summary["run_dir"]) / "openlineage.jsonl")
    events = [json.loads(line) for line in Path(lineage["file"]).read_text().splitlines() if line.strip()]
    assert len(events) == lineage["events"] > 0
    for event in events:
        assert event_errors(event, ol_registry) == [], event["job"]["name"]
        assert event["job"]["namespace"] == "airflow-bridge-local"
    return events


def by_task(events: list[dict[str, Any]], dag_id: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{task_id: {eventType: [events]}}`` for the task events of ``dag_id``."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for event in events:
        name = event["job"]["name"]
        if name.startswith(f"{dag_id}."):
            found.setdefault(name.removeprefix(f"{dag_id}."), {}).setdefault(event["eventType"], []).append(event)
    return found


def ids(datasets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def facets(event: dict[str, Any]) -> dict[str, Any]:
    return event["run"]["facets"]


def check_pipeline(
    events: list[dict[str, Any]], dag_id: str, tasks: list[str], home: Path, model: str, spec: Path
) -> dict[str, dict[str, Any]]:
    """START and COMPLETE for every task; train's data is validate's; register's model is deploy's input."""
    grouped = by_task(events, dag_id)
    assert sorted(grouped) == sorted(tasks)
    complete = {}
    for task, kinds in grouped.items():
        assert set(kinds) == {"START", "COMPLETE"}, task
        assert len(kinds["COMPLETE"]) == 1
        (complete[task],) = kinds["COMPLETE"]
        assert complete[task]["run"]["runId"] in {e["run"]["runId"] for e in kinds["START"]}
        provenance = facets(complete[task])["airflowBridge_provenance"]
        assert provenance["specSha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
        assert (provenance["gitCommit"], provenance["gitCommitSource"]) == (GIT_COMMIT, "env:GIT_COMMIT")

    registry_url = f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}"
    version = ModelRegistry(registry_url).get_version(model, 1)
    data = Path(version.data["uri"].removeprefix("file://"))
    train_data = ("file", str(data))
    assert ids(complete["train"]["inputs"]) == {train_data}
    assert train_data in ids(complete["validate"]["inputs"])
    (read,) = [d for d in complete["validate"]["inputs"] if (d["namespace"], d["name"]) == train_data]
    assert read["facets"]["version"]["datasetVersion"] == hashlib.sha256(data.read_bytes()).hexdigest()
    header = data.read_text().splitlines()[0].split(",")
    assert [f["name"] for f in read["facets"]["schema"]["fields"]] == header

    model_dataset = (registry_namespace(registry_url), f"model/{model}")
    assert ids(complete["register"]["outputs"]) == {model_dataset}
    assert complete["register"]["outputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert model_dataset in ids(complete["deploy"]["inputs"])
    assert ids(complete["deploy"]["outputs"]) == {(model_dataset[0], f"model/{model}@production")}
    assert facets(complete["train"])["airflowBridge_artifact"]["sha256"] == version.artifact.sha256
    assert facets(complete["validate"])["airflowBridge_gates"]["passed"] is True
    assert facets(complete["validate"])["airflowBridge_metrics"]["metrics"] == pytest.approx(version.metrics)
    assert facets(complete["deploy"])["airflowBridge_deployment"]["version"] == 1
    return complete


def test_breast_cancer_run_emits_auditable_lineage(tmp_path: Path, migrated_db: Path, ol_registry: Any) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    shutil.copytree(EXAMPLES, specs, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = specs / "breast_cancer_classifier.yaml"

    summary = run_cli(spec, home, migrated_db, "--approve-as", "dana")

    assert summary["state"] == "success", summary
    events = read_events(summary, ol_registry)
    tasks = ["train", "validate", "register", "approve", "deploy"]
    complete = check_pipeline(events, "breast_cancer_classifier", tasks, home, "breast_cancer", spec)
    approval = facets(complete["approve"])["airflowBridge_approval"]
    assert (approval["decision"], approval["approver"], approval["approvers"]) == ("granted", "dana", ["dana", "erin"])
    assert facets(complete["deploy"])["airflowBridge_approval"]["approver"] == "dana"
    assert facets(complete["train"])["airflowBridge_hyperparameters"]["params"] == {"n_estimators": 100, "max_depth": 6}
    assert facets(complete["validate"])["airflowBridge_champion"]["note"] == "no live version to compare with"
    experiment = complete["train"]["job"]["facets"]["airflowBridge_experiment"]
    assert (experiment["owner"], experiment["team"]) == ("alice", "oncology")

    from typer.testing import CliRunner

    from airflow_bridge.cli.main import app

    shown = CliRunner().invoke(app, ["lineage", "breast_cancer", "--home", str(home), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    (version,) = json.loads(shown.stdout)["versions"]
    train_input = complete["train"]["inputs"][0]
    assert version["data"]["dataset"] == {"namespace": train_input["namespace"], "name": train_input["name"]}
    assert version["data"]["sha256"] == train_input["facets"]["version"]["datasetVersion"]
    assert version["run"]["run_id"] == facets(complete["register"])["airflow"]["dagRun"]["run_id"]
    assert [(a["decision"], a["actor"]) for a in version["approvals"]] == [("requested", "alice"), ("granted", "dana")]
    assert [(d["action"], d["alias"]) for d in version["deployments"]] == [("deployed", "production")]


def test_diabetes_lineage_and_the_same_outcome_with_lineage_off(
    tmp_path: Path, migrated_db: Path, ol_registry: Any, registry_env: dict, run_spec_dag
) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    shutil.copytree(EXAMPLES, specs, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = specs / "diabetes_progression.yaml"

    summary = run_cli(spec, home, migrated_db)

    assert summary["state"] == "success", summary
    tasks = ["train", "validate", "register", "deploy"]
    check_pipeline(read_events(summary, ol_registry), "diabetes_progression", tasks, home, "diabetes_progression", spec)

    # This session runs with OpenLineage off: same states, same registry outcome.
    from airflow.sdk.listener import get_listener_manager

    listeners = {type(p).__name__ for p in get_listener_manager().pm.get_plugins()}
    assert "OpenLineageListener" not in listeners
    _, dag_run = run_spec_dag(spec)
    assert task_states(dag_run) == summary["tasks"] == dict.fromkeys(tasks, "success")
    with_lineage = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")
    without = ModelRegistry(registry_env["url"])
    for registry in (with_lineage, without):
        assert registry.alias_version("diabetes_progression", "production").version == 1
        assert [d.action for d in registry.deployments("diabetes_progression")] == ["deployed"]
    lit, dark = (r.get_version("diabetes_progression", 1) for r in (with_lineage, without))
    assert (lit.metrics, lit.data["sha256"]) == (dark.metrics, dark.data["sha256"])
    assert lit.artifact.sha256 == dark.artifact.sha256


def test_failing_gate_emits_fail_with_the_gate_results(tmp_path: Path, migrated_db: Path, ol_registry: Any) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    shutil.copytree(EXAMPLES, specs, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = specs / "diabetes_progression.yaml"
    content = yaml.safe_load(spec.read_text())
    content["validation"]["thresholds"]["r2"] = {"min": 0.99}
    spec.write_text(yaml.safe_dump(content))

    summary = run_cli(spec, home, migrated_db)

    assert summary["tasks"] == {
        "train": "success",
        "validate": "failed",
        "register": "upstream_failed",
        "deploy": "upstream_failed",
    }
    grouped = by_task(read_events(summary, ol_registry), "diabetes_progression")
    assert sorted(grouped) == ["train", "validate"]  # tasks that never ran emit nothing
    (fail,) = grouped["validate"]["FAIL"]
    assert "COMPLETE" not in grouped["validate"]
    gates = {g["name"]: g for g in facets(fail)["airflowBridge_gates"]["gates"]}
    assert facets(fail)["airflowBridge_gates"]["passed"] is False
    assert (gates["r2"]["min"], gates["r2"]["passed"], gates["mae"]["passed"]) == (0.99, False, True)
    assert "Validation failed" in facets(fail)["errorMessage"]["message"]
    (candidate,) = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}").list_candidates(
        "diabetes_progression"
    )
    assert facets(fail)["airflowBridge_provenance"]["candidateId"] == candidate.candidate_id
    assert facets(grouped["train"]["COMPLETE"][0])["airflowBridge_provenance"]["candidateId"] == candidate.candidate_id
    assert "r2" in facets(fail)["airflowBridge_metrics"]["metrics"]
    assert ids(fail["inputs"]) >= ids(grouped["train"]["COMPLETE"][0]["inputs"])
