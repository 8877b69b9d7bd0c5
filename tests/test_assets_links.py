"""Airflow assets and task links of a real pipeline run, and the example DAG scheduled on production.

One ``dag.test()`` of the breast_cancer pipeline (approved by dana through Airflow's HITL), then the
scoring DAG of dag_specs/ runs on the version it deployed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.cli.respond import Answer
from airflow_bridge.registry import ModelRegistry
from tests.helpers import EXAMPLES, task_states

pytestmark = pytest.mark.slow

MODEL_ASSET = "airflow-bridge://model_registry_default/model/breast_cancer"
PRODUCTION_ASSET = f"{MODEL_ASSET}@production"


def _asset_events(uri: str, run_id: str) -> list[dict[str, Any]]:
    """The extra of every event of ``uri`` emitted by run ``run_id`` (what the Assets page lists).

    The metadata DB is shared by the tests of one worker, so other runs' events are left out.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(AssetEvent.extra)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)
    )
    with create_session() as session:
        return [dict(extra) for extra in session.scalars(query.order_by(AssetEvent.id))]


def _links(dag_run: Any, task_id: str) -> dict[str, str]:
    """The task's extra links as Airflow's API resolves them (serialized operator + stored XCom)."""
    from airflow.models.dag_version import DagVersion
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.run_id == dag_run.run_id, TaskInstance.task_id == task_id)
        ).one()
        dag = session.scalars(select(DagVersion).where(DagVersion.id == ti.dag_version_id)).one().serialized_dag.dag
        task = dag.get_task(task_id)
        return {name: task.get_extra_links(ti, name) for name in task.extra_links}


def test_register_and_deploy_emit_asset_events_and_links_and_the_scoring_dag_follows_production(
    spec_dir: Path, registry_env: dict, run_answered, run_python_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag, dag_run, _ = run_answered(spec_dir / "breast_cancer_classifier.yaml", [Answer("dana")])
    assert task_states(dag_run)["deploy"] == "success", task_states(dag_run)
    assert [a.uri for a in dag.get_task("register").outlets] == [MODEL_ASSET]
    assert [a.uri for a in dag.get_task("deploy").outlets] == [PRODUCTION_ASSET]

    registry = ModelRegistry(registry_env["url"])
    v1 = registry.get_version("breast_cancer", 1)
    [registered] = _asset_events(MODEL_ASSET, dag_run.run_id)
    assert {k: registered[k] for k in ("model", "version", "sha256", "estimator")} == {
        "model": "breast_cancer",
        "version": 1,
        "sha256": v1.artifact.sha256,
        "estimator": "sklearn.ensemble.RandomForestClassifier",
    }
    assert registered["metrics"]["roc_auc"] == pytest.approx(v1.metrics["roc_auc"])
    [deployed] = _asset_events(PRODUCTION_ASSET, dag_run.run_id)
    assert (deployed["version"], deployed["alias"], deployed["previous_version"]) == (1, "production", None)
    assert deployed["endpoint"] == "registry://breast_cancer@production"

    assert _links(dag_run, "register") == {
        "Model version": "/airflow-bridge/models/breast_cancer#v1",
        "Model report": "/airflow-bridge/models/breast_cancer/versions/1/report",
    }
    assert _links(dag_run, "deploy") == {
        "Model version": "/airflow-bridge/models/breast_cancer#v1",
        "Model report": "/airflow-bridge/models/breast_cancer/versions/1/report",
        "Serving endpoint": "/airflow-bridge/models/breast_cancer#alias-production",
    }

    monkeypatch.setenv("AIRFLOW_BRIDGE_HOME", str(tmp_path / "home"))
    source = (EXAMPLES / "score_breast_cancer.py").read_text()  # run from the dags folder, data from dag_specs/
    source = source.replace("Path(__file__).parent", f"Path({str(EXAMPLES)!r})")
    scoring, scored = run_python_dag(source, "score_breast_cancer")
    assert [asset.uri for asset in scoring.timetable.asset_condition.objects] == [PRODUCTION_ASSET]
    assert task_states(scored) == {"score": "success"}
    scores = (tmp_path / "home" / "scores" / "breast_cancer-v1.csv").read_text().splitlines()
    assert scores[0].endswith(",prediction") and len(scores) > 500
