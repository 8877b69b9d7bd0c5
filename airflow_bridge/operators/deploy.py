"""``DeployModelOperator``: verify the artifact, then point an alias at the version and record the deployment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.operators._common import actor_of, as_dict, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.registry.store import ModelRegistry

TARGETS = ("local",)


class DeployModelOperator(BaseOperator):
    """Deploy a registered version to ``target`` under ``alias``.

    ``registration`` is the XCom of ``RegisterModelOperator`` (or a ``{"model", "version"}`` dict).
    The artifact's sha256 and size are checked first; a mismatch fails the task and nothing moves.
    The alias moves by compare-and-set against what it pointed at when the task started, so two
    concurrent deployments cannot both win. Target ``local`` serves from the registry itself
    (``airflow-bridge serve``), so deploying is the alias move plus the deployment record. With
    ``require_approval`` the run must have recorded an approval of this version for this alias.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.require_approval = require_approval
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
            name, number = registration["model"], int(registration["version"])
            version = registry.get_version(name, number)
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
        if decision is None or decision.action != "approval_granted":
            state = decision.action.replace("approval_", "") if decision else "not requested"
            raise PolicyViolationError(
                f"{name} v{number} is not approved for alias '{self.alias}' in this run (approval {state}); "
                "deployments to this alias need an approver's decision"
            )
