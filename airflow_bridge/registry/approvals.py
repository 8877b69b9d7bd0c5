"""Approvals as the audit trail records them: requests, answers, and the requests still open.

An approval is about one (model, version, alias). A request stays pending until a later event in
``APPROVAL_CLOSERS`` for the same triple (a refusal by someone not allowed to answer does not close it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.registry import audit
from airflow_bridge.registry.events import APPROVAL_CLOSERS, APPROVAL_DECISIONS, AuditAction
from airflow_bridge.registry.records import AuditEvent
from airflow_bridge.registry.tables import audit_events

APPROVAL_ACTIONS = tuple(action for action in AuditAction if action.startswith("approval_"))
"""Every event of an approval's life: the request, answers, refusals, supersession."""


def decision(conn: Connection, model: str, version: int, alias: str, *, run_id: str | None = None) -> AuditEvent | None:
    """The newest answer (``APPROVAL_DECISIONS``) for ``model`` v``version`` behind ``alias``, or None."""
    row = newest(conn, model, version, alias, APPROVAL_DECISIONS, run_id=run_id)
    return audit.to_event(row) if row else None


def newest(
    conn: Connection, model: str, version: int, alias: str, actions: Sequence[str], *, run_id: str | None = None
) -> Row[Any] | None:
    """The newest event row among ``actions`` for ``model`` v``version`` behind ``alias`` (of one run)."""
    query = (
        sa.select(audit_events)
        .where(
            audit_events.c.model == model,
            audit_events.c.version == version,
            audit_events.c.alias == alias,
            audit_events.c.action.in_(actions),
        )
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    )
    if run_id:
        query = query.where(audit_events.c.run_id == run_id)
    return conn.execute(query).first()


def history(conn: Connection, model: str, version: int, alias: str) -> list[AuditEvent]:
    """Every approval event for ``model`` v``version`` behind ``alias``, oldest first."""
    query = (
        sa.select(audit_events)
        .where(
            audit_events.c.model == model,
            audit_events.c.version == version,
            audit_events.c.alias == alias,
            audit_events.c.action.in_(APPROVAL_ACTIONS),
        )
        .order_by(audit_events.c.seq)
    )
    return [audit.to_event(row) for row in conn.execute(query)]


def pending(conn: Connection, model: str | None = None) -> list[AuditEvent]:
    """Requests with no later closing event for the same (model, version, alias), oldest first."""
    request, closer = audit_events, audit_events.alias("closer")
    closed = sa.exists().where(
        closer.c.model == request.c.model,
        closer.c.seq > request.c.seq,
        closer.c.version.is_not_distinct_from(request.c.version),
        closer.c.alias.is_not_distinct_from(request.c.alias),
        closer.c.action.in_(APPROVAL_CLOSERS),
    )
    query = (
        sa.select(request).where(request.c.action == AuditAction.APPROVAL_REQUESTED, ~closed).order_by(request.c.seq)
    )
    if model:
        query = query.where(request.c.model == model)
    return [audit.to_event(row) for row in conn.execute(query)]
