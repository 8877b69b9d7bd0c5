"""Answering approval requests outside the UI (``airflow-bridge run --approve-as``), through Airflow's own
HITL handler: the same code the Required Actions page calls, including its check of assigned users.

Used by local runs and tests; production approvals happen in the Airflow UI.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One answer to give: ``user`` chooses Approve (or Reject)."""

    user: str
    approve: bool = True


@dataclass
class Outcome:
    """What Airflow said to each answer: accepted, or the refusal (HTTP status and detail)."""

    task_id: str | None = None
    run_id: str | None = None
    responses: list[tuple[Answer, bool, str]] = field(default_factory=list)
    """(answer, accepted, detail)"""

    @property
    def accepted(self) -> Answer | None:
        return next((answer for answer, ok, _ in self.responses if ok), None)


def waiting_for_input(dag_id: str, run_id: str | None = None, since: dt.datetime | None = None) -> list[Any]:
    """Task instances of ``dag_id`` with a human request nobody answered yet (of one run, or started ``since``).

    Parked by Airflow (*awaiting input*) or deferred to a trigger that waits for the answer
    (``ModelApprovalOperator``); in ``dag.test()`` the trigger runs in line while the task is *queued*.
    """
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import State
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(TaskInstance)
            .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
            .where(
                TaskInstance.dag_id == dag_id,
                HITLDetail.responded_at.is_(None),
                TaskInstance.state.not_in(list(State.finished)),
            )
        )
        if run_id:
            query = query.where(TaskInstance.run_id == run_id)
        if since:
            query = query.where(TaskInstance.start_date >= since)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def answer(dag_id: str, run_id: str, task_id: str, item: Answer) -> tuple[bool, str]:
    """Give one answer through Airflow's HITL API handler; returns (accepted, detail)."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    create_auth_manager()
    payload = UpdateHITLDetailPayload(chosen_options=["Approve" if item.approve else "Reject"], params_input={})
    try:
        with create_session() as session:
            update_hitl_detail(
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                update_hitl_detail_payload=payload,
                user=SimpleAuthManagerUser(username=item.user, role="user"),
                session=session,
            )
    except HTTPException as exc:
        return False, f"HTTP {exc.status_code}: {exc.detail}"
    return True, f"{item.user} chose {payload.chosen_options[0]}"


def _preload() -> None:
    """Import what the thread needs now, in the caller's thread: two threads importing Airflow's
    models at once can deadlock on the import lock while dag.test() is serializing the DAG."""
    import airflow.api_fastapi.app
    import airflow.api_fastapi.auth.managers.simple.user
    import airflow.api_fastapi.core_api.datamodels.hitl
    import airflow.api_fastapi.core_api.routes.public.hitl
    import airflow.models
    import airflow.models.dagbag
    import airflow.models.taskinstance
    import airflow.utils.session

    airflow.models.import_all_models()
    # The auth manager class is imported when it is first created: do it here too, so the thread never
    # imports while a task in the main thread imports its own libraries (scikit-learn, skrub, matplotlib).
    airflow.api_fastapi.app.create_auth_manager()


class Responder(threading.Thread):
    """Watches a DAG for an approval request of a run started after it, and gives ``answers`` in order
    until one is accepted.

    ``on_refused`` runs when every answer was refused (a local run then stops), ``on_waiting``
    when there are no answers to give.
    """

    def __init__(
        self,
        dag_id: str,
        answers: Sequence[Answer],
        *,
        run_id: Callable[[], str | None] = lambda: None,
        on_refused: Callable[[Outcome], None] | None = None,
        on_waiting: Callable[[Outcome], None] | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        super().__init__(name=f"approval-responder-{dag_id}", daemon=True)
        _preload()
        self.dag_id = dag_id
        self.answers = list(answers)
        self.run_id = run_id
        self.on_refused = on_refused
        self.on_waiting = on_waiting
        self.poll_seconds = poll_seconds
        self.outcome = Outcome()
        self._stop_event = threading.Event()
        self._watch_from = dt.datetime.now(dt.UTC)

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            # Only this run's request: stale requests of stopped local runs must never get the answer.
            waiting = waiting_for_input(self.dag_id, self.run_id(), since=self._watch_from)
            if not waiting:
                time.sleep(self.poll_seconds)
                continue
            ti = waiting[0]
            self.outcome.task_id, self.outcome.run_id = ti.task_id, ti.run_id
            if not self.answers:
                if self.on_waiting:
                    self.on_waiting(self.outcome)
                return
            for item in self.answers:
                accepted, detail = answer(self.dag_id, ti.run_id, ti.task_id, item)
                self.outcome.responses.append((item, accepted, detail))
                if accepted:
                    return
            if self.on_refused:
                self.on_refused(self.outcome)
            return
