"""The model registry: versions, aliases, deployments and a hash-chained audit trail."""

from __future__ import annotations

from airflow_bridge.registry.aliases import UNSET
from airflow_bridge.registry.engine import default_registry_url, describe_url
from airflow_bridge.registry.records import (
    AliasMove,
    ArtifactRef,
    AuditEvent,
    Deployment,
    ModelCard,
    ModelRecord,
    ModelVersion,
    RunRef,
)
from airflow_bridge.registry.store import ModelRegistry

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
    "RunRef",
    "default_registry_url",
    "describe_url",
]
