"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_bridge import __version__

_STRING = {"type": ["string", "null"]}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-bridge",
        "name": "airflow-bridge",
        "description": "YAML experiment specs become governed ML pipelines: train, validate, register, "
        "approve and deploy models with an audited model registry.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "airflow-bridge",
                "external-doc-url": "https://github.com/airflow-bridge/airflow-bridge",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "airflow-bridge",
                "python-modules": [
                    "airflow_bridge.operators.train",
                    "airflow_bridge.operators.validate",
                    "airflow_bridge.operators.register",
                    "airflow_bridge.operators.deploy",
                    "airflow_bridge.operators.approve",
                    "airflow_bridge.operators.rollback",
                    "airflow_bridge.operators.kubernetes_train",
                    "airflow_bridge.operators.anchor",
                ],
            }
        ],
        "hooks": [{"integration-name": "airflow-bridge", "python-modules": ["airflow_bridge.hooks.registry"]}],
        "connection-types": [
            {
                "hook-class-name": "airflow_bridge.hooks.registry.ModelRegistryHook",
                "hook-name": "Model Registry (airflow-bridge)",
                "connection-type": "model_registry",
                "conn-fields": {
                    "backend": {
                        "label": "Backend",
                        "schema": {"type": ["string", "null"], "enum": ["postgresql", "sqlite", None]},
                        "description": "postgresql (default when Host is set) or sqlite (Database is the file path)",
                    },
                    "url": {
                        "label": "SQLAlchemy URL",
                        "schema": _STRING,
                        "description": "Optional full URL without the password, e.g. postgresql+psycopg2://u@h/db",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database (or SQLite file path)"},
                    "placeholders": {"host": "postgres.internal", "port": "5432", "schema": "model_registry"},
                },
            }
        ],
        "config": {
            "airflow_bridge": {
                "description": "Settings of the airflow-bridge provider.",
                "options": {
                    "artifact_root": {
                        "description": "Where model artifacts are stored: a folder, file:// URI or an "
                        "object-store URI such as s3://bucket/models. Defaults to "
                        "$AIRFLOW_HOME/airflow_bridge/artifacts.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://ml-artifacts/airflow-bridge",
                        "default": None,
                    },
                    "artifact_conn_id": {
                        "description": "Airflow connection used to reach artifact_root when it is remote.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": None,
                    },
                },
            }
        },
    }
