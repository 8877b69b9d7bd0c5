"""End to end with Airflow's real ``dag.test()`` on a SQLite metadata DB: both example specs, and a failing gate."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_bridge.actions.candidates import candidate_fates
from airflow_bridge.cli.respond import Answer
from airflow_bridge.registry import ModelRegistry
from tests.helpers import task_states

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("spec_file", "model", "metric"),
    [
        ("breast_cancer_classifier.yaml", "breast_cancer", "roc_auc"),
        ("diabetes_progression.yaml", "diabetes_progression", "r2"),
    ],
)
def test_example_spec_trains_registers_and_deploys(
    spec_file: str, model: str, metric: str, spec_dir: Path, registry_env: dict, run_answered
) -> None:
    # The example policy asks an approver (dana) before oncology models go to production.
    dag, dag_run, _ = run_answered(spec_dir / spec_file, [Answer("dana")])

    expected_tasks = ["train", "validate", "register", "deploy"]
    if model == "breast_cancer":
        expected_tasks.append("approve")
    assert task_states(dag_run) == dict.fromkeys(expected_tasks, "success")
    registry = ModelRegistry(registry_env["url"])
    version = registry.get_version(model, 1)
    artifact = Path(urlsplit(version.artifact.uri).path)
    assert artifact.is_file()
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == version.artifact.sha256
    assert artifact.stat().st_size == version.artifact.size
    assert str(artifact).startswith(str(registry_env["artifacts"]))
    assert registry.alias_version(model, "production").version == 1
    assert metric in version.metrics
    assert version.run.dag_id == dag.dag_id and version.run.run_id == dag_run.run_id
    assert (
        version.data["sha256"]
        == hashlib.sha256((spec_dir / "data" / version.data["uri"].rsplit("/", 1)[-1]).read_bytes()).hexdigest()
    )
    assert [d.action for d in registry.deployments(model)] == ["deployed"]
    assert registry.verify_audit().ok


def test_failing_gate_stops_before_register_and_deploy(spec_dir: Path, registry_env: dict, run_spec_dag) -> None:
    spec_path = spec_dir / "diabetes_progression.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["validation"]["thresholds"]["r2"] = {"min": 0.99}
    spec_path.write_text(yaml.safe_dump(spec))

    _, dag_run = run_spec_dag(spec_path)

    states = task_states(dag_run)
    assert states["train"] == "success"
    assert states["validate"] == "failed"
    assert states["register"] == "upstream_failed"
    assert states["deploy"] == "upstream_failed"
    registry = ModelRegistry(registry_env["url"])
    assert registry.list_models() == []
    # the failed candidate is kept, comparable beside the others, with the gate it failed
    (candidate,) = registry.list_candidates("diabetes_progression")
    assert (candidate.run.run_id, candidate.passed, candidate.version) == (dag_run.run_id, False, None)
    assert candidate.metrics["r2"] < 0.99 and candidate.data["sha256"] and candidate.spec_sha256
    assert candidate_fates(registry, "diabetes_progression", [candidate])[candidate.candidate_id].text == (
        "failed gate(s) r2 (candidate, not registered)"
    )
