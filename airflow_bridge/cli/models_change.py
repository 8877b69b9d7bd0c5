"""Commands that change the registry: ``models promote``, ``rollback``, ``approve`` and ``reject``.

Argument parsing and formatting only: each calls the same action the operators call, so the team
policy bound to the model applies wherever the command is run from.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, models_app

actor_option = Annotated[
    str | None,
    typer.Option(
        "--actor",
        "--as",
        help="Who is acting, recorded in the audit trail [default: $USER]. Self-declared: see docs/governance.md.",
    ),
]
reason_option = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]
alias_option = Annotated[str, typer.Option("--alias", help="The alias concerned.")]
policy_option = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Team policy for a model with no policy bound in the registry [default: [airflow_bridge] policy_file, "
        "$AIRFLOW_BRIDGE_POLICY]",
        dir_okay=False,
    ),
]


target_option = Annotated[
    str, typer.Option("--target", help="Deployment target: local (the registry alias) or kserve (an InferenceService).")
]
serving_option = Annotated[
    str | None, typer.Option("--serving", help="Serving tier of the team policy (target kserve).")
]


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or getpass.getuser()


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
    actor: actor_option = None,
    reason: reason_option = "",
    policy: policy_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Point ALIAS at VERSION: a protected alias needs a recorded approval of VERSION (compare-and-set, audited).

    With --target kserve the InferenceService of NAME@ALIAS serves VERSION first (waiting until KServe reports
    it ready); the alias moves only then."""
    from airflow_bridge.actions.deployment import promote

    who = _actor(actor)
    with _guard(f"cannot promote {name} v{version}"):
        store = _open(registry, home)
        extra: dict[str, Any] = {"expected": expect} if expect is not None else {}
        result = promote(
            store,
            model=name,
            version=version,
            alias=alias,
            target=target,
            serving=serving,
            canary_traffic_percent=canary,
            actor=who,
            reason=reason or f"promoted with the CLI by {who}",
            policy=_explicit_policy(store, name, policy),
            **extra,
        )
    _report(result.to_xcom(), output, "now points at")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: alias_option = "production",
    target: target_option = "local",
    serving: serving_option = None,
    actor: actor_option = None,
    reason: reason_option = "",
    policy: policy_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Move ALIAS back to the version it pointed at before: on a protected alias, only to an approved version.

    With --target kserve the InferenceService serves that version again (no canary) before the alias moves."""
    from airflow_bridge.actions.deployment import rollback

    who = _actor(actor)
    with _guard(f"cannot roll back '{alias}' of {name}"):
        store = _open(registry, home)
        result = rollback(
            store,
            model=name,
            alias=alias,
            target=target,
            serving=serving,
            actor=who,
            reason=reason or f"rolled back with the CLI by {who}",
            policy=_explicit_policy(store, name, policy),
        )
    _report(result.to_xcom(), output, "rolled back to")


def _answer(
    name: str,
    version: int,
    alias: str,
    actor: str | None,
    policy: Path | None,
    home: Path | None,
    registry: str | None,
    output: Format,
    *,
    approve: bool,
) -> None:
    from airflow_bridge.actions.approval import decide

    who = _actor(actor)
    verb = "approve" if approve else "reject"
    with _guard(f"cannot {verb} {name} v{version} for '{alias}'"):
        store = _open(registry, home)
        decision = decide(
            store,
            model=name,
            version=version,
            alias=alias,
            responder=who,
            approve=approve,
            policy=_explicit_policy(store, name, policy),
            via="airflow-bridge CLI",
        )
    if output == Format.json:
        print_json(decision.to_xcom())
        return
    colour = "green" if decision.granted else "red"
    console.print(
        f"[{colour}]{escape(name)} v{version} {decision.decision}[/] for '{escape(alias)}' by {escape(who)}"
        + (
            f"; move it with: airflow-bridge models promote {name} {version} --alias {alias}"
            if decision.granted
            else ""
        )
    )


@models_app.command("approve")
def models_approve(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to approve.")],
    alias: alias_option = "production",
    actor: actor_option = None,
    policy: policy_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Approve VERSION for ALIAS as an approver of the model's team (answers its pending request, audited)."""
    _answer(name, version, alias, actor, policy, home, registry, output, approve=True)


@models_app.command("reject")
def models_reject(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to reject.")],
    alias: alias_option = "production",
    actor: actor_option = None,
    policy: policy_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Reject VERSION for ALIAS as an approver of the model's team (closes its pending request, audited)."""
    _answer(name, version, alias, actor, policy, home, registry, output, approve=False)


def _explicit_policy(store: Any, name: str, policy: Path | None) -> Any:
    """With --policy, the governing policy (refused when it differs from the one bound to the model)."""
    if policy is None:
        return None
    from airflow_bridge.governance.enforcement import governing_policy

    return governing_policy(store, name, explicit=policy)


def _report(result: dict[str, Any], output: Format, verb: str) -> None:
    if output == Format.json:
        print_json(result)
        return
    was = f"v{result['previous_version']}" if result.get("previous_version") else "nothing"
    console.print(
        f"[green]{escape(result['model'])}[/] alias [bold]{escape(result['alias'])}[/] {verb} "
        f"v{result['version']} (was {was})"
    )
