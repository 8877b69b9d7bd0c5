"""The validate action: metrics on the held-out split, threshold and data gates, the champion comparison."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_bridge.actions.results import TrainingResult, ValidationReport
from airflow_bridge.exceptions import DataError

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.registry.store import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationRules:
    """The gates a model must pass: metric thresholds, data checks, and optionally the live champion."""

    thresholds: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    checks: Mapping[str, Any] = field(default_factory=dict)
    champion_metric: str | None = None
    min_improvement: float = 0.0
    champion_alias: str = "production"


def validate(
    training: TrainingResult,
    rules: ValidationRules,
    registry: ModelRegistry | None,
    artifacts: ArtifactStore | None = None,
) -> ValidationReport:
    """Score the model and its champion on the same held-out rows, apply every gate, write the model report.

    ``registry`` gives the champion and the metric history; ``artifacts`` is where the model report
    (HTML and figures, content-addressed) is written — without it no report is made. The result says
    whether the model passed; raising on failure is the caller's choice.
    """
    from airflow_bridge.artifacts import load_frame, load_model, read_verified
    from airflow_bridge.ml.gates import compare_champion, evaluate_data_checks, evaluate_thresholds
    from airflow_bridge.ml.metrics import compute_metrics

    if training.holdout is None:
        raise DataError(
            f"the training result of '{training.model}' has no held-out split; validation needs the output of "
            "TrainModelOperator (or a 'holdout' artifact with the test rows)"
        )
    model = load_model(read_verified(training.artifact))
    holdout = load_frame(read_verified(training.holdout))
    data = training.data
    features, labels = holdout[data.features], holdout[data.target]
    metrics = compute_metrics(training.task_kind, model, features, labels)
    gates = [*evaluate_data_checks(data.to_xcom(), rules.checks), *evaluate_thresholds(metrics, rules.thresholds)]
    champion: dict[str, Any] | None = None
    if rules.champion_metric:
        value, version = _champion_score(training, rules, registry, features, labels)
        champion = compare_champion(
            rules.champion_metric,
            metrics.get(rules.champion_metric, float("nan")),
            value,
            rules.min_improvement,
            version,
        )
        champion["alias"] = rules.champion_alias
    passed = all(g["passed"] for g in gates) and bool((champion or {}).get("passed", True))
    result = ValidationReport(model=training.model, metrics=metrics, gates=gates, champion=champion, passed=passed)
    if artifacts is None:
        return result
    report = _model_report(
        training,
        result,
        model=model,
        holdout=holdout,
        registry=registry,
        artifacts=artifacts,
        alias=rules.champion_alias,
    )
    return dataclasses.replace(result, report=report)


def _model_report(
    training: TrainingResult,
    result: ValidationReport,
    *,
    model: Any,
    holdout: Any,
    registry: ModelRegistry | None,
    artifacts: ArtifactStore,
    alias: str = "production",
) -> dict[str, Any] | None:
    """Build and store the model report; a report that cannot be drawn never fails validation."""
    from airflow_bridge.exceptions import NotFoundError
    from airflow_bridge.report import ReportInputs, build_report, store_report
    from airflow_bridge.report.story import story_inputs

    history: list[dict[str, Any]] = []
    if registry is not None:
        try:
            history = [
                {"version": v.version, "created_at": v.created_at, "metrics": v.metrics}
                for v in registry.list_versions(training.model)
            ]
        except NotFoundError:
            history = []
    data = training.data
    inputs = ReportInputs(
        model=model,
        holdout=holdout,
        features=data.features,
        target=data.target,
        task_kind=training.task_kind,
        model_name=training.model,
        metrics=result.metrics,
        gates=result.gates,
        champion=result.champion,
        profile={**data.to_xcom(), "rows": data.rows + data.missing_target_rows},
        history=history,
        estimator=training.estimator,
        seed=data.seed or 0,
        **story_inputs(registry, training, alias),
    )
    try:
        report = build_report(inputs)
    except Exception:  # plotting must never turn a good model into a failed gate
        log.warning("the model report of %s could not be built; validation goes on without it", exc_info=True)
        return None
    return store_report(report, artifacts, f"reports/{training.model}")


def _champion_score(
    training: TrainingResult, rules: ValidationRules, registry: ModelRegistry | None, features: Any, labels: Any
) -> tuple[float | None, int | None]:
    """The live version's metric on the same held-out rows, or (None, None) when nothing is live."""
    from airflow_bridge.artifacts import load_model, read_verified
    from airflow_bridge.ml.metrics import compute_metrics

    if registry is None:
        return None, None
    live = registry.alias_version(training.model, rules.champion_alias)
    if live is None:
        return None, None
    champion = load_model(read_verified(live.artifact))
    scores = compute_metrics(training.task_kind, champion, features, labels)
    return scores.get(str(rules.champion_metric)), live.version
