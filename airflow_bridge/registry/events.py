"""Names of the audit trail's actions: one constant per kind of event, never a repeated literal."""

from __future__ import annotations

import enum


class AuditAction(enum.StrEnum):
    """What an audit event records (the ``action`` column)."""

    VERSION_CREATED = "version_created"
    MODEL_CARD_UPDATED = "model_card_updated"
    TAG_CHANGED = "tag_changed"
    VERSION_DELETED = "version_deleted"
    POLICY_BOUND = "policy_bound"
    POLICY_OVERRIDE = "policy_override"
    OWNERSHIP_TRANSFERRED = "ownership_transferred"
    MOVE_REFUSED = "move_refused"
    AUDIT_ANCHORED = "audit_anchored"
    # alias moves
    ALIAS_MOVED = "alias_moved"
    DEPLOYED = "deployed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    # approvals
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GRANTED = "approval_granted"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_REFUSED = "approval_refused"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    APPROVAL_SUPERSEDED = "approval_superseded"


ALIAS_MOVES = (AuditAction.ALIAS_MOVED, AuditAction.DEPLOYED, AuditAction.PROMOTED, AuditAction.ROLLED_BACK)
APPROVAL_DECISIONS = (
    AuditAction.APPROVAL_GRANTED,
    AuditAction.APPROVAL_REJECTED,
    AuditAction.APPROVAL_REFUSED,
    AuditAction.APPROVAL_TIMED_OUT,
)
"""Answers to an approval request (a refusal is an answer by someone not allowed: the request stays open)."""
APPROVAL_CLOSERS = (
    AuditAction.APPROVAL_GRANTED,
    AuditAction.APPROVAL_REJECTED,
    AuditAction.APPROVAL_TIMED_OUT,
    AuditAction.APPROVAL_SUPERSEDED,
)
"""Events that close a pending approval request."""

GOVERNING_ACTIONS = (
    AuditAction.MODEL_CARD_UPDATED,
    AuditAction.OWNERSHIP_TRANSFERRED,
    AuditAction.POLICY_BOUND,
)
"""The events that set a model's owner, team and policy binding (what ``trust.model_problem`` checks); a
partial index keeps the newest of a model's found in one step, however many versions it has."""

DECISIONS_BY_APPROVERS = (AuditAction.APPROVAL_GRANTED, AuditAction.APPROVAL_REJECTED)
"""Answers only an approver of the model's team may give (``record_decision`` checks who gives them)."""
NOTES = (
    AuditAction.MOVE_REFUSED,
    AuditAction.APPROVAL_REQUESTED,
    AuditAction.APPROVAL_REFUSED,
    AuditAction.APPROVAL_SUPERSEDED,
    AuditAction.APPROVAL_TIMED_OUT,
    AuditAction.AUDIT_ANCHORED,
)
"""Events that change nothing and grant nothing: the only ones ``ModelRegistry.record_event`` writes.

Everything else (versions, moves, approvals, bindings, overrides) is written by the registry call that
makes the change, after that call's checks.
"""
