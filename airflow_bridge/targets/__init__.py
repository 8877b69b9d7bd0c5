"""The interface between the deploy, promote and rollback actions and a deployment target.

A target gets a :class:`Move` the gate allowed and reports an :class:`Outcome`; it implements
:class:`Target`. The actions (``actions/targets.py``, ``actions/deployment.py``) pick a target by name and
drive it; a target package (``kserve``) implements this interface and imports nothing of ``actions``,
so the package graph has no cycle (``tests/test_package_graph.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import ModelRecord, ModelVersion

__all__ = ["Move", "Outcome", "Refuser", "Target"]


@dataclass(frozen=True)
class Move:
    """A move the gate allowed, as a target sees it."""

    registry: str
    """The registry's URL (password hidden), recorded on the served object."""
    record: ModelRecord
    version: ModelVersion
    live: ModelVersion | None
    alias: str
    governing: GoverningPolicy
    serving: str | None = None
    canary_traffic_percent: int | None = None


@dataclass(frozen=True)
class Outcome:
    """Whether the target serves the version now; its endpoint, or why not."""

    ok: bool
    endpoint: str = ""
    reason: str = ""


class Refuser(Protocol):
    """What a target may do with the gate: refuse the move (audited, nothing changes)."""

    def refuse(self, version: ModelVersion, why: str, error: Exception | None = None) -> NoReturn: ...


class Target(Protocol):
    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        """Serve ``move.version``; returns the rollout (JSON) the other methods take. Refuses through ``gate``."""

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        """Block until the rollout is ready, failed or timed out."""

    def trigger(self, rollout: Mapping[str, Any]) -> Any | None:
        """A deferrable trigger that waits instead of ``wait`` (None: nothing to wait for)."""

    def restore(self, rollout: Mapping[str, Any]) -> None:
        """Undo ``apply``: serve again what was served before."""
