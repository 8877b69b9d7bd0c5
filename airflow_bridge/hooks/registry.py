"""``ModelRegistryHook``: the ``model_registry`` connection type and the registry client it opens."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_bridge.exceptions import RegistryError

if TYPE_CHECKING:
    from airflow_bridge.registry.store import ModelRegistry


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
        """The SQLAlchemy URL of the registry (with the password: never log it)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.registry_conn_id)
        except AirflowNotFoundException:
            if self.registry_conn_id == self.default_conn_name:
                from airflow_bridge.registry.engine import default_registry_url

                return default_registry_url()
            raise RegistryError(
                f"connection '{self.registry_conn_id}' is not defined; create it (Admin → Connections, "
                f"type 'Model Registry') or remove registry.conn_id from the spec"
            ) from None
        return connection_to_url(
            conn_id=self.registry_conn_id,
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
        )

    def get_registry(self) -> ModelRegistry:
        return _registry_for(self.get_url())

    def test_connection(self) -> tuple[bool, str]:
        try:
            registry = self.get_registry()
            registry.list_models()
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, f"connected to {registry!r}"


@cache
def _registry_for(url: str) -> ModelRegistry:
    from airflow_bridge.registry.store import ModelRegistry

    return ModelRegistry(url)


def connection_to_url(
    *,
    conn_id: str,
    host: str | None,
    port: int | None,
    schema: str | None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any],
) -> str:
    """Build a SQLAlchemy URL from connection fields; errors name the connection, never the password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    extra = {key.removeprefix("extra__model_registry__"): value for key, value in extra.items() if value}
    if extra.get("url"):
        try:
            url = make_url(str(extra["url"]))
        except (ArgumentError, ValueError):
            raise RegistryError(f"connection '{conn_id}': extra 'url' is not a SQLAlchemy URL") from None
        if url.password and password:
            raise RegistryError(f"connection '{conn_id}': put the password in the Password field, not in 'url'")
        return url.set(password=password).render_as_string(hide_password=False) if password else str(extra["url"])
    backend = str(extra.get("backend") or ("postgresql" if host else "sqlite")).lower()
    if backend == "sqlite":
        if not schema:
            raise RegistryError(f"connection '{conn_id}': set Database to the SQLite file path")
        return f"sqlite:///{schema}"
    if backend in ("postgresql", "postgres"):
        if not host:
            raise RegistryError(f"connection '{conn_id}': set Host for a PostgreSQL registry")
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg2",
            username=login or None,
            password=password or None,
            host=host,
            port=port or 5432,
            database=schema or "postgres",
        ).render_as_string(hide_password=False)
    raise RegistryError(f"connection '{conn_id}': backend '{backend}' is not supported; use postgresql or sqlite")
