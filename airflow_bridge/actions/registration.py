"""The register action: a validated model becomes a new immutable version, bound to its team policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_bridge.actions.results import Registration, TrainingResult, ValidationReport
from airflow_bridge.exceptions import GateFailedError, PolicyViolationError

if TYPE_CHECKING:
    from airflow_bridge.registry.records import ModelCard, PolicyBinding, RunRef
    from airflow_bridge.registry.store import ModelRegistry

UNGOVERNED_SOURCE = "no team policy"
"""Source recorded when a spec with no team policy binds the open policy."""


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

    ``policy`` binds the team policy to the model (audited when it changes). A model governed by a team
    policy is never re-bound to the open policy of a spec folder that has none.
    """
    if report is not None and not report.passed:
        raise GateFailedError("the validation report did not pass; refusing to register")
    name = model or training.model
    if policy is not None and policy.source == UNGOVERNED_SOURCE:
        bound = _bound_or_none(registry, name)
        if bound is not None and bound.source != UNGOVERNED_SOURCE:
            raise PolicyViolationError(
                f"model '{name}' is governed by the team policy bound to it ({bound.source}); a spec with no "
                "team policy cannot register it. Put the spec next to its team's _policy.yaml"
            )
    version = registry.register_version(
        name,
        training.artifact,
        estimator=training.estimator,
        task_kind=training.task_kind,
        params=dict(training.params),
        metrics=dict(report.metrics) if report else {},
        validation=_validation_record(report),
        data=training.data.for_registry(),
        spec_sha256=spec_sha256,
        run=run,
        actor=actor,
        reason=reason,
        card=card,
        tags=dict(tags or {}),
        max_versions_per_day=max_versions_per_day,
        policy=policy,
    )
    return Registration(
        model=name,
        version=version.version,
        artifact=version.artifact,
        estimator=version.estimator,
        task_kind=version.task_kind,
        metrics=dict(version.metrics),
    )


def _bound_or_none(registry: ModelRegistry, model: str) -> PolicyBinding | None:
    from airflow_bridge.exceptions import NotFoundError

    try:
        return registry.bound_policy(model)
    except NotFoundError:
        return None


def _validation_record(report: ValidationReport | None) -> dict[str, Any]:
    """What the version keeps of its validation: every gate, the champion comparison and the model report."""
    if report is None:
        return {}
    record: dict[str, Any] = {"gates": report.gates, "champion": report.champion}
    if report.report:
        record["report"] = report.report
    return record
