"""Commands that change the registry: ``models promote``, ``rollback``, ``approve``, ``reject``, ``transfer``.

Argument parsing and formatting only: each calls the same action the operators and the Models page call,
so the team policy bound to the model applies wherever the command is run from. Who acts:

- on the embedded registry (a SQLite file in your home), the name given with ``--as`` (default: you), with
  the OS user who ran the command recorded beside it (the principal, shown in ``models history``);
- on a shared registry (PostgreSQL), the Airflow user of your token: the change goes through the Airflow
  API server (``airflow-bridge login``), which knows who you are; ``--as`` is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from airflow_bridge.cli import airflow_client
from airflow_bridge.cli.airflow_client import airflow_url_option
from airflow_bridge.cli.common import Format, console, fail, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, models_app

if TYPE_CHECKING:
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.registry.store import ModelRegistry

actor_option = Annotated[
    str | None,
    typer.Option(
        "--as",
        "--actor",
        help="Embedded registry only: who is acting [default: you]. Recorded with your OS user beside it; "
        "on a shared registry your Airflow login decides (docs/governance.md).",
    ),
]
reason_option = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]
alias_option = Annotated[str, typer.Option("--alias", help="The alias concerned.")]
target_option = Annotated[
    str,
    typer.Option(
        "--target",
        help="Deployment target: local (the registry alias), kserve (an InferenceService), or one an installed "
        "package adds ('airflow-bridge targets' lists them).",
    ),
]
serving_option = Annotated[
    str | None, typer.Option("--serving", help="Serving tier of the team policy (target kserve; --setting serving=).")
]
setting_option = Annotated[
    list[str] | None,
    typer.Option(
        "--setting",
        help="A setting of the target, KEY=VALUE (the value read as YAML: 10 is a number); repeat for more.",
    ),
]


def target_settings(settings: list[str] | None, **named: Any) -> dict[str, Any]:
    """``--setting KEY=VALUE`` options and the named shortcuts (``--serving``) as the target's settings."""
    import yaml

    found: dict[str, Any] = {}
    for item in settings or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--setting {item!r}: write KEY=VALUE, e.g. --setting serving=standard", code=2)
        try:
            found[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            found[key.strip()] = value
    return found | {key: value for key, value in named.items() if value is not None}


@dataclass(frozen=True)
class Door:
    """Where a change goes: the embedded registry as ``actor`` (principal: the OS user), or Airflow at ``url``."""

    store: ModelRegistry | None = None
    actor: str = ""
    url: str | None = None


def door(registry: str | None, home: Path | None, airflow_url: str | None, claimed: str | None) -> Door:
    """Embedded registry → act locally; a shared one (or ``--airflow-url``) → through Airflow's API server."""
    from airflow_bridge.resolution import os_user

    url = airflow_client.configured_url(airflow_url, saved=False)
    if url is None:
        store = _open(registry, home)
        if store.embedded:
            who = os_user()
            return Door(store.acting_as(f"os:{who}"), claimed or who)
        url = airflow_client.configured_url(None)
        if url is None:
            raise fail(
                f"{store!r} is a shared registry: approvals and alias moves there go through Airflow, which knows "
                "who you are. Log in once with 'airflow-bridge login --airflow-url URL' (or pass --airflow-url), "
                "then retry"
            )
    if claimed:
        raise fail(
            f"--as {claimed}: through Airflow ({url}) you act as the user your token names; --as is only for the "
            "embedded registry. Log in as that user instead ('airflow-bridge login')",
            code=2,
        )
    return Door(url=url)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: alias_option = "production",
    expect: Annotated[
        int | None, typer.Option("--expect", help="Only if the alias still points at this version.")
    ] = None,
    target: target_option = "local",
    serving: serving_option = None,
    canary: Annotated[
        int | None,
        typer.Option(
            "--canary",
            min=1,
            max=99,
            help="Target kserve: send this percentage of traffic to VERSION, the rest to the live version. "
            "Without it VERSION gets all traffic (this promotes a canary).",
        ),
    ] = None,
    setting: setting_option = None,
    actor: actor_option = None,
    reason: reason_option = "",
    home: home_option = None,
    registry: registry_option = None,
    airflow_url: airflow_url_option = None,
    output: format_option = Format.text,
) -> None:
    """Point ALIAS at VERSION: a protected alias needs a recorded approval of VERSION (compare-and-set, audited).

    With --target kserve the InferenceService of NAME@ALIAS serves VERSION first (waiting until KServe reports
    it ready); the alias moves only then."""
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.registry.events import AuditAction

    with _guard(f"cannot promote {name} v{version}"):
        request = MoveRequest(
            model=name,
            version=version,
            alias=alias,
            action=AuditAction.PROMOTED,
            target=target,
            settings=target_settings(setting, serving=serving, canary_traffic_percent=canary),
            reason=reason,
            expected=expect,
        )
        result = _move(request, door(registry, home, airflow_url, actor), "promoted")
    _report(result, output, "now points at")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: alias_option = "production",
    target: target_option = "local",
    serving: serving_option = None,
    setting: setting_option = None,
    actor: actor_option = None,
    reason: reason_option = "",
    home: home_option = None,
    registry: registry_option = None,
    airflow_url: airflow_url_option = None,
    output: format_option = Format.text,
) -> None:
    """Move ALIAS back to the version it pointed at before: on a protected alias, only to an approved version.

    With --target kserve the InferenceService serves that version again (no canary) before the alias moves."""
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.registry.events import AuditAction

    with _guard(f"cannot roll back '{alias}' of {name}"):
        request = MoveRequest(
            model=name,
            alias=alias,
            action=AuditAction.ROLLED_BACK,
            target=target,
            settings=target_settings(setting, serving=serving),
            reason=reason,
        )
        result = _move(request, door(registry, home, airflow_url, actor), "rolled back")
    _report(result, output, "rolled back to")


def _move(request: MoveRequest, where: Door, done: str) -> dict[str, Any]:
    """Make the move on the embedded registry, or ask Airflow's API server to (it knows who you are)."""
    import dataclasses

    from airflow_bridge.actions.deployment import move

    if where.url is not None:
        body: dict[str, Any] = {"alias": request.alias, "target": request.target, "settings": request.settings}
        body |= {"reason": request.reason} if request.reason else {}
        if request.version is not None:
            body |= {"version": request.version, "expect": request.expected}
        verb = "rollback" if request.version is None else "promote"
        return airflow_client.api(where.url, "POST", f"/models/{request.model}/{verb}", body)
    assert where.store is not None
    reason = request.reason or f"{done} with the CLI by {where.actor}"
    return move(where.store, dataclasses.replace(request, reason=reason), actor=where.actor).to_xcom()


def _answer(
    name: str,
    version: int,
    alias: str,
    actor: str | None,
    comment: str,
    home: Path | None,
    registry: str | None,
    airflow_url: str | None,
    output: Format,
    *,
    approve: bool,
) -> None:
    from airflow_bridge.actions.approval import checked_comment, decide

    verb = "approve" if approve else "reject"
    with _guard(f"cannot {verb} {name} v{version} for '{alias}'"):
        checked_comment(comment)  # too long: refused before anything is sent or written
        where = door(registry, home, airflow_url, actor)
        if where.url is not None:
            decision = airflow_client.api(
                where.url, "POST", f"/models/{name}/versions/{version}/{verb}", {"alias": alias, "comment": comment}
            )
        else:
            assert where.store is not None
            decision = decide(
                where.store,
                model=name,
                version=version,
                alias=alias,
                responder=where.actor,
                approve=approve,
                via="airflow-bridge CLI",
                comment=comment,
            ).to_xcom()
    if output == Format.json:
        print_json(decision)
        return
    granted = decision["decision"] == "granted"
    colour = "green" if granted else "red"
    console.print(
        f"[{colour}]{escape(name)} v{version} {decision['decision']}[/] for '{escape(alias)}' by "
        f"{escape(str(decision['approver']))}"
        + (f"; move it with: airflow-bridge models promote {name} {version} --alias {alias}" if granted else "")
    )


comment_option = Annotated[
    str, typer.Option("--reason", "--comment", help="Why (at most 2000 characters; kept in the audit trail).")
]


@models_app.command("approve")
def models_approve(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to approve.")],
    alias: alias_option = "production",
    actor: actor_option = None,
    reason: comment_option = "",
    home: home_option = None,
    registry: registry_option = None,
    airflow_url: airflow_url_option = None,
    output: format_option = Format.text,
) -> None:
    """Approve VERSION for ALIAS as an approver of the model's team (answers its pending request, audited)."""
    _answer(name, version, alias, actor, reason, home, registry, airflow_url, output, approve=True)


@models_app.command("reject")
def models_reject(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to reject.")],
    alias: alias_option = "production",
    actor: actor_option = None,
    reason: comment_option = "",
    home: home_option = None,
    registry: registry_option = None,
    airflow_url: airflow_url_option = None,
    output: format_option = Format.text,
) -> None:
    """Reject VERSION for ALIAS as an approver of the model's team (closes its pending request, audited)."""
    _answer(name, version, alias, actor, reason, home, registry, airflow_url, output, approve=False)


@models_app.command("transfer")
def models_transfer(
    name: Annotated[str, typer.Argument(help="Model name.")],
    team: Annotated[str, typer.Option("--team", help="The team that gets the model.")],
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="The new team's policy file (through Airflow: relative to its dags folder, e.g. "
            "ecology/_policy.yaml).",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; kept in the audit trail).")],
    actor: actor_option = None,
    home: home_option = None,
    registry: registry_option = None,
    airflow_url: airflow_url_option = None,
    output: format_option = Format.text,
) -> None:
    """Give NAME to another team under its policy: only an approver of both teams may (audited)."""
    from airflow_bridge.actions.ownership import transfer

    with _guard(f"cannot transfer {name}"):
        where = door(registry, home, airflow_url, actor)
        if where.url is not None:
            body = {"team": team, "policy": policy, "reason": reason}
            result = airflow_client.api(where.url, "POST", f"/models/{name}/transfer", body)
        else:
            assert where.store is not None
            result = transfer(
                where.store, model=name, team=team, policy_file=policy, actor=where.actor, reason=reason
            ).to_xcom()
    if output == Format.json:
        print_json(result)
        return
    console.print(
        f"[green]{escape(name)}[/] now belongs to team [bold]{escape(result['team'])}[/] (was "
        f"{escape(result['previous_team'] or 'none')}), governed by {escape(result['policy'])}"
    )


def _opt(**values: Any) -> dict[str, Any]:
    """The options that were given (the API applies its own defaults to the others)."""
    return {key: value for key, value in values.items() if value not in (None, "")}


def _report(result: dict[str, Any], output: Format, verb: str) -> None:
    if output == Format.json:
        print_json(result)
        return
    was = f"v{result['previous_version']}" if result.get("previous_version") else "nothing"
    console.print(
        f"[green]{escape(result['model'])}[/] alias [bold]{escape(result['alias'])}[/] {verb} "
        f"v{result['version']} (was {was})"
    )
