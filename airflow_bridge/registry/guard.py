"""The governance rules the registry applies inside its own write transactions.

Every alias move and every approval decision is checked here, under the model's lock, whoever calls the
registry: the actions check first (for a clear, audited refusal), and the registry checks again when it
writes, so no Python call moves a protected alias or records an approval past the rules. The rules
themselves are ``governance.enforcement``'s; the rows they read are checked against the audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import NotFoundError, PolicyViolationError
from airflow_bridge.registry import approvals, audit, policies, trust
from airflow_bridge.registry.events import APPROVAL_CLOSERS, AuditAction
from airflow_bridge.registry.tables import aliases, model_versions, models

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.registry.records import PolicyBinding, RunRef


@dataclass(frozen=True)
class Clearance:
    """Why a move may happen: not protected, an approval (its event), or an override the policy allows."""

    protected: bool
    approval_seq: int | None = None
    approver: str | None = None
    reason: str = ""
    override: bool = False
    source: str = ""
    """Where the governing policy came from (shown in messages)."""


def governing(conn: Connection, model: str) -> GoverningPolicy:
    """The policy that governs ``model``: its bound team policy (document checked against its sha256),
    else the configured one, else none (protected aliases then fail closed)."""
    return governing_from(policies.bound(conn, model), model)


def model_row(conn: Connection, model: str, *, lock: bool) -> Row[Any]:
    query = sa.select(models).where(models.c.name == model)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"model '{model}' is not in the registry")
    return row


def version_row(conn: Connection, model_id: int, model: str, version: int) -> Row[Any]:
    row = conn.execute(
        sa.select(model_versions).where(model_versions.c.model_id == model_id, model_versions.c.version == version)
    ).first()
    if row is None:
        raise NotFoundError(f"model '{model}' has no version {version}")
    return row


def current_version(conn: Connection, model_id: int, alias: str) -> int | None:
    return conn.execute(
        sa.select(model_versions.c.version)
        .select_from(aliases.join(model_versions, aliases.c.version_id == model_versions.c.id))
        .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
    ).scalar()


def newest_answer(conn: Connection, model: str, version: int, alias: str) -> Row[Any] | None:
    """The newest event that closed an approval of ``model`` v``version`` for ``alias``."""
    return approvals.newest(conn, model, version, alias, APPROVAL_CLOSERS)


def clear_move(
    conn: Connection,
    model: str,
    version: int,
    alias: str,
    *,
    override: bool = False,
    lock: bool = False,
) -> Clearance:
    """Check a move of ``alias`` to ``version`` against the rows the chain vouches for and the governing policy.

    Raises ``AuditMismatchError`` for a row the chain does not explain, ``PolicyViolationError`` when the
    policy refuses (no granted approval by an allowed approver; an override it does not allow).
    """
    from airflow_bridge.governance.enforcement import approval_refusal, authors

    row = model_row(conn, model, lock=lock)
    chosen = version_row(conn, row.id, model, version)
    trust.require(trust.model_problem(conn, row))
    trust.require(trust.version_problem(conn, model, chosen))
    trust.require(trust.alias_problem(conn, model, alias, current_version(conn, row.id, alias)))
    policy = governing(conn, model)
    team = row.team or ""
    if not policy.protects(team, alias):
        return Clearance(False, source=policy.source)
    if override:
        if policy.policy is None or not policy.policy.allows_enforcement_opt_out(team):
            raise PolicyViolationError(
                f"the team policy ({policy.source}) forbids turning enforcement off for '{alias}' of {model}"
            )
        return Clearance(True, override=True, source=policy.source)
    who = authors(row.owner, chosen.created_by)
    if policy.policy is None:
        from airflow_bridge.governance.enforcement import no_policy_message

        raise PolicyViolationError(no_policy_message(model, alias))
    answer = newest_answer(conn, model, version, alias)
    if answer is None or answer.action != AuditAction.APPROVAL_GRANTED:
        state = answer.action.removeprefix("approval_") if answer is not None else "never approved"
        approvers = policy.policy.approvers_for(team, who)
        raise PolicyViolationError(
            f"v{version} has no recorded approval for '{alias}' ({state}); it needs one by "
            f"{' or '.join(approvers) or 'an approver of team ' + repr(team)}: "
            f"airflow-bridge models approve {model} {version} --alias {alias}"
        )
    trust.require(trust.event_problem(conn, answer))
    approver = str((answer.after or {}).get("approver") or answer.actor)
    why = approval_refusal(policy.policy, team, who, approver)
    if why is not None:
        raise PolicyViolationError(f"the approval by '{approver}' does not count under {policy.source}: {why}")
    return Clearance(True, int(answer.seq), approver, answer.reason, source=policy.source)


def record_override(
    conn: Connection,
    clearance: Clearance,
    *,
    model: str,
    version: int,
    alias: str,
    actor: str,
    reason: str,
    run: RunRef,
    now: Any,
    action: str,
) -> None:
    """The ``policy_override`` event of a move made with enforcement off (in the move's transaction)."""
    if clearance.override:
        audit.append_event(
            conn,
            actor=actor,
            action=AuditAction.POLICY_OVERRIDE,
            now=now,
            model=model,
            version=version,
            alias=alias,
            reason=reason or f"{action} with enforce_policy=False",
            run=run,
            after={"policy": clearance.source, "action": str(action)},
        )


def clear_decision(conn: Connection, model: str, version: int, alias: str, *, approver: str, approve: bool) -> None:
    """Check that ``approver`` may answer the approval of ``model`` v``version`` (granting needs a version the
    chain vouches for); raises ``PolicyViolationError`` or ``AuditMismatchError``."""
    from airflow_bridge.governance.enforcement import approval_refusal, authors

    row = model_row(conn, model, lock=True)
    chosen = version_row(conn, row.id, model, version)
    trust.require(trust.model_problem(conn, row))
    if approve:
        trust.require(trust.version_problem(conn, model, chosen))
    policy = governing(conn, model)
    why = approval_refusal(policy.policy, row.team or "", authors(row.owner, chosen.created_by), approver)
    if why is not None:
        raise PolicyViolationError(f"approval of {model} v{version} for '{alias}' refused: {why}; nothing changed")


def transfer(
    conn: Connection, model: str, *, team: str, binding: PolicyBinding, actor: str, reason: str, run: RunRef
) -> None:
    """Give ``model`` to ``team`` under ``binding``: ``actor`` must approve for the current team under the
    governing policy and for ``team`` under the new one. One audited ``ownership_transferred`` event."""
    from airflow_bridge.registry.locks import dialect_insert, utcnow
    from airflow_bridge.registry.tables import policies as policy_table

    row = model_row(conn, model, lock=True)
    trust.require(trust.model_problem(conn, row))
    if not reason.strip():
        raise PolicyViolationError("a transfer needs a reason (--reason): it is kept in the audit trail")
    old = governing(conn, model)
    new = governing_from(binding, model)
    for label, policy, of_team in (("current", old, row.team or ""), ("new", new, team)):
        rules = policy.policy.team(of_team) if policy.policy is not None else None
        if rules is None or actor not in rules.approvers:
            raise PolicyViolationError(
                f"transfer of '{model}' from team '{row.team}' to '{team}' refused: '{actor}' is not an approver of "
                f"team '{of_team}' under the {label} policy ({policy.source}); an approver of both teams transfers "
                "a model; nothing changed"
            )
    now = utcnow()
    conn.execute(
        dialect_insert(conn)(policy_table)
        .values(sha256=binding.sha256, document=binding.document, source=binding.source, created_at=now)
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    conn.execute(
        models.update()
        .where(models.c.id == row.id)
        .values(team=team, policy_sha256=binding.sha256, policy_source=binding.source)
    )
    audit.append_event(
        conn,
        actor=actor,
        action=AuditAction.OWNERSHIP_TRANSFERRED,
        now=now,
        model=model,
        reason=reason,
        run=run,
        before={"team": row.team, "owner": row.owner, "sha256": row.policy_sha256, "source": row.policy_source},
        after={"team": team, "owner": row.owner, "sha256": binding.sha256, "source": binding.source},
    )


def governing_from(binding: PolicyBinding | None, model: str) -> GoverningPolicy:
    """The policy that governs ``model`` given its binding: the bound team policy, else the configured one
    (``[airflow_bridge] policy_file``, ``$AIRFLOW_BRIDGE_POLICY``), else none.

    A binding to no team policy (a spec folder without ``_policy.yaml``) governs like no binding: the
    configured policy or none, so protected aliases fail closed; its stored document is never used.
    """
    from airflow_bridge.governance.enforcement import GoverningPolicy, configured_policy_path, load_policy_or_refuse
    from airflow_bridge.registry.records import UNGOVERNED_SOURCE

    if binding is not None and binding.source != UNGOVERNED_SOURCE:
        policy = _bound(binding, model)
        return GoverningPolicy(policy, f"bound to '{model}' at registration ({binding.source})", binding.sha256)
    configured = configured_policy_path()
    if configured is not None:
        policy = load_policy_or_refuse(*configured)
        return GoverningPolicy(policy, f"{configured[1]} {configured[0]}", policy.canonical_sha256())
    return GoverningPolicy(None, "none")


def _bound(binding: PolicyBinding, model: str) -> Policy:
    from pydantic import ValidationError

    from airflow_bridge.governance.policy import Policy

    try:
        return Policy.model_validate(binding.document)
    except ValidationError as exc:
        raise PolicyViolationError(
            f"the policy bound to '{model}' ({binding.source}) no longer validates: {exc.errors()[0]['msg']}"
        ) from None
