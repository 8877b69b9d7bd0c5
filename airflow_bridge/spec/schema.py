"""JSON Schema of the spec language, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

from airflow_bridge.spec.estimators import DEFAULT_ESTIMATORS
from airflow_bridge.spec.models import Experiment

SCHEMA_ID = "https://airflow-bridge.dev/schemas/experiment-v1.json"


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check spec files."""
    schema = Experiment.model_json_schema(by_alias=True, mode="validation")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
    estimator = schema["$defs"]["ModelSection"]["properties"]["estimator"]
    estimator["examples"] = sorted(DEFAULT_ESTIMATORS)
    return schema


def experiment_schema_text() -> str:
    return json.dumps(experiment_schema(), indent=2, sort_keys=True) + "\n"
