"""The model row lock every change of a model takes, and the lookups made under it.

Versions, aliases, tags and policy bindings of one model change only while its ``ab_models`` row is
locked (``SELECT ... FOR UPDATE``; SQLite's writers are serialised by ``BEGIN IMMEDIATE``), so
checks made under the lock still hold at commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import NotFoundError, RegistryError
from airflow_bridge.registry.tables import model_versions, models


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def dialect_insert(conn: Connection) -> Any:
    """The dialect's ``insert`` (it has ``on_conflict_do_nothing``); only PostgreSQL and SQLite are supported."""
    from sqlalchemy.dialects import postgresql, sqlite

    inserts = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if conn.dialect.name not in inserts:
        raise RegistryError(f"unsupported registry database '{conn.dialect.name}'; use PostgreSQL or SQLite")
    return inserts[conn.dialect.name]


def lock_model(conn: Connection, model: str) -> Row[Any]:
    """Lock and return the model's row; NotFoundError if unknown, RegistryError if it was deleted."""
    row = conn.execute(sa.select(models).where(models.c.name == model).with_for_update()).first()
    if row is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    if row.deleted_at is not None:
        raise RegistryError(f"model '{model}' was deleted on {row.deleted_at:%Y-%m-%d}; it takes no changes")
    return row


def live_version_id(conn: Connection, model_row: Row[Any], version: int) -> int:
    """The row id of a version that can still be used (not soft-deleted)."""
    row = conn.execute(
        sa.select(model_versions.c.id, model_versions.c.deleted_at).where(
            model_versions.c.model_id == model_row.id, model_versions.c.version == version
        )
    ).first()
    if row is None:
        raise NotFoundError(f"model '{model_row.name}' has no version {version}")
    if row.deleted_at is not None:
        raise RegistryError(f"{model_row.name} v{version} was deleted; it cannot be used")
    return int(row.id)
