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
    from airflow_bridge.ml.gates import ChampionComparison, GateResult
    from airflow_bridge.registry.records import ModelVersion
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
    fail_on_warnings: tuple[str, ...] = ()
    """Warning codes the team policy turns into failing gates (``fail_on_warnings``)."""
    baseline_metric: str | None = None
    """``validation.baseline.metric``: the model must beat the dummy baseline on it ..."""
    baseline_min_improvement: float = 0.0
    """... by at least this much."""
    gate_on: str = "holdout"
    """``validation.cross_validation.gate_on``: ``holdout`` (thresholds apply to the held-out metric) or
    ``lower_bound`` (to the cross-validation mean - std; mean + std for errors)."""


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
    from airflow_bridge.ml.gates import compare_champion, evaluate_data_checks
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
    scored = _Scored(model, features)  # metrics and bootstrap share one prediction of the held-out rows
    metrics = compute_metrics(training.task_kind, scored, features, labels)
    gates = [*evaluate_data_checks(data.to_xcom(), rules.checks), *_threshold_gates(training, rules, metrics)]
    if rules.baseline_metric:
        from airflow_bridge.ml.uncertainty import baseline_gate

        gates.append(baseline_gate(rules.baseline_metric, rules.baseline_min_improvement, metrics, training.baseline))
    importance = _importance(training, model, features, labels)
    live = registry.alias_version(training.model, rules.champion_alias) if registry is not None else None
    warnings = _warnings(training, rules, live=live, metrics=metrics, importance=importance, held_out_rows=len(holdout))
    gates += _warning_gates(warnings)
    champion: ChampionComparison | None = None
    if rules.champion_metric:
        value, version = _champion_score(training, rules, live, features, labels)
        champion = compare_champion(
            rules.champion_metric,
            metrics.get(rules.champion_metric, float("nan")),
            value,
            rules.min_improvement,
            version,
            alias=rules.champion_alias,
        )
    passed = all(g.passed for g in gates) and (champion is None or champion.passed)
    result = ValidationReport(
        model=training.model,
        metrics=metrics,
        gates=gates,
        champion=champion,
        passed=passed,
        warnings=warnings,
        baseline=training.baseline,
        uncertainty=training.cross_validation or _bootstrap(training, scored, features, labels),
    )
    if warnings:
        from airflow_bridge.ml.sanity import format_warnings

        log.warning("Warnings about %s:\n%s", training.model, format_warnings(warnings))
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
        live=live,
        importance=importance,
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
    live: ModelVersion | None = None,
    importance: Any = None,
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
        **story_inputs(registry, training, alias, live),
        importance=importance,
        warnings=result.warnings,
        baseline=result.baseline,
        uncertainty=result.uncertainty,
        search=training.search.to_xcom() if training.search is not None else None,
    )
    try:
        report = build_report(inputs)
    except Exception:  # plotting must never turn a good model into a failed gate
        log.warning("the model report of %s could not be built; validation goes on without it", exc_info=True)
        return None
    return store_report(report, artifacts, f"reports/{training.model}")


def _champion_score(
    training: TrainingResult, rules: ValidationRules, live: ModelVersion | None, features: Any, labels: Any
) -> tuple[float | None, int | None]:
    """The live version's metric on the same held-out rows, or (None, None) when nothing is live."""
    from airflow_bridge.artifacts import load_model, read_verified
    from airflow_bridge.ml.metrics import compute_metrics

    if live is None:
        return None, None
    champion = load_model(read_verified(live.artifact))
    scores = compute_metrics(training.task_kind, champion, features, labels)
    return scores.get(str(rules.champion_metric)), live.version


def _threshold_gates(
    training: TrainingResult, rules: ValidationRules, metrics: Mapping[str, float]
) -> list[GateResult]:
    """The threshold gates, on the held-out metrics or on the cross-validation's pessimistic bound."""
    from airflow_bridge.ml.gates import evaluate_thresholds

    summary = training.cross_validation or {}
    cv = summary.get("metrics") or {}
    if rules.gate_on != "lower_bound" or not cv:
        return evaluate_thresholds(metrics, rules.thresholds)
    bounds = {name: float(found["bound"]) for name, found in cv.items()}
    gates = evaluate_thresholds({**{k: float("nan") for k in metrics}, **bounds}, rules.thresholds)
    basis = f"cross-validation lower bound ({summary.get('folds')} folds)"
    return [dataclasses.replace(gate, basis=basis) for gate in gates]


def _importance(training: TrainingResult, model: Any, features: Any, labels: Any) -> Any:
    """Permutation importance on the held-out rows, computed once for the warnings and the report."""
    from airflow_bridge.report.evaluation import permutation

    try:
        return permutation(model, features, labels, training.task_kind, seed=training.data.seed or 0)
    except Exception:  # an importance that cannot be computed never fails validation
        log.warning("permutation importance of %s could not be computed", training.model, exc_info=True)
        return None


def _warnings(
    training: TrainingResult,
    rules: ValidationRules,
    *,
    live: ModelVersion | None,
    metrics: Mapping[str, float],
    importance: Any,
    held_out_rows: int,
) -> list[dict[str, Any]]:
    """The run's leakage and sanity warnings (``airflow_bridge.ml.sanity``)."""
    from airflow_bridge.ml.sanity import run_warnings

    live_features = None
    if live is not None:
        live_features = list((live.data or {}).get("features") or []) or None
    return run_warnings(
        metrics=metrics,
        importance=importance.features if importance is not None else (),
        scoring=importance.scoring if importance is not None else "score",
        roles=training.data.roles,
        duplicates_across_split=training.data.duplicates_across_split,
        live_features=live_features,
        live_version=live.version if live is not None else None,
        held_out_rows=held_out_rows,
        fail_on=rules.fail_on_warnings,
    )


def _warning_gates(warnings: list[dict[str, Any]]) -> list[GateResult]:
    from airflow_bridge.ml.sanity import warning_gates

    return warning_gates(warnings)


def _bootstrap(training: TrainingResult, model: Any, features: Any, labels: Any) -> dict[str, Any] | None:
    """Bootstrap intervals of the held-out metrics (no refit); None when they cannot be computed."""
    from airflow_bridge.ml.uncertainty import bootstrap

    try:
        return bootstrap(training.task_kind, model, features, labels, seed=training.data.seed or 0)
    except Exception:  # intervals are context: they never fail validation
        log.warning("bootstrap intervals of %s could not be computed", training.model, exc_info=True)
        return None


class _Scored:
    """``model`` whose predictions of the held-out rows are made once: ``predict``, ``predict_proba`` and
    ``decision_function`` of exactly ``features`` (the same object) are kept; anything else is the model's."""

    _KEPT = ("predict", "predict_proba", "decision_function")

    def __init__(self, model: Any, features: Any) -> None:
        self._model, self._features = model, features
        self._kept: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._model, name)
        if name not in self._KEPT or not callable(found):
            return found

        def kept(rows: Any) -> Any:
            if rows is not self._features:
                return found(rows)
            if name not in self._kept:
                self._kept[name] = found(rows)
            return self._kept[name]

        return kept
