"""The run-time interface between the deploy, promote and rollback actions and a deployment target.

A target gets a :class:`Move` the gate allowed and reports an :class:`Outcome`; it implements
:class:`Target`. Targets are plug-ins found through the ``airflow_bridge.targets`` entry points
(:mod:`airflow_bridge.spec.targets`, where their spec side is); :func:`target_for` hands the actions
the one a move names. A target package (``kserve``, ``serving`` for ``local``, or a third party's)
implements this interface and imports nothing of ``actions``, so the package graph has no cycle
(``tests/test_package_graph.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

from airflow_bridge.spec.targets import TargetPlugin, installed_targets

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import ModelRecord, ModelVersion

__all__ = ["Move", "Outcome", "Refuser", "Target", "target_for"]


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
    settings: BaseModel
    """The target's own settings (an instance of its ``settings`` model), already checked."""


@dataclass(frozen=True)
class Outcome:
    """Whether the target serves the version now; its endpoint, or why not."""

    ok: bool
    endpoint: str = ""
    reason: str = ""


class Refuser(Protocol):
    """What a target may do with the gate: refuse the move (audited, nothing changes)."""

    def refuse(self, version: ModelVersion, why: str, error: Exception | None = None) -> NoReturn: ...


class Target(TargetPlugin, Protocol):
    """A deployment target: its spec side (:class:`~airflow_bridge.spec.targets.TargetPlugin`) and these."""

    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        """Serve ``move.version``; returns the rollout (JSON) the other methods take. Refuses through ``gate``."""

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        """Block until the rollout is ready, failed or timed out."""

    def trigger(self, rollout: Mapping[str, Any]) -> Any | None:
        """A deferrable trigger that waits instead of ``wait`` (None: nothing to wait for)."""

    def restore(self, rollout: Mapping[str, Any]) -> None:
        """Undo ``apply``: serve again what was served before."""


def target_for(name: str) -> Target:
    """The installed target called ``name`` (discovery checked it has a target's methods)."""
    return cast("Target", installed_targets().get(name))
