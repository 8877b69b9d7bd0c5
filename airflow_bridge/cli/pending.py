"""``run --approve-as`` after a run stopped at its approval: answer the waiting version, never train it twice.

A version is "of this spec and data" when its recorded spec sha256 and training-data sha256 equal the
spec file's and the data file's now. Anything else (an edited spec, new data) is a new run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from airflow_bridge.cli.run_summary import RunSummary
    from airflow_bridge.registry.store import ModelRegistry
    from airflow_bridge.spec.loader import LoadedSpec


@dataclass(frozen=True)
class PendingVersion:
    registry: ModelRegistry
    model: str
    version: int
    alias: str
    target: str
    requested_at: dt.datetime
    approvers: list[str]
    dag_id: str | None
    run_id: str | None
    target_settings: dict[str, Any]


def find_pending_version(loaded: LoadedSpec, home: Path) -> PendingVersion | None:
    """The version of this spec and data that waits for approval in the registry ``run`` uses, if any."""
    from airflow_bridge.exceptions import NotFoundError
    from airflow_bridge.resolution import open_registry

    spec = loaded.spec
    if spec is None or spec.deployment is None:
        return None
    data_sha = _local_sha256(spec.data.training.uri)
    if data_sha is None:
        return None
    registry = open_registry(spec.registry.conn_id, home=home)
    try:
        requests = registry.pending_approvals(spec.registered_model)
    except NotFoundError:
        return None
    for request in reversed(requests):  # newest first
        if request.alias != spec.deployment.alias or request.version is None:
            continue
        version = registry.get_version(spec.registered_model, request.version)
        if version.spec_sha256 == loaded.sha256 and version.data.get("sha256") == data_sha:
            return PendingVersion(
                registry,
                spec.registered_model,
                version.version,
                request.alias,
                spec.deployment.target,
                request.created_at,
                list((request.after or {}).get("approvers") or []),
                version.run.dag_id,
                version.run.run_id,
                spec.deployment.settings,
            )
    return None


def resume_after_approval(pending: PendingVersion, user: str, *, approve: bool, out: Console) -> RunSummary:
    """Answer the pending approval as ``user`` and, when granted, deploy: the actions the DAG would run."""
    from airflow_bridge.actions.approval import decide
    from airflow_bridge.actions.deployment import move
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.names import TaskId
    from airflow_bridge.cli.run_summary import RunSummary
    from airflow_bridge.exceptions import BridgeError
    from airflow_bridge.ml.gates import champion_of, gates_of
    from airflow_bridge.registry.records import RunRef

    registry, name, number = pending.registry, pending.model, pending.version
    version = registry.get_version(name, number)
    out.print(f"  ↻ {escape(name)} v{number} of this spec and data waits for approval: answering it, no new training")
    summary = RunSummary(
        "failed",
        name,
        number,
        resumed=True,
        dag_id=pending.dag_id,
        run_id=pending.run_id,
        metrics=version.metrics,
        gates=gates_of(version.validation.get("gates")),
        champion=champion_of(version.validation.get("champion")),
        artifact={"uri": version.artifact.uri, "sha256": version.artifact.sha256, "size": version.artifact.size},
    )
    try:
        decision = decide(
            registry,
            model=name,
            version=number,
            alias=pending.alias,
            responder=user,
            approve=approve,
            run=RunRef(pending.dag_id, pending.run_id, TaskId.APPROVE),
            via="airflow-bridge run",
        )
    except BridgeError as exc:
        summary.approval = {"status": "refused", "by": user, "detail": str(exc), "approvers": pending.approvers}
        summary.errors.append(str(exc))
        out.print(f"  [red]✗ approval by {escape(user)} refused[/]: {escape(str(exc))}")
        return summary
    summary.approval = {"status": decision.decision, "by": user}
    summary.tasks[TaskId.APPROVE] = "success"
    if not decision.granted:
        out.print(f"  [red]✗ {escape(name)} v{number} rejected by {escape(user)}[/]: not deployed")
        summary.state = "success"
        summary.tasks[TaskId.DEPLOY] = "skipped"
        return summary
    try:
        request = MoveRequest(
            model=name,
            version=number,
            alias=pending.alias,
            target=pending.target,
            settings=pending.target_settings,
            reason=f"deployed by airflow-bridge run after {user}'s approval",
        )
        result = move(registry, request, actor=user, run=RunRef(pending.dag_id, pending.run_id, TaskId.DEPLOY))
    except BridgeError as exc:
        summary.errors.append(str(exc))
        summary.tasks[TaskId.DEPLOY] = "failed"
        out.print(f"  [red]✗ deploy failed[/]: {escape(str(exc))}")
        return summary
    summary.state, summary.deployment = "success", result
    summary.tasks[TaskId.DEPLOY] = "success"
    was = f"v{result.previous_version}" if result.previous_version else "nothing"
    out.print(f"  [green]✓[/] approved by {escape(user)}; '{escape(pending.alias)}' → v{number} (was {was})")
    return summary


def _local_sha256(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("", "file"):
        return None
    try:
        with open(parts.path if parts.scheme else uri, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
