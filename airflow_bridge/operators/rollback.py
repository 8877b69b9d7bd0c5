"""``RollbackModelOperator``: the rollback action inside an Airflow task, policy-checked by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_bridge.operators.alias_move import AliasMoveOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.results import DeploymentResult
    from airflow_bridge.lineage.builders import LineageParts
    from airflow_bridge.registry.store import ModelRegistry


class RollbackModelOperator(AliasMoveOperator):
    """Roll ``alias`` of ``model_name`` back to the version it pointed at before.

    The same action as ``airflow-bridge models rollback``: on a protected alias the version rolled back
    to must have a recorded approval for that alias (``enforce_policy=False`` only where the policy
    allows it, audited); the artifact is verified; the alias moves by compare-and-set, so a concurrent
    move makes the rollback fail instead of overwriting it. OpenLineage: like a deployment.

    ``target="kserve"`` (with ``target_settings={"serving": ...}``) re-points the InferenceService at the
    previous version's artifact with no canary, defers until KServe reports it ready, then moves the alias back.
    """

    template_fields: Sequence[str] = ("model_name", "alias", "reason")
    ui_color = "#fdebd0"

    def __init__(self, *, model_name: str, reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.reason = reason

    def move_request(self, context: Context) -> MoveRequest:
        from airflow_bridge.actions.moves import MoveRequest
        from airflow_bridge.registry.events import AuditAction

        return MoveRequest(
            model=self.model_name,
            alias=self.alias,
            action=AuditAction.ROLLED_BACK,
            target=self.target,
            settings=self.target_settings,
            reason=self.reason or f"rollback by {context['ti'].dag_id}",
            enforce_policy=self.enforce_policy,
        )

    def moved(self, context: Context, registry: ModelRegistry, result: DeploymentResult) -> dict[str, Any]:
        from airflow_bridge.actions.results import Registration

        target = registry.get_version(self.model_name, result.version)
        self._remember(result=result, registration=Registration(self.model_name, result.version, target.artifact))
        self.log.info(
            "Rolled %s '%s' back from v%s to v%d", self.model_name, self.alias, result.previous_version, result.version
        )
        return dict(result.to_xcom())

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the version rolled back to; writes the alias (like a deployment)."""
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.naming import deployment_dataset
        from airflow_bridge.operators.deploy import alias_lineage
        from airflow_bridge.serving.target import local_endpoint

        namespace = self.lineage_registry_namespace()
        if not namespace:
            return builders.LineageParts()
        registration = self.lineage_state.get("registration")
        if registration is None:  # not rolled back (yet): only the alias it would change
            endpoint = local_endpoint(self.model_name, self.alias)
            served = deployment_dataset(endpoint, self.model_name, self.alias, namespace)
            return builders.LineageParts(outputs=[builders.served_dataset(served, None)])
        return alias_lineage(namespace, registration, self.alias, self.lineage_state.get("result"))
