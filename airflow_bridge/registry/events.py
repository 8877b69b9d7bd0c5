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
    MOVE_REFUSED = "move_refused"
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
