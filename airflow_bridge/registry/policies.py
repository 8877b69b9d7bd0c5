"""The team policy a model is bound to: stored once per sha256, the binding audited like any change."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import audit
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.locks import dialect_insert
from airflow_bridge.registry.records import PolicyBinding, RunRef
from airflow_bridge.registry.tables import models, policies


def bind(
    conn: Connection,
    model: str,
    model_row: Row[Any],
    binding: PolicyBinding,
    *,
    actor: str,
    reason: str,
    run: RunRef,
    now: dt.datetime,
) -> bool:
    """Bind ``model`` (its row locked, as ``model_row``) to ``binding``, storing the document if it is new;
    False if it already was bound to it."""
    old = model_row.policy_sha256
    if old == binding.sha256:
        return False
    conn.execute(
        dialect_insert(conn)(policies)
        .values(sha256=binding.sha256, document=binding.document, source=binding.source, created_at=now)
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    conn.execute(models.update().where(models.c.id == model_row.id).values(policy_sha256=binding.sha256))
    audit.append_event(
        conn,
        actor=actor,
        action=AuditAction.POLICY_BOUND,
        now=now,
        model=model,
        reason=reason,
        run=run,
        before={"sha256": old},
        after={"sha256": binding.sha256, "source": binding.source},
    )
    return True


def bound(conn: Connection, model: str) -> PolicyBinding | None:
    """The policy ``model`` is bound to, or None; NotFoundError for an unknown model."""
    row = conn.execute(
        sa.select(models.c.policy_sha256, policies.c.document, policies.c.source)
        .select_from(models.outerjoin(policies, policies.c.sha256 == models.c.policy_sha256))
        .where(models.c.name == model)
    ).first()
    if row is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    if row.policy_sha256 is None:
        return None
    return PolicyBinding(row.policy_sha256, row.document, row.source)
