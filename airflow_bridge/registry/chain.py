"""Verifying the audit chains: every stream recomputed in full, or one event checked where it stands.

``verify_chain`` walks each stream (a model's events, and the global stream) from its genesis:
positions without gaps, each event linking to the one before, each hash recomputed, signatures with
the audit key, and the head recorded for the stream. Anchors (the heads written to write-once storage
earlier) must each match the event at their position, and every stream must still reach them.
``row_problem`` is the local check the registry runs before honouring one event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.registry.audit import GLOBAL, event_hash, genesis, hashed_fields, signature_problem
from airflow_bridge.registry.tables import audit_events, audit_head, models

Heads = Mapping[str, tuple[int, str]]
"""Stream → (position of its newest event, its hash): what an anchor records."""


@dataclass(frozen=True)
class ChainReport:
    """Outcome of ``verify_chain``: ``ok``, how many events were checked, and the first break.

    ``unsigned`` counts events written before signing started in their stream (an audit key was
    configured); ``anchored`` is how many events the newest anchor covered (0 when none was given).
    """

    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str = ""
    unsigned: int = 0
    anchored: int = 0


def heads(connection: Connection) -> dict[str, tuple[int, str]]:
    """The head of every stream: the global one, and each model's with at least one event."""
    found = {GLOBAL: tuple(connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one())}
    rows = connection.execute(sa.select(models.c.name, models.c.chain_seq, models.c.chain_hash))
    found.update({row.name: (int(row.chain_seq), str(row.chain_hash)) for row in rows if row.chain_seq})
    return {stream: (int(seq), str(hash_)) for stream, (seq, hash_) in found.items()}


def _chain(stream: str) -> str:
    return "the global chain" if stream == GLOBAL else f"model {stream}'s chain"


def _label(stream: str, position: int) -> str:
    return f"event {position} of {_chain(stream)}"


def verify_chain(connection: Connection, *, key: bytes | None = None, anchors: Sequence[Heads] = ()) -> ChainReport:
    """Recompute every stream in order; report the first event that was edited, deleted or inserted, and
    any anchored event that is no longer there as it was."""
    recorded = heads(connection)
    anchored_streams: dict[str, dict[int, str]] = {}
    for anchor in anchors:
        for name, (position, hash_) in anchor.items():
            anchored_streams.setdefault(name, {})[int(position)] = hash_
    newest_anchor = max((sum(p for p, _ in a.values()) for a in anchors), default=0)
    checked = unsigned = 0
    reached: dict[str, int] = {}

    def broken(row: Any, problem: str) -> ChainReport:
        seq = None if row is None else int(row.seq)
        return ChainReport(False, checked, seq, None if row is None else row.id, problem, unsigned, newest_anchor)

    stream, started = GLOBAL, False
    expected, prev, signing, last_seq = 1, "", False, 0
    for row in _rows(connection):
        if not started or row.stream != stream:
            if started:
                problem = _head_problem(stream, expected - 1, prev, recorded)
                if problem:
                    return broken(None, problem)
                reached[stream] = expected - 1
            stream, expected, prev, signing, started = row.stream, 1, genesis(row.stream), False, True
            last_seq = 0
        label = _label(stream, expected)
        if row.stream_seq != expected:
            what = "missing (deleted?)" if row.stream_seq > expected else "out of order"
            return broken(row, f"{label} is {what}; next row found is its event {row.stream_seq} (seq {row.seq})")
        if row.prev_hash != prev:
            return broken(row, f"{label} (seq {row.seq}) does not link to the event before it")
        if event_hash(prev, hashed_fields(row._mapping)) != row.hash:
            return broken(row, f"{label} (seq {row.seq}) was modified after it was written")
        if row.seq <= last_seq:
            return broken(row, f"{label} has seq {row.seq}, not after its predecessor's {last_seq}: reordered")
        if key is not None:
            signing = signing or bool(row.signature)
            if signing:
                problem = signature_problem(key, row._mapping)
                if problem:
                    return broken(row, problem)
            else:
                unsigned += 1
        anchored = anchored_streams.get(stream, {}).get(expected)
        if anchored is not None and anchored != row.hash:
            return broken(
                row,
                f"{label} (seq {row.seq}) has hash {row.hash[:12]}… but was anchored with {anchored[:12]}…: history "
                "up to the anchor was rewritten",
            )
        prev, expected, checked, last_seq = row.hash, expected + 1, checked + 1, int(row.seq)
    if started:
        problem = _head_problem(stream, expected - 1, prev, recorded)
        if problem:
            return broken(None, problem)
        reached[stream] = expected - 1
    for name, (position, _) in recorded.items():
        if position and name not in reached:
            return broken(None, f"the head of {_chain(name)} records {position} events but none remain")
    for name, positions in anchored_streams.items():
        last = max(positions)
        if last > reached.get(name, 0):
            return broken(
                None,
                f"an anchor records {_label(name, last)} but the chain ends at event {reached.get(name, 0)}: events "
                "were deleted (truncated) and the head rewound",
            )
    return ChainReport(True, checked, unsigned=unsigned, anchored=newest_anchor)


def _head_problem(stream: str, last: int, last_hash: str, recorded: Heads) -> str | None:
    position, hash_ = recorded.get(stream, (0, genesis(stream)))
    if position != last or (last and hash_ != last_hash):
        return (
            f"the head of {_chain(stream)} records {position} events but {last} remain: events after "
            f"event {last} were deleted, or the head was edited"
        )
    return None


def _rows(connection: Connection) -> Iterator[Any]:
    query = sa.select(audit_events).order_by(audit_events.c.stream, audit_events.c.stream_seq)
    yield from connection.execution_options(yield_per=1000).execute(query)


def event_row(connection: Connection, stream: str, position: int) -> Any | None:
    """The event at ``position`` of ``stream``, or None."""
    return connection.execute(
        sa.select(audit_events).where(audit_events.c.stream == stream, audit_events.c.stream_seq == position)
    ).first()


def row_problem(connection: Connection, row: Any, key: bytes | None) -> str | None:
    """Why the chain does not vouch for event ``row`` on its own (None: it does).

    A local check, cheap enough to run before honouring a row: the row hashes to its hash, links to the
    event before it in its stream, the event after it (or the stream's head) links to it, and it is signed
    when a key is set. Rewriting the whole stream after the row passes this check; anchors catch that.
    """
    stream, position = row.stream, int(row.stream_seq)
    label = _label(stream, position)
    if event_hash(row.prev_hash, hashed_fields(row._mapping)) != row.hash:
        return f"{label} (seq {row.seq}) was modified after it was written (its hash does not match its content)"
    if position > 1:
        before = event_row(connection, stream, position - 1)
        if before is None or before.hash != row.prev_hash:
            return f"{label} (seq {row.seq}) does not link to the event before it (inserted or re-hashed)"
        if before.seq >= row.seq:
            return f"{label} (seq {row.seq}) is ordered before the event it follows (seq {before.seq})"
    elif row.prev_hash != genesis(stream):
        return f"{label} (seq {row.seq}) does not start its chain"
    after = event_row(connection, stream, position + 1)
    if after is not None:
        if after.prev_hash != row.hash or after.seq <= row.seq:
            return f"the event after {label} does not link to it (the chain was edited)"
    else:
        head = heads_of(connection, stream)
        if head != (position, row.hash):
            return f"{label} (seq {row.seq}) is its chain's newest but the head records event {head[0]}"
    return signature_problem(key, row._mapping)


def heads_of(connection: Connection, stream: str) -> tuple[int, str]:
    """The head of one stream."""
    found: Any
    if stream == GLOBAL:
        found = connection.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
    else:
        query = sa.select(models.c.chain_seq, models.c.chain_hash).where(models.c.name == stream)
        found = connection.execute(query).first() or (0, None)
    return int(found[0]), str(found[1] or genesis(stream))
