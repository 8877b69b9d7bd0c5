"""Progress of ``airflow-bridge run``: the run process's events as lines, and the wall time as slices.

Each slice starts where the previous one ended, the first at the command's start: start-up, metadata
database, DAG build, Airflow's run set-up (``dag.test()`` up to the first task), each task (from the
end of the one before: Airflow's start of the task included), tear-down. They add up to the total.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from airflow_bridge.cli.common import console

if TYPE_CHECKING:
    from airflow_bridge.cli.run_summary import RunSummary

SETUP = "Airflow run set-up"
PARTS = {
    "start-up": "start_up",
    "metadata database": "metadata_database",
    "build DAG": "dag_build",
    SETUP: "airflow_setup",
}
"""Slices of the wall time that are not tasks, by the name printed → the key in ``timings``."""


class Progress:
    """Turns the child's JSON events into progress lines, and the wall time into consecutive slices."""

    def __init__(self, out: Console, started: float) -> None:
        self.out = out
        self.started: dict[str, float] = {}
        self.failures: dict[str, str] = {}
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.approval: dict[str, Any] | None = None
        self.origin = started
        self.slices: list[tuple[str, float]] = []
        """(part, seconds): each starts where the previous ended, the first at the process start."""
        self.task_slices: dict[str, float] = {}
        self._last = started
        self.marks: dict[str, float] = {}
        """Moments of the start-up and tear-down (seconds since the process start), for the curious."""

    def _slice(self, part: str, at: float) -> float:
        took = max(0.0, at - self._last)
        self._last = max(self._last, at)
        self.slices.append((part, took))
        return took

    def handle(self, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        kind, at = event.get("event"), float(event.get("time") or time.time())
        if kind == "ready":
            self.marks["airflow_imported_at"] = at - self.origin
        elif kind == "stage":
            if not self.slices:
                took = self._slice("start-up", at)
                self.out.print(f"  [green]✓[/] start-up [dim]{took:.1f}s[/]")
            self.out.print(f"  … {event['stage']} [dim]{escape(str(event.get('detail', '')))}[/]")
        elif kind == "stage_done":
            took = self._slice(event["stage"], at)
            self.out.print(f"  [green]✓[/] {event['stage']} [dim]{escape(str(event.get('detail', '')))} {took:.1f}s[/]")
        elif kind == "task_running":
            if not self.started:
                took = self._slice(SETUP, at)
                self.out.print(f"  [green]✓[/] {SETUP} [dim]{took:.1f}s (dag.test(): DAG sync, DAG run, task API)[/]")
            resumed = event["task_id"] in self.started
            self.started[event["task_id"]] = at
            self.out.print(f"  ▶ {event['task_id']} {'resumed' if resumed else 'running'}")
        elif kind == "task_success":
            took = self._task_slice(event["task_id"], at)
            self.out.print(f"  [green]✓[/] {event['task_id']} [dim]{took:.1f}s[/]")
        elif kind == "task_failed":
            self._task_slice(event["task_id"], at)
            self.failures[event["task_id"]] = event.get("error", "")
            first = (event.get("error") or "").strip().splitlines()[:1]
            self.out.print(f"  [red]✗ {event['task_id']} failed[/]: {escape(first[0]) if first else ''}")
        elif kind == "awaiting_approval":
            self.approval = {"status": "waiting", "approvers": event.get("approvers", [])}
            self.out.print(
                f"  [yellow]⏸ {event.get('task_id')} waits for an approver[/]: "
                f"{escape(', '.join(event.get('approvers', [])) or 'none defined')}"
            )
        elif kind == "approval_refused":
            self.approval = {
                "status": "refused",
                "by": event.get("user"),
                "detail": event.get("detail"),
                "approvers": event.get("approvers", []),
            }
            self.out.print(
                f"  [red]✗ approval by {escape(str(event.get('user')))} refused[/]: {escape(str(event.get('detail')))}"
            )
        elif kind == "result":
            self.result = event
        elif kind == "error":
            self.errors.append(event.get("message", "unknown error"))

    def _task_slice(self, task_id: str, at: float) -> float:
        """A task's slice runs from the end of the previous one: Airflow's start of the task included."""
        took = self._slice(task_id, at)
        self.task_slices[task_id] = self.task_slices.get(task_id, 0.0) + took
        return took

    def child_exited(self) -> None:
        self.marks["run_process_exited_at"] = time.time() - self.origin

    def timings(self) -> dict[str, Any]:
        """Seconds per part of the wall time, from the process start to now; the parts add up to ``total``."""
        end = time.time()
        parts = dict.fromkeys(PARTS.values(), 0.0)
        for part, took in self.slices:
            if part in PARTS:
                parts[PARTS[part]] += took
        parts["tear_down"] = end - self._last
        return {**parts, "tasks": dict(self.task_slices), "total": end - self.origin, "marks": dict(self.marks)}

    def summary(self, run_dir: Path, code: int) -> RunSummary:
        from airflow_bridge.actions.names import REPORT_XCOM_KEY, TaskId
        from airflow_bridge.actions.results import DeploymentResult, Registration, TrainingResult, ValidationReport
        from airflow_bridge.cli.run_summary import RunSummary

        result = self.result or {}
        xcoms = result.get("xcoms", {})

        def read(task: str, kind: Any, key: str = "return_value") -> Any:
            value = xcoms.get(task, {}).get(key)
            return kind.from_xcom(value) if value is not None else None

        train: TrainingResult | None = read(TaskId.TRAIN, TrainingResult)
        report: ValidationReport | None = read(TaskId.VALIDATE, ValidationReport, REPORT_XCOM_KEY)
        registered: Registration | None = read(TaskId.REGISTER, Registration)
        deployed: DeploymentResult | None = read(TaskId.DEPLOY, DeploymentResult)
        state = result.get("state") or ("failed" if code else "unknown")
        approval = self.approval or approval_from(xcoms.get(TaskId.APPROVE, {}).get("return_value"), result)
        return RunSummary(
            state=state,
            dag_id=result.get("dag_id"),
            run_id=result.get("run_id"),
            tasks=result.get("tasks", {}),
            failed_tasks=self.failures,
            errors=self.errors,
            model=registered.model if registered else (train.model if train else None),
            version=registered.version if registered else None,
            candidate=report.candidate_id if report else None,
            metrics=report.metrics if report else {},
            gates=report.gates if report else [],
            champion=report.champion if report else None,
            warnings=report.warnings if report else [],
            baseline=report.baseline if report else None,
            uncertainty=report.uncertainty if report else None,
            report=(report.report or {}).get("html") if report else None,
            deployment=deployed,
            approval=approval,
            artifact=dict(train.artifact.__dict__) if train else None,
            data={"uri": train.data.uri, "sha256": train.data.sha256, "rows": train.data.rows} if train else None,
            run_dir=str(run_dir),
            log=str(run_dir / "airflow.log"),
            search=search_outcome(train),
        )


def search_outcome(train: Any) -> dict[str, Any] | None:
    """The few numbers of a training result's search that the run prints and ``summary.json`` keeps."""
    search = getattr(train, "search", None)
    if search is None:
        return None
    return {
        "metric": search.metric,
        "folds": search.folds,
        "trials": len(search.trials),
        "complete": search.count("COMPLETE"),
        "pruned": search.count("PRUNED"),
        "failed": search.count("FAIL"),
        "best_trial": search.best_trial,
        "best_value": search.best_value,
        "best_params": search.best_params,
        "stopped_by": search.stopped_by,
    }


def approval_from(answer: Any, result: dict[str, Any]) -> dict[str, Any] | None:
    from airflow_bridge.actions.names import TaskId

    if not isinstance(answer, dict):
        return None
    user = answer.get("responded_by_user") or {}
    chosen = answer.get("chosen_options") or []
    status = "granted" if chosen == ["Approve"] else "rejected"
    if result.get("tasks", {}).get(TaskId.APPROVE) == "failed":
        status = "refused"
    return {"status": status, "by": user.get("name") or user.get("id")}


def resumed_timings(started: float, found: float, end: float) -> dict[str, Any]:
    """Timings of a run that answered a pending approval: start-up (until it was found), the answer."""
    return {"start_up": found - started, "approval": end - found, "tasks": {}, "total": end - started}


def print_timings(timings: dict[str, Any]) -> None:
    """One line that accounts for the wall time: the parts add up to the total."""
    names = {key: name for name, key in PARTS.items()}
    parts = [(names[key], timings.get(key, 0.0)) for key in PARTS.values()]
    tasks = sum(timings.get("tasks", {}).values())
    if "approval" in timings:
        parts = [("start-up", timings["start_up"]), ("approval", timings["approval"])]
    shown = [f"{name} {seconds:.1f}s" for name, seconds in parts]
    if tasks:
        shown.append(f"tasks {tasks:.1f}s")
    if "tear_down" in timings:
        shown.append(f"tear-down {timings['tear_down']:.1f}s")
    console.print(f"[dim]time: {timings['total']:.1f}s = {' + '.join(shown)}[/]")


def print_warnings(warnings: list[dict[str, Any]]) -> None:
    """The run's leakage and sanity warnings, after the gates: yellow, or red when the team policy fails them."""
    for warning in warnings:
        style, label = ("red", "FAIL") if warning.get("failing") else ("yellow", "warning")
        console.print(f"[{style}]{label}[/] {escape(str(warning['code']))}: {escape(str(warning['message']))}")
