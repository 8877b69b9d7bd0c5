"""``DeployModelOperator``: the deploy action inside an Airflow task, policy-checked by default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_bridge.operators.alias_move import AliasMoveOperator
from airflow_bridge.operators.links import DEPLOY_LINKS, emit_asset_events

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.results import DeploymentResult, Registration
    from airflow_bridge.lineage.builders import LineageParts
    from airflow_bridge.registry.store import ModelRegistry


class DeployModelOperator(AliasMoveOperator):
    """Deploy a registered version to ``target`` under ``alias``.

    ``registration`` is the XCom of ``RegisterModelOperator`` (or a ``{"model", "version"}`` dict).
    The team policy that governs the model is enforced: a protected alias (``production`` unless the
    policy says otherwise) moves only to a version with a recorded approval by an allowed approver,
    and with no policy in reach it fails closed. ``enforce_policy=False`` turns that off only where the
    policy allows it (``allow_enforcement_opt_out``), and the opt-out is written to the audit trail.
    The artifact's checksum is verified and the alias moves by compare-and-set, so two concurrent
    deployments cannot both win. Refusals fail the task without retry and are audited.
    OpenLineage: reads ``model/<name>`` at the version and writes the alias (``model/<name>@<alias>``).
    Airflow assets: every ``Asset`` in ``outlets`` gets an event whose extra is the version and the move.

    ``target`` is any installed deployment target, ``target_settings`` its own settings. With
    ``target="kserve"`` the version is served from an InferenceService on the team's serving tier
    (``target_settings={"serving": "gold", "canary_traffic_percent": 10}``). The target applies only
    after the gate allowed the move; the task then defers to the target's readiness trigger (no worker
    slot held) and the alias moves in ``execute_complete`` once it is ready. A failed or timed-out
    rollout is restored, audited, and leaves the alias where it was. ``deferrable=False`` waits in the task.
    """

    template_fields: Sequence[str] = ("registration",)
    ui_color = "#f3e8fd"
    operator_extra_links = DEPLOY_LINKS

    def __init__(self, *, registration: Any, **kwargs: Any) -> None:
        if "require_approval" in kwargs:
            raise TypeError(
                "DeployModelOperator: require_approval was removed; the team policy decides which aliases need "
                "approval (enforce_policy=True, the default)"
            )
        super().__init__(**kwargs)
        self.registration = registration

    def move_request(self, context: Context) -> MoveRequest:
        from airflow_bridge.actions.moves import MoveRequest

        registration = self._registration()
        self._remember(registration=registration)
        return MoveRequest(
            model=registration.model,
            version=registration.version,
            alias=self.alias,
            target=self.target,
            settings=self.target_settings,
            reason=f"deployed by {context['ti'].dag_id}",
            enforce_policy=self.enforce_policy,
        )

    def deferral_state(self) -> dict[str, Any]:
        return {"registration": self._registration().to_xcom()}

    def resume(self, state: Mapping[str, Any]) -> None:
        from airflow_bridge.actions.results import Registration

        self._remember(registration=Registration.from_xcom(state["registration"], "registration"))

    def _registration(self) -> Registration:
        from airflow_bridge.actions.results import Registration

        remembered = self.lineage_state.get("registration")
        return remembered or Registration.from_xcom(self.registration, "registration")

    def moved(self, context: Context, registry: ModelRegistry, result: DeploymentResult) -> dict[str, Any]:
        from airflow_bridge.operators.register import version_extra

        registration = self._registration()
        self._remember(result=result)
        moved = {"alias": self.alias, "previous_version": result.previous_version, "endpoint": result.endpoint}
        emit_asset_events(context, self.outlets, {**version_extra(registration, result.actor), **moved})
        was = f"v{result.previous_version}" if result.previous_version else "unset"
        self.log.info(
            "Deployed %s v%d to %s (alias '%s', was %s) at %s",
            result.model,
            result.version,
            self.target,
            self.alias,
            was,
            result.endpoint,
        )
        return result.to_xcom()

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the registered version; writes the alias it moves (with the version it now serves)."""
        from airflow_bridge.actions.results import Registration
        from airflow_bridge.exceptions import BridgeError
        from airflow_bridge.lineage import builders

        namespace = self.lineage_registry_namespace()
        try:
            registration = self.lineage_state.get("registration") or Registration.from_xcom(self.registration)
        except BridgeError:
            return builders.LineageParts()
        if not namespace:
            return builders.LineageParts()
        return alias_lineage(namespace, registration, self.alias, self.lineage_state.get("result"))


def alias_lineage(namespace: str, source: Any, alias: str, result: DeploymentResult | None) -> LineageParts:
    """Lineage of an alias move (deploy or rollback): reads the version, writes the alias it now serves."""
    from airflow_bridge.lineage import builders
    from airflow_bridge.lineage.facets import ApprovalRunFacet, DeploymentRunFacet, keyed
    from airflow_bridge.lineage.naming import deployment_dataset
    from airflow_bridge.serving.target import local_endpoint

    model, version = source.model, source.version
    endpoint = result.endpoint if result else local_endpoint(model, alias)
    served = deployment_dataset(endpoint, model, alias, namespace)
    about = source if source.artifact.uri else None
    parts = builders.LineageParts(
        inputs=[builders.model_dataset(namespace, model, version, output=False, about=about)],
        outputs=[builders.served_dataset(served, result.version if result else None)],
    )
    if source.artifact.uri:
        parts.run_facets.update(keyed(builders.artifact(source.artifact)))
    if result is not None:
        moved = DeploymentRunFacet(
            action=result.action,
            model=model,
            version=result.version,
            alias=alias,
            target=result.target,
            endpoint=endpoint,
            previousVersion=result.previous_version,
        )
        parts.run_facets.update(keyed(moved))
        if result.approval is not None:
            approval = ApprovalRunFacet(
                decision=result.approval.decision,
                model=model,
                version=result.version,
                alias=alias,
                approver=result.approval.approver,
                reason=result.approval.reason or None,
            )
            parts.run_facets.update(keyed(approval))
    return parts
