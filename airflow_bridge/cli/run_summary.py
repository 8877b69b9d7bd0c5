"""What one ``airflow-bridge run`` did (:class:`RunSummary`), and its one text rendering.

Three paths make a summary: a run of the DAG (``run_progress.Progress.summary``), the answer to a
version that already waited for approval (``pending.resume_after_approval``), and a run stopped before
it started because that version still waits. ``to_json()`` is the ``--format json`` output and the run
folder's ``summary.json``: every key is always there, so scripts can read it without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from airflow_bridge.actions.names import TaskId
from airflow_bridge.actions.results import DeploymentResult
from airflow_bridge.cli.common import console, err_console
from airflow_bridge.ml.gates import ChampionComparison, GateResult


@dataclass
class RunSummary:
    """One run: its state and tasks, the model version it made, its gates, approval and deployment."""

    state: str
    """success, failed, or awaiting_approval."""
    model: str | None = None
    version: int | None = None
    candidate: str | None = None
    """The candidate validate recorded (``airflow-bridge models candidates``), passed or failed."""
    resumed: bool = False
    """True when the run answered a version that already waited for approval (nothing was trained)."""
    dag_id: str | None = None
    run_id: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    failed_tasks: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    champion: ChampionComparison | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    """The model report's HTML artifact (uri, sha256, size)."""
    deployment: DeploymentResult | None = None
    approval: dict[str, Any] | None = None
    """``{status: granted|rejected|refused|waiting, by, detail, approvers}``."""
    artifact: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    run_dir: str | None = None
    log: str | None = None
    lineage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    """The hyperparameter search's outcome (``model.search``): trials by state, the best trial, its parameters."""

    def to_json(self) -> dict[str, Any]:
        found = dict(vars(self))
        found["gates"] = [g.to_json() for g in self.gates]
        found["champion"] = self.champion.to_json() if self.champion is not None else None
        found["deployment"] = self.deployment.to_xcom() if self.deployment is not None else None
        return found

    @property
    def deployed_as_asked(self) -> bool:
        return self.tasks.get(TaskId.DEPLOY) in (None, "success")

    def print(self) -> None:
        """The run's outcome on the terminal (errors on stderr)."""
        from rich.table import Table

        from airflow_bridge.cli.run_progress import print_warnings

        console.print()
        if self.gates:
            table = Table("gate", "value", "required", "result", title="Validation")
            for gate in self.gates:
                result = "[green]pass[/]" if gate.passed else "[red]FAIL[/]"
                table.add_row(escape(gate.name), gate.shown_value(), gate.bounds(), result)
            console.print(table)
        print_warnings(self.warnings)
        if self.champion is not None:
            console.print(self.champion.line(), style=None if self.champion.passed else "red", markup=False)
        if self.search:
            console.print(search_line(self.search), markup=False)
        if self.candidate is not None:
            where = f"airflow-bridge models candidates {self.model}"
            console.print(f"candidate: {self.candidate}  (beside the others: {where})", markup=False)
        if self.version is not None:
            console.print(f"registered: [bold]{self.model} v{self.version}[/]")
        if self.report:
            console.print(self.report_line(), markup=False)
        self._print_approval()
        if self.deployment is not None:
            d = self.deployment
            previous = f"v{d.previous_version}" if d.previous_version else "nothing"
            console.print(f"deployed: {d.target} alias [bold]{d.alias}[/] → v{d.version} (was {previous})")
        if self.artifact:
            console.print(f"artifact: {self.artifact['uri']} (sha256 {self.artifact['sha256'][:12]}…)", markup=False)
        if self.run_dir:
            console.print(f"run folder: {self.run_dir}  (Airflow log: {self.log})", markup=False)
        self._print_lineage()
        if self.state == "awaiting_approval":
            return
        if self.state == "success":
            if self.tasks.get(TaskId.DEPLOY) == "skipped":
                console.print("[bold yellow]run finished without deploying[/]")
            else:
                console.print("[bold green]run succeeded[/]")
            return
        for task_id, error in self.failed_tasks.items():
            err_console.print(f"[bold red]task '{task_id}' failed:[/]")
            err_console.print(error.strip(), markup=False)
        for error in self.errors:
            err_console.print(f"[bold red]error:[/] {escape(error)}")
        not_run = [t for t, s in self.tasks.items() if s in ("upstream_failed", "skipped", "none", "None")]
        if not_run:
            err_console.print(f"not run: {', '.join(not_run)}")
        err_console.print(f"[bold red]run failed[/] (state {self.state})")

    def report_line(self) -> str:
        """Where the run's report is: a registered version's through ``models report``; an unregistered
        candidate's (a failed gate) as the file it was stored to, which ``models report`` cannot find."""
        uri = str((self.report or {})["uri"])
        if self.version is not None:
            where = f"airflow-bridge models report {self.model} --version {self.version}"
            return f"report: {uri}  (open it with: {where} --open)"
        unregistered = "the candidate's report; it was not registered"
        if uri.startswith("file://"):
            return f"report: {uri.removeprefix('file://')}  ({unregistered}, open this file in a browser)"
        return f"report: {uri}  ({unregistered}, download this file to read it)"

    def _print_approval(self) -> None:
        approval = self.approval
        if not approval:
            return
        status = approval["status"]
        if status == "granted":
            console.print(f"approval: [green]granted[/] by {approval['by']}")
        elif status == "rejected":
            console.print(f"approval: [red]rejected[/] by {approval['by']}: not deployed")
        elif status == "refused":
            console.print(
                f"approval: [red]refused[/] for {approval.get('by')}: {approval.get('detail') or 'not allowed'}"
            )
        else:
            console.print(
                "[yellow]stopped at the approval[/]: the model is registered but not deployed. Approvers: "
                f"{', '.join(approval.get('approvers') or []) or 'none'}. Re-run with --approve-as <approver> "
                "(or approve in the Airflow UI of a deployment)."
            )

    def _print_lineage(self) -> None:
        lineage = self.lineage or {}
        if lineage.get("file"):
            console.print(f"lineage: {lineage['file']}  ({lineage['events']} OpenLineage events)", markup=False)
        elif lineage.get("disabled"):
            console.print("lineage: off (AIRFLOW__OPENLINEAGE__DISABLED is set)")
        elif self.run_dir:
            console.print("lineage: no OpenLineage events were written to the run folder")


def search_line(search: dict[str, Any]) -> str:
    """One line for a run's search: how many trials ended how, and the trial whose parameters were fitted."""
    counts = ", ".join(f"{search.get(k, 0)} {k}" for k in ("complete", "pruned", "failed"))
    params = ", ".join(f"{k}: {v}" for k, v in (search.get("best_params") or {}).items())
    value = search.get("best_value")
    shown = f"{value:.4f}" if isinstance(value, int | float) else "-"
    return (
        f"search: {search.get('trials')} trials ({counts}); chosen trial {search.get('best_trial')}, "
        f"{search.get('metric')} {shown} over {search.get('folds')} folds: {params}"
    )
