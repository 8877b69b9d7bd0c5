"""airflow-bridge as an Airflow provider: discovered by Airflow, with its connection type and config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_airflow_lists_the_provider() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={**os.environ},
    )
    providers = {p["package_name"]: p for p in json.loads(result.stdout[result.stdout.index("[") :])}
    assert providers["airflow-bridge"]["version"] == "0.1.0"


def test_model_registry_connection_type_has_its_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hook = manager.hooks["model_registry"]
    assert hook is not None and hook.hook_class_name == "airflow_bridge.hooks.registry.ModelRegistryHook"
    assert manager.field_behaviours["model_registry"]["relabeling"]["schema"] == "Database (or SQLite file path)"
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__model_registry__")}
    assert widgets == {"extra__model_registry__backend", "extra__model_registry__url"}


def test_default_connection_falls_back_to_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from airflow_bridge.hooks.registry import ModelRegistryHook

    monkeypatch.delenv("AIRFLOW_CONN_MODEL_REGISTRY_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))

    assert ModelRegistryHook().get_url() == f"sqlite:///{tmp_path}/airflow_bridge/registry.db"


def test_connection_from_the_environment_builds_a_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.hooks.registry import ModelRegistryHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_PROD_REGISTRY",
        json.dumps(
            {
                "conn_type": "model_registry",
                "host": "db.internal",
                "port": 5433,
                "schema": "models",
                "login": "writer",
                "password": "s3cret",
            }
        ),
    )
    url = ModelRegistryHook("prod_registry").get_url()
    assert url == "postgresql+psycopg2://writer:s3cret@db.internal:5433/models"
    from airflow_bridge.registry.engine import describe_url

    assert "s3cret" not in describe_url(url)


def test_an_undefined_connection_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.exceptions import RegistryError
    from airflow_bridge.hooks.registry import ModelRegistryHook

    with pytest.raises(RegistryError, match="connection 'nowhere' is not defined"):
        ModelRegistryHook("nowhere").get_url()
