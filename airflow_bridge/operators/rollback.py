"""``RollbackModelOperator``: move an alias back to the version it pointed at before, inside a DAG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context


class RollbackModelOperator(BaseOperator):
    """Roll ``alias`` of ``model_name`` back to its previous version.

    Goes through the same compare-and-set and audit path as a deployment: if someone moves the
    alias while the rollback runs, the rollback fails with a conflict instead of overwriting it.
    The previous version's artifact is checked before the alias moves.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.reason = reason
        self.target = target
        self.registry_conn_id = registry_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.artifacts import ArtifactStore
        from airflow_bridge.exceptions import NotFoundError

        with final_on_user_error():
            registry = open_registry(self.registry_conn_id)
            current = registry.alias_version(self.model_name, self.alias)
            previous = registry.previous_alias_version(self.model_name, self.alias)
            if current is None or previous is None:
                raise NotFoundError(
                    f"alias '{self.alias}' of '{self.model_name}' has no earlier version to roll back to"
                )
            ArtifactStore.from_config().read_verified(registry.get_version(self.model_name, previous).artifact)
            deployment = registry.rollback(
                self.model_name,
                self.alias,
                actor=actor_of(context),
                target=self.target,
                run=run_ref(context),
                reason=self.reason or f"rollback by {context['ti'].dag_id}",
            )
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
