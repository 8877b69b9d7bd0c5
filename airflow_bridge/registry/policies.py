"""The team policy a model is bound to: stored once per sha256, the binding audited like any change.

A model's binding names where its policy lives (``source``). Only a policy from that same source rebinds
it (an edited ``_policy.yaml`` reviewed in git); a policy from anywhere else is refused, so another
folder cannot put a model under rules of its own. Ownership moves only by ``transfer`` (audited).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import NotFoundError, OwnershipError
from airflow_bridge.registry import audit
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.locks import dialect_insert
from airflow_bridge.registry.records import UNGOVERNED_SOURCE, PolicyBinding, RunRef
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
    False if it already was bound to it. A policy from another source than the bound one is refused."""
    old = model_row.policy_sha256
    refusal = source_refusal(model, model_row, binding)
    if refusal:
        raise OwnershipError(refusal)
    if old == binding.sha256 and model_row.policy_source == binding.source:
        return False
    conn.execute(
        dialect_insert(conn)(policies)
        .values(sha256=binding.sha256, document=binding.document, source=binding.source, created_at=now)
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    conn.execute(
        models.update()
        .where(models.c.id == model_row.id)
        .values(policy_sha256=binding.sha256, policy_source=binding.source)
    )
    audit.append_event(
        conn,
        actor=actor,
        action=AuditAction.POLICY_BOUND,
        now=now,
        model=model,
        reason=reason,
        run=run,
        before={"sha256": old, "source": model_row.policy_source},
        after={"sha256": binding.sha256, "source": binding.source},
    )
    return True


def source_refusal(model: str, model_row: Row[Any], binding: PolicyBinding) -> str | None:
    """Why ``binding`` may not govern ``model`` (None: it may).

    The bound source decides: the same source may change the policy; a model bound to no team policy may
    be adopted by one; nothing else rebinds it, and a team policy is never dropped for none.
    """
    bound = model_row.policy_source
    if bound is None or bound in (binding.source, UNGOVERNED_SOURCE):
        return None
    if binding.source == UNGOVERNED_SOURCE:
        return (
            f"model '{model}' is governed by the team policy {bound}; a spec or operator with no team policy "
            "cannot register it. Put the spec next to its team's _policy.yaml"
        )
    return (
        f"model '{model}' is governed by the policy {bound} of team '{model_row.team}'; the policy {binding.source} "
        "may not govern it. Register under another model name (registry.model), or have an approver of both "
        f"teams transfer it: airflow-bridge models transfer {model} --team TEAM --policy FILE"
    )


def bound(conn: Connection, model: str) -> PolicyBinding | None:
    """The policy ``model`` is bound to, or None; NotFoundError for an unknown model."""
    row = conn.execute(
        sa.select(models.c.policy_sha256, models.c.policy_source, policies.c.document, policies.c.source)
        .select_from(models.outerjoin(policies, policies.c.sha256 == models.c.policy_sha256))
        .where(models.c.name == model)
    ).first()
    if row is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    if row.policy_sha256 is None:
        return None
    return PolicyBinding(row.policy_sha256, row.document, row.policy_source or row.source)
