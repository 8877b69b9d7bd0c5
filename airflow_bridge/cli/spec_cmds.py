"""Spec commands: validate, render, schema, init. ``validate``, ``schema`` and ``init`` never import Airflow."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, err_console, fail, home_option, print_json, registry_option

STARTER = """\
# yaml-language-server: $schema={schema}
# $schema: {schema}
# Starter spec written by 'airflow-bridge init'. Check it with: airflow-bridge validate {filename}
apiVersion: airflow-bridge/v1
kind: Experiment
name: {name}                      # becomes the DAG id; unique across specs
description: |
  What this model predicts, for whom, and why it matters.
owner: {owner}                    # Airflow user who owns the experiment
team: {team}                      # the team whose policy (_policy.yaml: approvers, tiers) applies
schedule: "@weekly"               # cron ("0 6 * * 1") or a preset; remove to run only on demand
data:
  training:
    uri: data/{name}.csv          # path relative to this file, or s3://... with conn_id
    target: label                 # the column to predict
    # delimiter: ";"              # for CSVs that are not comma-separated
    # encoding: latin-1           # for CSVs that are not UTF-8
  # columns:                      # roles are inferred from the data; override any of them:
  #   sample_id: ignore           # numeric, categorical, datetime, text or ignore
  #   site_code: categorical
  split: {{test_size: 0.2, seed: 42}}
  checks: {{min_rows: 100, max_missing_target_fraction: 0.05}}
model:
  estimator: sklearn.ensemble.RandomForestClassifier   # from the allow-list
  params: {{n_estimators: 100, max_depth: 8}}
validation:
  thresholds:
    accuracy: {{min: 0.8}}
{deployment}
"""

STARTER_POLICY = """\
# yaml-language-server: $schema={schema}
# Starter team policy written by 'airflow-bridge init'. Engineers own this file (review it in git):
# specs next to it are checked against it, and the registry binds it to their models.
apiVersion: airflow-bridge/v1
kind: Policy
defaults:
  approval_required_for: [production]   # moving these aliases needs an approval by an approver below
teams:
  {team}:
    members: [{owner}]                  # Airflow users who may own this team's specs
    approvers: [{approvers}]{approver_note}
"""
NO_APPROVER_NOTE = "                        # add Airflow users who may approve (never a spec's own owner)"

_GITHUB_ESCAPES = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_GITHUB_PROPERTY_ESCAPES = {**_GITHUB_ESCAPES, ":": "%3A", ",": "%2C"}


def _github_escape(text: str, table: dict[str, str] = _GITHUB_ESCAPES) -> str:
    """Escape a workflow-command message (or, with the property table, a property value)."""
    return "".join(table.get(ch, ch) for ch in text)


def _expand(paths: list[Path]) -> list[str]:
    from airflow_bridge.spec.loader import discover_specs

    files: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(discover_specs(path))
        elif path.exists():
            files.append(str(path))
        else:
            raise fail(f"{path}: no such file or folder", code=2)
    if not files:
        raise fail("no spec files (*.yaml, *.yml) found in " + ", ".join(map(str, paths)), code=2)
    return files


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec files or folders of specs.")],
    output: Annotated[str, typer.Option("--format", help="text, json or github (annotations).")] = "text",
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Team policy file [default: the nearest _policy.yaml]", dir_okay=False),
    ] = None,
    no_data: Annotated[
        bool,
        typer.Option(
            "--no-data",
            help="Do not read training data: only the static checks. Local data files are read by default; "
            "remote URIs (s3://, gs://...) never are.",
        ),
    ] = False,
    home: home_option = None,
    registry: registry_option = None,
    no_registry: Annotated[
        bool,
        typer.Option(
            "--no-registry",
            help="Do not read the registry (who owns each model). It is read when one is configured or the local "
            "home's exists; never written.",
        ),
    ] = False,
) -> None:
    """Check specs (and their team policy), and their local training data, without importing Airflow.

    Exit 0 when all are valid (warnings allowed), 1 otherwise.
    """
    if output not in ("text", "json", "github"):
        raise fail(f"--format must be text, json or github, not '{output}'", code=2)
    if policy is not None and not policy.is_file():
        raise fail(f"{policy}: no such policy file", code=2)
    from airflow_bridge.governance.loader import load_specs_governed
    from airflow_bridge.spec.loader import LoadedSpec

    files = _expand(paths)
    try:  # each spec's own failures are issues of that spec; this only guards against a bug across specs
        results, policies = load_specs_governed(files, str(policy) if policy else None, read_data=not no_data)
    except Exception as exc:
        raise fail(f"could not check the specs ({type(exc).__name__}: {exc}); please report this bug") from None
    if not no_registry:
        from airflow_bridge.actions.model_owners import check_owners

        try:
            unread = check_owners(results, home=home, url=registry)
        except Exception as exc:  # an optional early check: register checks ownership in any case
            unread = []
            err_console.print(
                f"note: could not check model ownership ({type(exc).__name__}: {exc}): it is checked at register",
                markup=False,
            )
        for url in unread:
            err_console.print(
                f"note: could not read the registry {describe(url)}: model ownership is checked at register",
                markup=False,
            )
    # An invalid policy is reported like a spec, so its errors show in every format.
    results = [LoadedSpec(p.path or "", issues=p.issues) for p in policies.values() if p.issues] + results
    invalid = [r for r in results if not r.ok]
    warning_count = sum(len(r.warnings) for r in results)
    from airflow_bridge.cli.loaders_cmd import parse_time_warnings

    for note in parse_time_warnings([p for p in paths if p.is_dir()]):  # stderr: --format json stays parseable
        err_console.print(f"warning: {note}", markup=False)
    if output == "json":
        print_json(
            {
                "valid": not invalid,
                "files": [
                    {
                        "path": r.path,
                        "valid": r.ok,
                        "name": r.spec.name if r.spec else r.raw_name,
                        "issues": [i.to_dict() for i in r.issues],
                        "warnings": [w.to_dict() for w in r.warnings],
                    }
                    for r in results
                ],
                "error_count": sum(len(r.issues) for r in results),
                "warning_count": warning_count,
            }
        )
    elif output == "github":
        for result in results:
            for level, issue in [("error", i) for i in result.issues] + [("warning", w) for w in result.warnings]:
                message = issue.message + (f" ({issue.hint})" if issue.hint else "")
                props = {
                    "file": issue.path,
                    "line": issue.line,
                    "col": issue.col,
                    "title": f"airflow-bridge: {issue.field or 'spec'}",
                }
                fields = ",".join(f"{k}={_github_escape(str(v), _GITHUB_PROPERTY_ESCAPES)}" for k, v in props.items())
                print(f"::{level} {fields}::{_github_escape(message)}")
        print(f"{len(results) - len(invalid)} valid, {len(invalid)} invalid spec(s)" + _warnings_note(warning_count))
    else:
        lines = []  # one print: rich's per-call cost adds up over a thousand specs
        for result in results:
            lines.append(f"[green]✓[/] {escape(result.path)}" if result.ok else f"[red]✗[/] {escape(result.path)}")
            lines.extend(f"    {escape(issue.format())}" for issue in result.issues)
            lines.extend(f"    [yellow]warning:[/] {escape(issue.format())}" for issue in result.warnings)
        console.print("\n".join(lines))
        summary = f"{len(results) - len(invalid)} valid, {len(invalid)} invalid spec(s)" + _warnings_note(warning_count)
        console.print(f"[bold red]{summary}[/]" if invalid else f"[bold green]{summary}[/]")
    raise typer.Exit(1 if invalid else 0)


def describe(url: str) -> str:
    from airflow_bridge.registry.engine import describe_url

    return describe_url(url)


def _warnings_note(count: int) -> str:
    return f", {count} warning(s)" if count else ""


class SchemaKind(enum.StrEnum):
    experiment = "experiment"
    policy = "policy"


def schema(
    kind: Annotated[
        SchemaKind | None,
        typer.Argument(
            metavar="KIND",
            help="experiment (specs; the default) or policy (_policy.yaml). --out-dir without KIND writes both.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
    out_dirs: Annotated[
        list[Path] | None,
        typer.Option(
            "--out-dir",
            metavar="DIR",
            help="Write <kind>-v1.json into this folder, created if missing (repeatable), e.g. a project's schemas/.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of experiment specs or of the team policy (for editors and CI)."""
    from airflow_bridge.cli.schema import SCHEMA_KINDS, schema_filename, schema_text

    if out and out_dirs:
        raise fail("pass either --out or --out-dir, not both", code=2)
    if not out_dirs:
        text = schema_text(kind or "experiment")
        if out is None:
            print(text, end="")
        else:
            _write(out, text)
        return
    for folder in out_dirs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot create {folder}: {exc.strerror}") from None
        for each in [kind] if kind else SCHEMA_KINDS:
            _write(folder / schema_filename(each), schema_text(each))


def _write(target: Path, text: str) -> None:
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {target}: {exc.strerror}") from None
    err_console.print(f"wrote {target}", markup=False)


def init(
    name: Annotated[str, typer.Argument(help="Experiment name (lower-case letters, digits, '_').")],
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the spec.", file_okay=False)] = Path("dag_specs"),
    owner: Annotated[str, typer.Option(help="Owner (an Airflow user) [default: you].")] = "",
    team: Annotated[str, typer.Option(help="The owner's team (named in the team policy).")] = "my-team",
    approvers: Annotated[
        list[str] | None,
        typer.Option("--approver", help="Who may approve deployments to production (repeatable; not the owner)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter spec NAME.yaml (and a starter _policy.yaml when no team policy is in reach).

    The spec's modeline points editors at the JSON Schema: the nearest schemas/experiment-v1.json above --dir,
    or a copy in DIR/schemas/. Without a team policy nothing can be approved, so production fails closed:
    the starter policy names the team and its approvers (--approver); without approvers the starter spec
    deploys to 'staging', which needs no approval.
    """
    from airflow_bridge.cli.schema import schema_reference
    from airflow_bridge.exceptions import BridgeError
    from airflow_bridge.governance.loader import find_policy
    from airflow_bridge.resolution import os_user
    from airflow_bridge.spec.models import NAME_PATTERN

    if not re.fullmatch(NAME_PATTERN, name):
        raise fail(
            f"'{name}' is not a valid name: use lower-case letters, digits and '_', starting with a letter",
            code=2,
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", team):
        raise fail(f"'{team}' is not a valid team name: use letters, digits, '-', '_' and '.'", code=2)
    who = owner or os_user()
    chosen = [a for a in approvers or [] if a]
    if who in chosen:
        raise fail(f"--approver {who}: the owner cannot approve their own models (separation of duties)", code=2)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        raise fail(f"{target} already exists; pass --force to overwrite it")
    existing_policy = find_policy(directory)
    try:
        reference = schema_reference(directory, "experiment")
        policy_reference = schema_reference(directory, "policy") if existing_policy is None else None
    except BridgeError as exc:
        raise fail(str(exc)) from None
    alias = "production" if chosen or existing_policy else "staging"
    deployment = f"deployment: {{target: local, alias: {alias}}}"
    if alias == "staging":
        deployment += "   # production needs an approver: add one to _policy.yaml, then alias: production"
    target.write_text(
        STARTER.format(name=name, owner=who, team=team, filename=target, schema=reference.path, deployment=deployment)
    )
    console.print(f"[green]wrote[/] {escape(str(target))}")
    written = list(reference.written)
    if existing_policy is None:
        assert policy_reference is not None
        policy_file = directory / "_policy.yaml"
        policy_file.write_text(
            STARTER_POLICY.format(
                schema=policy_reference.path,
                team=team,
                owner=who,
                approvers=", ".join(chosen),
                approver_note="" if chosen else NO_APPROVER_NOTE,
            )
        )
        written += [w for w in policy_reference.written if w not in written]
        console.print(f"[green]wrote[/] {escape(str(policy_file))} (the team policy: members, approvers)")
        if not chosen:
            err_console.print(
                f"note: team '{team}' has no approver yet, so nothing can be deployed to production (fail closed); "
                f"the starter spec deploys to 'staging'. Add approvers in {policy_file}",
                markup=False,
            )
    else:
        console.print(f"using the team policy {escape(existing_policy)} (team '{escape(team)}' must be in it)")
    for extra in written:
        console.print(f"[green]wrote[/] {escape(str(extra))} (the JSON Schema editors check specs with)")
    if reference.stale:
        err_console.print(
            f"note: {reference.file} is not this airflow-bridge version's schema, so editors may check the spec "
            f"against old rules; refresh it with: airflow-bridge schema --out-dir {reference.file.parent}",
            markup=False,
        )
    console.print(
        f"next: put your data at {directory / 'data' / (name + '.csv')}, edit the spec, then run "
        f"'airflow-bridge validate {target}'",
        markup=False,
    )


def render(
    spec: Annotated[Path, typer.Argument(help="The spec file.", dir_okay=False)],
    output: Annotated[Format, typer.Option("--format")] = Format.text,
) -> None:
    """Show the DAG that would be built: tasks, dependencies, schedule, connections referenced."""
    from airflow_bridge.governance.loader import load_specs_governed

    if not spec.exists():
        raise fail(f"{spec}: no such file", code=2)
    # The spec's team policy decides checks and tasks (approve), as in the dags folder and 'run'.
    [loaded], policies = load_specs_governed([str(spec)])
    if not loaded.ok or loaded.spec is None:
        for issue in [i for p in policies.values() for i in p.issues] + loaded.issues:
            err_console.print(issue.format(), markup=False)
        raise typer.Exit(1)
    from airflow_bridge.cli.render import describe_dag

    policy = next(iter(policies.values())).policy
    description = describe_dag(loaded.spec, str(spec), loaded.sha256, policy=policy)
    if output == Format.json:
        print_json(description)
        return
    _print_description(description)


def _print_description(description: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        "[bold]DAG[/] "
        + escape(
            f"{description['dag_id']}  schedule={description['schedule']}  "
            f"owner={description['owner']}  tags={', '.join(description['tags'])}"
        )
    )
    table = Table("task", "operator", "upstream", "retries")
    for task in description["tasks"]:
        cells = (task["task_id"], task["operator"], ", ".join(task["upstream"]) or "-", str(task["retries"]))
        table.add_row(*map(escape, cells))
    console.print(table)
    console.print("[bold]connections referenced[/]")
    for conn in description["connections"]:
        console.print(f"  {conn['conn_id']}  ({conn['purpose']})", markup=False)
