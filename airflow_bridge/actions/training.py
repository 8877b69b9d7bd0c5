"""The train action: read the data, check it, split it with a seed, fit, store content-addressed artifacts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_bridge.actions.results import DataSummary, SearchSummary, TrainingResult
from airflow_bridge.exceptions import DataError, EstimatorError, GateFailedError

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
    column_roles: Mapping[str, str] = field(default_factory=dict)
    """The spec's ``data.columns``: role overrides by column name."""
    delimiter: str | None = None
    encoding: str | None = None
    groups: list[str] = field(default_factory=list)
    """The spec's ``data.groups``: columns kept in the held-out split so the report shows per-group metrics."""
    cross_validation_folds: int | None = None
    """``validation.cross_validation.folds``: refit the pipeline on k folds of the training rows (opt-in)."""
    decimal: str = "."
    """The CSV decimal mark (``data.training.decimal``)."""
    missing_values: list[str] = field(default_factory=list)
    """CSV text read as missing (``data.training.missing_values``)."""
    search: Mapping[str, Any] | None = None
    """``model.search`` as JSON (space, budget, metric, folds, pruning): search the space before fitting and fit
    the best trial's parameters (``airflow_bridge.ml.search``). None: fit ``params`` as they are."""
    max_search_trials: int | None = None
    """The team policy's ``max_search_trials`` when the DAG was built: a search budget above it is refused."""

    @property
    def allowed(self) -> dict[str, str]:
        from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS

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
    from airflow_bridge.ml.columns import feature_columns, infer_roles
    from airflow_bridge.ml.environment import training_environment
    from airflow_bridge.ml.estimator import build_estimator, build_model_pipeline
    from airflow_bridge.ml.gates import evaluate_data_checks, format_gate_table
    from airflow_bridge.report.drift import column_profiles

    task_kind = request.resolved_task_kind
    if request.search:
        _check_search_cap(request)  # the team's max_search_trials, before any data is read
    table = data_io.read_table(
        request.data_uri,
        request.data_format,
        request.data_conn_id,
        delimiter=request.delimiter,
        encoding=request.encoding,
        decimal=request.decimal,
        missing_values=request.missing_values,
    )
    data_io.select_columns(table.frame, table.uri, request.target, request.features, request.groups)
    frame, missing_target = data_io.drop_missing_target(table.frame, request.target)
    roles = infer_roles(frame, request.target, request.features, request.column_roles)
    features = feature_columns(roles)
    profile = data_io.profile(frame, [*features, request.target])
    profile.update(
        roles={c: r.to_dict() for c, r in roles.items()},
        missing_target_rows=missing_target,
    )
    log.info(
        "Read %s: %d rows (%d without a target, dropped), %d columns, sha256 %s",
        table.uri,
        len(table.frame),
        missing_target,
        len(profile["columns"]),
        table.sha256[:12],
    )
    for column, role in roles.items():
        log.info("  column %-24s %-11s %s", column, role.role, role.reason)
    checks = evaluate_data_checks(profile, request.checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        seen = {"uri": table.uri, "sha256": table.sha256, "size": table.size, **profile}
        message = f"data checks failed for {table.uri}:\n{format_gate_table(failed)}"
        raise DataChecksFailedError(message, seen, [c.to_json() for c in checks])
    if not features:
        raise DataError(f"{table.uri}: no column is usable as a feature ({_excluded_summary(roles)})")
    data_io.check_target(frame, request.target, task_kind, table.uri)
    estimator = build_estimator(request.estimator, request.params, seed=request.seed, allowed=request.allowed)
    if "random_state" in request.params and request.params["random_state"] is None:
        log.warning("model.params.random_state is null: the estimator is not seeded, so reruns differ")
    pipeline = build_model_pipeline(estimator, roles, seed=request.seed, missing_values=request.missing_values)
    train_rows, test_rows = data_io.split(
        frame,
        request.target,
        features,
        test_size=request.test_size,
        seed=request.seed,
        stratify=request.stratify and task_kind == "classification",
        estimator=request.estimator,
        keep=request.groups,
    )
    params, search = dict(request.params), None
    if request.search:
        search = _search(request, train_rows, features, roles, task_kind)
        params = {**params, **search.best_params}  # the best trial's parameters become the candidate's
        estimator = build_estimator(request.estimator, params, seed=request.seed, allowed=request.allowed)
        pipeline = build_model_pipeline(estimator, roles, seed=request.seed, missing_values=request.missing_values)
    log.info("Fitting %s on %d rows (%d held out)", request.estimator, len(train_rows), len(test_rows))
    try:
        pipeline.fit(train_rows[features], train_rows[request.target])
    except DataError:
        raise
    except (ValueError, TypeError) as exc:
        raise EstimatorError(f"{request.estimator} failed to fit on {table.uri}: {exc}") from None
    context = _context(
        request, pipeline, train_rows=train_rows, test_rows=test_rows, features=features, task_kind=task_kind
    )
    artifact = artifacts.put(dump_model(pipeline), f"models/{request.model}", ".joblib")
    holdout = artifacts.put(dump_frame(test_rows), f"holdout/{request.model}", ".parquet")
    log.info("Stored model artifact %s (%d bytes, sha256 %s)", artifact.uri, artifact.size, artifact.sha256[:12])
    return TrainingResult(
        model=request.model,
        estimator=request.estimator,
        task_kind=task_kind,
        params=params,
        effective_params={k: _jsonable(v) for k, v in pipeline.steps[-1][1].get_params(deep=False).items()},
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
            roles=profile["roles"],
            missing_target_rows=missing_target,
            target=request.target,
            features=features,
            train_rows=len(train_rows),
            test_rows=len(test_rows),
            test_size=request.test_size,
            seed=request.seed,
            environment=training_environment(request.estimator),
            groups=list(request.groups),
            profiles=column_profiles(frame, [*features, request.target], profile["roles"]),
            duplicates_across_split=data_io.duplicates_across(train_rows, test_rows, [*features, request.target]),
        ),
        checks=checks,
        search=search,
        **context,
    )


def _check_search_cap(request: TrainingRequest) -> None:
    """Refuse a search whose budget breaks the team cap the request carries (``max_search_trials``)."""
    from airflow_bridge.exceptions import PolicyViolationError
    from airflow_bridge.ml.search import cap_refusal

    budget = dict((request.search or {}).get("budget") or {})
    refusal = cap_refusal(budget.get("trials"), request.max_search_trials)
    if refusal is not None:
        raise PolicyViolationError(f"the search of {request.model} is refused: {refusal[0]} ({refusal[1]})")


def _search(
    request: TrainingRequest, rows: Any, features: list[str], roles: Mapping[str, Any], task_kind: str
) -> SearchSummary:
    """The hyperparameter search on the training rows (``airflow_bridge.ml.search``), typed."""
    from airflow_bridge.ml.search import Trainee, run_search

    trainee = Trainee(
        model=request.model,
        estimator=request.estimator,
        params=dict(request.params),
        seed=request.seed,
        target=request.target,
        allowed=request.allowed,
        missing_values=list(request.missing_values),
    )
    found = run_search(
        dict(request.search or {}), trainee, rows=rows, features=features, roles=roles, task_kind=task_kind
    )
    return SearchSummary.from_xcom(found, "search")


def _context(
    request: TrainingRequest, pipeline: Any, *, train_rows: Any, test_rows: Any, features: list[str], task_kind: str
) -> dict[str, Any]:
    """The dummy baseline on the held-out rows and, when the spec asks, k-fold cross-validation: both need
    the training rows, which only this action has."""
    from airflow_bridge.ml.uncertainty import baseline, cross_validate

    found: dict[str, Any] = {"baseline": baseline(task_kind, train_rows, test_rows, features, request.target)}
    folds = request.cross_validation_folds
    if folds:
        log.info("Cross-validating %s on %d folds of the training rows", request.estimator, folds)
        found["cross_validation"] = cross_validate(
            pipeline, train_rows, features, request.target, task_kind, folds=folds, seed=request.seed
        )
    return found


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _excluded_summary(roles: Mapping[str, Any]) -> str:
    return "; ".join(f"{c}: {r.reason}" for c, r in roles.items() if r.role == "ignore") or "no columns but the target"
