"""``TrainModelOperator``: read data, split it with a seed, fit an allow-listed estimator, store the artifact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import final_on_user_error

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts


class TrainModelOperator(OpenLineageMixin, BaseOperator):
    """Fit ``estimator`` on the table at ``data_uri`` and write a content-addressed artifact.

    Returns (as XCom) the artifact and held-out split (URI, sha256, size), the effective
    parameters, and the data fingerprint and profile; ``ValidateModelOperator`` and
    ``RegisterModelOperator`` take it as input. Data ``checks`` are enforced before fitting, so bad
    data never produces a model. User errors fail without retry; storage errors retry.
    OpenLineage: reads the training data (schema, sha256 version), writes the model artifact and
    held-out split; run facets carry the hyperparameters, data checks and artifact checksum.
    """

    template_fields: Sequence[str] = ()  # spec values are data, never Jinja
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        model_name: str,
        data_uri: str,
        target: str,
        estimator: str,
        estimator_params: Mapping[str, Any] | None = None,
        task_kind: str | None = None,
        features: Sequence[str] | None = None,
        data_format: str | None = None,
        data_conn_id: str | None = None,
        test_size: float = 0.2,
        seed: int = 42,
        stratify: bool = True,
        checks: Mapping[str, Any] | None = None,
        allowed_estimators: Mapping[str, str] | None = None,
        artifact_root: str | None = None,
        artifact_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.data_uri = data_uri
        self.target = target
        self.estimator = estimator
        self.estimator_params = dict(estimator_params or {})
        self.task_kind = task_kind
        self.features = list(features) if features else None
        self.data_format = data_format
        self.data_conn_id = data_conn_id
        self.test_size = test_size
        self.seed = seed
        self.stratify = stratify
        self.checks = dict(checks or {})
        self.allowed_estimators = dict(allowed_estimators) if allowed_estimators else None
        self.artifact_root = artifact_root
        self.artifact_conn_id = artifact_conn_id
        self.lineage_context = dict(lineage_context or {})

    def execute(self, context: Context) -> dict[str, Any]:
        with final_on_user_error():
            result = self._train()
        self._remember(result=result)
        return result

    def _train(self) -> dict[str, Any]:
        from airflow_bridge.artifacts import ArtifactStore, dump_frame, dump_model
        from airflow_bridge.exceptions import GateFailedError
        from airflow_bridge.ml import data as data_io
        from airflow_bridge.ml.estimator import build_estimator
        from airflow_bridge.ml.gates import evaluate_data_checks, format_gate_table
        from airflow_bridge.spec.estimators import DEFAULT_ESTIMATORS

        allowed = {**DEFAULT_ESTIMATORS, **(self.allowed_estimators or {})}
        task_kind = self.task_kind or allowed.get(self.estimator) or "classification"
        table = data_io.read_table(self.data_uri, self.data_format, self.data_conn_id)
        features = data_io.select_columns(table.frame, table.uri, self.target, self.features)
        profile = data_io.profile(table.frame, [*features, self.target])
        self.log.info(
            "Read %s: %d rows, %d columns, sha256 %s",
            table.uri,
            profile["rows"],
            len(profile["columns"]),
            table.sha256[:12],
        )
        checks = evaluate_data_checks(profile, self.checks)
        self._remember(data={"uri": table.uri, "sha256": table.sha256, "size": table.size, **profile}, checks=checks)
        failed = [c for c in checks if not c["passed"]]
        if failed:
            raise GateFailedError(f"data checks failed for {table.uri}:\n{format_gate_table(failed)}")
        estimator = build_estimator(self.estimator, self.estimator_params, seed=self.seed, allowed=allowed)
        train, test = data_io.split(
            table.frame,
            self.target,
            features,
            test_size=self.test_size,
            seed=self.seed,
            stratify=self.stratify and task_kind == "classification",
        )
        self.log.info("Fitting %s on %d rows (%d held out)", self.estimator, len(train), len(test))
        try:
            estimator.fit(train[features], train[self.target])
        except (ValueError, TypeError) as exc:
            from airflow_bridge.exceptions import EstimatorError

            raise EstimatorError(f"{self.estimator} failed to fit on {table.uri}: {exc}") from None
        store = ArtifactStore.from_config(self.artifact_root, self.artifact_conn_id)
        artifact = store.put(dump_model(estimator), f"models/{self.model_name}", ".joblib")
        holdout = store.put(dump_frame(test), f"holdout/{self.model_name}", ".parquet")
        self.log.info(
            "Stored model artifact %s (%d bytes, sha256 %s)",
            artifact.uri,
            artifact.size,
            artifact.sha256[:12],
        )
        effective = {k: _jsonable(v) for k, v in estimator.get_params(deep=False).items()}
        return {
            "model": self.model_name,
            "estimator": self.estimator,
            "task_kind": task_kind,
            "params": self.estimator_params,
            "effective_params": effective,
            "artifact": {"uri": artifact.uri, "sha256": artifact.sha256, "size": artifact.size},
            "holdout": {"uri": holdout.uri, "sha256": holdout.sha256, "size": holdout.size},
            "data": {
                "uri": table.uri,
                "format": table.format,
                "sha256": table.sha256,
                "size": table.size,
                "rows": profile["rows"],
                "columns": profile["columns"],
                "null_fraction": profile["null_fraction"],
                "used_columns": profile["used_columns"],
                "target": self.target,
                "features": features,
                "train_rows": len(train),
                "test_rows": len(test),
                "test_size": self.test_size,
                "seed": self.seed,
            },
        }

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the training data; writes the model artifact and held-out split (once they exist)."""
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        state = self.lineage_state
        result = state.get("result") or {}
        data = result.get("data") or state.get("data") or {"uri": self.data_uri}
        planned = {
            "estimator": self.estimator,
            "task_kind": self._planned_task_kind(),
            "params": self.estimator_params,
            "data": {"test_size": self.test_size, "seed": self.seed},
        }
        parts = builders.LineageParts(inputs=[builders.data_input(data)])
        parts.run_facets.update(keyed(builders.hyperparameters(result or planned)))
        if state.get("checks"):
            parts.run_facets.update(keyed(builders.gates(state["checks"])))
        if result:
            used = [*data.get("features", []), self.target]
            parts.outputs = [
                builders.file_dataset(result["artifact"], output=True),
                builders.file_dataset(result["holdout"], output=True, columns=data.get("columns"), only=used),
            ]
            parts.run_facets.update(keyed(builders.artifact(result["artifact"])))
        return parts

    def _planned_task_kind(self) -> str:
        from airflow_bridge.spec.estimators import DEFAULT_ESTIMATORS

        allowed = {**DEFAULT_ESTIMATORS, **(self.allowed_estimators or {})}
        return self.task_kind or allowed.get(self.estimator) or "classification"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
