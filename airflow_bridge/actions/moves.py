"""What a move of an alias is asked for (:class:`MoveRequest`) and what it is between its two halves
(:class:`PendingMove`).

Every door builds one ``MoveRequest``: the deploy and rollback operators, ``airflow-bridge models
promote``/``rollback`` and the Models page's API; :mod:`airflow_bridge.actions.deployment` takes it
through the gate and the target. Who asks is not part of the request: each door passes the actor it
authenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_bridge.actions.results import _XComForm
from airflow_bridge.exceptions import BridgeError
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.serving.target import LOCAL_TARGET
from airflow_bridge.targets import Outcome

MOVES = (AuditAction.DEPLOYED, AuditAction.PROMOTED, AuditAction.ROLLED_BACK)


@dataclass(frozen=True)
class MoveRequest(_XComForm):
    """One move of ``model@alias`` as a door asks for it.

    ``version`` None with ``action`` rolled_back: back to the version the alias pointed at before.
    ``expected``: the version the alias must still point at when the move lands (None: whatever it
    points at when the move starts). ``settings``: the target's own (``serving`` for ``kserve``),
    checked against its settings model by the gate. ``team_only``: only the model's team may make the
    move (the Models page's rule).
    """

    model: str
    alias: str = "production"
    version: int | None = None
    action: str = AuditAction.DEPLOYED
    target: str = LOCAL_TARGET
    settings: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    expected: int | None = None
    enforce_policy: bool = True
    team_only: bool = False

    def __post_init__(self) -> None:
        if self.action not in MOVES:
            raise BridgeError(f"a move is one of {', '.join(MOVES)}, not '{self.action}'")
        if self.version is None and self.action != AuditAction.ROLLED_BACK:
            raise BridgeError(f"a {self.action} move of {self.model}@{self.alias} needs a version")


def outcome_of(event: Mapping[str, Any], rollout: Mapping[str, Any]) -> Outcome:
    """The outcome a readiness trigger's event reports."""
    if event.get("status") == "success":
        return Outcome(True, str(event.get("url") or rollout.get("endpoint") or ""))
    return Outcome(False, reason=str(event.get("reason") or f"the target answered {dict(event)}"))


@dataclass(frozen=True)
class PendingMove(_XComForm):
    """A move the gate allowed and the target applied, waiting for the target (crosses a deferral as XCom)."""

    versioned = True

    model: str
    version: int
    alias: str
    action: str
    actor: str
    reason: str
    target: str
    expected: int | None
    """The version the alias pointed at when the move started (compare-and-set when it lands)."""
    previous_version: int | None
    rollout: dict[str, Any] = field(default_factory=dict)
    run: list[str | None] | None = None
    approval: dict[str, Any] | None = None
    policy_override: bool = False
