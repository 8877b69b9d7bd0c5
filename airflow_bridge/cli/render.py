"""Describe the DAG a spec builds, from the real ``build_dag`` output (imports Airflow)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow_bridge.spec.models import Experiment

if TYPE_CHECKING:
    from airflow_bridge.governance.policy import Policy


def describe_dag(spec: Experiment, source: str, sha256: str, *, policy: Policy | None = None) -> dict[str, Any]:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_bridge.factory.build import build_dag

    dag = build_dag(spec, policy=policy, source=source, spec_sha256=sha256)
    tasks = [
        {
            "task_id": task.task_id,
            "operator": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "retries": task.retries,
            "pool": task.pool,
        }
        for task in dag.tasks
    ]
    return {
        "dag_id": dag.dag_id,
        "schedule": spec.schedule,
        "owner": spec.owner,
        "tags": sorted(dag.tags or []),
        "tasks": tasks,
        "connections": referenced_connections(spec),
        "spec_sha256": sha256,
    }


def referenced_connections(spec: Experiment) -> list[dict[str, str]]:
    """Airflow connections the DAG will look up at run time (none at parse time)."""
    found = [
        {
            "conn_id": spec.registry.conn_id or "model_registry_default",
            "purpose": "model registry" + ("" if spec.registry.conn_id else "; embedded SQLite when undefined"),
        }
    ]
    if spec.data.training.conn_id:
        found.append({"conn_id": spec.data.training.conn_id, "purpose": "training data"})
    return found
