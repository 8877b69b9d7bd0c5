"""``RollbackModelOperator``: the rollback action inside an Airflow task, policy-checked by default."""

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
    """Roll ``alias`` of ``model_name`` back to the version it pointed at before.

    The same action as ``airflow-bridge models rollback``: on a protected alias the version rolled back
    to must have a recorded approval for that alias (``enforce_policy=False`` only where the policy
    allows it, audited); the artifact is verified; the alias moves by compare-and-set, so a concurrent
    move makes the rollback fail instead of overwriting it. OpenLineage: like a deployment.

    ``target="kserve"`` (with the team's ``serving`` tier) re-points the InferenceService at the previous
    version's artifact with no canary, defers until KServe reports it ready, then moves the alias back.
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
        serving: str | None = None,
        deferrable: bool = True,
        registry_conn_id: str | None = None,
        enforce_policy: bool = True,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.reason = reason
        self.target = target
        self.serving = serving
        self.deferrable = deferrable
        self.registry_conn_id = registry_conn_id
        self.enforce_policy = enforce_policy
        self.lineage_context = dict(lineage_context or {})

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.deployment import begin_rollback, settle
        from airflow_bridge.actions.targets import target_for

        with final_on_user_error():
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            pending = begin_rollback(
                registry,
                model=self.model_name,
                alias=self.alias,
                actor=actor_of(context),
                target=self.target,
                serving=self.serving,
                run=run_ref(context),
                reason=self.reason or f"rollback by {context['ti'].dag_id}",
                enforce_policy=self.enforce_policy,
            )
            target = target_for(pending.target)
            trigger = target.trigger(pending.rollout) if self.deferrable else None
            if trigger is not None:
                self.defer(trigger=trigger, method_name="execute_complete", kwargs={"pending": pending.to_xcom()})
            result = settle(registry, pending, target.wait(pending.rollout))
        return self._done(registry, result)

    def execute_complete(self, context: Context, event: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
        """Resume after the readiness trigger: move the alias back if the target is ready, else restore and fail."""
        from airflow_bridge.actions.deployment import settle
        from airflow_bridge.actions.targets import PendingMove, outcome_of

        with final_on_user_error():
            move = PendingMove.from_xcom(pending, "pending rollback")
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            result = settle(registry, move, outcome_of(event, move.rollout))
        return self._done(registry, result)

    def _done(self, registry: Any, result: Any) -> dict[str, Any]:
        from airflow_bridge.actions.results import Registration

        target = registry.get_version(self.model_name, result.version)
        self._remember(result=result, registration=Registration(self.model_name, result.version, target.artifact))
        self.log.info(
            "Rolled %s '%s' back from v%s to v%d", self.model_name, self.alias, result.previous_version, result.version
        )
        return dict(result.to_xcom())

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the version rolled back to; writes the alias (like a deployment)."""
        from airflow_bridge.actions.names import local_endpoint
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.naming import deployment_dataset
        from airflow_bridge.operators.deploy import alias_lineage

        namespace = self.lineage_registry_namespace()
        if not namespace:
            return builders.LineageParts()
        registration = self.lineage_state.get("registration")
        if registration is None:  # not rolled back (yet): only the alias it would change
            endpoint = local_endpoint(self.model_name, self.alias)
            served = deployment_dataset(endpoint, self.model_name, self.alias, namespace)
            return builders.LineageParts(outputs=[builders.served_dataset(served, None)])
        return alias_lineage(namespace, registration, self.alias, self.lineage_state.get("result"))
