"""``TrainModelOperator``: the train action inside an Airflow task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import final_on_user_error

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.training import TrainingRequest
    from airflow_bridge.lineage.builders import LineageParts


class TrainModelOperator(OpenLineageMixin, BaseOperator):
    """Fit ``estimator`` on the table at ``data_uri`` and write a content-addressed artifact.

    The artifact is one scikit-learn ``Pipeline`` (column roles → skrub's preprocessing for this
    estimator → the estimator) fitted on the rows as they are in the file; ``column_roles`` overrides
    inferred roles (``{"site": "categorical", "row_id": "ignore"}``), ``delimiter`` and ``encoding``
    read CSVs that are not comma-separated UTF-8, ``decimal=","`` reads numbers written ``1,5`` and
    ``missing_values`` lists the file's own words for "missing" (``["unknown", "?"]``). Rows without
    a target are dropped and counted. ``search`` (``model.search`` as JSON: space, budget, metric, folds)
    first searches the parameters with Optuna on folds of the training rows and fits the best trial's;
    ``max_search_trials`` refuses a budget above the team's cap.

    Returns a ``TrainingResult`` XCom (artifact and held-out split with sha256 and the connection they
    were written with, parameters, data fingerprint and profile); ``ValidateModelOperator`` and
    ``RegisterModelOperator`` take it as input. Data ``checks`` are enforced before fitting, so bad
    data never produces a model. User errors fail without retry; storage errors retry. Artifacts go to
    ``artifact_root``/``artifact_conn_id``, else the resolution order in docs/configuration.md.
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
        column_roles: Mapping[str, str] | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
        groups: Sequence[str] | None = None,
        cross_validation_folds: int | None = None,
        decimal: str = ".",
        missing_values: Sequence[str] | None = None,
        search: Mapping[str, Any] | None = None,
        max_search_trials: int | None = None,
        artifact_root: str | None = None,
        artifact_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_bridge.actions.training import TrainingRequest

        super().__init__(**kwargs)
        self.training = TrainingRequest(
            model=model_name,
            data_uri=data_uri,
            target=target,
            estimator=estimator,
            params=dict(estimator_params or {}),
            task_kind=task_kind,
            features=list(features) if features else None,
            data_format=data_format,
            data_conn_id=data_conn_id,
            test_size=test_size,
            seed=seed,
            stratify=stratify,
            checks=dict(checks or {}),
            allowed_estimators=dict(allowed_estimators) if allowed_estimators else None,
            column_roles=dict(column_roles or {}),
            delimiter=delimiter,
            encoding=encoding,
            groups=list(groups or []),
            cross_validation_folds=cross_validation_folds,
            decimal=decimal,
            missing_values=list(missing_values or []),
            search=dict(search) if search else None,
            max_search_trials=max_search_trials,
        )
        """What the task trains: the keyword arguments above, typed once (the factory passes a spec's)."""
        self.artifact_root = artifact_root
        self.artifact_conn_id = artifact_conn_id
        self.lineage_context = dict(lineage_context or {})

    @classmethod
    def from_request(cls, request: TrainingRequest, **kwargs: Any) -> TrainModelOperator:
        """The operator that trains ``request`` as it is (the DAG factory's way in); ``kwargs`` go to BaseOperator."""
        import dataclasses

        fields = dataclasses.asdict(request)
        operator = cls(model_name=fields.pop("model"), estimator_params=fields.pop("params"), **fields, **kwargs)
        operator.training = request
        return operator

    @property
    def estimator_params(self) -> dict[str, Any]:
        return dict(self.training.params)

    def request(self) -> TrainingRequest:
        return self.training

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.training import DataChecksFailedError, train
        from airflow_bridge.resolution import artifact_store

        store = artifact_store(self.artifact_root, self.artifact_conn_id, in_airflow=True)
        with final_on_user_error():
            try:
                result = train(self.request(), store)
            except DataChecksFailedError as exc:
                self._remember(data=exc.data, checks=exc.checks)
                raise
        self._remember(result=result)
        return result.to_xcom()

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the training data; writes the model artifact and held-out split (once they exist)."""
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        state = self.lineage_state
        result = state.get("result")
        if result is not None:
            data = result.data
            parts = builders.LineageParts(inputs=[builders.data_input(data.to_xcom())])
            parts.outputs = [builders.file_dataset(result.artifact, output=True)]
            if result.holdout is not None:
                used = [*data.features, data.target]
                parts.outputs.append(
                    builders.file_dataset(result.holdout, output=True, columns=data.columns, only=used)
                )
            parts.run_facets.update(keyed(builders.trained_hyperparameters(result), builders.artifact(result.artifact)))
            if result.checks:
                parts.run_facets.update(keyed(builders.gates(result.checks)))
        else:
            request = self.request()
            parts = builders.LineageParts(inputs=[builders.data_input(state.get("data") or {"uri": request.data_uri})])
            planned = builders.hyperparameters(
                request.estimator,
                request.resolved_task_kind,
                request.params,
                test_size=request.test_size,
                seed=request.seed,
            )
            parts.run_facets.update(keyed(planned))
            if state.get("checks"):
                parts.run_facets.update(keyed(builders.gates(state["checks"])))
        return parts
