"""The append-only, hash-chained audit trail.

Each event's hash covers its content and the previous event's hash; a single head row holds the
newest (seq, hash) and is locked while appending, so the chain stays linear under concurrent
writers. Editing, deleting or reordering any row breaks the chain, and ``verify_chain`` names the
first row where it breaks. This module is the only one that knows an event row's layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.registry.records import AuditEvent, RunRef
from airflow_bridge.registry.tables import audit_events, audit_head

GENESIS_HASH = "0" * 64

# Built once and shared with registration: appending locks the chain head with this statement.
LOCK_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; the registry stores UTC, so naive means UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _timestamp(value: dt.datetime) -> str:
    return as_utc(value).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """sha256 over the previous hash and the event's canonical JSON."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def hashed_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: row[name] for name in _HASHED}
    fields["seq"] = int(row["seq"])
    fields["created_at"] = _timestamp(row["created_at"])
    return fields


_HASHED = (
    "seq",
    "created_at",
    "actor",
    "action",
    "model",
    "version",
    "alias",
    "reason",
    "dag_id",
    "run_id",
    "task_id",
    "before",
    "after",
)


EVENT_COLUMNS = (*_HASHED, "prev_hash", "hash")
"""Every column an event writes (``id`` is the database's)."""


def next_event(
    head: Any,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    model: str | None = None,
    version: int | None = None,
    alias: str | None = None,
    reason: str = "",
    run: RunRef | None = None,
    before: Any = None,
    after: Any = None,
) -> dict[str, Any]:
    """The event row that follows ``head`` (the locked chain head's seq and hash), hash included.

    The one place that knows an event's layout: ``append_event`` and registration's single-statement
    write both insert what this returns.
    """
    run = run or RunRef()
    row: dict[str, Any] = {
        "seq": head.seq + 1,
        "created_at": now,
        "actor": actor,
        "action": str(action),
        "model": model,
        "version": version,
        "alias": alias,
        "reason": reason,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "task_id": run.task_id,
        "before": before,
        "after": after,
        "prev_hash": head.hash,
    }
    row["hash"] = event_hash(head.hash, hashed_fields(row))
    return row


def write_event(connection: Connection, row: dict[str, Any]) -> int:
    """Insert a ``next_event`` row and move the chain head to it; returns its sequence number."""
    connection.execute(audit_events.insert().values(**row))
    connection.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=row["seq"], hash=row["hash"]))
    return int(row["seq"])


def append_event(
    connection: Connection,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    model: str | None = None,
    version: int | None = None,
    alias: str | None = None,
    reason: str = "",
    run: RunRef | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one event inside the caller's transaction (locking the chain head); returns its sequence number."""
    head = connection.execute(LOCK_HEAD).one()
    event = next_event(
        head,
        actor=actor,
        action=action,
        now=now,
        model=model,
        version=version,
        alias=alias,
        reason=reason,
        run=run,
        before=before,
        after=after,
    )
    return write_event(connection, event)


# -- the same write as one statement, for PostgreSQL's data-modifying CTEs ------------------------


def _param(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"event_{name}", type_=audit_events.c[name].type)


def insert_event_from(source: sa.FromClause) -> sa.Insert:
    """INSERT of the event bound with ``event_params``, once per row of ``source`` (so not at all when a
    previous step of the statement wrote nothing)."""
    values = sa.select(*(_param(name).label(name) for name in EVENT_COLUMNS)).select_from(source)
    return audit_events.insert().from_select(list(EVENT_COLUMNS), values)


def advance_head_after(inserted: sa.FromClause) -> sa.Update:
    """UPDATE of the chain head to the event bound with ``event_params``, only if ``inserted`` has a row."""
    return (
        audit_head.update()
        .where(audit_head.c.id == 1, sa.exists().select_from(inserted))
        .values(seq=sa.bindparam("event_seq"), hash=sa.bindparam("event_hash"))
    )


def event_params(row: dict[str, Any]) -> dict[str, Any]:
    """The bound values of ``insert_event_from`` and ``advance_head_after`` for a ``next_event`` row."""
    return {f"event_{name}": row[name] for name in EVENT_COLUMNS}


def events(connection: Connection, *, model: str | None = None, since_seq: int = 0) -> list[AuditEvent]:
    """Events after ``since_seq``, oldest first; with ``model``, only that model's."""
    query = sa.select(audit_events).where(audit_events.c.seq > since_seq).order_by(audit_events.c.seq)
    if model:
        query = query.where(audit_events.c.model == model)
    return [to_event(row) for row in connection.execute(query)]


def to_event(row: Any) -> AuditEvent:
    return AuditEvent(
        seq=int(row.seq),
        created_at=as_utc(row.created_at),
        actor=row.actor,
        action=row.action,
        model=row.model,
        version=row.version,
        alias=row.alias,
        reason=row.reason,
        run=RunRef(row.dag_id, row.run_id, row.task_id),
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


@dataclass(frozen=True)
class ChainReport:
    """Outcome of ``verify_chain``: ``ok``, how many events were checked, and the first break."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str = ""


def verify_chain(connection: Connection) -> ChainReport:
    """Recompute every hash in order; report the first row that was edited, deleted or inserted."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for row in _rows(connection):
        if row.seq != expected_seq:
            what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
            return ChainReport(
                False,
                checked,
                expected_seq,
                row.id,
                f"event seq {expected_seq} is {what}; next row found is seq {row.seq} (id {row.id})",
            )
        if row.prev_hash != prev_hash:
            return ChainReport(
                False,
                checked,
                row.seq,
                row.id,
                f"event seq {row.seq} (id {row.id}) does not link to the previous event",
            )
        if event_hash(prev_hash, hashed_fields(row._mapping)) != row.hash:
            return ChainReport(
                False,
                checked,
                row.seq,
                row.id,
                f"event seq {row.seq} (id {row.id}) was modified after it was written",
            )
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    head = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != checked or head.hash != prev_hash:
        return ChainReport(
            False,
            checked,
            checked + 1,
            None,
            f"the chain head records {head.seq} events but {checked} remain: events after seq {checked} were deleted",
        )
    return ChainReport(True, checked)


def _rows(connection: Connection) -> Iterator[Any]:
    result = connection.execution_options(yield_per=1000).execute(sa.select(audit_events).order_by(audit_events.c.seq))
    yield from result
