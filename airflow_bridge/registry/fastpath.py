"""Registration in one round trip, when this process already knows the model's row (PostgreSQL).

A process that registered a version of a model knows what its row holds afterwards: the newest version
number, its audit chain's head, its owner, team and policy binding, all vouched for by the chain when it
first read them. The next registration of that model can then be computed entirely on the client (the
version row, its ``version_created`` event and its hash) and written by one statement that applies only
if the row is still exactly that (compare-and-set on every field the registration depends on). In
autocommit that statement is its own transaction: one round trip instead of four, and as a statement
prepared once per connection the server neither parses nor plans it again. When anything differs
(another writer, a retried run, a changed card, binding or quota) nothing is written and the registration
takes the full path, which checks everything under the model's lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from airflow_bridge.registry import audit
from airflow_bridge.registry.tables import audit_events, audit_seq, model_versions, models

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, Row

    from airflow_bridge.registry.records import ModelCard, PolicyBinding
    from airflow_bridge.registry.registration import NewVersion

GOVERNING = ("owner", "team", "policy_sha256", "policy_source")
CARD = ("description", "owner", "team", "intended_use", "limitations")
BACK_OFF_MAX = 256
"""After a compare-and-set lost to another writer, the next 1, 2, 4 ... (at most this many) registrations of
the model take the full path: under contention the one-statement path would only wait and lose."""


@dataclass(frozen=True)
class Known:
    """A model's row as this process last found it vouched for by the chain, or left it itself."""

    model_id: int
    latest_version: int
    chain_seq: int
    chain_hash: str
    governing: tuple[Any, ...]
    card: tuple[Any, ...]


_KNOWN: dict[tuple[str, str], Known] = {}
_CONTENDED: dict[tuple[str, str], tuple[int, int]] = {}
"""(registry, model) → (registrations left on the full path, the next back-off)."""


_URLS: dict[int, str] = {}


def _url(engine: Engine) -> str:
    """The engine's URL as the key of what this process knows (rendered once per engine)."""
    found = _URLS.get(id(engine))
    if found is None:
        found = _URLS[id(engine)] = engine.url.render_as_string(hide_password=False)
    return found


def known(engine: Engine, model: str) -> Known | None:
    return _KNOWN.get((_url(engine), model))


def remember(engine: Engine, model: str, row: Known | None) -> None:
    """Once a registration committed: what the model's row holds now (None: unknown, re-check next time)."""
    key = (_url(engine), model)
    if row is None:
        _KNOWN.pop(key, None)
    else:
        _KNOWN[key] = row


def of_row(model_row: Row[Any], *, latest_version: int, chain_seq: int, chain_hash: str) -> Known:
    fields = model_row._mapping
    return Known(
        int(fields["id"]),
        latest_version,
        chain_seq,
        chain_hash,
        tuple(fields[f] for f in GOVERNING),
        tuple(fields[f] for f in CARD),
    )


def applies(
    found: Known | None, card: ModelCard | None, policy: PolicyBinding | None, *, tags: bool, quota: bool
) -> bool:
    """Whether the registration changes nothing but adding a version: then the one-statement path may try."""
    if found is None or tags or quota:
        return False
    current = dict(zip(CARD, found.card, strict=True))
    if card is not None and any((getattr(card, f) or current[f]) != current[f] for f in CARD):
        return False  # a card change (audited on the full path)
    team = card.team if card is not None else ""
    owner_team = dict(zip(GOVERNING, found.governing, strict=True))["team"] or ""
    if owner_team and team != owner_team:
        return False  # refused on the full path, with its message
    return policy is None or (policy.sha256, policy.source) == found.governing[2:]  # else a (re)binding


def _statement() -> sa.Select[Any]:
    """Compare-and-set the model row, insert the version and its event: all or nothing, one statement."""
    row = sa.bindparam
    m = (
        models.update()
        .where(
            models.c.id == row("known_id"),
            models.c.deleted_at.is_(None),
            models.c.latest_version == row("known_version"),
            models.c.chain_seq == row("known_chain_seq"),
            models.c.chain_hash == row("known_chain_hash"),
            *(models.c[f].is_not_distinct_from(row(f"known_{f}", type_=models.c[f].type)) for f in GOVERNING),
        )
        .values(
            latest_version=row("version_version"),
            chain_seq=row("event_stream_seq"),
            chain_hash=row("event_hash"),
        )
        .returning(models.c.id, audit_seq.next_value().label("seq"))
        .cte("m")
    )
    version_columns = [c.name for c in model_versions.c if c.name not in ("id", "deleted_at")]
    values = [
        m.c.id if name == "model_id" else row(f"version_{name}", type_=model_versions.c[name].type)
        for name in version_columns
    ]
    v = (
        model_versions.insert()
        .from_select(version_columns, sa.select(*values).select_from(m))
        .returning(model_versions.c.id)
        .cte("v")
    )
    event_values = [
        m.c.seq if name == "seq" else row(f"event_{name}", type_=audit_events.c[name].type)
        for name in audit.EVENT_COLUMNS
    ]
    e = (
        audit_events.insert()
        .from_select(list(audit.EVENT_COLUMNS), sa.select(*event_values).select_from(m.join(v, sa.true())))
        .returning(audit_events.c.seq)
        .cte("e")
    )
    return sa.select(v.c.id, e.c.seq).select_from(v.join(e, sa.true()))


_STATEMENT = _statement()


@dataclass(frozen=True)
class Prepared:
    """The statement as a server-side prepared statement (psycopg2): prepared once per connection, so each
    registration is parsed and planned no more; this halves the server's work per version."""

    name: str
    prepare: str
    execute: str
    json_params: frozenset[str]


def _prepared() -> Prepared:
    from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

    dialect = PGDialect_psycopg2()
    compiled = _STATEMENT.compile(dialect=dialect)
    placeholder = re.compile(r"%\((\w+)\)s")
    names = list(dict.fromkeys(placeholder.findall(str(compiled))))
    position = {name: f"${i}" for i, name in enumerate(names, start=1)}
    body = placeholder.sub(lambda found: position[found.group(1)], str(compiled)).replace("%%", "%")
    name = "ab_register_" + hashlib.sha256(body.encode()).hexdigest()[:16]  # a new statement, a new name
    types = ", ".join(compiled.binds[n].type.compile(dialect=dialect) for n in names)
    return Prepared(
        name,
        f"PREPARE {name} ({types}) AS {body}",
        f"EXECUTE {name} (" + ", ".join(f"%({n})s" for n in names) + ")",
        frozenset(n for n in names if isinstance(compiled.binds[n].type, sa.JSON)),
    )


_PREPARED = _prepared()


def supports(engine: Engine) -> bool:
    """The one-statement registration runs on PostgreSQL through psycopg2 (any other driver: the full path)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


def _execute(autocommit: Engine, params: dict[str, Any]) -> Any:
    """Run the prepared statement (preparing it first on a new connection); the row it returned, or None."""
    with autocommit.connect() as conn:
        fairy = conn.connection
        cursor = fairy.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if not fairy.info.get(_PREPARED.name):
                cursor.execute(_PREPARED.prepare)
                fairy.info[_PREPARED.name] = True
            cursor.execute(_PREPARED.execute, params)
            return cursor.fetchone()
        finally:
            cursor.close()


def register(
    engine: Engine, autocommit: Engine, new: NewVersion, *, key: bytes | None, principal: str | None
) -> tuple[int, dt.datetime] | None:
    """Try the one-statement registration on ``autocommit`` (an engine of the same database whose connections
    stay in autocommit); (version number, time) when it applied, None to take the full path."""
    from airflow_bridge.registry.registration import _version_row, version_created_event

    index = (_url(engine), new.model)
    found = _KNOWN.get(index)
    if found is None or not new.run.is_set:  # only a run's registration is idempotent: safe to settle on failure
        return None
    left, back_off = _CONTENDED.get(index, (0, 1))
    if left > 0:
        _CONTENDED[index] = (left - 1, back_off)
        return None
    number, now = found.latest_version + 1, dt.datetime.now(dt.UTC)
    version_row = _version_row(new, found.model_id, number, now)
    head = audit.Head(new.model, found.chain_seq, found.chain_hash, next_seq=0)  # the statement draws seq
    event = version_created_event(new, version_row, head, now, key=key, principal=principal)
    params = {f"version_{name}": value for name, value in version_row.items()} | audit.event_params(event)
    params |= {
        "known_id": found.model_id,
        "known_version": found.latest_version,
        "known_chain_seq": found.chain_seq,
        "known_chain_hash": found.chain_hash,
        **{f"known_{f}": value for f, value in zip(GOVERNING, found.governing, strict=True)},
    }
    for name in _PREPARED.json_params:
        params[name] = json.dumps(params[name])
    import psycopg2.errors

    try:
        written = _execute(autocommit, params)
    except psycopg2.errors.UniqueViolation:  # a retried run (its version exists): the full path returns it
        return None
    except (psycopg2.Error, sa.exc.DBAPIError):  # no connection, or one dropped with the statement sent or not:
        _KNOWN.pop(index, None)  # the full path of the same run returns the version if it was saved, else adds it
        for pool in (autocommit, engine):  # on fresh connections: the idle ones were likely dropped too
            pool.dispose()
        return None
    if written is None:  # another writer moved the row: it wins, this registration takes the full path
        _KNOWN.pop(index, None)
        _CONTENDED[index] = (back_off, min(2 * back_off, BACK_OFF_MAX))
        return None
    _CONTENDED.pop(index, None)
    _KNOWN[index] = replace(found, latest_version=number, chain_seq=event["stream_seq"], chain_hash=event["hash"])
    return number, now
