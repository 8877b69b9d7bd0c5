"""``AliasMoveOperator``: what the deploy and rollback operators share, one move of an alias in a task.

A subclass says which move it asks for (:meth:`move_request`) and what it reports once the alias
moved (:meth:`moved`); the base runs the move: the gate and the target's ``apply`` in ``execute``, then
either the target's readiness trigger (deferred: no worker slot held while a rollout comes up) or a
blocking wait, and ``settle`` (the alias moves, or the target is restored and the refusal audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.results import DeploymentResult
    from airflow_bridge.registry.store import ModelRegistry

_MOVED_TO_SETTINGS = ("serving", "canary_traffic_percent")


class AliasMoveOperator(OpenLineageMixin, BaseOperator):
    """Move ``alias`` through the gate and ``target`` (with its ``target_settings``), deferring while it comes up."""

    def __init__(
        self,
        *,
        alias: str = "production",
        target: str = "local",
        target_settings: Mapping[str, Any] | None = None,
        deferrable: bool = True,
        registry_conn_id: str | None = None,
        enforce_policy: bool = True,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_bridge.spec.targets import installed_targets

        moved = [key for key in _MOVED_TO_SETTINGS if key in kwargs]
        if moved:
            raise TypeError(
                f"{type(self).__name__}: {', '.join(moved)} moved into target_settings, e.g. "
                f"target_settings={{{', '.join(f'{k!r}: {kwargs[k]!r}' for k in moved)}}}"
            )
        super().__init__(**kwargs)
        installed_targets().get(target)  # an unknown or broken target fails the DAG file, naming what is installed
        self.alias = alias
        self.target = target
        self.target_settings = dict(target_settings or {})
        self.deferrable = deferrable
        self.registry_conn_id = registry_conn_id
        self.enforce_policy = enforce_policy
        self.lineage_context = dict(lineage_context or {})

    def move_request(self, context: Context) -> MoveRequest:
        """The move this task asks for."""
        raise NotImplementedError

    def moved(self, context: Context, registry: ModelRegistry, result: DeploymentResult) -> dict[str, Any]:
        """What the task reports (and emits) once the alias moved; its XCom."""
        raise NotImplementedError

    def deferral_state(self) -> dict[str, Any]:
        """What :meth:`moved` needs back after a deferral (besides the pending move)."""
        return {}

    def resume(self, state: Mapping[str, Any]) -> None:
        """Take back :meth:`deferral_state` in ``execute_complete``."""

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.deployment import begin_move, settle
        from airflow_bridge.targets import target_for

        with final_on_user_error():
            request = self.move_request(context)
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            pending = begin_move(registry, request, actor=actor_of(context), run=run_ref(context))
            target = target_for(pending.target)
            trigger = target.trigger(pending.rollout) if self.deferrable else None
            if trigger is not None:
                self.log.info("Waiting for %s to serve %s v%d", pending.target, pending.model, pending.version)
                self.defer(
                    trigger=trigger,
                    method_name="execute_complete",
                    kwargs={"pending": pending.to_xcom(), "state": self.deferral_state()},
                )
            result = settle(registry, pending, target.wait(pending.rollout))
        return self.moved(context, registry, result)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        pending: dict[str, Any],
        state: Mapping[str, Any] | None = None,
        **before: Any,
    ) -> dict[str, Any]:
        """Resume after the readiness trigger: move the alias if the target is ready, else restore and fail.

        ``before``: the keyword arguments a deferral of an earlier release saved (``registration``), so a
        task deferred before an upgrade still completes after it."""
        from airflow_bridge.actions.deployment import settle
        from airflow_bridge.actions.moves import PendingMove, outcome_of

        with final_on_user_error():
            move = PendingMove.from_xcom(pending, "pending move")
            self.resume({**before, **(state or {})})
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            result = settle(registry, move, outcome_of(event, move.rollout))
        return self.moved(context, registry, result)
