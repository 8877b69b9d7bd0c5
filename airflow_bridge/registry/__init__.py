"""The model registry: versions, aliases, deployments and a hash-chained audit trail.

Names are imported on first use, so reading a record type (``registry.records``) at DAG-parse time
does not load SQLAlchemy's engine machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactRef
    from airflow_bridge.registry.aliases import UNSET
    from airflow_bridge.registry.engine import describe_url
    from airflow_bridge.registry.records import (
        AliasMove,
        AuditEvent,
        Deployment,
        ModelCard,
        ModelRecord,
        ModelVersion,
        PolicyBinding,
        RunRef,
    )
    from airflow_bridge.registry.store import ModelRegistry

_HOMES = {
    "UNSET": "aliases",
    "describe_url": "engine",
    "AliasMove": "records",
    "ArtifactRef": "records",
    "AuditEvent": "records",
    "Deployment": "records",
    "ModelCard": "records",
    "ModelRecord": "records",
    "ModelVersion": "records",
    "PolicyBinding": "records",
    "RunRef": "records",
    "ModelRegistry": "store",
}

__all__ = [
    "UNSET",
    "AliasMove",
    "ArtifactRef",
    "AuditEvent",
    "Deployment",
    "ModelCard",
    "ModelRecord",
    "ModelRegistry",
    "ModelVersion",
    "PolicyBinding",
    "RunRef",
    "describe_url",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'airflow_bridge.registry' has no attribute '{name}'")
    return getattr(importlib.import_module(f"airflow_bridge.registry.{_HOMES[name]}"), name)
