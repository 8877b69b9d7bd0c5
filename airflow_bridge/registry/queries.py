"""Read side of the registry: models, versions, aliases, their history and deployments.

Functions of a ``Connection``; :class:`ModelRegistry` runs them in one read-only snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import audit
from airflow_bridge.registry.events import ALIAS_MOVES, APPROVAL_DECISIONS
from airflow_bridge.registry.records import AuditEvent, Deployment, ModelCard, ModelRecord, ModelVersion, RunRef
from airflow_bridge.registry.tables import (
    alias_history,
    aliases,
    audit_events,
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
    return version_record(model, row, tags, held)


def version_record(model: str, row: Any, tags: dict[str, str], aliases: Sequence[str]) -> ModelVersion:
    """A ``ab_model_versions`` row as the record callers get, with its tags and the aliases on it."""
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
        aliases=tuple(aliases),
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


# -- paged reads for the Models page (one page of rows per query, never every version) ----------------

VERSION_SORTS = ("version", "created", "estimator", "metric")
"""What a page of versions can be ordered by (``metric`` with the metric's name)."""
MODEL_SORTS = ("name", "team", "owner", "latest", "created")
FATE_ACTIONS = (
    *ALIAS_MOVES,
    "version_deleted",
    "approval_requested",
    "approval_granted",
    "approval_rejected",
    "approval_timed_out",
    "approval_superseded",
)
"""The audit actions a version's fate depends on (``report.fate.fates_from``): not registrations."""


def count_versions(
    conn: Connection, model: str, *, include_deleted: bool = False, newer_than: int | None = None
) -> int:
    """How many versions ``model`` has (NotFoundError for an unknown model); with ``newer_than``, only those
    with a higher number (where a version falls in the newest-first pages)."""
    model_id = _model_id(conn, model)
    query = sa.select(sa.func.count()).select_from(model_versions).where(model_versions.c.model_id == model_id)
    if newer_than is not None:
        query = query.where(model_versions.c.version > newer_than)
    if not include_deleted:
        query = query.where(model_versions.c.deleted_at.is_(None))
    return int(conn.execute(query).scalar_one())


def versions_page(
    conn: Connection,
    model: str,
    *,
    offset: int = 0,
    limit: int = 50,
    sort: str = "version",
    descending: bool = True,
    metric: str | None = None,
    include_deleted: bool = False,
) -> list[ModelVersion]:
    """One page of ``model``'s versions in SQL order (``sort`` in VERSION_SORTS; ``metric`` names the metric
    for ``sort="metric"``, versions without it last); three queries whatever the page or model size."""
    model_id = _model_id(conn, model)
    mv = model_versions
    key: Any = {"created": mv.c.created_at, "estimator": mv.c.estimator}.get(sort, mv.c.version)
    order: list[Any] = []
    if sort == "metric" and metric:
        value = mv.c.metrics[metric].as_float()
        order = [value.is_(None), value.desc() if descending else value.asc()]
    elif sort in ("created", "estimator"):
        order = [key.desc() if descending else key.asc()]
    order.append(mv.c.version.desc() if descending else mv.c.version.asc())
    query = sa.select(mv).where(mv.c.model_id == model_id).order_by(*order).offset(offset).limit(limit)
    if not include_deleted:
        query = query.where(mv.c.deleted_at.is_(None))
    return _versions_of(conn, model, conn.execute(query).all())


def _versions_of(conn: Connection, model: str, rows: Sequence[Any]) -> list[ModelVersion]:
    """Records of version rows, with their tags and aliases read in one query each."""
    ids = [row.id for row in rows]
    tags: dict[int, dict[str, str]] = {}
    held: dict[int, list[str]] = {}
    if ids:
        for tag in conn.execute(sa.select(version_tags).where(version_tags.c.version_id.in_(ids))):
            tags.setdefault(tag.version_id, {})[tag.key] = tag.value
        alias_rows = conn.execute(
            sa.select(aliases.c.version_id, aliases.c.alias)
            .where(aliases.c.version_id.in_(ids))
            .order_by(aliases.c.alias)
        )
        for alias in alias_rows:
            held.setdefault(alias.version_id, []).append(alias.alias)
    return [version_record(model, row, tags.get(row.id, {}), held.get(row.id, ())) for row in rows]


def _model_id(conn: Connection, model: str) -> int:
    found = conn.execute(sa.select(models.c.id).where(models.c.name == model)).scalar()
    if found is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    return int(found)


def model_dag_id(conn: Connection, model: str) -> str | None:
    """The DAG of ``model``'s newest version registered from Airflow (deleted ones count), or None."""
    mv = model_versions
    return conn.execute(
        sa.select(mv.c.dag_id)
        .select_from(mv.join(models, models.c.id == mv.c.model_id))
        .where(models.c.name == model, mv.c.dag_id.is_not(None), mv.c.dag_id != "")
        .order_by(mv.c.version.desc())
        .limit(1)
    ).scalar()


def contains(column: Any, search: str) -> Any:
    """``search`` anywhere in ``column``, case-insensitive, taken literally (``%`` and ``_`` are not wildcards)."""
    pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.func.lower(column).like(pattern, escape="\\")


def models_page(
    conn: Connection,
    *,
    search: str = "",
    team: str = "",
    live: bool | None = None,
    sort: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[ModelRecord], int]:
    """One page of models (not deleted) and how many match: ``search`` in the name, description or owner
    (case-insensitive), ``team`` exactly, ``live`` True/False: with/without any alias."""
    m = models
    where: list[Any] = [m.c.deleted_at.is_(None)]
    if search:
        where.append(sa.or_(*(contains(c, search) for c in (m.c.name, m.c.description, m.c.owner))))
    if team:
        where.append(m.c.team == team)
    if live is not None:
        has_alias = sa.exists().where(aliases.c.model_id == m.c.id)
        where.append(has_alias if live else ~has_alias)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(m).where(*where)).scalar_one())
    column = {"team": m.c.team, "owner": m.c.owner, "latest": m.c.latest_version, "created": m.c.created_at}.get(
        sort, m.c.name
    )
    order = [column.desc() if descending else column.asc(), m.c.name.asc()]
    rows = conn.execute(sa.select(m).where(*where).order_by(*order).offset(offset).limit(limit)).all()
    ids = [row.id for row in rows]
    by_model: dict[int, dict[str, int]] = {}
    if ids:
        alias_rows = conn.execute(
            sa.select(aliases.c.model_id, aliases.c.alias, model_versions.c.version)
            .select_from(aliases.join(model_versions, aliases.c.version_id == model_versions.c.id))
            .where(aliases.c.model_id.in_(ids))
        )
        for a in alias_rows:
            by_model.setdefault(a.model_id, {})[a.alias] = a.version
    return [_model_record(row, by_model.get(row.id, {})) for row in rows], total


def model_teams(conn: Connection) -> list[str]:
    """Every team that owns a model (for the Models page's filter)."""
    query = sa.select(models.c.team).where(models.c.deleted_at.is_(None), models.c.team != "").distinct()
    return sorted(conn.execute(query).scalars().all())


def fate_events(conn: Connection, model: str) -> list[AuditEvent]:
    """``model``'s events that decide its versions' fates (FATE_ACTIONS), oldest first: not its registrations."""
    query = (
        sa.select(audit_events)
        .where(audit_events.c.model == model, audit_events.c.action.in_(FATE_ACTIONS))
        .order_by(audit_events.c.seq)
    )
    return [audit.to_event(row) for row in conn.execute(query)]


def events_page(
    conn: Connection, *, model: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[AuditEvent], int]:
    """One page of the audit trail, newest first, and how many events there are (of ``model``, if given)."""
    where = [audit_events.c.model == model] if model else []
    total = int(conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(*where)).scalar_one())
    query = sa.select(audit_events).where(*where).order_by(audit_events.c.seq.desc()).offset(offset).limit(limit)
    return [audit.to_event(row) for row in conn.execute(query)], total
