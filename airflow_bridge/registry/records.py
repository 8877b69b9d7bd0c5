"""Plain records the registry returns: no database objects leak to callers."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_bridge.artifacts import ArtifactRef

if TYPE_CHECKING:
    from airflow_bridge.governance.policy import Policy


@dataclass(frozen=True)
class RunRef:
    """The Airflow task that caused a change (all None for manual CLI actions)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    @property
    def is_set(self) -> bool:
        return bool(self.dag_id and self.run_id and self.task_id)


UNGOVERNED_SOURCE = "no team policy"
"""The source of a binding to the open policy (a spec folder with no ``_policy.yaml``): governed as if
unbound, by the configured policy or none (protected aliases then fail closed)."""


@dataclass(frozen=True)
class PolicyBinding:
    """The team policy a model is governed by: its canonical sha256, its parsed document and where it came
    from (a path or URL). Stored once per sha256, so every model bound to the same policy shares it."""

    sha256: str
    document: dict[str, Any]
    source: str


@dataclass(frozen=True)
class ModelCard:
    description: str = ""
    owner: str = ""
    team: str = ""
    intended_use: str = ""
    limitations: str = ""


@dataclass(frozen=True)
class ModelRecord:
    name: str
    latest_version: int
    card: ModelCard
    created_at: dt.datetime
    aliases: dict[str, int] = field(default_factory=dict)
    deleted_at: dt.datetime | None = None
    policy_sha256: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    artifact: ArtifactRef
    estimator: str
    task_kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]
    spec_sha256: str
    run: RunRef
    created_by: str
    created_at: dt.datetime
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    deleted_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["deleted_at"] = self.deleted_at.isoformat() if self.deleted_at else None
        out["aliases"] = list(self.aliases)
        return out


@dataclass(frozen=True)
class Candidate:
    """A trained candidate with its gates, recorded whether or not it passed; ``version`` is the version
    registered from the same run (None: never registered)."""

    candidate_id: str
    model: str
    run: RunRef
    spec_sha256: str
    estimator: str
    task_kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]
    artifact_sha256: str
    artifact_uri: str
    passed: bool
    recorded_by: str
    created_at: dt.datetime
    principal: str | None = None
    search: dict[str, Any] | None = None
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class AliasMove:
    """The result of moving an alias: what it pointed at before and after."""

    model: str
    alias: str
    previous_version: int | None
    version: int


@dataclass(frozen=True)
class Deployment:
    model: str
    version: int
    alias: str
    target: str
    endpoint: str
    action: str
    run: RunRef
    actor: str
    created_at: dt.datetime


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    created_at: dt.datetime
    actor: str
    action: str
    model: str | None
    version: int | None
    alias: str | None
    reason: str
    run: RunRef
    before: Any
    after: Any
    prev_hash: str
    hash: str
    principal: str | None = None
    """Who really ran the writer when ``actor`` is a name the caller gave (``os:root``, ``airflow:dana``)."""
    signed: bool = False
    """Whether the event carries a signature (checked against the audit key by ``audit verify``)."""
    stream: str = ""
    """The chain the event belongs to: its model's, or '' (events of no model, and older events)."""
    stream_seq: int | None = None
    """Its position in that chain."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out

    @property
    def who(self) -> str:
        """The actor, with the principal beside it when they differ: ``dana (os:root)``."""
        if self.principal and self.principal.split(":", 1)[-1] != self.actor:
            return f"{self.actor} ({self.principal})"
        return self.actor


def binding_for(policy: Policy, source: str) -> PolicyBinding:
    """What the registry stores to bind ``policy`` to a model at registration."""
    return PolicyBinding(sha256=policy.canonical_sha256(), document=policy.document(), source=source)
