"""``ModelRegistryHook``: the ``model_registry`` connection type and the registry client it opens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_bridge.config import connection_to_url

if TYPE_CHECKING:
    from airflow_bridge.registry.store import ModelRegistry


__all__ = ["ModelRegistryHook", "connection_to_url"]


class ModelRegistryHook(BaseHook):
    """Opens the model registry named by an Airflow connection.

    Connection fields: Host, Port, Database (schema), Login, Password, and in extras ``backend``
    (``postgresql``, the default when a host is set, or ``sqlite``) or a full ``url`` without a
    password (``postgresql+psycopg2://user@host/db``; the Password field is added to it). When
    ``model_registry_default`` is not defined, the embedded SQLite registry under
    ``$AIRFLOW_HOME/airflow_bridge/registry.db`` is used.
    """

    conn_name_attr = "registry_conn_id"
    default_conn_name = "model_registry_default"
    conn_type = "model_registry"
    hook_name = "Model Registry (airflow-bridge)"

    def __init__(self, registry_conn_id: str | None = None) -> None:
        super().__init__()
        self.registry_conn_id = registry_conn_id or self.default_conn_name

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the Flask connection form of older UIs (Airflow 3 reads ``conn-fields``)."""
        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
            from flask_babel import lazy_gettext
            from wtforms import StringField
        except ImportError:  # Airflow 3's React UI takes the fields from provider info instead
            return {}
        return {
            "backend": StringField(lazy_gettext("Backend (postgresql or sqlite)"), widget=BS3TextFieldWidget()),
            "url": StringField(lazy_gettext("SQLAlchemy URL (without password)"), widget=BS3TextFieldWidget()),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database (or SQLite file path)"},
            "placeholders": {
                "host": "postgres.internal (empty for SQLite)",
                "port": "5432",
                "schema": "model_registry",
                "login": "registry_writer",
                "extra": json.dumps({"backend": "postgresql"}),
            },
        }

    def get_url(self) -> str:
        """The SQLAlchemy URL of the registry (with the password: never log it).

        The connection when it is defined; for ``model_registry_default`` the rest of the resolution
        order applies when it is not (see ``airflow_bridge.resolution``).
        """
        from airflow_bridge.config import DEFAULT_REGISTRY_CONN
        from airflow_bridge.resolution import resolve_registry

        explicit = None if self.registry_conn_id == DEFAULT_REGISTRY_CONN else self.registry_conn_id
        return resolve_registry(explicit, in_airflow=True).value

    def get_registry(self) -> ModelRegistry:
        from airflow_bridge.resolution import audit_key, registry_for_url

        return registry_for_url(self.get_url(), audit_key(in_airflow=True))

    def test_connection(self) -> tuple[bool, str]:
        try:
            registry = self.get_registry()
            registry.list_models()
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, f"connected to {registry!r}"
