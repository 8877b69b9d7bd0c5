"""What the audit chain vouches for: registry rows checked against the events that wrote them.

The tables (models, versions, aliases, policies) are what the registry reads; the hash-chained events
are what it can prove. Before a row is honoured (an approval counted, a version deployed or unpickled,
an alias served) it is checked against its event, and ``reconcile`` lists every row the chain does not
explain. An event is checked locally (``audit.row_problem``); rewriting the whole chain after it is
caught by anchors in write-once storage (``audit.verify_chain(anchors=...)``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.exceptions import AuditMismatchError
from airflow_bridge.registry import audit
from airflow_bridge.registry.events import ALIAS_MOVES, AuditAction
from airflow_bridge.registry.tables import aliases, audit_events, model_versions, models, policies

CARD_CHECKED = ("owner", "team")
"""The model card fields that decide governance (ownership, separation of duties)."""


def version_digest(row: Mapping[str, Any]) -> str:
    """sha256 of a version row's content (everything but its row ids), recorded in its ``version_created`` event."""
    fields = {
        name: row[name]
        for name in (
            "version",
            "artifact_uri",
            "artifact_sha256",
            "artifact_size",
            "artifact_conn_id",
            "estimator",
            "task_kind",
            "params",
            "metrics",
            "validation",
            "data",
            "spec_sha256",
            "dag_id",
            "run_id",
            "task_id",
            "created_by",
        )
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key(conn: Connection) -> bytes | None:
    return audit.writer_options(conn)[0]


def _events(conn: Connection, model: str, *actions: str, version: int | None = None, alias: str | None = None) -> Any:
    query = sa.select(audit_events).where(audit_events.c.model == model, audit_events.c.action.in_(actions))
    if version is not None:
        query = query.where(audit_events.c.version == version)
    if alias is not None:
        query = query.where(audit_events.c.alias == alias)
    return conn.execute(query.order_by(audit_events.c.seq)).all()


def event_problem(conn: Connection, row: Any) -> str | None:
    """Why the chain does not vouch for event ``row`` (None: it does)."""
    from airflow_bridge.registry.chain import row_problem

    return row_problem(conn, row, _key(conn))


def version_problem(conn: Connection, model: str, row: Any) -> str | None:
    """Why the ``ab_model_versions`` row of ``model`` is not the one its ``version_created`` event recorded."""
    label = f"{model} v{row.version}"
    created = _events(conn, model, AuditAction.VERSION_CREATED, version=row.version)
    if not created:
        return f"{label} has no version_created event in the audit trail: the row was inserted outside airflow-bridge"
    if len(created) > 1:
        return f"{label} has {len(created)} version_created events: the audit trail was edited"
    event = created[0]
    problem = event_problem(conn, event)
    if problem:
        return f"{label}: its version_created event is not vouched for by the chain: {problem}"
    after = event.after or {}
    recorded = {
        "artifact_uri": after.get("artifact_uri"),
        "artifact_sha256": after.get("sha256"),
        "artifact_size": after.get("size"),
        "artifact_conn_id": after.get("conn_id"),
    }
    for column, value in recorded.items():
        if row._mapping[column] != value:
            return (
                f"{label}: {column} is {row._mapping[column]!r} but its version_created event (seq {event.seq}) "
                f"recorded {value!r}: the version row was edited outside airflow-bridge"
            )
    if after.get("row_sha256") and after["row_sha256"] != version_digest(row._mapping):
        return (
            f"{label}: the version row no longer matches what its version_created event (seq {event.seq}) "
            "recorded (metrics, parameters, validation or provenance were edited outside airflow-bridge)"
        )
    deleted = _events(conn, model, AuditAction.VERSION_DELETED, version=row.version)
    if (row.deleted_at is not None) != bool(deleted):
        state = "deleted" if row.deleted_at is not None else "not deleted"
        return f"{label} is {state} in its row, but the audit trail says otherwise"
    return None


def alias_problem(conn: Connection, model: str, alias: str, current: int | None) -> str | None:
    """Why ``alias`` pointing at ``current`` (None: no row) is not what the last chained move left."""
    moves = _events(conn, model, *ALIAS_MOVES, alias=alias)
    last = moves[-1] if moves else None
    chained = (last.after or {}).get("version") if last is not None else None
    if chained != current:
        shown = f"v{current}" if current is not None else "no version"
        said = f"v{chained}" if chained is not None else "no version"
        where = f" (event seq {last.seq})" if last is not None else ""
        return (
            f"alias '{alias}' of {model} points at {shown} but the audit trail's last move{where} put it at {said}: "
            "the alias row was edited outside airflow-bridge"
        )
    if last is not None:
        problem = event_problem(conn, last)
        if problem:
            return f"alias '{alias}' of {model}: its last move is not vouched for by the chain: {problem}"
    return None


def model_problem(conn: Connection, row: Any) -> str | None:
    """Why the model row's owner, team or policy binding is not what the chain recorded."""
    cards = _events(conn, row.name, AuditAction.MODEL_CARD_UPDATED, AuditAction.OWNERSHIP_TRANSFERRED)
    card = (cards[-1].after or {}) if cards else {}
    for field in CARD_CHECKED:
        if (row._mapping[field] or "") != (card.get(field) or ""):
            return (
                f"model {row.name}: {field} is {row._mapping[field]!r} but the audit trail recorded "
                f"{card.get(field) or ''!r}: the model row was edited outside airflow-bridge"
            )
    if cards:
        problem = event_problem(conn, cards[-1])
        if problem:
            return f"model {row.name}: its card event is not vouched for by the chain: {problem}"
    bound = _events(conn, row.name, AuditAction.POLICY_BOUND, AuditAction.OWNERSHIP_TRANSFERRED)
    binding = (bound[-1].after or {}) if bound else {}
    if row.policy_sha256 != binding.get("sha256"):
        return (
            f"model {row.name} is bound to policy {str(row.policy_sha256)[:12]} but the audit trail recorded "
            f"{str(binding.get('sha256'))[:12]}: the binding was edited outside airflow-bridge"
        )
    if row.policy_sha256 is not None:
        document = conn.execute(sa.select(policies.c.document).where(policies.c.sha256 == row.policy_sha256)).scalar()
        if document is None or _document_sha256(document) != row.policy_sha256:
            return f"model {row.name}: the stored policy document {row.policy_sha256[:12]} was edited or removed"
    return None


def _document_sha256(document: Any) -> str:
    """The canonical sha256 of a stored policy document (as ``Policy.canonical_sha256`` computes it)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def require(problem: str | None) -> None:
    """Raise ``AuditMismatchError`` for a problem the checks above found."""
    if problem is not None:
        raise AuditMismatchError(f"{problem}; nothing was honoured or changed (run: airflow-bridge audit verify)")


def reconcile(conn: Connection) -> list[str]:
    """Every model, version and alias row the audit chain does not explain, one line each."""
    found: list[str] = []
    names: dict[int, str] = {}
    for row in conn.execute(sa.select(models).order_by(models.c.name)):
        names[row.id] = row.name
        found += [p for p in [model_problem(conn, row)] if p]
    for row in conn.execute(sa.select(model_versions).order_by(model_versions.c.model_id, model_versions.c.version)):
        found += [p for p in [version_problem(conn, names.get(row.model_id, "?"), row)] if p]
    current = {
        (names.get(r.model_id, "?"), r.alias): r.version
        for r in conn.execute(
            sa.select(aliases.c.model_id, aliases.c.alias, model_versions.c.version).select_from(
                aliases.join(model_versions, model_versions.c.id == aliases.c.version_id)
            )
        )
    }
    moved = {
        (r.model, r.alias)
        for r in conn.execute(
            sa.select(audit_events.c.model, audit_events.c.alias)
            .where(audit_events.c.action.in_(ALIAS_MOVES), audit_events.c.alias.is_not(None))
            .distinct()
        )
    }
    for model, alias in sorted(moved | set(current)):
        found += [p for p in [alias_problem(conn, model, alias, current.get((model, alias)))] if p]
    return found
