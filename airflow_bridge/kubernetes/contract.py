"""What the operator and the pod entrypoint agree on: command, environment, paths and exit codes.

Light at import (no kubernetes client): the CLI entrypoint and the factory read it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from airflow_bridge.actions.training import TrainingRequest

COMMAND = ["airflow-bridge", "pod", "train"]
"""The container command: the image must have airflow-bridge installed (``pip install airflow-bridge``)."""
REQUEST_ENV = "AIRFLOW_BRIDGE_TRAINING_REQUEST"
"""The ``TrainingRequest`` as JSON: a plain env var (it holds no secret, only conn_ids)."""
XCOM_PATH_ENV = "AIRFLOW_BRIDGE_XCOM_PATH"
XCOM_PATH = "/airflow/xcom/return.json"
"""Where KubernetesPodOperator's XCom sidecar reads the task's return value."""
TERMINATION_LOG_ENV = "AIRFLOW_BRIDGE_TERMINATION_LOG"
TERMINATION_LOG = "/dev/termination-log"
"""The container's terminationMessagePath (Kubernetes' default): the failure message the task log shows."""
USER_ERROR_EXIT = 3
"""Exit code of a user error (bad data, failed checks, bad parameters): the task fails without retry."""
TERMINATION_MESSAGE_LIMIT = 4096
"""Kubernetes keeps at most 4096 bytes of a termination message."""


def request_to_json(request: TrainingRequest) -> str:
    """The request in the form the pod reads back with :func:`request_from_json`.

    Fields newer than some pod images are left out at their default (``groups: []``,
    ``cross_validation_folds: None``, ``decimal: "."``, ``missing_values: []``, ``search: None``,
    ``max_search_trials: None``), so an image with an older
    airflow-bridge still reads a request that uses none of them.
    """
    data = dataclasses.asdict(request)
    for name, default in _OPTIONAL_DEFAULTS.items():
        if data.get(name) == default:
            del data[name]
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "groups": [],
    "cross_validation_folds": None,
    "decimal": ".",
    "missing_values": [],
    "search": None,
    "max_search_trials": None,
}
"""Request fields newer than some pod images, omitted from the JSON when they have their default."""


def request_from_json(text: str) -> TrainingRequest:
    data: dict[str, Any] = json.loads(text)
    known = {f.name for f in dataclasses.fields(TrainingRequest)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown training request fields {unknown}: the image's airflow-bridge is older")
    return TrainingRequest(**data)
