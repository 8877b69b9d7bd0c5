"""The append-only, hash-chained audit trail.

Each event's hash covers its content and the previous event's hash; a single head row holds the
newest (seq, hash) and is locked while appending, so the chain stays linear under concurrent
writers. Editing, deleting or reordering any row breaks the chain, and ``verify_chain`` names the
first row where it breaks. With an audit key (held outside the database), each event also carries
an HMAC of its hash, so a database writer cannot add an event the chain accepts. This module is the
only one that knows an event row's layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
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
    if row.get("principal") is not None:  # hashed only when set: rows written before it keep their hash
        fields["principal"] = row["principal"]
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


EVENT_COLUMNS = (*_HASHED, "principal", "prev_hash", "hash", "signature")
"""Every column an event writes (``id`` is the database's)."""

WRITER_KEY = "ab_audit_key"
WRITER_PRINCIPAL = "ab_principal"
"""Execution options of a registry transaction: the audit key that signs its events, and who runs it."""


def writer_options(connection: Connection) -> tuple[bytes | None, str | None]:
    """(audit key, principal) of the transaction ``connection`` runs (set by ``ModelRegistry.transaction``)."""
    options = connection.get_execution_options()
    return options.get(WRITER_KEY), options.get(WRITER_PRINCIPAL)


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
    principal: str | None = None,
    key: bytes | None = None,
) -> dict[str, Any]:
    """The event row that follows ``head`` (the locked chain head's seq and hash), hash and signature included.

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
        "principal": principal,
        "prev_hash": head.hash,
    }
    row["hash"] = event_hash(head.hash, hashed_fields(row))
    row["signature"] = sign(key, row["hash"]) if key is not None else None
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
    """Append one event inside the caller's transaction (locking the chain head); returns its sequence number.

    The transaction's principal and audit key (``writer_options``) are recorded and sign the event.
    """
    head = connection.execute(LOCK_HEAD).one()
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
        principal=row.principal,
        signed=bool(row.signature),
    )


@dataclass(frozen=True)
class ChainReport:
    """Outcome of ``verify_chain``: ``ok``, how many events were checked, and the first break.

    ``unsigned`` counts events written before signing started (an audit key was configured); ``anchored``
    is the newest anchor the chain was checked against (its sequence number), 0 when none was given.
    """

    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str = ""
    unsigned: int = 0
    anchored: int = 0


def verify_chain(
    connection: Connection, *, key: bytes | None = None, anchors: Mapping[int, str] | None = None
) -> ChainReport:
    """Recompute every hash in order; report the first row that was edited, deleted or inserted.

    With ``key``, every event after the first signed one must carry a valid signature. ``anchors``
    (sequence number → hash, from write-once storage) must each match the event at that sequence
    number, and the chain must reach the newest: otherwise history before it was rewritten or truncated.
    """
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = unsigned = 0
    signing = False
    anchors = dict(anchors or {})
    newest_anchor = max(anchors, default=0)

    def broken(seq: int | None, row_id: int | None, problem: str) -> ChainReport:
        return ChainReport(False, checked, seq, row_id, problem, unsigned, newest_anchor)

    for row in _rows(connection):
        if row.seq != expected_seq:
            what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
            found = f"next row found is seq {row.seq} (id {row.id})"
            return broken(expected_seq, row.id, f"event seq {expected_seq} is {what}; {found}")
        if row.prev_hash != prev_hash:
            return broken(row.seq, row.id, f"event seq {row.seq} (id {row.id}) does not link to the previous event")
        if event_hash(prev_hash, hashed_fields(row._mapping)) != row.hash:
            return broken(row.seq, row.id, f"event seq {row.seq} (id {row.id}) was modified after it was written")
        if key is not None:
            signing = signing or bool(row.signature)
            if signing:
                problem = signature_problem(key, row._mapping)
                if problem:
                    return broken(row.seq, row.id, problem)
            else:
                unsigned += 1
        anchored = anchors.get(int(row.seq))
        if anchored is not None and anchored != row.hash:
            return broken(
                row.seq,
                row.id,
                f"event seq {row.seq} (id {row.id}) has hash {row.hash[:12]}… but was anchored with {anchored[:12]}…: "
                "history up to the anchor was rewritten",
            )
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    head = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != checked or head.hash != prev_hash:
        return broken(
            checked + 1,
            None,
            f"the chain head records {head.seq} events but {checked} remain: events after seq {checked} were deleted",
        )
    if newest_anchor > checked:
        return broken(
            checked + 1,
            None,
            f"an anchor records event seq {newest_anchor} but the chain ends at seq {checked}: "
            f"events {checked + 1}..{newest_anchor} were deleted (truncated) and the head rewound",
        )
    return ChainReport(True, checked, unsigned=unsigned, anchored=newest_anchor)


def event_row(connection: Connection, seq: int) -> Any | None:
    """The event row with sequence number ``seq``, or None."""
    return connection.execute(sa.select(audit_events).where(audit_events.c.seq == seq)).first()


def row_problem(connection: Connection, row: Any, key: bytes | None) -> str | None:
    """Why the chain does not vouch for event ``row`` on its own (None: it does).

    A local check, cheap enough to run before honouring a row: the row hashes to its hash, links to the
    event before it, the event after it (or the head) links to it, and it is signed when a key is set.
    Rewriting the whole chain after the row passes this check; anchors (``verify_chain``) catch that.
    """
    fields = row._mapping
    if event_hash(row.prev_hash, hashed_fields(fields)) != row.hash:
        return f"event seq {row.seq} was modified after it was written (its hash does not match its content)"
    if row.seq > 1:
        before = event_row(connection, row.seq - 1)
        if before is None or before.hash != row.prev_hash:
            return f"event seq {row.seq} does not link to the event before it (inserted or re-hashed)"
    elif row.prev_hash != GENESIS_HASH:
        return "event seq 1 does not start the chain"
    after = event_row(connection, row.seq + 1)
    if after is not None:
        if after.prev_hash != row.hash:
            return f"the event after seq {row.seq} does not link to it (the chain was edited)"
    else:
        head = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
        if head.seq != row.seq or head.hash != row.hash:
            return f"event seq {row.seq} is the newest row but the chain head records seq {head.seq}"
    return signature_problem(key, fields)


def _rows(connection: Connection) -> Iterator[Any]:
    result = connection.execution_options(yield_per=1000).execute(sa.select(audit_events).order_by(audit_events.c.seq))
    yield from result
