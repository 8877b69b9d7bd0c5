"""Deployment targets behind the deploy, promote and rollback actions.

A target acts only after the gate allowed a move: ``apply`` makes the target serve the version (it may
still refuse, through the gate, so the refusal is audited), ``wait``/``trigger`` find out whether it
came up, ``restore`` undoes ``apply`` when it did not. The alias moves only once the target is ready.
``local`` serves from the registry itself and has nothing to do; ``kserve`` applies an InferenceService.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_bridge.actions.names import KSERVE_TARGET, LOCAL_TARGET, local_endpoint
from airflow_bridge.actions.results import _XComForm
from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.targets import Move, Outcome, Refuser, Target

TARGETS = (LOCAL_TARGET, KSERVE_TARGET)


class LocalTarget:
    """``local``: the registry alias is the deployment (``airflow-bridge serve`` reads it)."""

    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        if move.serving is not None or move.canary_traffic_percent is not None:
            gate.refuse(move.version, "serving tiers and canary traffic need target 'kserve', not 'local'")
        return {"endpoint": local_endpoint(move.record.name, move.alias)}

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        return Outcome(True, str(rollout["endpoint"]))

    def trigger(self, rollout: Mapping[str, Any]) -> Any | None:
        return None

    def restore(self, rollout: Mapping[str, Any]) -> None:
        return None


def target_for(name: str) -> Target:
    """The target called ``name``; an unknown name is a policy violation (nothing is checked or moved)."""
    if name == LOCAL_TARGET:
        return LocalTarget()
    if name == KSERVE_TARGET:
        from airflow_bridge.kserve.target import KServeTarget

        return KServeTarget()
    raise PolicyViolationError(f"unknown deployment target '{name}'; available: {', '.join(TARGETS)}")


def outcome_of(event: Mapping[str, Any], rollout: Mapping[str, Any]) -> Outcome:
    """The outcome a readiness trigger's event reports."""
    if event.get("status") == "success":
        return Outcome(True, str(event.get("url") or rollout.get("endpoint") or ""))
    return Outcome(False, reason=str(event.get("reason") or f"the target answered {dict(event)}"))


@dataclass(frozen=True)
class PendingMove(_XComForm):
    """A move the gate allowed and the target applied, waiting for the target (crosses a deferral as XCom)."""

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
