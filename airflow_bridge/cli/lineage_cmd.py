"""``airflow-bridge lineage MODEL``: data → DAG run → version → deployments, read from the registry alone."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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


def lineage(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int | None, typer.Option("--version", help="Only this version.", min=1)] = None,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Where each version of MODEL came from and where it went, without Airflow or a lineage server.

    Training data (OpenLineage dataset and sha256) → DAG run → version (spec hash, artifact, gates) →
    approvals → deployments and alias periods. Dataset names match the OpenLineage events.
    """
    from airflow_bridge.exceptions import BridgeError
    from airflow_bridge.lineage.chain import model_lineage

    try:
        chain = model_lineage(open_cli_registry(registry, home), model, version)
    except BridgeError as exc:
        raise fail(f"cannot read the lineage of {model}: {exc}") from None
    if output == Format.json:
        print_json(chain)
        return
    for line in render(chain):
        console.print(line, markup=False)


def render(chain: dict[str, Any]) -> list[str]:
    """Plain-text lines of the chain, one block per version."""
    from airflow_bridge.ml.gates import champion_of

    dataset = chain["dataset"]
    lines = [
        f"{chain['model']}  (owner {chain['owner'] or '-'}, team {chain['team'] or '-'})",
        f"  dataset   {dataset['namespace']}  {dataset['name']}",
        f"  aliases   {', '.join(f'{a} → v{v}' for a, v in sorted(chain['aliases'].items())) or 'none'}",
    ]
    for v in chain["versions"]:
        data, run, artifact = v["data"], v["run"], v["artifact"]
        deleted = f"  (deleted {v['deleted_at']})" if v["deleted_at"] else ""
        ds = data.get("dataset") or {}
        lines += [
            "",
            f"v{v['version']}  registered {v['created_at']} by {v['created_by']}{deleted}",
            f"  data      {ds.get('namespace', '?')}  {ds.get('name', data.get('uri'))}",
            f"            sha256 {data.get('sha256') or '?'}  ({data.get('rows', '?')} rows)",
            f"  run       {run['dag_id'] or '-'} / {run['run_id'] or '-'}  (task {run['task_id'] or '-'})",
            f"  spec      sha256 {v['spec_sha256'] or '-'}",
            f"  artifact  {artifact['uri']}",
            f"            sha256 {artifact['sha256']}  ({artifact['size']} bytes)",
        ]
        lines += [f"  gate      {_gate(g)}" for g in v["gates"]]
        champion = champion_of(v.get("champion"))
        if champion is not None and champion.compared:
            lines.append(f"  {champion.line()}")
        lines += [f"  approval  {a['decision']} by {a['actor']} at {a['at']} ({a['alias']})" for a in v["approvals"]]
        lines += [
            f"  {d['action']:<9} {d['alias']} on {d['target']} at {d['at']} by {d['actor']} ({d['run_id'] or 'CLI'})"
            for d in v["deployments"]
        ]
        lines += [f"  alias     {p['alias']}: {p['from']} → {p['to'] or 'now'}" for p in v["alias_periods"]]
    return lines


def _gate(gate: dict[str, Any]) -> str:
    from airflow_bridge.ml.gates import GateResult

    return GateResult.from_json(gate).line().strip()
