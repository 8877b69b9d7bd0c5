"""``RollbackModelOperator``: move an alias back to the version it pointed at before, inside a DAG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts


class RollbackModelOperator(OpenLineageMixin, BaseOperator):
    """Roll ``alias`` of ``model_name`` back to its previous version.

    Goes through the same compare-and-set and audit path as a deployment: if someone moves the
    alias while the rollback runs, the rollback fails with a conflict instead of overwriting it.
    The previous version's artifact is checked before the alias moves. OpenLineage: reads the
    version rolled back to and writes the alias, like a deployment.
    """

    template_fields: Sequence[str] = ("model_name", "alias", "reason")
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "production",
        reason: str = "",
        target: str = "local",
        registry_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.reason = reason
        self.target = target
        self.registry_conn_id = registry_conn_id
        self.lineage_context = dict(lineage_context or {})

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.artifacts import ArtifactStore
        from airflow_bridge.exceptions import NotFoundError

        with final_on_user_error():
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            current = registry.alias_version(self.model_name, self.alias)
            previous = registry.previous_alias_version(self.model_name, self.alias)
            if current is None or previous is None:
                raise NotFoundError(
                    f"alias '{self.alias}' of '{self.model_name}' has no earlier version to roll back to"
                )
            rollback_to = registry.get_version(self.model_name, previous)
            self._remember(target=previous, artifact=rollback_to.artifact, current=current.version)
            ArtifactStore.from_config().read_verified(rollback_to.artifact)
            deployment = registry.rollback(
                self.model_name,
                self.alias,
                actor=actor_of(context),
                target=self.target,
                run=run_ref(context),
                reason=self.reason or f"rollback by {context['ti'].dag_id}",
            )
        self._remember(rolled_back=deployment.version, endpoint=deployment.endpoint)
        self.log.info(
            "Rolled %s '%s' back from v%d to v%d", self.model_name, self.alias, current.version, deployment.version
        )
        return {
            "model": self.model_name,
            "alias": self.alias,
            "version": deployment.version,
            "previous_version": current.version,
            "target": self.target,
        }

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the version rolled back to; writes the alias (like a deployment)."""
        import dataclasses

        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import DeploymentRunFacet, keyed
        from airflow_bridge.lineage.naming import deployment_dataset

        state = self.lineage_state
        namespace = self.lineage_registry_namespace()
        if not namespace:
            return builders.LineageParts()
        target = state.get("target")
        endpoint = state.get("endpoint") or f"registry://{self.model_name}@{self.alias}"
        served = deployment_dataset(endpoint, self.model_name, self.alias, namespace)
        parts = builders.LineageParts(outputs=[builders.served_dataset(served, state.get("rolled_back"))])
        if target is not None:
            parts.inputs = [builders.model_dataset(namespace, self.model_name, int(target), output=False)]
            parts.run_facets.update(keyed(builders.artifact(dataclasses.asdict(state["artifact"]))))
        if "rolled_back" in state:
            rollback = DeploymentRunFacet(
                action="rolled_back",
                model=self.model_name,
                version=int(state["rolled_back"]),
                alias=self.alias,
                target=self.target,
                endpoint=endpoint,
                previousVersion=state.get("current"),
            )
            parts.run_facets.update(keyed(rollback))
        return parts
