"""The lineage of a registered model from the registry alone: no Airflow, no lineage server.

For each version: the training data (with its OpenLineage dataset name and sha256 fingerprint) →
the DAG run that produced it → the version (spec hash, artifact, metrics, gates) → approvals →
deployments and every period an alias pointed at it. Dataset names match the OpenLineage events.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow_bridge.lineage.naming import model_dataset_name, registry_namespace, storage_dataset

if TYPE_CHECKING:
    from airflow_bridge.registry.records import ModelVersion
    from airflow_bridge.registry.store import ModelRegistry


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def model_lineage(registry: ModelRegistry, model: str, version: int | None = None) -> dict[str, Any]:
    """The chain for every version of ``model`` (or only ``version``), oldest first."""
    record = registry.get_model(model)
    versions = [registry.get_version(model, version)] if version is not None else registry.list_versions(model)
    namespace = registry_namespace(str(registry.url))
    deployments = registry.deployments(model)
    periods = registry.alias_history(model)
    approvals = [e for e in registry.audit_events(model=model) if e.action.startswith("approval_")]
    return {
        "model": model,
        "owner": record.card.owner,
        "team": record.card.team,
        "description": record.card.description,
        "dataset": {"namespace": namespace, "name": model_dataset_name(model)},
        "aliases": dict(record.aliases),
        "versions": [
            _version_chain(v, deployments, periods, [e for e in approvals if e.version == v.version]) for v in versions
        ],
    }


def _version_chain(v: ModelVersion, deployments: list[Any], periods: list[Any], approvals: list[Any]) -> dict[str, Any]:
    data = dict(v.data)
    dataset = storage_dataset(str(data["uri"])) if data.get("uri") else None
    return {
        "version": v.version,
        "created_at": _time(v.created_at),
        "created_by": v.created_by,
        "deleted_at": _time(v.deleted_at),
        "data": {
            "uri": data.get("uri"),
            "dataset": dataset._asdict() if dataset else None,
            "sha256": data.get("sha256"),
            "rows": data.get("rows"),
            "format": data.get("format"),
            "target": data.get("target"),
            "features": data.get("features"),
        },
        "run": {"dag_id": v.run.dag_id, "run_id": v.run.run_id, "task_id": v.run.task_id},
        "spec_sha256": v.spec_sha256 or None,
        "estimator": v.estimator,
        "params": v.params,
        "artifact": {"uri": v.artifact.uri, "sha256": v.artifact.sha256, "size": v.artifact.size},
        "metrics": v.metrics,
        "gates": v.validation.get("gates") or [],
        "champion": v.validation.get("champion"),
        "approvals": [
            {
                "decision": e.action.removeprefix("approval_"),
                "actor": e.actor,
                "at": _time(e.created_at),
                "alias": e.alias,
                "reason": e.reason,
                "run_id": e.run.run_id,
            }
            for e in approvals
        ],
        "deployments": [
            {
                "action": d.action,
                "alias": d.alias,
                "target": d.target,
                "endpoint": d.endpoint,
                "at": _time(d.created_at),
                "actor": d.actor,
                "dag_id": d.run.dag_id,
                "run_id": d.run.run_id,
            }
            for d in deployments
            if d.version == v.version
        ],
        "alias_periods": [
            {"alias": p["alias"], "from": _time(p["valid_from"]), "to": _time(p["valid_to"])}
            for p in periods
            if p["version"] == v.version
        ],
        "aliases": list(v.aliases),
    }
