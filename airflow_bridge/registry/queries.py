"""Read side of the registry: models, versions, aliases, their history and deployments.

Functions of a ``Connection``; :class:`ModelRegistry` runs them in one read-only snapshot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import audit
from airflow_bridge.registry.events import ALIAS_MOVES, APPROVAL_DECISIONS
from airflow_bridge.registry.records import Deployment, ModelCard, ModelRecord, ModelVersion, RunRef
from airflow_bridge.registry.tables import (
    alias_history,
    aliases,
    deployments,
    model_versions,
    models,
    version_tags,
)

__all__ = [  # ALIAS_MOVES and APPROVAL_DECISIONS live in events.py; importable from here as before
    "ALIAS_MOVES",
    "APPROVAL_DECISIONS",
    "alias_periods",
    "alias_version",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
    "model_deployments",
    "resolve",
]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else audit.as_utc(value)


def list_models(conn: Connection, *, include_deleted: bool = False) -> list[ModelRecord]:
    query = sa.select(models).order_by(models.c.name)
    if not include_deleted:
        query = query.where(models.c.deleted_at.is_(None))
    alias_rows = conn.execute(
        sa.select(aliases.c.model_id, aliases.c.alias, model_versions.c.version).select_from(
            aliases.join(model_versions, aliases.c.version_id == model_versions.c.id)
        )
    ).all()
    by_model: dict[int, dict[str, int]] = {}
    for row in alias_rows:
        by_model.setdefault(row.model_id, {})[row.alias] = row.version
    return [_model_record(row, by_model.get(row.id, {})) for row in conn.execute(query)]


def get_model(conn: Connection, name: str) -> ModelRecord:
    row = conn.execute(sa.select(models).where(models.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"model '{name}' is not in the registry")
    alias_rows = conn.execute(
        sa.select(aliases.c.alias, model_versions.c.version)
        .select_from(aliases.join(model_versions, aliases.c.version_id == model_versions.c.id))
        .where(aliases.c.model_id == row.id)
    ).all()
    return _model_record(row, {a.alias: a.version for a in alias_rows})


def get_version(conn: Connection, model: str, number: int) -> ModelVersion:
    row = conn.execute(
        sa.select(model_versions)
        .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
        .where(models.c.name == model, model_versions.c.version == number)
    ).first()
    if row is None:
        raise NotFoundError(f"model '{model}' has no version {number}")
    tags = dict(
        conn.execute(
            sa.select(version_tags.c.key, version_tags.c.value).where(version_tags.c.version_id == row.id)
        ).all()
    )
    held = (
        conn.execute(sa.select(aliases.c.alias).where(aliases.c.version_id == row.id).order_by(aliases.c.alias))
        .scalars()
        .all()
    )
    return ModelVersion(
        model=model,
        version=row.version,
        artifact=ArtifactRef(row.artifact_uri, row.artifact_sha256, int(row.artifact_size), row.artifact_conn_id),
        estimator=row.estimator,
        task_kind=row.task_kind,
        params=row.params,
        metrics=row.metrics,
        validation=row.validation,
        data=row.data,
        spec_sha256=row.spec_sha256,
        run=RunRef(row.dag_id, row.run_id, row.task_id),
        created_by=row.created_by,
        created_at=audit.as_utc(row.created_at),
        tags=tags,
        aliases=tuple(held),
        deleted_at=_aware(row.deleted_at),
    )


def list_versions(conn: Connection, model: str, *, include_deleted: bool = False) -> list[ModelVersion]:
    query = (
        sa.select(model_versions.c.version)
        .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
        .where(models.c.name == model)
        .order_by(model_versions.c.version)
    )
    if not include_deleted:
        query = query.where(model_versions.c.deleted_at.is_(None))
    numbers = conn.execute(query).scalars().all()
    if not numbers and conn.execute(sa.select(models.c.id).where(models.c.name == model)).first() is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    return [get_version(conn, model, n) for n in numbers]


def alias_version(conn: Connection, model: str, alias: str) -> ModelVersion | None:
    """The version an alias points at now, or None."""
    number = conn.execute(
        sa.select(model_versions.c.version)
        .select_from(
            aliases.join(models, models.c.id == aliases.c.model_id).join(
                model_versions, model_versions.c.id == aliases.c.version_id
            )
        )
        .where(models.c.name == model, aliases.c.alias == alias)
    ).scalar()
    return None if number is None else get_version(conn, model, number)


def resolve(conn: Connection, model: str, ref: str | int) -> ModelVersion:
    """A version by number (``7``, ``"v7"``) or by alias (``"production"``)."""
    text = str(ref)
    if text.lstrip("v").isdigit():
        return get_version(conn, model, int(text.lstrip("v")))
    found = alias_version(conn, model, text)
    if found is None:
        raise NotFoundError(f"model '{model}' has no alias '{text}'")
    return found


def alias_periods(conn: Connection, model: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Every period each alias pointed at a version, oldest first."""
    query = (
        sa.select(
            alias_history.c.alias,
            model_versions.c.version,
            alias_history.c.valid_from,
            alias_history.c.valid_to,
        )
        .select_from(
            alias_history.join(models, models.c.id == alias_history.c.model_id).join(
                model_versions, model_versions.c.id == alias_history.c.version_id
            )
        )
        .where(models.c.name == model)
        .order_by(alias_history.c.valid_from, alias_history.c.id)
    )
    if alias:
        query = query.where(alias_history.c.alias == alias)
    return [
        {"alias": r.alias, "version": r.version, "valid_from": _aware(r.valid_from), "valid_to": _aware(r.valid_to)}
        for r in conn.execute(query)
    ]


def model_deployments(conn: Connection, model: str) -> list[Deployment]:
    rows = conn.execute(
        sa.select(deployments, model_versions.c.version)
        .select_from(
            deployments.join(models, models.c.id == deployments.c.model_id).join(
                model_versions, model_versions.c.id == deployments.c.version_id
            )
        )
        .where(models.c.name == model)
        .order_by(deployments.c.id)
    ).all()
    return [
        Deployment(
            model,
            r.version,
            r.alias,
            r.target,
            r.endpoint,
            r.action,
            RunRef(r.dag_id, r.run_id, r.task_id),
            r.actor,
            audit.as_utc(r.created_at),
        )
        for r in rows
    ]


def _model_record(row: Any, alias_map: dict[str, int]) -> ModelRecord:
    card = ModelCard(row.description, row.owner, row.team, row.intended_use, row.limitations)
    return ModelRecord(
        row.name,
        row.latest_version,
        card,
        audit.as_utc(row.created_at),
        alias_map,
        _aware(row.deleted_at),
        row.policy_sha256,
    )
