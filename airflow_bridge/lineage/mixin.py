"""``OpenLineageMixin``: the three ``get_openlineage_facets_*`` methods for airflow-bridge operators.

The OpenLineage provider's listener calls them at task start, success and failure (Airflow 3 passes
the RuntimeTaskInstance to the latter two). OpenLineage is imported only inside them, so building
and parsing DAGs never loads it. An operator implements ``lineage_parts(stage)``; the mixin adds the
provenance run facet (spec hash, git commit) and the job facets (ownership, documentation, job type,
experiment) from ``lineage_context`` — ``{"experiment", "model", "owner", "team", "description",
"spec_sha256"}``, which the DAG factory fills from the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_bridge.lineage.naming import registry_namespace

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_bridge.lineage.builders import LineageParts

START, COMPLETE, FAILURE = "start", "complete", "failure"


class OpenLineageMixin:
    """Lineage for an operator; state gathered in ``execute`` goes through ``_remember``."""

    lineage_context: dict[str, Any]
    owner: str
    registry_conn_id: str | None

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        return self._operator_lineage(START, None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        return self._operator_lineage(COMPLETE, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self._operator_lineage(FAILURE, task_instance)

    def lineage_parts(self, stage: str) -> LineageParts:
        """Inputs, outputs and run facets at ``stage`` (start, complete or failure)."""
        raise NotImplementedError

    def _operator_lineage(self, stage: str, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        context = getattr(self, "lineage_context", None) or {}
        parts = self.lineage_parts(stage)
        provenance = builders.provenance(context.get("spec_sha256"), task_instance, context.get("model"))
        return OperatorLineage(
            inputs=list(parts.inputs),
            outputs=list(parts.outputs),
            run_facets={**parts.run_facets, **keyed(provenance)},
            job_facets=builders.job_facets(context, getattr(self, "owner", None)),
        )

    # -- state kept between execute and the listener ---------------------------------------------

    @property
    def lineage_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_lineage_state")
        if state is None:
            state = self.__dict__["_lineage_state"] = {}
        return state

    def _remember(self, **values: Any) -> None:
        self.lineage_state.update(values)

    def _remember_registry(self, url: str) -> None:
        self._remember(registry_namespace=registry_namespace(url))

    def lineage_registry_namespace(self) -> str | None:
        """The registry's dataset namespace, known once ``execute`` opened the registry (else None).

        Never looked up here: the listener calls these methods in a forked process, where asking the
        task supervisor for a connection is unsafe. So START events of register, approve and deploy
        carry no registry datasets; their COMPLETE and FAIL events do.
        """
        known = self.lineage_state.get("registry_namespace")
        return str(known) if known else None
