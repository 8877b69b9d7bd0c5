"""The ``local`` deployment target: the registry alias is the deployment, ``airflow-bridge serve`` reads it.

It has no settings and nothing to apply: once the gate admits a move, the alias moving is the
deployment, and every ``serve`` process following that alias switches to the new version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from airflow_bridge.targets import Move, Outcome, Refuser

if TYPE_CHECKING:
    from airflow_bridge.spec.models import Experiment
    from airflow_bridge.spec.semantics import Finding, SpecContext

LOCAL_TARGET = "local"


def local_endpoint(model: str, alias: str) -> str:
    """Where target ``local`` serves ``model@alias``: the registry alias itself."""
    return f"registry://{model}@{alias}"


class LocalSettings(BaseModel):
    """``local`` takes no settings."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LocalTarget:
    """``local``: the registry alias is the deployment (``airflow-bridge serve`` reads it)."""

    name = LOCAL_TARGET
    settings = LocalSettings
    docs = "docs/targets.md"

    def check_spec(self, spec: Experiment, settings: Any, context: SpecContext) -> Iterable[Finding]:
        return ()

    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        return {"endpoint": local_endpoint(move.record.name, move.alias)}

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        return Outcome(True, str(rollout["endpoint"]))

    def trigger(self, rollout: Mapping[str, Any]) -> Any | None:
        return None

    def restore(self, rollout: Mapping[str, Any]) -> None:
        return None


target = LocalTarget()
