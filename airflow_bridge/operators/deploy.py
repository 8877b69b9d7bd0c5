"""``DeployModelOperator``: verify the artifact, then point an alias at the version and record the deployment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, as_dict, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts
    from airflow_bridge.registry.store import ModelRegistry

TARGETS = ("local",)


class DeployModelOperator(OpenLineageMixin, BaseOperator):
    """Deploy a registered version to ``target`` under ``alias``.

    ``registration`` is the XCom of ``RegisterModelOperator`` (or a ``{"model", "version"}`` dict).
    The artifact's sha256 and size are checked first; a mismatch fails the task and nothing moves.
    The alias moves by compare-and-set against what it pointed at when the task started, so two
    concurrent deployments cannot both win. Target ``local`` serves from the registry itself
    (``airflow-bridge serve``), so deploying is the alias move plus the deployment record. With
    ``require_approval`` the run must have recorded an approval of this version for this alias.
    OpenLineage: reads ``model/<name>`` at the version (the dataset register wrote) and writes the
    alias (``model/<name>@<alias>``, or the serving endpoint for non-local targets).
    """

    template_fields: Sequence[str] = ("registration",)
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        registration: Any,
        alias: str = "production",
        target: str = "local",
        registry_conn_id: str | None = None,
        require_approval: bool = False,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.require_approval = require_approval
        self.lineage_context = dict(lineage_context or {})
        if target not in TARGETS:
            raise ValueError(f"unknown deployment target '{target}'; available: {', '.join(TARGETS)}")
        self.registration = registration
        self.alias = alias
        self.target = target
        self.registry_conn_id = registry_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.artifacts import ArtifactStore

        with final_on_user_error():
            registration = as_dict(self.registration, "registration")
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            name, number = registration["model"], int(registration["version"])
            version = registry.get_version(name, number)
            self._remember(artifact=version.artifact)
            if self.require_approval:
                self._check_approved(registry, name, number, context)
            ArtifactStore.from_config().read_verified(version.artifact)
            live = registry.alias_version(name, self.alias)
            deployment = registry.deploy(
                name,
                number,
                alias=self.alias,
                target=self.target,
                endpoint=f"registry://{name}@{self.alias}",
                expected=live.version if live else None,
                actor=actor_of(context),
                run=run_ref(context),
                reason=f"deployed by {context['ti'].dag_id}",
            )
        previous = live.version if live else None
        self._remember(endpoint=deployment.endpoint, previous_version=previous, deployed=deployment.version)
        self.log.info(
            "Deployed %s v%d to %s (alias '%s', was %s)",
            name,
            number,
            self.target,
            self.alias,
            f"v{previous}" if previous else "unset",
        )
        return {
            "model": name,
            "version": deployment.version,
            "alias": self.alias,
            "target": self.target,
            "endpoint": deployment.endpoint,
            "previous_version": previous,
        }

    def _check_approved(self, registry: ModelRegistry, name: str, number: int, context: Context) -> None:
        """Refuse unless this run recorded an approval of this version for this alias."""
        from airflow_bridge.exceptions import PolicyViolationError

        decision = registry.approval_decision(name, number, self.alias, run_id=context["ti"].run_id)
        self._remember(approval=decision)
        if decision is None or decision.action != "approval_granted":
            state = decision.action.replace("approval_", "") if decision else "not requested"
            raise PolicyViolationError(
                f"{name} v{number} is not approved for alias '{self.alias}' in this run (approval {state}); "
                "deployments to this alias need an approver's decision"
            )

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the registered version; writes the alias it moves (with the version it now serves)."""
        import dataclasses

        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import DeploymentRunFacet, keyed
        from airflow_bridge.lineage.naming import deployment_dataset

        registration = self.registration if isinstance(self.registration, dict) else {}
        namespace = self.lineage_registry_namespace()
        name, number = registration.get("model"), registration.get("version")
        if not (name and namespace and number is not None):
            return builders.LineageParts()
        state = self.lineage_state
        endpoint = state.get("endpoint") or f"registry://{name}@{self.alias}"
        served = deployment_dataset(endpoint, name, self.alias, namespace)
        parts = builders.LineageParts(
            inputs=[builders.model_dataset(namespace, name, int(number), output=False, training=registration)],
            outputs=[builders.served_dataset(served, int(number) if "deployed" in state else None)],
        )
        if state.get("artifact") is not None:
            parts.run_facets.update(keyed(builders.artifact(dataclasses.asdict(state["artifact"]))))
        if "deployed" in state:
            deployment = DeploymentRunFacet(
                action="deployed",
                model=name,
                version=int(state["deployed"]),
                alias=self.alias,
                target=self.target,
                endpoint=endpoint,
                previousVersion=state.get("previous_version"),
            )
            parts.run_facets.update(keyed(deployment))
        decision = state.get("approval")
        if decision is not None:
            parts.run_facets.update(keyed(approval_facet(decision, name, int(number), self.alias)))
        return parts


def approval_facet(decision: Any, model: str, version: int, alias: str) -> Any:
    """The approval decision recorded in the audit trail, as an OpenLineage run facet."""
    from airflow_bridge.lineage.facets import ApprovalRunFacet

    after = decision.after if isinstance(decision.after, dict) else {}
    return ApprovalRunFacet(
        decision=decision.action.removeprefix("approval_"),
        model=model,
        version=version,
        alias=alias,
        approver=after.get("approver") or decision.actor,
        reason=decision.reason or None,
    )
