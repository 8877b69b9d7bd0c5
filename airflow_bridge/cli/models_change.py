"""Commands that change the registry: ``models promote`` and ``models rollback``.

Both verify the artifact's checksum, move the alias by compare-and-set and write the audit trail.
``promote`` applies the team policy: an alias that needs approval can only be moved by one of the
team's approvers, never by the model's owner.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, fail, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, models_app

actor_option = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (recorded in the audit trail) [default: $USER].")
]
reason_option = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]
policy_option = Annotated[
    Path | None,
    typer.Option("--policy", help="Team policy file [default: the nearest _policy.yaml from here]", dir_okay=False),
]


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or getpass.getuser()


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move.")] = "production",
    expect: Annotated[
        int | None, typer.Option("--expect", help="Only if the alias still points at this version.")
    ] = None,
    actor: actor_option = None,
    reason: reason_option = "",
    policy: policy_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Point ALIAS at VERSION (checked against the team policy, compare-and-set, audited)."""
    from airflow_bridge.artifacts import verify_artifact
    from airflow_bridge.governance.loader import find_policy, load_policy

    who = _actor(actor)
    policy_path = str(policy) if policy else find_policy(Path.cwd())
    loaded_policy = load_policy(policy_path)
    if not loaded_policy.ok or loaded_policy.policy is None:
        raise fail(f"the team policy {policy_path} is invalid; run 'airflow-bridge validate' on its folder")
    with _guard(f"cannot promote {name} v{version}"):
        store = _open(registry, home)
        model = store.get_model(name)
        rules = loaded_policy.policy
        if alias in rules.aliases_needing_approval(model.card.team):
            approvers = rules.approvers_for(model.card.team, model.card.owner)
            if who not in approvers:
                store.record_event(
                    "approval_refused",
                    actor=who,
                    model=name,
                    version=version,
                    alias=alias,
                    reason=f"promote refused: '{who}' is not an approver",
                    after={"decision": "refused"},
                )
                raise fail(
                    f"'{escape(who)}' may not move '{alias}' of {name}: it needs approval by "
                    f"{', '.join(approvers) or 'an approver'} (team {model.card.team}; the owner cannot approve)"
                )
        chosen = store.get_version(name, version)
        verify_artifact(chosen.artifact)
        current = store.alias_version(name, alias)
        expected = expect if expect is not None else (current.version if current else None)
        deployment = store.deploy(
            name,
            version,
            alias=alias,
            target="local",
            expected=expected,
            actor=who,
            reason=reason or f"promoted with the CLI by {who}",
            action="promoted",
        )
    _report(name, alias, deployment.version, current.version if current else None, who, output, "now points at")


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to roll back.")] = "production",
    actor: actor_option = None,
    reason: reason_option = "",
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Move ALIAS back to the version it pointed at before (compare-and-set, audited)."""
    from airflow_bridge.artifacts import verify_artifact

    who = _actor(actor)
    with _guard(f"cannot roll back '{alias}' of {name}"):
        store = _open(registry, home)
        current = store.alias_version(name, alias)
        previous = store.previous_alias_version(name, alias)
        if current is not None and previous is not None:
            verify_artifact(store.get_version(name, previous).artifact)
        deployment = store.rollback(name, alias, actor=who, reason=reason or f"rolled back with the CLI by {who}")
    _report(name, alias, deployment.version, current.version if current else None, who, output, "rolled back to")


def _report(name: str, alias: str, version: int, previous: int | None, who: str, output: Format, verb: str) -> None:
    if output == Format.json:
        print_json({"model": name, "alias": alias, "version": version, "previous_version": previous, "actor": who})
        return
    was = f"v{previous}" if previous else "nothing"
    console.print(f"[green]{escape(name)}[/] alias [bold]{escape(alias)}[/] {verb} v{version} (was {was})")
