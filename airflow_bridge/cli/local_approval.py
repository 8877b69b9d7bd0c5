"""The approval step of a local run: answer it as ``--approve-as`` through Airflow, or stop the run there.

A responder thread (``cli.respond``) answers the approval request through Airflow's own HITL
handler, as soon as the request exists. The approval waits in its trigger (``dag.test()`` runs it in
line), which finds the answer on its next look (every 0.2 s in a local run), so an early answer cannot
be lost. The handler's module is imported without the rest of Airflow's public REST API (~2 s).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

PUBLIC_ROUTES = "airflow.api_fastapi.core_api.routes.public"


def _hitl_route_alone() -> None:
    """Let the responder import Airflow's HITL route module without the rest of the public REST API.

    The responder answers through one handler of ``<PUBLIC_ROUTES>.hitl``, but that package's
    ``__init__`` imports and assembles every public router (~2 s). Nothing in this process serves the
    REST API, so the package is registered as a bare package: its submodules import as usual, the
    handler and its checks are Airflow's own. Skipped when the layout is not the expected one.
    """
    import importlib
    import importlib.util
    import types

    if PUBLIC_ROUTES in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(PUBLIC_ROUTES)
    except ImportError:
        return
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType(PUBLIC_ROUTES)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules[PUBLIC_ROUTES] = package
    parent, _, child = PUBLIC_ROUTES.rpartition(".")
    setattr(importlib.import_module(parent), child, package)


def start_responder(dag: Any, approve_as: str | None, reject: bool) -> threading.Thread:
    """Answer the approval as ``approve_as`` (Airflow checks the user), or stop the run there."""
    from airflow_bridge.actions.names import TaskId
    from airflow_bridge.cli.local_run import EXIT_AWAITING_APPROVAL, current_run, emit, emit_result, leave
    from airflow_bridge.cli.respond import Answer, Outcome, Responder

    approvers = [user["name"] for user in dag.task_dict[TaskId.APPROVE].assigned_users or []]
    _hitl_route_alone()

    def stop(outcome: Outcome, event: str, code: int, **details: Any) -> None:
        emit(event, task_id=outcome.task_id, approvers=approvers, **details)
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in _task_instances(dag.dag_id)}
        emit_result(dag.dag_id, outcome.run_id or "", "awaiting_approval", states)
        leave(code)

    def refused(outcome: Outcome) -> None:
        detail = outcome.responses[-1][2] if outcome.responses else "refused"
        why = "the author cannot approve their own model" if approve_as == dag.owner else "not an approver"
        detail = f"{detail} ({approve_as}: {why}; approvers: {', '.join(approvers) or 'none'})"
        _record_local_refusal(dag, outcome, approve_as or "", detail)
        stop(outcome, "approval_refused", 1, user=approve_as, detail=detail)

    def run_id() -> str | None:
        return current_run.get("run_id")

    answers = [Answer(approve_as, approve=not reject)] if approve_as else []
    responder = Responder(
        dag.dag_id,
        answers,
        run_id=run_id,
        on_refused=refused,
        on_waiting=lambda outcome: stop(outcome, "awaiting_approval", EXIT_AWAITING_APPROVAL),
        poll_seconds=0.1,
    )
    responder.start()
    return responder


def _task_instances(dag_id: str) -> list[Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_bridge.cli.local_run import current_run

    with create_session() as session:
        rows = list(
            session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == current_run.get("run_id", "")
                )
            )
        )
        session.expunge_all()
        return rows


def _record_local_refusal(dag: Any, outcome: Any, user: str, detail: str) -> None:
    """Airflow refused the answer; keep that in the audit trail too (who tried, and why not)."""
    from airflow_bridge.actions.approval import refuse
    from airflow_bridge.actions.names import TaskId
    from airflow_bridge.actions.results import Registration
    from airflow_bridge.cli.local_run import collect_xcoms
    from airflow_bridge.registry.records import RunRef
    from airflow_bridge.resolution import open_registry

    task = dag.task_dict[TaskId.APPROVE]
    xcom = collect_xcoms(dag.dag_id, outcome.run_id).get(TaskId.REGISTER, {}).get("return_value")
    registration = Registration.from_xcom(xcom, "the register task's result")
    refuse(
        open_registry(task.registry_conn_id, in_airflow=True),
        model=registration.model,
        version=registration.version,
        alias=task.alias,
        responder=user,
        reason=f"Airflow refused the answer: {detail}",
        run=RunRef(dag.dag_id, outcome.run_id, TaskId.APPROVE),
    )
