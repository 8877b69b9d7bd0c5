"""The actions: train, validate, register, approve, deploy, promote and rollback, each written once.

Every entry point (operators, the CLI, the local ``run``, serving, a Kubernetes pod's entrypoint) calls
these functions with its dependencies as arguments (registry, artifact store, policy, actor) and gets a
typed result back; none of them re-implements a rule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bridge.actions.approval import decide, refuse, request_approval, time_out
    from airflow_bridge.actions.deployment import move
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.names import REPORT_XCOM_KEY, TaskId
    from airflow_bridge.actions.registration import register
    from airflow_bridge.actions.results import (
        ApprovalDecision,
        DataSummary,
        DeploymentResult,
        Registration,
        TrainingResult,
        ValidationReport,
    )
    from airflow_bridge.actions.training import TrainingRequest, train
    from airflow_bridge.actions.validation import ValidationRules, validate

_HOMES = {
    "decide": "approval",
    "refuse": "approval",
    "request_approval": "approval",
    "time_out": "approval",
    "move": "deployment",
    "MoveRequest": "moves",
    "REPORT_XCOM_KEY": "names",
    "TaskId": "names",
    "register": "registration",
    "ApprovalDecision": "results",
    "DataSummary": "results",
    "DeploymentResult": "results",
    "Registration": "results",
    "TrainingResult": "results",
    "ValidationReport": "results",
    "TrainingRequest": "training",
    "train": "training",
    "ValidationRules": "validation",
    "validate": "validation",
}


def __getattr__(name: str) -> Any:
    """Import on first use: DAG files import ``actions.names`` at parse time and nothing else."""
    if name not in _HOMES:
        raise AttributeError(f"module 'airflow_bridge.actions' has no attribute '{name}'")
    return getattr(importlib.import_module(f"airflow_bridge.actions.{_HOMES[name]}"), name)


__all__ = [
    "REPORT_XCOM_KEY",
    "ApprovalDecision",
    "DataSummary",
    "DeploymentResult",
    "MoveRequest",
    "Registration",
    "TaskId",
    "TrainingRequest",
    "TrainingResult",
    "ValidationReport",
    "ValidationRules",
    "decide",
    "move",
    "refuse",
    "register",
    "request_approval",
    "time_out",
    "train",
    "validate",
]
