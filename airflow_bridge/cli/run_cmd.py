"""``airflow-bridge run``: validate a spec, run its DAG in an isolated Airflow, print what happened."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from airflow_bridge.actions.names import TaskId
from airflow_bridge.cli.common import Format, console, err_console, print_json, resolve_home

EXIT_AWAITING_APPROVAL = 3


def run_spec(
    spec_path: Path, home: Path | None, output: Format, *, approve_as: str | None = None, reject: bool = False
) -> int:
    """Exit code: 0 when every task succeeded and the model was deployed as asked; 1 when the spec is
    invalid, a task failed or the approval was rejected or refused; 3 when stopped at an approval."""
    from airflow_bridge.governance.loader import load_specs_governed

    if not spec_path.is_file():
        err_console.print(f"[bold red]error:[/] {escape(str(spec_path))}: no such file")
        return 2
    [loaded], policies = load_specs_governed([str(spec_path)])
    if not loaded.ok or loaded.spec is None:
        err_console.print(f"[bold red]{escape(str(spec_path))} is not a valid spec:[/]")
        for issue in [i for p in policies.values() for i in p.issues] + loaded.issues:
            err_console.print(f"  {issue.format()}", markup=False)
        return 1
    name = loaded.spec.name
    home_dir = resolve_home(home)
    answered = _answer_pending_approval(loaded, home_dir, output, approve_as=approve_as, reject=reject)
    if answered is not None:
        return answered
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = home_dir / "runs" / name / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    from airflow_bridge.cli.local_run import LINEAGE_FILE, isolated_environment, lineage_environment

    env = {**os.environ, **isolated_environment(home_dir, run_dir)}
    env.update(lineage_environment(run_dir, spec_path.resolve().parent, env))
    # With --format json, stdout carries only the JSON summary; progress goes to stderr.
    out = err_console if output == Format.json else console
    shown, home_shown = escape(str(spec_path)), escape(str(home_dir))
    out.print(f"[bold]airflow-bridge run[/] {shown} → DAG [bold]{name}[/] (home {home_shown})")
    command = [
        sys.executable,
        "-m",
        "airflow_bridge.cli.local_run",
        "--spec",
        str(spec_path.resolve()),
        "--name",
        name,
        "--home",
        str(home_dir),
        "--run-dir",
        str(run_dir),
        *(["--approve-as", approve_as] if approve_as else []),
        *(["--reject"] if reject else []),
    ]
    progress = _Progress(out)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                progress.handle(line)
        except KeyboardInterrupt:
            # Never leave an orphaned Airflow run holding the local metadata DB.
            child.terminate()
            child.wait(timeout=30)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
        code = child.wait()
    if progress.result is None and not progress.errors:
        # The child died without a word (killed, crashed in native code): say so instead of a bare "failed".
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        log = run_dir / "airflow.log"
        progress.errors.append(f"the run process ended before reporting a result ({how}); see {log}")
    summary = progress.summary(run_dir, code)
    summary["lineage"] = _lineage_summary(run_dir / LINEAGE_FILE, env)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if output == Format.json:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["state"] == "awaiting_approval":
        return EXIT_AWAITING_APPROVAL if summary["approval"]["status"] == "waiting" else 1
    deployed_as_asked = summary["tasks"].get(TaskId.DEPLOY) in (None, "success")
    return 0 if summary["state"] == "success" and deployed_as_asked else 1


def _answer_pending_approval(
    loaded: Any, home: Path, output: Format, *, approve_as: str | None, reject: bool
) -> int | None:
    """A version of this spec and data already waits for approval: answer it instead of training again.

    Returns the exit code, or None when nothing of this spec is pending (the run goes ahead).
    """
    from airflow_bridge.cli.pending import find_pending_version, resume_after_approval

    pending = find_pending_version(loaded, home)
    if pending is None:
        return None
    out = err_console if output == Format.json else console
    if not approve_as:
        out.print(
            f"[yellow]{escape(pending.model)} v{pending.version} of this spec and data already waits for approval "
            f"of '{escape(pending.alias)}'[/] (requested {pending.requested_at:%Y-%m-%d %H:%M} UTC). Answer it with "
            "--approve-as APPROVER (or --reject), or "
            f"`airflow-bridge models approve {pending.model} {pending.version}`."
        )
        summary = {"state": "awaiting_approval", "model": pending.model, "version": pending.version, "resumed": True}
        summary["approval"] = {"status": "waiting", "approvers": pending.approvers}
        if output == Format.json:
            print_json(summary)
        return EXIT_AWAITING_APPROVAL
    summary = resume_after_approval(pending, approve_as, approve=not reject, out=out)
    if output == Format.json:
        print_json(summary)
    return 0 if summary["state"] == "success" and summary.get("deployment") else 1


class _Progress:
    """Turns the child's JSON events into progress lines."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.started: dict[str, float] = {}
        self.failures: dict[str, str] = {}
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.approval: dict[str, Any] | None = None

    def handle(self, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        kind = event.get("event")
        if kind == "stage":
            self.out.print(f"  … {event['stage']} [dim]{escape(str(event.get('detail', '')))}[/]")
        elif kind == "stage_done":
            self.out.print(f"  [green]✓[/] {event['stage']} [dim]{escape(str(event.get('detail', '')))}[/]")
        elif kind == "task_running":
            resumed = event["task_id"] in self.started
            self.started[event["task_id"]] = event["time"]
            self.out.print(f"  ▶ {event['task_id']} {'resumed' if resumed else 'running'}")
        elif kind == "task_success":
            took = event["time"] - self.started.get(event["task_id"], event["time"])
            self.out.print(f"  [green]✓[/] {event['task_id']} [dim]{took:.1f}s[/]")
        elif kind == "task_failed":
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

    def summary(self, run_dir: Path, code: int) -> dict[str, Any]:
        from airflow_bridge.actions.names import REPORT_XCOM_KEY, TaskId
        from airflow_bridge.actions.results import DeploymentResult, Registration, TrainingResult, ValidationReport

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
        approval = self.approval or _approval_from(xcoms.get(TaskId.APPROVE, {}).get("return_value"), result)
        return {
            "state": state,
            "dag_id": result.get("dag_id"),
            "run_id": result.get("run_id"),
            "tasks": result.get("tasks", {}),
            "failed_tasks": self.failures,
            "errors": self.errors,
            "model": registered.model if registered else (train.model if train else None),
            "version": registered.version if registered else None,
            "metrics": report.metrics if report else {},
            "gates": report.gates if report else [],
            "champion": report.champion if report else None,
            "deployment": deployed.to_xcom() if deployed else None,
            "approval": approval,
            "artifact": train.artifact.__dict__ if train else None,
            "data": {"uri": train.data.uri, "sha256": train.data.sha256, "rows": train.data.rows} if train else None,
            "run_dir": str(run_dir),
            "log": str(run_dir / "airflow.log"),
        }


def _lineage_summary(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Where the run's OpenLineage events are, and how many (the provider's file transport wrote them)."""
    from airflow_bridge.cli.local_run import lineage_disabled

    if path.is_file():
        with path.open() as lines:
            return {"file": str(path), "events": sum(1 for line in lines if line.strip())}
    return {"file": None, "events": 0, "disabled": lineage_disabled(env)}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _approval_from(answer: Any, result: dict[str, Any]) -> dict[str, Any] | None:
    from airflow_bridge.actions.names import TaskId

    if not isinstance(answer, dict):
        return None
    user = answer.get("responded_by_user") or {}
    chosen = answer.get("chosen_options") or []
    status = "granted" if chosen == ["Approve"] else "rejected"
    if result.get("tasks", {}).get(TaskId.APPROVE) == "failed":
        status = "refused"
    return {"status": status, "by": user.get("name") or user.get("id")}


def _print_approval(approval: dict[str, Any] | None) -> None:
    if not approval:
        return
    status = approval["status"]
    if status == "granted":
        console.print(f"approval: [green]granted[/] by {approval['by']}")
    elif status == "rejected":
        console.print(f"approval: [red]rejected[/] by {approval['by']}: not deployed")
    elif status == "refused":
        console.print(f"approval: [red]refused[/] for {approval.get('by')}: {approval.get('detail') or 'not allowed'}")
    else:
        console.print(
            "[yellow]stopped at the approval[/]: the model is registered but not deployed. Approvers: "
            f"{', '.join(approval.get('approvers') or []) or 'none'}. Re-run with --approve-as <approver> "
            "(or approve in the Airflow UI of a deployment)."
        )


def _print_lineage(lineage: dict[str, Any]) -> None:
    if lineage.get("file"):
        console.print(f"lineage: {lineage['file']}  ({lineage['events']} OpenLineage events)", markup=False)
    elif lineage.get("disabled"):
        console.print("lineage: off (AIRFLOW__OPENLINEAGE__DISABLED is set)")
    else:
        console.print("lineage: no OpenLineage events were written to the run folder")


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from airflow_bridge.ml.gates import gate_bounds, gate_value

    console.print()
    if summary["gates"]:
        table = Table("gate", "value", "required", "result", title="Validation")
        for gate in summary["gates"]:
            result = "[green]pass[/]" if gate["passed"] else "[red]FAIL[/]"
            table.add_row(gate["name"], gate_value(gate), gate_bounds(gate), result)
        console.print(table)
    champion = summary.get("champion")
    if champion:
        if champion.get("champion") is None:
            console.print(f"champion: {champion.get('note')}", markup=False)
        else:
            verdict = "[green]beats[/]" if champion["passed"] else "[red]does not beat[/]"
            console.print(
                f"champion: candidate {champion['metric']} {champion['candidate']:.4f} {verdict} "
                f"v{champion['champion_version']} ({champion['champion']:.4f})"
            )
    if summary["version"] is not None:
        console.print(f"registered: [bold]{summary['model']} v{summary['version']}[/]")
    _print_approval(summary.get("approval"))
    if summary["deployment"]:
        d = summary["deployment"]
        previous = f"v{d['previous_version']}" if d.get("previous_version") else "nothing"
        console.print(f"deployed: {d['target']} alias [bold]{d['alias']}[/] → v{d['version']} (was {previous})")
    if summary["artifact"]:
        artifact = summary["artifact"]
        console.print(f"artifact: {artifact['uri']} (sha256 {artifact['sha256'][:12]}…)", markup=False)
    console.print(f"run folder: {summary['run_dir']}  (Airflow log: {summary['log']})", markup=False)
    _print_lineage(summary.get("lineage") or {})
    if summary["state"] == "awaiting_approval":
        return
    if summary["state"] == "success":
        if summary["tasks"].get(TaskId.DEPLOY) == "skipped":
            console.print("[bold yellow]run finished without deploying[/]")
        else:
            console.print("[bold green]run succeeded[/]")
        return
    for task_id, error in summary["failed_tasks"].items():
        err_console.print(f"[bold red]task '{task_id}' failed:[/]")
        err_console.print(error.strip(), markup=False)
    for error in summary["errors"]:
        err_console.print(f"[bold red]error:[/] {escape(error)}")
    not_run = [t for t, s in summary["tasks"].items() if s in ("upstream_failed", "skipped", "none", "None")]
    if not_run:
        err_console.print(f"not run: {', '.join(not_run)}")
    err_console.print(f"[bold red]run failed[/] (state {summary['state']})")
