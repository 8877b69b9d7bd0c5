"""Where airflow-bridge reads its settings, without importing Airflow.

``[airflow_bridge]`` options (``AIRFLOW__AIRFLOW_BRIDGE__*`` or ``airflow.cfg``), the environment variables
every entry point honours, and an Airflow connection's fields as a SQLAlchemy URL. The lowest layer next to
``exceptions``: ``registry``, ``spec`` and ``governance`` read settings here; :mod:`airflow_bridge.resolution`
builds the registry and artifact store from them.
"""

from __future__ import annotations

import configparser
import os
from functools import cache
from typing import Any

from airflow_bridge.exceptions import RegistryError

HOME_ENV = "AIRFLOW_BRIDGE_HOME"
REGISTRY_URL_ENV = "AIRFLOW_BRIDGE_REGISTRY_URL"
ARTIFACT_ROOT_ENV = "AIRFLOW_BRIDGE_ARTIFACT_ROOT"
ARTIFACT_CONN_ENV = "AIRFLOW_BRIDGE_ARTIFACT_CONN_ID"
POLICY_ENV = "AIRFLOW_BRIDGE_POLICY"
AUDIT_KEY_ENV = "AIRFLOW_BRIDGE_AUDIT_KEY"
AUDIT_KEY_CONN = "airflow_bridge_audit"
"""The Airflow connection whose password is the audit key (HMAC signing of audit events)."""
DEFAULT_HOME = ".airflow-bridge"
DEFAULT_REGISTRY_CONN = "model_registry_default"
SECTION = "airflow_bridge"


def bridge_config(key: str) -> str | None:
    """``[airflow_bridge] <key>``: ``AIRFLOW__AIRFLOW_BRIDGE__<KEY>``, else ``airflow.cfg`` (no Airflow import)."""
    value = os.environ.get(f"AIRFLOW__{SECTION.upper()}__{key.upper()}")
    if value:
        return value
    return airflow_cfg_value(SECTION, key)


def airflow_cfg_value(section: str, key: str) -> str | None:
    """``[section] key`` of ``airflow.cfg`` (``$AIRFLOW_CONFIG`` or ``$AIRFLOW_HOME/airflow.cfg``), or None."""
    parser = _airflow_cfg()
    if parser is not None and parser.has_option(section, key):
        return parser.get(section, key, raw=True).strip() or None
    return None


def _airflow_cfg() -> configparser.ConfigParser | None:
    path = os.environ.get("AIRFLOW_CONFIG") or os.path.join(airflow_home(), "airflow.cfg")
    return _read_cfg(path, _mtime(path))


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@cache
def _read_cfg(path: str, mtime: float | None) -> configparser.ConfigParser | None:
    if mtime is None:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error:
        return None
    return parser


def airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")


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
