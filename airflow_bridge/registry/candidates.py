"""Candidates in the registry: record one (idempotent per candidate id), list, read, and prune.

A candidate's version is found by its run: the version of the same model registered by the same DAG run.
Pruning removes only candidates that failed a gate (they never become a version), outside the retention
(the newest ``keep_last`` of them and those younger than ``keep_days`` always stay).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import audit, queries
from airflow_bridge.registry.records import Candidate, RunRef
from airflow_bridge.registry.tables import candidates, model_versions, models

_SAME_RUN = (
    models.c.name == candidates.c.model,
    model_versions.c.dag_id == candidates.c.dag_id,
    model_versions.c.run_id == candidates.c.run_id,
)
_VERSIONS = model_versions.join(models, models.c.id == model_versions.c.model_id)
_VERSION = sa.select(model_versions.c.version).select_from(_VERSIONS).where(*_SAME_RUN).limit(1).scalar_subquery()
"""The version registered from a candidate's run, as a correlated subquery (None: not registered); no ORDER BY or
MAX, so SQLite looks it up in the (model, dag_id, run_id, task_id) index instead of walking every version."""
_UNREGISTERED = ~sa.exists(sa.select(model_versions.c.id).select_from(_VERSIONS).where(*_SAME_RUN))


def record(conn: Connection, candidate: Candidate) -> Candidate:
    """Insert ``candidate``; a candidate id already recorded (a retried task) is updated in place."""
    values: dict[str, Any] = {
        "candidate_id": candidate.candidate_id,
        "model": candidate.model,
        "dag_id": candidate.run.dag_id,
        "run_id": candidate.run.run_id,
        "task_id": candidate.run.task_id,
        "spec_sha256": candidate.spec_sha256,
        "estimator": candidate.estimator,
        "task_kind": candidate.task_kind,
        "params": candidate.params,
        "metrics": candidate.metrics,
        "validation": candidate.validation,
        "data": candidate.data,
        "search": candidate.search,
        "artifact_uri": candidate.artifact_uri,
        "artifact_sha256": candidate.artifact_sha256,
        "passed": candidate.passed,
        "recorded_by": candidate.recorded_by,
        "principal": candidate.principal,
        "created_at": candidate.created_at,
    }
    found = conn.execute(sa.select(candidates.c.id).where(candidates.c.candidate_id == candidate.candidate_id)).scalar()
    if found is None:
        conn.execute(candidates.insert().values(**values))
    else:
        conn.execute(candidates.update().where(candidates.c.id == found).values(**values))
    return candidate


def prune(conn: Connection, model: str, *, keep_last: int, keep_days: float | None, now: dt.datetime) -> int:
    """Delete ``model``'s candidates that failed a gate, beyond its newest ``keep_last`` of them and older than
    ``keep_days``; the number deleted. A failed candidate never becomes a version, so the versions' (and the
    passed candidates') records are never read: the cost does not grow with the number of versions."""
    beyond = (
        sa.select(candidates.c.id, candidates.c.created_at)
        .where(candidates.c.model == model, candidates.c.passed.is_(False))
        .order_by(candidates.c.created_at.desc(), candidates.c.id.desc())
        .offset(keep_last)
    )
    cutoff = None if keep_days is None else now - dt.timedelta(days=keep_days)
    doomed = [row.id for row in conn.execute(beyond) if cutoff is None or audit.as_utc(row.created_at) < cutoff]
    for start in range(0, len(doomed), 500):
        conn.execute(candidates.delete().where(candidates.c.id.in_(doomed[start : start + 500])))
    return len(doomed)


def list_for(
    conn: Connection, model: str, *, limit: int | None = None, offset: int = 0, unregistered: bool = False
) -> list[Candidate]:
    """``model``'s candidates, newest first (``unregistered``: only those that never became a version)."""
    query = (
        sa.select(candidates, _VERSION.label("version"))
        .where(candidates.c.model == model)
        .order_by(candidates.c.created_at.desc(), candidates.c.id.desc())
        .offset(offset)
    )
    if unregistered:
        query = query.where(_UNREGISTERED)
    if limit is not None:
        query = query.limit(limit)
    return [_candidate(row) for row in conn.execute(query)]


def count_for(conn: Connection, model: str, *, unregistered: bool = False) -> int:
    query = sa.select(sa.func.count()).select_from(candidates).where(candidates.c.model == model)
    if unregistered:
        query = query.where(_UNREGISTERED)
    return int(conn.execute(query).scalar() or 0)


def unversioned_models(
    conn: Connection, *, search: str = "", name: str | None = None, limit: int = 50
) -> list[tuple[str, int]]:
    """(model, candidates) of models with candidates but no record yet: no run of theirs registered a version
    (each failed a gate or stopped before ``register``). By name; ``search`` in the name, or exactly ``name``.
    A model deleted from the registry has a record, so it is never one of these."""
    query = (
        sa.select(candidates.c.model, sa.func.count())
        .where(~sa.exists(sa.select(models.c.id).where(models.c.name == candidates.c.model)))
        .group_by(candidates.c.model)
        .order_by(candidates.c.model)
        .limit(limit)
    )
    if search:
        query = query.where(queries.contains(candidates.c.model, search))
    if name is not None:
        query = query.where(candidates.c.model == name)
    return [(str(model), int(count)) for model, count in conn.execute(query)]


def get(conn: Connection, model: str, candidate_id: str) -> Candidate:
    row = conn.execute(
        sa.select(candidates, _VERSION.label("version")).where(
            candidates.c.model == model, candidates.c.candidate_id == candidate_id
        )
    ).first()
    if row is None:
        raise NotFoundError(
            f"model '{model}' has no candidate '{candidate_id}' (it may have been pruned by the policy's "
            f"candidate_retention): 'airflow-bridge models candidates {model}' lists them"
        )
    return _candidate(row)


def _candidate(row: Any) -> Candidate:
    return Candidate(
        candidate_id=row.candidate_id,
        model=row.model,
        run=RunRef(row.dag_id, row.run_id, row.task_id),
        spec_sha256=row.spec_sha256,
        estimator=row.estimator,
        task_kind=row.task_kind,
        params=row.params,
        metrics=row.metrics,
        validation=row.validation,
        data=row.data,
        artifact_sha256=row.artifact_sha256,
        artifact_uri=row.artifact_uri,
        passed=bool(row.passed),
        recorded_by=row.recorded_by,
        created_at=audit.as_utc(row.created_at),
        principal=row.principal,
        search=row.search,
        version=row.version,
    )
