"""``RegisterModelOperator``: the register action inside an Airflow task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref
from airflow_bridge.operators.links import VERSION_LINKS, emit_asset_events

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts
    from airflow_bridge.registry.records import PolicyBinding


class RegisterModelOperator(OpenLineageMixin, BaseOperator):
    """Register the trained artifact with its checksum, metrics, params, data and producing run.

    Idempotent per (dag_id, run_id, task_id): a retried task returns the version it created before.
    The registry comes from ``registry_conn_id`` or the resolution order in docs/configuration.md.
    An unreachable registry raises a retryable error and writes nothing. ``max_versions_per_day``
    (the team quota) refuses a registration beyond it, without retry. ``policy`` (a
    ``PolicyBinding``; the DAG factory passes the spec folder's team policy) binds the policy that
    governs the model's aliases from then on. OpenLineage: reads the training data and artifact,
    writes ``model/<name>`` in the registry's namespace with the new version as its dataset version.
    Airflow assets: every ``Asset`` in ``outlets`` gets an event whose extra is the version's metadata.
    """

    template_fields: Sequence[str] = ("training", "validation")
    ui_color = "#e9f7ef"
    operator_extra_links = VERSION_LINKS

    def __init__(
        self,
        *,
        training: Any,
        validation: Any = None,
        model_name: str | None = None,
        registry_conn_id: str | None = None,
        description: str = "",
        owner: str = "",
        team: str = "",
        spec_sha256: str = "",
        tags: Mapping[str, str] | None = None,
        max_versions_per_day: int | None = None,
        policy: PolicyBinding | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.validation = validation
        self.model_name = model_name
        self.registry_conn_id = registry_conn_id
        self.description = description
        self.model_owner = owner
        self.team = team
        self.spec_sha256 = spec_sha256
        self.tags = dict(tags or {})
        self.max_versions_per_day = max_versions_per_day
        self.policy = policy
        self.lineage_context = {
            "owner": owner,
            "team": team,
            "description": description,
            "spec_sha256": spec_sha256,
            **(lineage_context or {}),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.registration import register
        from airflow_bridge.actions.results import TrainingResult, ValidationReport
        from airflow_bridge.registry.records import ModelCard

        with final_on_user_error():
            training = TrainingResult.from_xcom(self.training, "training")
            report = ValidationReport.from_xcom(self.validation, "validation") if self.validation is not None else None
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            registration = register(
                training,
                report,
                registry=registry,
                model=self.model_name,
                actor=actor_of(context, self.model_owner or "airflow"),
                run=run_ref(context),
                reason=f"registered by {context['ti'].dag_id}",
                card=ModelCard(description=self.description, owner=self.model_owner, team=self.team),
                spec_sha256=self.spec_sha256,
                tags=self.tags,
                max_versions_per_day=self.max_versions_per_day,
                policy=self.policy,
            )
        self.log.info(
            "Registered %s v%d (artifact sha256 %s)",
            registration.model,
            registration.version,
            registration.artifact.sha256[:12],
        )
        self._remember(registration=registration)
        emit_asset_events(context, self.outlets, version_extra(registration, actor_of(context, self.model_owner)))
        return registration.to_xcom()

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the data and artifact; writes the model (versioned once registered)."""
        from airflow_bridge.actions.results import TrainingResult, ValidationReport
        from airflow_bridge.exceptions import BridgeError
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        try:
            training: TrainingResult | None = TrainingResult.from_xcom(self.training)
        except BridgeError:
            training = None
        parts = builders.LineageParts(inputs=builders.training_datasets(training, holdout=False) if training else [])
        name = self.model_name or (training.model if training else None)
        namespace = self.lineage_registry_namespace()
        registration = self.lineage_state.get("registration")
        if name and namespace:
            version = registration.version if registration else None
            parts.outputs = [builders.model_dataset(namespace, name, version, output=True, about=registration)]
        if training is not None:
            parts.run_facets.update(
                keyed(builders.trained_hyperparameters(training), builders.artifact(training.artifact))
            )
        try:
            report = ValidationReport.from_xcom(self.validation) if self.validation is not None else None
        except BridgeError:
            report = None
        if report is not None and report.metrics:
            parts.run_facets.update(keyed(builders.metrics(report.metrics)))
        return parts


def version_extra(registration: Any, actor: str) -> dict[str, Any]:
    """The metadata of a registered version carried by its Airflow asset events."""
    return {
        "model": registration.model,
        "version": registration.version,
        "sha256": registration.artifact.sha256,
        "estimator": registration.estimator,
        "metrics": {k: v for k, v in registration.metrics.items() if isinstance(v, int | float | str | bool)},
        "actor": actor,
    }
