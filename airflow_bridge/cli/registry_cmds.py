"""Registry commands: ``models ...`` and ``audit ...``. They read the registry without Airflow."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from airflow_bridge.cli.common import (
    Format,
    console,
    fail,
    format_option,
    home_option,
    open_cli_registry,
    print_json,
    registry_option,
)

if TYPE_CHECKING:
    from airflow_bridge.registry.records import ModelRecord, ModelVersion
    from airflow_bridge.registry.store import ModelRegistry

models_app = typer.Typer(help="Read and change the model registry.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the audit trail.", no_args_is_help=True)


def _open(url: str | None, home: Path | None) -> ModelRegistry:
    return open_cli_registry(url, home)


def chosen_version(store: ModelRegistry, name: str, version: str | None) -> tuple[ModelRecord, ModelVersion]:
    """The model and the version a command asked for (a number or an alias; default: the newest)."""
    model = store.get_model(name)
    if model.latest_version == 0:
        raise fail(f"model '{name}' has no versions")
    return model, store.resolve(name, version or str(model.latest_version))


@contextlib.contextmanager
def _guard(action: str) -> Iterator[None]:
    """Registry errors become a red message and exit 1 (never a traceback, never a password)."""
    from airflow_bridge.exceptions import BridgeError

    try:
        yield
    except BridgeError as exc:
        raise fail(f"{action}: {exc}") from None


@models_app.command("list")
def models_list(
    home: home_option = None, registry: registry_option = None, output: format_option = Format.text
) -> None:
    """Registered models with their newest version and aliases."""
    with _guard("cannot list models"):
        models = _open(registry, home).list_models()
    if output == Format.json:
        print_json(
            [
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "owner": m.card.owner,
                    "team": m.card.team,
                }
                for m in models
            ]
        )
        return
    from rich.table import Table

    table = Table("model", "latest", "aliases", "owner", "team")
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m.aliases.items())) or "-"
        table.add_row(m.name, f"v{m.latest_version}", aliases, m.card.owner, m.card.team)
    console.print(table if models else "no models registered yet")


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="Version number or alias.")] = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """A model's card and one version (default: the newest) with metrics, artifact and producing run."""
    with _guard(f"cannot show '{name}'"):
        store = _open(registry, home)
        model, chosen = chosen_version(store, name, version)
    if output == Format.json:
        print_json(
            {
                "model": name,
                "card": model.card.__dict__,
                "aliases": model.aliases,
                "policy_sha256": model.policy_sha256,
                "version": chosen.to_dict(),
            }
        )
        return
    console.print(f"[bold]{escape(name)}[/] — {escape(model.card.description.strip() or 'no description')}")
    console.print(
        f"owner {model.card.owner or '-'}  team {model.card.team or '-'}  "
        f"aliases {', '.join(f'{a}→v{v}' for a, v in sorted(model.aliases.items())) or '-'}",
        markup=False,
    )
    console.print(
        f"[bold]v{chosen.version}[/] {chosen.estimator} ({chosen.task_kind}) "
        f"created {chosen.created_at:%Y-%m-%d %H:%M:%S} UTC by {escape(chosen.created_by)}"
    )
    lines = [
        f"  artifact {chosen.artifact.uri}",
        f"  sha256 {chosen.artifact.sha256}  size {chosen.artifact.size} bytes",
    ]
    if chosen.run.dag_id:
        lines.append(f"  produced by {chosen.run.dag_id} / {chosen.run.run_id} / {chosen.run.task_id}")
    for metric, value in sorted(chosen.metrics.items()):
        lines.append(f"  {metric:<18} {value:.4f}" if isinstance(value, float) else f"  {metric:<18} {value}")
    console.print("\n".join(lines), markup=False)


anchors_option = Annotated[
    str | None,
    typer.Option(
        "--anchors",
        help="Where anchors were written (s3://bucket/prefix or a folder): prove nothing before the newest "
        "was rewritten or truncated [default: [airflow_bridge] audit_anchor_uri]",
    ),
]
anchor_conn_option = Annotated[
    str | None,
    typer.Option(
        "--conn-id", help="Airflow connection of the anchor store [default: [airflow_bridge] audit_anchor_conn_id]"
    ),
]


@audit_app.command("verify")
def audit_verify(
    anchors: anchors_option = None,
    conn_id: anchor_conn_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Recompute the hash chain (and signatures), check it against anchors, and reconcile every model, version
    and alias row with it; exit 1 naming each problem."""
    from airflow_bridge.actions.anchoring import configured_anchors, verify

    configured_uri, configured_conn = configured_anchors()
    with _guard("cannot verify the audit trail"):
        verdict = verify(_open(registry, home), anchors or configured_uri, conn_id or configured_conn)
    report = verdict.chain
    if output == Format.json:
        print_json(
            {
                **report.__dict__,
                "ok": verdict.ok,
                "unexplained": verdict.unexplained,
                "anchors": [
                    {"seq": a.seq, "hash": a.hash, "location": a.location, "retention": a.retention}
                    for a in verdict.anchors
                ],
            }
        )
    else:
        if report.ok:
            anchored = (
                f", anchored up to seq {report.anchored} ({len(verdict.anchors)} anchors)" if report.anchored else ""
            )
            unsigned = f"; {report.unsigned} written before signing started" if report.unsigned else ""
            console.print(f"[green]audit trail intact[/]: {report.checked} events verified{anchored}{unsigned}")
        else:
            console.print(f"[bold red]audit trail broken[/]: {escape(report.problem)}")
        for problem in verdict.unexplained:
            console.print(f"[bold red]not explained by the audit trail[/]: {escape(problem)}")
        if verdict.ok:
            console.print("[green]registry consistent[/]: every model, version and alias row matches its events")
    raise typer.Exit(0 if verdict.ok else 1)


@audit_app.command("anchor")
def audit_anchor(
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="s3://bucket/prefix (Object Lock) or a folder [default: [airflow_bridge] audit_anchor_uri]"
        ),
    ] = None,
    conn_id: anchor_conn_option = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Write the audit chain's head (seq, hash, time) to write-once storage, where the database cannot reach."""
    from airflow_bridge.actions.anchoring import anchor

    with _guard("cannot anchor the audit trail"):
        written = anchor(_open(registry, home), to, conn_id)
    if output == Format.json:
        print_json(
            {
                "seq": written.seq,
                "hash": written.hash,
                "location": written.location,
                "anchored_at": written.anchored_at.isoformat(),
            }
        )
        return
    console.print(f"[green]anchored[/] seq {written.seq} (hash {written.hash[:12]}…) at {escape(written.location)}")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default stdout).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only events of this model.")] = None,
    home: home_option = None,
    registry: registry_option = None,
) -> None:
    """Write the audit trail as JSON lines."""
    import json

    with _guard("cannot export the audit trail"):
        events = _open(registry, home).audit_events(model=model)
    lines = "".join(json.dumps(e.to_dict(), sort_keys=True, default=str) + "\n" for e in events)
    if out:
        try:
            out.write_text(lines)
        except OSError as exc:
            raise fail(f"cannot write {out}: {exc.strerror}") from None
        console.print(f"wrote {len(events)} events to {escape(str(out))}")
    else:
        print(lines, end="")


@models_app.command("check")
def models_check(
    name: Annotated[str | None, typer.Argument(help="Model name [default: every model].")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Read every artifact and compare its sha256 (slower).")] = False,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Every version whose artifact (or model report) is missing or changed in its store; exit 1 if any.

    Without --deep only sizes are asked of the store; such a version is refused by deploy and serve anyway."""
    from airflow_bridge.actions.integrity import check_artifacts

    with _guard("cannot check the artifacts"):
        problems = check_artifacts(_open(registry, home), name, deep=deep)
    if output == Format.json:
        print_json([p.__dict__ for p in problems])
    elif problems:
        for p in problems:
            console.print(f"[bold red]{escape(p.model)} v{p.version}[/]: {escape(p.uri)}: {escape(p.problem)}")
    else:
        console.print(
            "[green]every version's artifact is there, as registered[/]" + (" (sha256 checked)" if deep else "")
        )
    raise typer.Exit(1 if problems else 0)


def gc(
    apply: Annotated[bool, typer.Option("--apply", help="Delete what is found (default: only list it).")] = False,
    grace_hours: Annotated[
        float, typer.Option("--grace-hours", min=0, help="Keep files younger than this: a run may still register them.")
    ] = 24.0,
    root: Annotated[
        str | None,
        typer.Option("--root", help="Artifact root [default: [airflow_bridge] artifact_root, else the home's]"),
    ] = None,
    conn_id: Annotated[str | None, typer.Option("--conn-id", help="Connection of a remote root.")] = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Find (and with --apply delete) partial files and artifacts no version references, under the artifact root.

    A dry run by default. Held-out splits are needed only while their run lasts: they go after the grace period."""
    import datetime as dt

    from airflow_bridge.actions.integrity import collect_garbage
    from airflow_bridge.resolution import resolve_artifact_root

    with _guard("cannot collect garbage"):
        where = resolve_artifact_root(root, conn_id, home=home)
        report = collect_garbage(
            _open(registry, home), where.value, where.conn_id, grace=dt.timedelta(hours=grace_hours), apply=apply
        )
    if output == Format.json:
        print_json(report.__dict__)
        return
    verb = "deleted" if apply else "would delete"
    for uri in report.partial:
        console.print(f"{verb} partial file {escape(uri)}")
    for uri in report.unreferenced:
        console.print(f"{verb} unreferenced artifact {escape(uri)}")
    console.print(
        f"{verb} {len(report.partial)} partial file(s) and {len(report.unreferenced)} unreferenced artifact(s), "
        f"{report.freed_bytes / 1e6:.1f} MB, under {escape(report.root)}; kept {report.kept_recent} younger than "
        f"{grace_hours:g} h" + ("" if apply else " (dry run: --apply deletes)")
    )


@models_app.command("versions")
def models_versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    all_versions: Annotated[bool, typer.Option("--all", help="Include deleted versions.")] = False,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Every version of a model: when, by whom, from which run, its gate metrics and aliases."""
    with _guard(f"cannot list versions of '{name}'"):
        versions = _open(registry, home).list_versions(name, include_deleted=all_versions)
    if output == Format.json:
        print_json([v.to_dict() for v in versions])
        return
    from rich.table import Table

    table = Table("version", "created (UTC)", "by", "metrics", "aliases", "run")
    for v in versions:
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in _shown_metrics(v).items())
        label = f"v{v.version}" + (" (deleted)" if v.deleted_at else "")
        table.add_row(
            label,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            escape(v.created_by),
            metrics,
            ", ".join(v.aliases) or "-",
            escape(v.run.run_id or "-"),
        )
    console.print(table if versions else f"model '{escape(name)}' has no versions")


@models_app.command("history")
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """The model's audit trail: who did what, when, why and from which run (oldest first)."""
    with _guard(f"cannot read the history of '{name}'"):
        events = _open(registry, home).audit_events(model=name)
    if output == Format.json:
        print_json([e.to_dict() for e in events])
        return
    from rich.table import Column, Table

    table = Table(
        "seq", "time (UTC)", Column("action", no_wrap=True, min_width=18), "version", "alias", "actor", "reason / run"
    )
    for e in events:
        where = e.reason or (f"{e.run.dag_id}/{e.run.run_id}" if e.run.dag_id else "")
        table.add_row(
            str(e.seq),
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            e.action,
            f"v{e.version}" if e.version else "",
            e.alias or "",
            escape(e.who),
            escape(where),
        )
    console.print(table if events else f"no events for '{escape(name)}'")


def _shown_metrics(version: ModelVersion) -> dict[str, float]:
    """The metrics the version was gated on (its spec's thresholds and champion), else the first three."""
    from airflow_bridge.ml.gates import champion_of, gates_of

    gated = [g.name for g in gates_of(version.validation.get("gates")) if g.kind == "metric"]
    champion = getattr(champion_of(version.validation.get("champion")), "metric", None)
    names = list(dict.fromkeys([*gated, *([champion] if champion else [])])) or sorted(version.metrics)[:3]
    return {n: float(version.metrics[n]) for n in names if isinstance(version.metrics.get(n), int | float)}
