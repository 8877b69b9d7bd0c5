"""Turning a ``model_registry`` connection's fields into a SQLAlchemy URL (no Airflow import)."""

from __future__ import annotations

from typing import Any

from airflow_bridge.exceptions import RegistryError


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
