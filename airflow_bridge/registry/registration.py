"""Registering a version in as few round trips as the guarantees allow.

Every registration of a model queues on that model's row, and every audit event on the chain's
head row, so the time between taking those locks and committing bounds throughput. The lock is
taken by the statement that allocates the version number (``UPDATE ... RETURNING``), then the
audit head is locked, then one statement writes the version, its audit event and the new head
(a data-modifying CTE on PostgreSQL; three local statements on SQLite). A retried Airflow task hits
the run's unique constraint (``ON CONFLICT DO NOTHING``): the transaction is rolled back, so the
number it allocated is given back, and the caller returns the version the first try created.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import NotFoundError, PolicyViolationError, RegistryError
from airflow_bridge.registry import audit
from airflow_bridge.registry.records import ArtifactRef, ModelCard, ModelVersion, RunRef
from airflow_bridge.registry.tables import audit_events, audit_head, model_versions, models, version_tags

CARD_FIELDS = ("description", "owner", "team", "intended_use", "limitations")


class AlreadyRegistered(Exception):
    """The run already registered a version; raised to roll the new allocation back."""


@dataclass(frozen=True)
class NewVersion:
    """Everything a registration writes, apart from the number the database allocates."""

    model: str
    artifact: ArtifactRef
    estimator: str
    task_kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]
    spec_sha256: str
    run: RunRef
    actor: str
    reason: str


# Built once: statement construction is Python work, and it runs while the locks are held.
_ALLOCATE = (
    models.update()
    .where(models.c.name == sa.bindparam("model_name"), models.c.deleted_at.is_(None))
    .values(latest_version=models.c.latest_version + 1)
    .returning(models.c.id, models.c.latest_version, *(models.c[f] for f in CARD_FIELDS))
)


def allocate(conn: Connection, model: str, *, now: dt.datetime) -> Row[Any]:
    """Lock the model row and take its next version number (creating the model on first use)."""
    row = conn.execute(_ALLOCATE, {"model_name": model}).first()
    if row is None:
        conn.execute(
            dialect_insert(conn)(models)
            .values(name=model, latest_version=0, created_at=now, **dict.fromkeys(CARD_FIELDS, ""))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(_ALLOCATE, {"model_name": model}).first()
    if row is None:
        deleted = conn.execute(sa.select(models.c.deleted_at).where(models.c.name == model)).scalar()
        raise RegistryError(f"model '{model}' was deleted on {deleted:%Y-%m-%d}; it takes no changes")
    return row


def check_quota(conn: Connection, model: str, model_id: int, quota: int, *, now: dt.datetime, run: RunRef) -> None:
    """Refuse a new version beyond ``quota`` in 24 hours; a retried run is not a new version."""
    recent = conn.execute(
        sa.select(sa.func.count())
        .select_from(model_versions)
        .where(model_versions.c.model_id == model_id, model_versions.c.created_at > now - dt.timedelta(days=1))
    ).scalar_one()
    if recent >= quota:
        if run.is_set and _run_version(conn, model_id, run) is not None:
            raise AlreadyRegistered
        raise PolicyViolationError(
            f"quota reached: model '{model}' already has {recent} versions registered in the last 24 hours "
            f"(team policy max_versions_per_day: {quota}); try again later or ask an engineer"
        )


def _run_version(conn: Connection, model_id: int, run: RunRef) -> int | None:
    return conn.execute(
        sa.select(model_versions.c.version).where(
            model_versions.c.model_id == model_id,
            model_versions.c.dag_id == run.dag_id,
            model_versions.c.run_id == run.run_id,
            model_versions.c.task_id == run.task_id,
        )
    ).scalar()


def update_card(
    conn: Connection,
    model: str,
    model_row: Row[Any],
    card: ModelCard | None,
    *,
    actor: str,
    run: RunRef,
    now: dt.datetime,
) -> None:
    """Apply the non-empty fields of ``card``; an audited change only when something differs."""
    if card is None:
        return
    before = {f: getattr(model_row, f) for f in CARD_FIELDS}
    after = {f: getattr(card, f) or before[f] for f in CARD_FIELDS}
    if after == before:
        return
    conn.execute(models.update().where(models.c.id == model_row.id).values(**after))
    audit.append_event(
        conn, actor=actor, action="model_card_updated", now=now, model=model, run=run, before=before, after=after
    )


def write_version(conn: Connection, new: NewVersion, model_id: int, number: int, now: dt.datetime) -> int:
    """Insert the version, its ``version_created`` event and the new chain head; returns the row id.

    Raises ``AlreadyRegistered`` when the run already has a version (its unique constraint).
    """
    head = conn.execute(audit.LOCK_HEAD).one()
    event = {
        "seq": head.seq + 1,
        "created_at": now,
        "actor": new.actor,
        "action": "version_created",
        "model": new.model,
        "version": number,
        "alias": None,
        "reason": new.reason,
        "dag_id": new.run.dag_id,
        "run_id": new.run.run_id,
        "task_id": new.run.task_id,
        "before": None,
        "after": {
            "artifact_uri": new.artifact.uri,
            "sha256": new.artifact.sha256,
            "size": new.artifact.size,
            "metrics": new.metrics,
        },
    }
    digest = audit.event_hash(head.hash, audit.hashed_fields(event))
    row = {
        "model_id": model_id,
        "version": number,
        "artifact_uri": new.artifact.uri,
        "artifact_sha256": new.artifact.sha256,
        "artifact_size": new.artifact.size,
        "estimator": new.estimator,
        "task_kind": new.task_kind,
        "params": new.params,
        "metrics": new.metrics,
        "validation": new.validation,
        "data": new.data,
        "spec_sha256": new.spec_sha256,
        "dag_id": new.run.dag_id,
        "run_id": new.run.run_id,
        "task_id": new.run.task_id,
        "created_by": new.actor,
        "created_at": now,
    }
    if conn.dialect.name == "postgresql":
        version_id = conn.execute(_PG_WRITE, _pg_params(row, event, head.hash, digest)).scalar()
        if version_id is None:
            raise AlreadyRegistered
        return int(version_id)
    inserted = conn.execute(
        dialect_insert(conn)(model_versions)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["model_id", "dag_id", "run_id", "task_id"])
        .returning(model_versions.c.id)
    ).scalar()
    if inserted is None:
        raise AlreadyRegistered
    conn.execute(audit_events.insert().values(**event, prev_hash=head.hash, hash=digest))
    conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=event["seq"], hash=digest))
    return int(inserted)


def add_tags(conn: Connection, version_id: int, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        conn.execute(version_tags.insert().values(version_id=version_id, key=key, value=value))


def existing_version(conn: Connection, model: str, run: RunRef) -> int:
    """The version ``run`` registered before (after ``AlreadyRegistered``)."""
    number = conn.execute(
        sa.select(model_versions.c.version)
        .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
        .where(
            models.c.name == model,
            model_versions.c.dag_id == run.dag_id,
            model_versions.c.run_id == run.run_id,
            model_versions.c.task_id == run.task_id,
        )
    ).scalar()
    if number is None:  # pragma: no cover - the constraint said it exists
        raise NotFoundError(f"model '{model}' has no version of run {run.run_id}")
    return int(number)


def as_record(new: NewVersion, number: int, now: dt.datetime, tags: dict[str, str]) -> ModelVersion:
    """The registered version, built from what was written (no read-back under the locks)."""
    return ModelVersion(
        model=new.model,
        version=number,
        artifact=new.artifact,
        estimator=new.estimator,
        task_kind=new.task_kind,
        params=new.params,
        metrics=new.metrics,
        validation=new.validation,
        data=new.data,
        spec_sha256=new.spec_sha256,
        run=new.run,
        created_by=new.actor,
        created_at=now,
        tags=dict(tags),
    )


def dialect_insert(conn: Connection) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    inserts = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if conn.dialect.name not in inserts:
        raise RegistryError(f"unsupported registry database '{conn.dialect.name}'; use PostgreSQL or SQLite")
    return inserts[conn.dialect.name]


# One round trip on PostgreSQL: the version (skipped on a retried run), its audit event and the new
# head, each only if the previous step wrote; returns the version's row id, or NULL when skipped.
_PG_WRITE = sa.text("""
WITH v AS (
    INSERT INTO ab_model_versions (model_id, version, artifact_uri, artifact_sha256, artifact_size, estimator,
        task_kind, params, metrics, validation, data, spec_sha256, dag_id, run_id, task_id, created_by, created_at)
    VALUES (:model_id, :version, :artifact_uri, :artifact_sha256, :artifact_size, :estimator, :task_kind,
        CAST(:params AS json), CAST(:metrics AS json), CAST(:validation AS json), CAST(:data AS json),
        :spec_sha256, :dag_id, :run_id, :task_id, :created_by, :created_at)
    ON CONFLICT ON CONSTRAINT uq_ab_model_versions_run DO NOTHING
    RETURNING id
), e AS (
    INSERT INTO ab_audit_events (seq, created_at, actor, action, model, version, alias, reason, dag_id, run_id,
        task_id, before, after, prev_hash, hash)
    SELECT :seq, :created_at, :created_by, 'version_created', :model, :version, NULL, :reason, :dag_id,
        :run_id, :task_id, NULL, CAST(:after AS json), :prev_hash, :hash
    FROM v
    RETURNING seq
), h AS (
    UPDATE ab_audit_head SET seq = :seq, hash = :hash WHERE id = 1 AND EXISTS (SELECT 1 FROM e)
)
SELECT id FROM v
""")


def _pg_params(row: dict[str, Any], event: dict[str, Any], prev_hash: str, digest: str) -> dict[str, Any]:
    params = dict(row)
    for column in ("params", "metrics", "validation", "data"):
        params[column] = json.dumps(row[column])
    params.update(
        seq=event["seq"],
        model=event["model"],
        reason=event["reason"],
        after=json.dumps(event["after"]),
        prev_hash=prev_hash,
        hash=digest,
    )
    return params
