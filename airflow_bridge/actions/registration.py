"""The register action: a validated model becomes a new immutable version, bound to its team policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_bridge.actions.results import Registration, TrainingResult, ValidationReport
from airflow_bridge.exceptions import GateFailedError
from airflow_bridge.registry.records import UNGOVERNED_SOURCE

if TYPE_CHECKING:
    from airflow_bridge.registry.records import ModelCard, PolicyBinding, RunRef
    from airflow_bridge.registry.store import ModelRegistry

__all__ = ["UNGOVERNED_SOURCE", "default_binding", "register", "validation_record"]


def register(
    training: TrainingResult,
    report: ValidationReport | None,
    *,
    registry: ModelRegistry,
    actor: str,
    run: RunRef | None = None,
    card: ModelCard | None = None,
    model: str | None = None,
    spec_sha256: str = "",
    tags: Mapping[str, str] | None = None,
    max_versions_per_day: int | None = None,
    policy: PolicyBinding | None = None,
    reason: str = "",
) -> Registration:
    """Record the trained artifact with its metrics, gates, data and run; idempotent per Airflow task.

    ``policy`` binds the team policy to the model (audited when it changes); without one, the configured
    policy is bound, else none (``default_binding``). The registry refuses another team's registration,
    or a policy from another source than the bound one (``OwnershipError``), before writing anything.
    """
    if report is not None and not report.passed:
        raise GateFailedError("the validation report did not pass; refusing to register")
    name = model or training.model
    version = registry.register_version(
        name,
        training.artifact,
        estimator=training.estimator,
        task_kind=training.task_kind,
        params=dict(training.params),
        metrics=dict(report.metrics) if report else {},
        validation=validation_record(report),
        data=training.data.for_registry(),
        spec_sha256=spec_sha256,
        run=run,
        actor=actor,
        reason=reason,
        card=card,
        tags=dict(tags or {}),
        max_versions_per_day=max_versions_per_day,
        policy=policy or default_binding(),
    )
    return Registration(
        model=name,
        version=version.version,
        artifact=version.artifact,
        estimator=version.estimator,
        task_kind=version.task_kind,
        metrics=dict(version.metrics),
    )


def default_binding() -> PolicyBinding:
    """What a registration without a team policy binds: the configured policy (``[airflow_bridge]
    policy_file``, ``$AIRFLOW_BRIDGE_POLICY``), else the open policy as 'no team policy' (its protected
    aliases then fail closed)."""
    from airflow_bridge.governance.enforcement import configured_policy_path, load_policy_or_refuse
    from airflow_bridge.governance.identity import policy_identity
    from airflow_bridge.governance.policy import OPEN_POLICY
    from airflow_bridge.registry.records import binding_for

    configured = configured_policy_path()
    if configured is None:
        return binding_for(OPEN_POLICY, UNGOVERNED_SOURCE)
    return binding_for(load_policy_or_refuse(*configured), policy_identity(configured[0]))


def validation_record(report: ValidationReport | None) -> dict[str, Any]:
    """What the version keeps of its validation: every gate, the champion comparison and the model report."""
    if report is None:
        return {}
    champion = report.champion.to_json() if report.champion is not None else None
    record: dict[str, Any] = {"gates": [g.to_json() for g in report.gates], "champion": champion}
    for extra in ("warnings", "baseline", "uncertainty"):  # left out when empty: older records stay as they were
        if getattr(report, extra, None):
            record[extra] = getattr(report, extra)
    if report.report:
        record["report"] = report.report
    return record
