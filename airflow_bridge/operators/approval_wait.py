"""The wait of ``ModelApprovalOperator``: Airflow's HITL trigger, plus the end of a superseded request.

Airflow 3.3 parks an approval in *awaiting input* with no trigger, and nothing but an answer or the
timeout ends it: a request superseded by a newer version stayed in Required Actions for days and
answering it turned its run red. The approval defers to this trigger instead (Airflow's API still
resumes the task at once when someone answers). Each poke also asks the registry whether the request
was closed as superseded; if so the HITL request is closed (the default, Reject, with the reason as
the comment, so the form shows it answered) and the task resumes to fail with ``superseded by vN``.

The triggerer reads and writes the HITL request through its supervisor; ``dag.test()`` runs the trigger in
line, where that supervisor does not serve HITL requests, so there it uses the metadata DB directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.sdk.timezone import utcnow
from airflow.triggers.base import TriggerEvent
from asgiref.sync import sync_to_async

SUPERSEDED = "superseded"
"""The event key of a request closed by a newer version."""


def in_dag_test() -> bool:
    """Whether this runs inside ``dag.test()`` (a local run, a test), not on a worker or triggerer: its
    in-process supervisor does not serve HITL requests to triggers."""
    from airflow.sdk.execution_time import task_runner

    return type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms"


def poke_seconds() -> float:
    """How often the wait looks for an answer or a newer version: every 5 s, every 0.2 s in ``dag.test()``."""
    return 0.2 if in_dag_test() else 5.0


class ApprovalWaitTrigger(HITLTrigger):
    """``HITLTrigger`` that also ends when the registry closed the approval request as superseded."""

    def __init__(
        self,
        *,
        model: str,
        version: int,
        alias: str,
        registry_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model, self.version, self.alias = model, version, alias
        self.registry_conn_id = registry_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        kwargs.update(model=self.model, version=self.version, alias=self.alias, registry_conn_id=self.registry_conn_id)
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def superseded(self) -> str | None:
        """Why the request is closed because a newer version asked for the alias, else None."""
        from airflow_bridge.actions.approval import last_answer, pending_request
        from airflow_bridge.registry.events import AuditAction
        from airflow_bridge.resolution import open_registry

        registry = open_registry(self.registry_conn_id, in_airflow=True)
        if pending_request(registry, self.model, self.version, self.alias) is not None:
            return None
        answered = last_answer(registry, self.model, self.version, self.alias)
        if answered is None or answered.action != AuditAction.APPROVAL_SUPERSEDED:
            return None
        return f"the approval request of {self.model} v{self.version} for '{self.alias}' was {answered.reason}"

    def _in_line(self) -> bool:
        return in_dag_test()

    def _detail(self) -> dict[str, Any]:
        """The request's response so far: ``response_received``, ``chosen_options``, ``params_input``,
        ``responded_at``, ``responded_by_user``."""
        if not self._in_line():
            from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

            return dict(get_hitl_detail_content_detail(ti_id=self.ti_id).model_dump())
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.get(HITLDetail, self.ti_id)
            if row is None or row.responded_at is None:
                return {"response_received": False}
            return {
                "response_received": True,
                "chosen_options": list(row.chosen_options or []),
                "params_input": dict(row.params_input or {}),
                "responded_at": row.responded_at,
                "responded_by_user": row.responded_by_user,
            }

    def _respond(self, chosen: list[str], params_input: dict[str, Any]) -> Any:
        """Record the request's answer as the system (the timeout's default, or closing it as superseded)."""
        if not self._in_line():
            from airflow.sdk.execution_time.hitl import update_hitl_detail_response

            return update_hitl_detail_response(ti_id=self.ti_id, chosen_options=chosen, params_input=params_input)
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.get(HITLDetail, self.ti_id)
            if row is not None and row.responded_at is None:
                row.chosen_options, row.params_input, row.responded_at = chosen, params_input, utcnow()
        return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Until an answer, the timeout (the default answers), or a newer version superseding the request."""
        while True:
            detail = await sync_to_async(self._detail)()
            if detail.get("response_received") and detail.get("chosen_options"):
                responder = detail.get("responded_by_user")
                yield TriggerEvent(
                    {
                        "chosen_options": list(detail["chosen_options"]),
                        "params_input": dict(detail.get("params_input") or {}),
                        "responded_at": detail["responded_at"],
                        "responded_by_user": dict(responder) if responder else None,
                        "timedout": responder is None,
                    }
                )
                return
            if self.timeout_datetime and self.timeout_datetime < utcnow():
                defaults = list(self.defaults or ["Reject"])
                await sync_to_async(self._respond)(defaults, {})
                yield TriggerEvent(
                    {
                        "chosen_options": defaults,
                        "params_input": {},
                        "responded_at": utcnow(),
                        "responded_by_user": None,
                        "timedout": True,
                    }
                )
                return
            try:
                why = await sync_to_async(self.superseded)()
            except Exception:  # the registry is unreachable: keep waiting, an answer still gets through
                self.log.warning("cannot read the registry; still waiting for an answer", exc_info=True)
                why = None
            if why:
                try:
                    await sync_to_async(self._respond)(list(self.defaults or ["Reject"]), {"comment": why})
                except Exception:  # answered meanwhile: the task still ends as superseded
                    self.log.warning("could not close the HITL request of %s v%s", self.model, self.version)
                yield TriggerEvent({SUPERSEDED: why})
                return
            await asyncio.sleep(self.poke_interval)
