"""The train action: read the data, check it, split it with a seed, fit, store content-addressed artifacts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_bridge.actions.results import DataSummary, TrainingResult
from airflow_bridge.exceptions import EstimatorError, GateFailedError

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRequest:
    """Everything training needs from a spec (or an engineer's operator arguments)."""

    model: str
    data_uri: str
    target: str
    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    task_kind: str | None = None
    features: list[str] | None = None
    data_format: str | None = None
    data_conn_id: str | None = None
    test_size: float = 0.2
    seed: int = 42
    stratify: bool = True
    checks: Mapping[str, Any] = field(default_factory=dict)
    allowed_estimators: Mapping[str, str] | None = None

    @property
    def allowed(self) -> dict[str, str]:
        from airflow_bridge.spec.estimators import DEFAULT_ESTIMATORS

        return {**DEFAULT_ESTIMATORS, **(self.allowed_estimators or {})}

    @property
    def resolved_task_kind(self) -> str:
        return self.task_kind or self.allowed.get(self.estimator) or "classification"


class DataChecksFailedError(GateFailedError):
    """The data failed its checks: no model was fitted. Carries the profile and check results."""

    def __init__(self, message: str, data: dict[str, Any], checks: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.data = data
        self.checks = checks


def train(request: TrainingRequest, artifacts: ArtifactStore) -> TrainingResult:
    """Fit ``request.estimator`` on the table at ``request.data_uri``; bad data never produces a model."""
    from airflow_bridge.artifacts import dump_frame, dump_model
    from airflow_bridge.ml import data as data_io
    from airflow_bridge.ml.estimator import build_estimator
    from airflow_bridge.ml.gates import evaluate_data_checks, format_gate_table

    task_kind = request.resolved_task_kind
    table = data_io.read_table(request.data_uri, request.data_format, request.data_conn_id)
    features = data_io.select_columns(table.frame, table.uri, request.target, request.features)
    profile = data_io.profile(table.frame, [*features, request.target])
    log.info(
        "Read %s: %d rows, %d columns, sha256 %s",
        table.uri,
        profile["rows"],
        len(profile["columns"]),
        table.sha256[:12],
    )
    checks = evaluate_data_checks(profile, request.checks)
    failed = [c for c in checks if not c["passed"]]
    if failed:
        seen = {"uri": table.uri, "sha256": table.sha256, "size": table.size, **profile}
        raise DataChecksFailedError(f"data checks failed for {table.uri}:\n{format_gate_table(failed)}", seen, checks)
    estimator = build_estimator(request.estimator, request.params, seed=request.seed, allowed=request.allowed)
    train_rows, test_rows = data_io.split(
        table.frame,
        request.target,
        features,
        test_size=request.test_size,
        seed=request.seed,
        stratify=request.stratify and task_kind == "classification",
    )
    log.info("Fitting %s on %d rows (%d held out)", request.estimator, len(train_rows), len(test_rows))
    try:
        estimator.fit(train_rows[features], train_rows[request.target])
    except (ValueError, TypeError) as exc:
        raise EstimatorError(f"{request.estimator} failed to fit on {table.uri}: {exc}") from None
    artifact = artifacts.put(dump_model(estimator), f"models/{request.model}", ".joblib")
    holdout = artifacts.put(dump_frame(test_rows), f"holdout/{request.model}", ".parquet")
    log.info("Stored model artifact %s (%d bytes, sha256 %s)", artifact.uri, artifact.size, artifact.sha256[:12])
    return TrainingResult(
        model=request.model,
        estimator=request.estimator,
        task_kind=task_kind,
        params=dict(request.params),
        effective_params={k: _jsonable(v) for k, v in estimator.get_params(deep=False).items()},
        artifact=artifact,
        holdout=holdout,
        data=DataSummary(
            uri=table.uri,
            format=table.format,
            sha256=table.sha256,
            size=table.size,
            rows=profile["rows"],
            columns=profile["columns"],
            null_fraction=profile["null_fraction"],
            used_columns=profile["used_columns"],
            target=request.target,
            features=features,
            train_rows=len(train_rows),
            test_rows=len(test_rows),
            test_size=request.test_size,
            seed=request.seed,
        ),
        checks=checks,
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
