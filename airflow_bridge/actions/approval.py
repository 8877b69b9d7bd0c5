"""Approval actions: request, answer (grant or reject), time out, refuse and supersede — always audited.

Who may answer is decided by one rule (``governance.enforcement.approval_refusal``): an approver of the
model's team under the policy that governs the model, never its owner or the user who produced the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_bridge.actions.results import ApprovalDecision
from airflow_bridge.exceptions import ConflictError, PolicyViolationError
from airflow_bridge.registry.events import APPROVAL_CLOSERS, AuditAction

if TYPE_CHECKING:
    from airflow_bridge.registry.records import AuditEvent, RunRef
    from airflow_bridge.registry.store import ModelRegistry

APPROVE, REJECT = "Approve", "Reject"


def request_approval(
    registry: ModelRegistry,
    *,
    model: str,
    version: int,
    alias: str,
    requested_by: str,
    approvers: Sequence[str],
    run: RunRef | None = None,
) -> int:
    """Open an approval request; older pending requests for the same alias are closed as superseded."""
    close_superseded(registry, model=model, alias=alias, newer=version, actor=requested_by, run=run)
    return registry.record_event(
        AuditAction.APPROVAL_REQUESTED,
        actor=requested_by,
        model=model,
        version=version,
        alias=alias,
        run=run,
        after={"approvers": list(approvers)},
        reason=f"moving '{alias}' to v{version} needs approval",
    )


def close_superseded(
    registry: ModelRegistry, *, model: str, alias: str, newer: int, actor: str, run: RunRef | None = None
) -> list[int]:
    """Close pending requests of versions older than ``newer`` for ``alias``; returns those versions."""
    closed = []
    for request in registry.pending_approvals(model):
        if request.alias == alias and request.version is not None and request.version < newer:
            registry.record_event(
                AuditAction.APPROVAL_SUPERSEDED,
                actor=actor,
                model=model,
                version=request.version,
                alias=alias,
                run=run,
                reason=f"superseded by v{newer}",
                after={"superseded_by": newer, "request_seq": request.seq},
            )
            closed.append(request.version)
    return closed


def pending_request(registry: ModelRegistry, model: str, version: int, alias: str) -> AuditEvent | None:
    """The open approval request of ``model`` v``version`` for ``alias``, if any."""
    return next(
        (e for e in registry.pending_approvals(model) if e.version == version and e.alias == alias),
        None,
    )


def last_answer(registry: ModelRegistry, model: str, version: int, alias: str) -> AuditEvent | None:
    """The newest event that closed an approval of ``model`` v``version`` for ``alias`` (granted, rejected...)."""
    answers = [e for e in registry.approval_events(model, version, alias) if e.action in APPROVAL_CLOSERS]
    return answers[-1] if answers else None


COMMENT_MAX_CHARS = 2000
"""The longest approver comment the audit trail keeps (the approval form and the CLI say so)."""


def checked_comment(comment: str | None) -> str:
    """The approver's comment, stripped; ``RequestError`` (nothing recorded) when it is too long."""
    text = (comment or "").strip()
    if len(text) > COMMENT_MAX_CHARS:
        from airflow_bridge.exceptions import RequestError

        raise RequestError(
            f"the comment is {len(text)} characters long; at most {COMMENT_MAX_CHARS} are kept in the audit trail: "
            "shorten it (link to a document for more); nothing was recorded"
        )
    return text


def decide(
    registry: ModelRegistry,
    *,
    model: str,
    version: int,
    alias: str,
    responder: str,
    approve: bool,
    run: RunRef | None = None,
    via: str = "",
    comment: str = "",
) -> ApprovalDecision:
    """Answer the approval of ``model`` v``version`` for ``alias`` as ``responder``, with an optional comment.

    Who may answer is the registry's rule (``ModelRegistry.record_decision``: an approver of the model's
    team under its governing policy, never an author). Refused (recorded, ``PolicyViolationError``) when
    the responder may not answer or the artifact no longer matches its checksum; ``ConflictError`` when the
    approval was already answered; ``RequestError`` for a comment over ``COMMENT_MAX_CHARS`` (nothing is
    recorded). A version that was never requested can be approved directly (``models approve``).
    """
    from airflow_bridge.artifacts import verify_artifact
    from airflow_bridge.exceptions import AuditMismatchError, ChecksumMismatchError

    note = checked_comment(comment)
    request = pending_request(registry, model, version, alias)
    if request is None:
        answered = last_answer(registry, model, version, alias)
        if answered is not None:
            when = f"{answered.created_at:%Y-%m-%d %H:%M:%S} UTC"
            raise ConflictError(
                f"the approval of {model} v{version} for '{alias}' was already answered: "
                f"{answered.action.removeprefix('approval_')} by {answered.who} at {when}"
            )
    try:
        if approve:
            chosen = registry.trusted_version(model, version)
            verify_artifact(chosen.artifact)
        action = AuditAction.APPROVAL_GRANTED if approve else AuditAction.APPROVAL_REJECTED
        chose = APPROVE if approve else REJECT
        reason = f"{responder} chose {chose}" + (f" ({via})" if via else "") + (f": {note}" if note else "")
        seq = registry.record_decision(
            action,
            actor=responder,
            model=model,
            version=version,
            alias=alias,
            run=run,
            reason=reason,
            after={
                "decision": [chose],
                "approver": responder,
                "request_seq": request.seq if request else None,
                "comment": note or None,
            },
        )
    except (PolicyViolationError, ChecksumMismatchError, AuditMismatchError) as exc:
        why = str(exc).removeprefix(f"approval of {model} v{version} for '{alias}' refused: ")
        why = why.removesuffix("; nothing changed")
        refuse(registry, model=model, version=version, alias=alias, responder=responder, reason=why, run=run)
        raise PolicyViolationError(
            f"approval of {model} v{version} for '{alias}' refused: {why}; nothing changed"
        ) from None
    return ApprovalDecision(model, version, alias, action.removeprefix("approval_"), responder, reason, seq)


def refuse(
    registry: ModelRegistry,
    *,
    model: str,
    version: int,
    alias: str,
    responder: str,
    reason: str,
    run: RunRef | None = None,
) -> ApprovalDecision:
    """Record an answer that was not allowed; the request stays open for an allowed approver."""
    seq = registry.record_event(
        AuditAction.APPROVAL_REFUSED,
        actor=responder or "unknown",
        model=model,
        version=version,
        alias=alias,
        run=run,
        reason=reason,
        after={"decision": "refused", "approver": responder},
    )
    return ApprovalDecision(model, version, alias, "refused", responder or None, reason, seq)


def time_out(
    registry: ModelRegistry, *, model: str, version: int, alias: str, run: RunRef | None = None
) -> ApprovalDecision:
    """Nobody answered in time: the request is closed, nothing moves."""
    seq = registry.record_event(
        AuditAction.APPROVAL_TIMED_OUT,
        actor="airflow",
        model=model,
        version=version,
        alias=alias,
        run=run,
        reason="no answer in time",
        after={"decision": "timeout"},
    )
    return ApprovalDecision(model, version, alias, "timed_out", None, "no answer in time", seq)
