"""``DeployModelOperator``: the deploy action inside an Airflow task, policy-checked by default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref
from airflow_bridge.operators.links import DEPLOY_LINKS, emit_asset_events

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.results import DeploymentResult
    from airflow_bridge.lineage.builders import LineageParts


class DeployModelOperator(OpenLineageMixin, BaseOperator):
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

    ``target="kserve"`` serves the version from an InferenceService on the team's ``serving`` tier
    (``canary_traffic_percent`` sends that share of traffic to it). The object is applied only after the
    gate allowed the move; the task then defers to a readiness trigger (no worker slot held) and the
    alias moves in ``execute_complete`` once KServe reports Ready. A failed or timed-out rollout restores
    the InferenceService, is audited, and leaves the alias where it was. ``deferrable=False`` waits in the task.
    """

    template_fields: Sequence[str] = ("registration",)
    ui_color = "#f3e8fd"
    operator_extra_links = DEPLOY_LINKS

    def __init__(
        self,
        *,
        registration: Any,
        alias: str = "production",
        target: str = "local",
        serving: str | None = None,
        canary_traffic_percent: int | None = None,
        deferrable: bool = True,
        registry_conn_id: str | None = None,
        enforce_policy: bool = True,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_bridge.actions.targets import TARGETS

        if "require_approval" in kwargs:
            raise TypeError(
                "DeployModelOperator: require_approval was removed; the team policy decides which aliases need "
                "approval (enforce_policy=True, the default)"
            )
        super().__init__(**kwargs)
        if target not in TARGETS:
            raise ValueError(f"unknown deployment target '{target}'; available: {', '.join(TARGETS)}")
        self.registration = registration
        self.alias = alias
        self.target = target
        self.serving = serving
        self.canary_traffic_percent = canary_traffic_percent
        self.deferrable = deferrable
        self.registry_conn_id = registry_conn_id
        self.enforce_policy = enforce_policy
        self.lineage_context = dict(lineage_context or {})

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.deployment import begin_deploy, settle
        from airflow_bridge.actions.results import Registration
        from airflow_bridge.actions.targets import target_for

        with final_on_user_error():
            registration = Registration.from_xcom(self.registration, "registration")
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            self._remember(registration=registration)
            pending = begin_deploy(
                registry,
                model=registration.model,
                version=registration.version,
                alias=self.alias,
                target=self.target,
                serving=self.serving,
                canary_traffic_percent=self.canary_traffic_percent,
                actor=actor_of(context),
                run=run_ref(context),
                reason=f"deployed by {context['ti'].dag_id}",
                enforce_policy=self.enforce_policy,
            )
            target = target_for(pending.target)
            trigger = target.trigger(pending.rollout) if self.deferrable else None
            if trigger is not None:
                self.log.info("Waiting for %s to serve %s v%d", self.target, pending.model, pending.version)
                self.defer(
                    trigger=trigger,
                    method_name="execute_complete",
                    kwargs={"pending": pending.to_xcom(), "registration": registration.to_xcom()},
                )
            result = settle(registry, pending, target.wait(pending.rollout))
        return self._done(context, registration, result)

    def execute_complete(
        self, context: Context, event: dict[str, Any], pending: dict[str, Any], registration: dict[str, Any]
    ) -> dict[str, Any]:
        """Resume after the readiness trigger: move the alias if the target is ready, else restore and fail."""
        from airflow_bridge.actions.deployment import settle
        from airflow_bridge.actions.results import Registration
        from airflow_bridge.actions.targets import PendingMove, outcome_of

        with final_on_user_error():
            move = PendingMove.from_xcom(pending, "pending deployment")
            registered = Registration.from_xcom(registration, "registration")
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            self._remember(registration=registered)
            result = settle(registry, move, outcome_of(event, move.rollout))
        return self._done(context, registered, result)

    def _done(self, context: Context, registration: Any, result: DeploymentResult) -> dict[str, Any]:
        from airflow_bridge.operators.register import version_extra

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
    from airflow_bridge.actions.names import local_endpoint
    from airflow_bridge.lineage import builders
    from airflow_bridge.lineage.facets import ApprovalRunFacet, DeploymentRunFacet, keyed
    from airflow_bridge.lineage.naming import deployment_dataset

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
