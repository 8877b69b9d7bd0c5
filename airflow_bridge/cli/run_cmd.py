"""``airflow-bridge run``: validate a spec, run its DAG in an isolated Airflow, print what happened."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_bridge.cli.common import Format, console, err_console, print_json, resolve_home


def run_spec(spec_path: Path, home: Path | None, output: Format) -> int:
    """Exit code: 0 when every task succeeded, 1 when the spec is invalid or a task failed."""
    from airflow_bridge.spec.loader import load_spec

    if not spec_path.is_file():
        err_console.print(f"[bold red]error:[/] {spec_path}: no such file")
        return 2
    loaded = load_spec(spec_path)
    if not loaded.ok or loaded.spec is None:
        err_console.print(f"[bold red]{spec_path} is not a valid spec:[/]")
        for issue in loaded.issues:
            err_console.print(f"  {issue.format()}", markup=False)
        return 1
    name = loaded.spec.name
    home_dir = resolve_home(home)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = home_dir / "runs" / name / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    from airflow_bridge.cli.local_run import isolated_environment

    env = {**os.environ, **isolated_environment(home_dir, run_dir)}
    console.print(f"[bold]airflow-bridge run[/] {spec_path} → DAG [bold]{name}[/] (home {home_dir})")
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
    ]
    progress = _Progress()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout is not None
        for line in child.stdout:
            progress.handle(line)
        code = child.wait()
    summary = progress.summary(run_dir, code)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if output == Format.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 0 if summary["state"] == "success" else 1


class _Progress:
    """Turns the child's JSON events into progress lines."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.failures: dict[str, str] = {}
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []

    def handle(self, line: str) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        kind = event.get("event")
        if kind == "stage":
            console.print(f"  … {event['stage']} [dim]{event.get('detail', '')}[/]")
        elif kind == "stage_done":
            console.print(f"  [green]✓[/] {event['stage']} [dim]{event.get('detail', '')}[/]")
        elif kind == "task_running":
            self.started[event["task_id"]] = event["time"]
            console.print(f"  ▶ {event['task_id']} running")
        elif kind == "task_success":
            took = event["time"] - self.started.get(event["task_id"], event["time"])
            console.print(f"  [green]✓[/] {event['task_id']} [dim]{took:.1f}s[/]")
        elif kind == "task_failed":
            self.failures[event["task_id"]] = event.get("error", "")
            first = (event.get("error") or "").strip().splitlines()[:1]
            console.print(f"  [red]✗ {event['task_id']} failed[/]: {first[0] if first else ''}", markup=True)
        elif kind == "result":
            self.result = event
        elif kind == "error":
            self.errors.append(event.get("message", "unknown error"))

    def summary(self, run_dir: Path, code: int) -> dict[str, Any]:
        result = self.result or {}
        xcoms = result.get("xcoms", {})
        train = xcoms.get("train", {}).get("return_value") or {}
        report = xcoms.get("validate", {}).get("report") or {}
        registered = xcoms.get("register", {}).get("return_value")
        deployed = xcoms.get("deploy", {}).get("return_value")
        state = result.get("state") or ("failed" if code else "unknown")
        return {
            "state": state,
            "dag_id": result.get("dag_id"),
            "run_id": result.get("run_id"),
            "tasks": result.get("tasks", {}),
            "failed_tasks": self.failures,
            "errors": self.errors,
            "model": (registered or {}).get("model") or train.get("model"),
            "version": (registered or {}).get("version"),
            "metrics": report.get("metrics", {}),
            "gates": report.get("gates", []),
            "champion": report.get("champion"),
            "deployment": deployed,
            "artifact": train.get("artifact"),
            "data": {k: train.get("data", {}).get(k) for k in ("uri", "sha256", "rows")} if train else None,
            "run_dir": str(run_dir),
            "log": str(run_dir / "airflow.log"),
        }


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    console.print()
    if summary["gates"]:
        table = Table("gate", "value", "required", "result", title="Validation")
        for gate in summary["gates"]:
            bounds = (
                " and ".join(
                    p
                    for p in (
                        f">= {gate['min']}" if gate.get("min") is not None else "",
                        f"<= {gate['max']}" if gate.get("max") is not None else "",
                    )
                    if p
                )
                or "-"
            )
            value = gate["value"]
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            table.add_row(gate["name"], shown, bounds, "[green]pass[/]" if gate["passed"] else "[red]FAIL[/]")
        console.print(table)
    champion = summary.get("champion")
    if champion:
        if champion.get("champion") is None:
            console.print(f"champion: {champion.get('note')}")
        else:
            verdict = "[green]beats[/]" if champion["passed"] else "[red]does not beat[/]"
            console.print(
                f"champion: candidate {champion['metric']} {champion['candidate']:.4f} {verdict} "
                f"v{champion['champion_version']} ({champion['champion']:.4f})"
            )
    if summary["version"] is not None:
        console.print(f"registered: [bold]{summary['model']} v{summary['version']}[/]")
    if summary["deployment"]:
        d = summary["deployment"]
        previous = f"v{d['previous_version']}" if d.get("previous_version") else "nothing"
        console.print(f"deployed: {d['target']} alias [bold]{d['alias']}[/] → v{d['version']} (was {previous})")
    if summary["artifact"]:
        console.print(f"artifact: {summary['artifact']['uri']} (sha256 {summary['artifact']['sha256'][:12]}…)")
    console.print(f"run folder: {summary['run_dir']}  (Airflow log: {summary['log']})")
    if summary["state"] == "success":
        console.print("[bold green]run succeeded[/]")
        return
    for task_id, error in summary["failed_tasks"].items():
        err_console.print(f"[bold red]task '{task_id}' failed:[/]")
        err_console.print(error.strip(), markup=False)
    for error in summary["errors"]:
        err_console.print(f"[bold red]error:[/] {error}", markup=False)
    not_run = [t for t, s in summary["tasks"].items() if s in ("upstream_failed", "skipped", "none", "None")]
    if not_run:
        err_console.print(f"not run: {', '.join(not_run)}")
    err_console.print(f"[bold red]run failed[/] (state {summary['state']})")
