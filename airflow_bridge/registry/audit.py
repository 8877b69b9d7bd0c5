"""The append-only, hash-chained audit trail: how events are laid out, hashed, signed and appended.

Each model's events form a chain of their own (its *stream*): each event's hash covers its content and
the previous event of the stream, and the stream's head (newest position and hash) lives on the model's
row, which every change of the model locks anyway; so writes to different models never wait for each
other, and the chains of one model stay linear under any number of writers. Events of no model, and
every event written before per-model chains, form the global stream, whose head is the one-row
``ab_audit_head``. ``seq`` orders all events globally. With an audit key (held outside the database),
each event also carries an HMAC of its hash. ``chain`` verifies; this module is the only one that
knows an event row's layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.registry.records import AuditEvent, RunRef
from airflow_bridge.registry.tables import audit_events, audit_head, audit_seq, models

GENESIS_HASH = "0" * 64
GLOBAL = ""
"""The stream of events of no model (and of every event written before per-model chains)."""


def genesis(stream: str) -> str:
    """The hash a stream's first event links to."""
    if stream == GLOBAL:
        return GENESIS_HASH
    return hashlib.sha256(f"airflow-bridge audit stream\n{stream}".encode()).hexdigest()


@dataclass(frozen=True)
class Head:
    """A stream's head, locked by the caller's transaction, and the global ``seq`` of its next event."""

    stream: str
    seq: int
    """Position of the stream's newest event (0: none yet)."""
    hash: str
    next_seq: int


def next_seq_column(conn: Connection) -> sa.ColumnElement[Any]:
    """The global ``seq`` of a new event, as a column of the statement that locks its stream's head."""
    if conn.dialect.name == "postgresql":
        return audit_seq.next_value()
    return sa.select(sa.func.coalesce(sa.func.max(audit_events.c.seq), 0) + 1).scalar_subquery()


def lock_head(conn: Connection, model: str | None) -> Head:
    """Lock the head of ``model``'s stream (its model row; the global head for no model, or a model the
    registry does not know) in one statement that also draws the next global ``seq``."""
    if model:
        row = conn.execute(
            sa.select(models.c.chain_seq, models.c.chain_hash, next_seq_column(conn))
            .where(models.c.name == model)
            .with_for_update(of=models)
        ).first()
        if row is not None:
            return Head(model, int(row[0]), row[1] or genesis(model), int(row[2]))
    row = conn.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash, next_seq_column(conn))
        .where(audit_head.c.id == 1)
        .with_for_update(of=audit_head)
    ).one()
    return Head(GLOBAL, int(row[0]), row[1], int(row[2]))


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
    """What an event's hash covers. In a model's chain its position is hashed instead of ``seq``, which the
    database draws when the event is written (``chain`` checks that ``seq`` grows along each chain)."""
    fields = {name: row[name] for name in _HASHED}
    fields["created_at"] = _timestamp(row["created_at"])
    if row.get("principal") is not None:  # hashed only when set: rows written before it keep their hash
        fields["principal"] = row["principal"]
    if row.get("stream"):
        del fields["seq"]
        fields["stream"] = row["stream"]
        fields["stream_seq"] = int(row["stream_seq"])
    else:  # the global chain: as before per-model chains
        fields["seq"] = int(row["seq"])
    return fields


def sign(key: bytes, event_hash_hex: str) -> str:
    """The event's signature: HMAC-SHA256 of its hash with the audit key."""
    return hmac.new(key, event_hash_hex.encode(), hashlib.sha256).hexdigest()


def signature_problem(key: bytes | None, row: Mapping[str, Any]) -> str | None:
    """Why the row's signature does not prove it was written by a holder of ``key`` (None: it does, or no key)."""
    if key is None:
        return None
    found = row.get("signature")
    if not found:
        return f"event seq {row['seq']} is not signed with the audit key"
    if not hmac.compare_digest(str(found), sign(key, str(row["hash"]))):
        return f"event seq {row['seq']} has a signature the audit key did not make (forged or re-hashed)"
    return None


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


EVENT_COLUMNS = (*_HASHED, "principal", "stream", "stream_seq", "prev_hash", "hash", "signature")
"""Every column an event writes (``id`` is the database's)."""

WRITER_KEY = "ab_audit_key"
WRITER_PRINCIPAL = "ab_principal"
"""Execution options of a registry transaction: the audit key that signs its events, and who runs it."""


def writer_options(connection: Connection) -> tuple[bytes | None, str | None]:
    """(audit key, principal) of the transaction ``connection`` runs (set by ``ModelRegistry.transaction``)."""
    options = connection.get_execution_options()
    return options.get(WRITER_KEY), options.get(WRITER_PRINCIPAL)


def next_event(
    head: Head,
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
    principal: str | None = None,
    key: bytes | None = None,
) -> dict[str, Any]:
    """The event row that follows ``head`` (its stream's locked head), hash and signature included.

    The one place that knows an event's layout: ``append_event`` and registration's single-statement
    write both insert what this returns.
    """
    run = run or RunRef()
    row: dict[str, Any] = {
        "seq": head.next_seq,
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
        "principal": principal,
        "stream": head.stream,
        "stream_seq": head.seq + 1,
        "prev_hash": head.hash,
    }
    row["hash"] = event_hash(head.hash, hashed_fields(row))
    row["signature"] = sign(key, row["hash"]) if key is not None else None
    return row


def write_event(connection: Connection, row: dict[str, Any]) -> int:
    """Insert a ``next_event`` row and move its stream's head to it; returns its global sequence number."""
    connection.execute(audit_events.insert().values(**row))
    position = {"seq": row["stream_seq"], "hash": row["hash"]}
    if row["stream"] == GLOBAL:
        connection.execute(audit_head.update().where(audit_head.c.id == 1).values(**position))
    else:
        connection.execute(
            models.update()
            .where(models.c.name == row["stream"])
            .values(chain_seq=row["stream_seq"], chain_hash=row["hash"])
        )
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
    """Append one event inside the caller's transaction (locking its stream's head); returns its ``seq``.

    The transaction's principal and audit key (``writer_options``) are recorded and sign the event.
    """
    head = lock_head(connection, model)
    key, principal = writer_options(connection)
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
        principal=principal,
        key=key,
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
    """UPDATE of the model's chain head to the event bound with ``event_params``, only if ``inserted`` has a
    row (a model's stream only: registration's single statement)."""
    return (
        models.update()
        .where(models.c.name == sa.bindparam("event_stream"), sa.exists().select_from(inserted))
        .values(chain_seq=sa.bindparam("event_stream_seq"), chain_hash=sa.bindparam("event_hash"))
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
        principal=row.principal,
        signed=bool(row.signature),
        stream=row.stream,
        stream_seq=row.stream_seq,
    )
