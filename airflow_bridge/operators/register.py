"""``RegisterModelOperator``: record a validated model as a new, immutable registry version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, as_dict, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts


class RegisterModelOperator(OpenLineageMixin, BaseOperator):
    """Register the trained artifact with its checksum, metrics, params, data and producing run.

    Idempotent per (dag_id, run_id, task_id): a retried task returns the version it created before.
    The registry database comes from ``registry_conn_id`` (``model_registry_default``, falling
    back to embedded SQLite). An unreachable registry raises a retryable error and writes nothing.
    ``max_versions_per_day`` (the team quota) refuses a registration beyond it, without retry.
    OpenLineage: reads the training data and artifact, writes ``model/<name>`` in the registry's
    namespace with the new version as its dataset version.
    """

    template_fields: Sequence[str] = ("training", "validation")
    ui_color = "#e9f7ef"

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
        self.lineage_context = {
            "owner": owner,
            "team": team,
            "description": description,
            "spec_sha256": spec_sha256,
            **(lineage_context or {}),
        }

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.registry.records import ArtifactRef, ModelCard

        with final_on_user_error():
            training = as_dict(self.training, "training")
            report = as_dict(self.validation, "validation") if self.validation is not None else {}
            if report and not report.get("passed", False):
                from airflow_bridge.exceptions import GateFailedError

                raise GateFailedError("the validation report did not pass; refusing to register")
            name = self.model_name or training["model"]
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            version = registry.register_version(
                name,
                ArtifactRef(**training["artifact"]),
                estimator=training["estimator"],
                task_kind=training["task_kind"],
                params=training["params"],
                metrics=report.get("metrics", {}),
                validation={"gates": report.get("gates", []), "champion": report.get("champion")},
                data={k: v for k, v in training["data"].items() if k != "null_fraction"},
                spec_sha256=self.spec_sha256,
                run=run_ref(context),
                actor=actor_of(context, self.model_owner or "airflow"),
                reason=f"registered by {context['ti'].dag_id}",
                card=ModelCard(description=self.description, owner=self.model_owner, team=self.team),
                tags=self.tags,
                max_versions_per_day=self.max_versions_per_day,
            )
        self.log.info("Registered %s v%d (artifact sha256 %s)", name, version.version, version.artifact.sha256[:12])
        self._remember(version=version.version)
        return {
            "model": name,
            "version": version.version,
            "artifact": {
                "uri": version.artifact.uri,
                "sha256": version.artifact.sha256,
                "size": version.artifact.size,
            },
            "metrics": version.metrics,
        }

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the data and artifact; writes the model (versioned once registered)."""
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        training = self.training if isinstance(self.training, dict) else {}
        report = self.validation if isinstance(self.validation, dict) else {}
        parts = builders.LineageParts(inputs=builders.training_datasets(training, holdout=False))
        name = self.model_name or training.get("model")
        namespace = self.lineage_registry_namespace()
        if name and namespace:
            version = self.lineage_state.get("version")
            parts.outputs = [builders.model_dataset(namespace, name, version, output=True, training=training)]
        if training.get("estimator"):
            parts.run_facets.update(keyed(builders.hyperparameters(training)))
        if training.get("artifact"):
            parts.run_facets.update(keyed(builders.artifact(training["artifact"])))
        if report.get("metrics"):
            parts.run_facets.update(keyed(builders.metrics(report["metrics"])))
        return parts
