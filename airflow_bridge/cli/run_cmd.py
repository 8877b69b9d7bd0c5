"""``airflow-bridge run``: validate a spec, run its DAG in an isolated Airflow, print what happened.

The run process (``local_run``) starts as soon as the spec is valid, so its Airflow import overlaps
this process's check for a pending approval. Every printed time is one slice of the wall time
(start-up, metadata database, DAG build, Airflow's run set-up, each task, tear-down): they add up to
the total, which the summary prints and carries in ``timings``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from rich.markup import escape

from airflow_bridge.cli.common import Format, command_started_at, console, err_console, print_json, resolve_home
from airflow_bridge.cli.run_progress import Progress, print_timings, resumed_timings

EXIT_AWAITING_APPROVAL = 3


def _unused_approver(spec: Any, loaded_policy: Any, approve_as: str | None) -> str | None:
    """Why ``--approve-as`` would have nothing to answer (it is never silently ignored), or None."""
    from airflow_bridge.governance.loader import needs_approval
    from airflow_bridge.governance.policy import OPEN_POLICY

    if not approve_as:
        return None
    policy = loaded_policy.policy or OPEN_POLICY
    if spec.deployment is None:
        return f"--approve-as {approve_as}: {spec.name} deploys nothing, so there is no approval to answer"
    if not needs_approval(spec, policy):
        where = f"the team policy {loaded_policy.path}" if loaded_policy.path else "the defaults"
        return (
            f"--approve-as {approve_as}: alias '{spec.deployment.alias}' needs no approval under {where}, so there is "
            "nothing to answer; run without --approve-as"
        )
    return None


def run_spec(
    spec_path: Path, home: Path | None, output: Format, *, approve_as: str | None = None, reject: bool = False
) -> int:
    """Exit code: 0 when every task succeeded and the model was deployed as asked; 1 when the spec is
    invalid, a task failed or the approval was rejected or refused; 3 when stopped at an approval."""
    from airflow_bridge.governance.loader import load_specs_governed

    started = command_started_at()
    if not spec_path.is_file():
        err_console.print(f"[bold red]error:[/] {escape(str(spec_path))}: no such file")
        return 2
    [loaded], policies = load_specs_governed([str(spec_path)])
    if loaded.ok:
        from airflow_bridge.actions.model_owners import check_owners

        check_owners([loaded], home=resolve_home(home))  # another team's model: refused before training
    if not loaded.ok or loaded.spec is None:
        err_console.print(f"[bold red]{escape(str(spec_path))} is not a valid spec:[/]")
        for issue in [i for p in policies.values() for i in p.issues] + loaded.issues:
            err_console.print(f"  {issue.format()}", markup=False)
        return 1
    name = loaded.spec.name
    unused = _unused_approver(loaded.spec, next(iter(policies.values())), approve_as)
    if unused:
        err_console.print(f"[bold red]error:[/] {escape(unused)}")
        return 2
    home_dir = resolve_home(home)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = home_dir / "runs" / name / stamp
    from airflow_bridge.cli.local_run import LINEAGE_FILE, isolated_environment, lineage_environment

    env = {**os.environ, **isolated_environment(home_dir, run_dir)}
    env.update(lineage_environment(run_dir, spec_path.resolve().parent, env))
    # With --format json, stdout carries only the JSON summary; progress goes to stderr.
    out = err_console if output == Format.json else console
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
        "--wait-for-go",
        *(["--approve-as", approve_as] if approve_as else []),
        *(["--reject"] if reject else []),
    ]
    progress = Progress(out, started)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) as child:
            assert child.stdout is not None and child.stdin is not None
            progress.marks["run_process_spawned_at"] = time.time() - started
            try:
                answered = _answer_pending_approval(
                    loaded, home_dir, output, started, approve_as=approve_as, reject=reject
                )
                _release(child.stdin, go=answered is None)
                progress.marks["go_sent_at"] = time.time() - started
                if answered is not None:
                    child.kill()  # it only imported Airflow; no need to wait for that
                    child.wait()
                    _remove_unused(run_dir)
                    return answered
                shown, home_shown = escape(str(spec_path)), escape(str(home_dir))
                out.print(f"[bold]airflow-bridge run[/] {shown} → DAG [bold]{name}[/] (home {home_shown})")
                for line in child.stdout:
                    progress.handle(line)
            except KeyboardInterrupt:
                # Never leave an orphaned Airflow run holding the local metadata DB.
                child.terminate()
                child.wait(timeout=30)
                raise
            code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    progress.child_exited()
    if progress.result is None and not progress.errors:
        # The child died without a word (killed, crashed in native code): say so instead of a bare "failed".
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        log = run_dir / "airflow.log"
        progress.errors.append(f"the run process ended before reporting a result ({how}); see {log}")
    summary = progress.summary(run_dir, code)
    summary.lineage = _lineage_summary(run_dir / LINEAGE_FILE, env)
    if output == Format.text:
        summary.print()
    summary.timings = progress.timings()
    written = summary.to_json()
    (run_dir / "summary.json").write_text(json.dumps(written, indent=2, default=str))
    if output == Format.json:
        print_json(written)
    else:
        print_timings(summary.timings)
    if summary.state == "awaiting_approval":
        return EXIT_AWAITING_APPROVAL if (summary.approval or {}).get("status") == "waiting" else 1
    return 0 if summary.state == "success" and summary.deployed_as_asked else 1


def _release(stdin: IO[str], *, go: bool) -> None:
    """Let the waiting run process start (``go``), or end it without a run (EOF)."""
    from airflow_bridge.cli.local_run import GO

    try:
        if go:
            stdin.write(f"{GO}\n")
        stdin.close()
    except OSError:  # it is gone already; its exit code tells the rest
        pass


def _remove_unused(run_dir: Path) -> None:
    """The run folder of a run that never started (a pending approval was answered instead)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()  # only when empty: earlier runs of the spec stay


def _answer_pending_approval(
    loaded: Any, home: Path, output: Format, started: float, *, approve_as: str | None, reject: bool
) -> int | None:
    """A version of this spec and data already waits for approval: answer it instead of training again.

    Returns the exit code, or None when nothing of this spec is pending (the run goes ahead).
    """
    from airflow_bridge.cli.pending import find_pending_version, resume_after_approval
    from airflow_bridge.cli.run_summary import RunSummary

    pending = find_pending_version(loaded, home)
    if pending is None:
        return None
    found = time.time()
    out = err_console if output == Format.json else console
    if not approve_as:
        out.print(
            f"[yellow]{escape(pending.model)} v{pending.version} of this spec and data already waits for approval "
            f"of '{escape(pending.alias)}'[/] (requested {pending.requested_at:%Y-%m-%d %H:%M} UTC). Answer it with "
            "--approve-as APPROVER (or --reject), or "
            f"`airflow-bridge models approve {pending.model} {pending.version}`."
        )
        waiting = {"status": "waiting", "approvers": pending.approvers}
        summary = RunSummary("awaiting_approval", pending.model, pending.version, resumed=True, approval=waiting)
        if output == Format.json:
            summary.timings = resumed_timings(started, found, time.time())
            print_json(summary.to_json())
        return EXIT_AWAITING_APPROVAL
    resumed = resume_after_approval(pending, approve_as, approve=not reject, out=out)
    resumed.timings = resumed_timings(started, found, time.time())
    if output == Format.json:
        print_json(resumed.to_json())
    else:
        print_timings(resumed.timings)
    return 0 if resumed.state == "success" and resumed.deployment is not None else 1


def _lineage_summary(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Where the run's OpenLineage events are, and how many (the provider's file transport wrote them)."""
    from airflow_bridge.cli.local_run import lineage_disabled

    if path.is_file():
        with path.open() as lines:
            return {"file": str(path), "events": sum(1 for line in lines if line.strip())}
    return {"file": None, "events": 0, "disabled": lineage_disabled(env)}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
