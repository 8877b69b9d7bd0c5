"""One resolution of the registry, the artifact store and the local home for every entry point.

Operators, the CLI, ``run``, ``serve`` and lineage all call these functions, so a run never writes
its versions to one registry and its refusals to another. The order, documented in
docs/configuration.md, is: explicit argument → Airflow connection → ``[airflow_bridge]`` config →
environment → local home. Reading the config needs no Airflow import (environment variables
``AIRFLOW__AIRFLOW_BRIDGE__*`` or the ``[airflow_bridge]`` section of ``airflow.cfg``), so the CLI
stays fast; Airflow connections stored in the metadata DB are looked up inside Airflow tasks only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_bridge.config import (
    ARTIFACT_CONN_ENV,
    ARTIFACT_ROOT_ENV,
    AUDIT_KEY_CONN,
    AUDIT_KEY_ENV,
    DEFAULT_HOME,
    DEFAULT_REGISTRY_CONN,
    HOME_ENV,
    REGISTRY_URL_ENV,
    airflow_home,
    bridge_config,
    connection_to_url,
)
from airflow_bridge.exceptions import RegistryError

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.registry.store import ModelRegistry


@dataclass(frozen=True)
class Resolved:
    """A resolved setting and where it came from (shown by ``airflow-bridge config`` and in errors)."""

    value: str
    source: str
    conn_id: str | None = None


def os_user() -> str:
    """The OS account running this process, from the system (not from ``$USER``, which anyone can set)."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (containers)
        return f"uid{os.getuid()}"


def local_home(explicit: str | os.PathLike[str] | None = None, *, in_airflow: bool = False) -> Path:
    """The local home: explicit (``--home``) → ``$AIRFLOW_BRIDGE_HOME`` → Airflow's home inside Airflow tasks,
    else ``./.airflow-bridge`` (the CLI and ``run``: never a user's real Airflow home)."""
    if explicit:
        return Path(explicit).resolve()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).resolve()
    if in_airflow:
        return Path(airflow_home()).resolve()
    return Path(DEFAULT_HOME).resolve()


# -- the registry -------------------------------------------------------------------------------


def resolve_registry(
    conn_id: str | None = None,
    *,
    url: str | None = None,
    home: str | os.PathLike[str] | None = None,
    in_airflow: bool = False,
) -> Resolved:
    """Which registry database: ``url`` → connection ``conn_id`` (or ``model_registry_default`` when defined)
    → ``[airflow_bridge] registry_url`` → ``$AIRFLOW_BRIDGE_REGISTRY_URL`` → SQLite in the local home."""
    if url:
        return Resolved(url, "--registry-url")
    if conn_id:
        found = _connection_url(conn_id, in_airflow=in_airflow)
        if found is None:
            raise RegistryError(
                f"connection '{conn_id}' is not defined; create it (Admin → Connections, type 'Model Registry', "
                f"or AIRFLOW_CONN_{conn_id.upper()}) or remove registry.conn_id from the spec"
            )
        return Resolved(found, f"connection {conn_id}", conn_id)
    found = _connection_url(DEFAULT_REGISTRY_CONN, in_airflow=in_airflow)
    if found is not None:
        return Resolved(found, f"connection {DEFAULT_REGISTRY_CONN}", DEFAULT_REGISTRY_CONN)
    configured = bridge_config("registry_url")
    if configured:
        return Resolved(configured, "[airflow_bridge] registry_url")
    if os.environ.get(REGISTRY_URL_ENV):
        return Resolved(os.environ[REGISTRY_URL_ENV], f"${REGISTRY_URL_ENV}")
    folder = local_home(home, in_airflow=in_airflow) / "airflow_bridge"
    return Resolved(f"sqlite:///{folder / 'registry.db'}", f"local home {folder.parent}")


def open_registry(
    conn_id: str | None = None,
    *,
    url: str | None = None,
    home: str | os.PathLike[str] | None = None,
    in_airflow: bool = False,
) -> ModelRegistry:
    """The registry client for what ``resolve_registry`` finds (one engine per URL and process), signing
    with the audit key when one is configured (``audit_key``)."""
    resolved = resolve_registry(conn_id, url=url, home=home, in_airflow=in_airflow)
    return registry_for_url(resolved.value, audit_key(in_airflow=in_airflow))


@cache
def registry_for_url(url: str, key: bytes | None = None) -> ModelRegistry:
    from airflow_bridge.registry.store import ModelRegistry

    return ModelRegistry(url, audit_key=key)


def audit_key(*, in_airflow: bool = False) -> bytes | None:
    """The key that signs audit events, held outside the registry database: ``$AIRFLOW_BRIDGE_AUDIT_KEY``,
    else the password of connection ``airflow_bridge_audit`` (``AIRFLOW_CONN_AIRFLOW_BRIDGE_AUDIT``, or the
    metadata DB inside Airflow), else None (events are hash-chained but not signed)."""
    value = os.environ.get(AUDIT_KEY_ENV)
    if not value:
        fields = env_connection(AUDIT_KEY_CONN)
        if fields is None and in_airflow:
            fields = _airflow_connection(AUDIT_KEY_CONN)
        value = (fields or {}).get("password")
    if not value:
        return None
    if len(value) < 16:
        raise RegistryError(
            f"the audit key ({AUDIT_KEY_ENV} or connection {AUDIT_KEY_CONN}) is {len(value)} characters; use at "
            "least 16 random ones (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return value.encode()


def _connection_url(conn_id: str, *, in_airflow: bool) -> str | None:
    """The registry URL of an Airflow connection, or None when it is not defined."""

    fields = env_connection(conn_id)
    if fields is None and in_airflow:
        fields = _airflow_connection(conn_id)
    if fields is None:
        return None
    return connection_to_url(conn_id=conn_id, **fields)


def env_connection(conn_id: str) -> dict[str, Any] | None:
    """A connection defined as ``AIRFLOW_CONN_<ID>`` (JSON or URI), parsed without importing Airflow."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise RegistryError(f"AIRFLOW_CONN_{conn_id.upper()} is not valid JSON") from None
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra or "{}")
        return {
            "host": data.get("host"),
            "port": data.get("port"),
            "schema": data.get("schema"),
            "login": data.get("login"),
            "password": data.get("password"),
            "extra": dict(extra),
        }
    parts = urlsplit(raw)
    extra = dict(parse_qsl(parts.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return {
        "host": unquote(parts.hostname) if parts.hostname else None,
        "port": parts.port,
        "schema": unquote(parts.path.lstrip("/")) or None,
        "login": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "extra": extra,
    }


def _airflow_connection(conn_id: str) -> dict[str, Any] | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return {
        "host": conn.host,
        "port": conn.port,
        "schema": conn.schema,
        "login": conn.login,
        "password": conn.password,
        "extra": conn.extra_dejson,
    }


# -- the artifact store -------------------------------------------------------------------------


def resolve_artifact_root(
    root: str | None = None,
    conn_id: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    in_airflow: bool = False,
) -> Resolved:
    """Where new artifacts are written: ``root`` → ``[airflow_bridge] artifact_root`` →
    ``$AIRFLOW_BRIDGE_ARTIFACT_ROOT`` → ``<local home>/airflow_bridge/artifacts``; the connection
    comes with the root that was chosen (``artifact_conn_id`` / ``$AIRFLOW_BRIDGE_ARTIFACT_CONN_ID``)."""
    if root:
        return Resolved(root, "argument", conn_id)
    configured = bridge_config("artifact_root")
    if configured:
        return Resolved(configured, "[airflow_bridge] artifact_root", conn_id or bridge_config("artifact_conn_id"))
    if os.environ.get(ARTIFACT_ROOT_ENV):
        return Resolved(
            os.environ[ARTIFACT_ROOT_ENV], f"${ARTIFACT_ROOT_ENV}", conn_id or os.environ.get(ARTIFACT_CONN_ENV)
        )
    folder = local_home(home, in_airflow=in_airflow) / "airflow_bridge" / "artifacts"
    return Resolved("file://" + str(folder), f"local home {folder.parent.parent}", conn_id)


def artifact_store(
    root: str | None = None,
    conn_id: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    in_airflow: bool = False,
) -> ArtifactStore:
    from airflow_bridge.artifacts import ArtifactStore

    resolved = resolve_artifact_root(root, conn_id, home=home, in_airflow=in_airflow)
    return ArtifactStore(resolved.value, resolved.conn_id)
