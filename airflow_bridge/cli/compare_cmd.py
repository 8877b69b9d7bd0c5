"""``airflow-bridge models compare``: versions of one model side by side (the comparison action's text and JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, models_app

if TYPE_CHECKING:
    from airflow_bridge.actions.comparison import Comparison


@models_app.command("compare")
def models_compare(
    name: Annotated[str, typer.Argument(help="Model name.")],
    versions: Annotated[
        list[str], typer.Argument(help="Two or more versions: numbers or aliases; the first is the reference.")
    ],
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Versions side by side: parameters, data, metrics with deltas against the first, gates, data changes."""
    from airflow_bridge.actions.comparison import compare_versions

    with _guard(f"cannot compare versions of '{name}'"):
        found = compare_versions(_open(registry, home), name, versions)
    if output == Format.json:
        print_json(found.to_json())
        return
    _print_comparison(found)


def _print_comparison(found: Comparison) -> None:
    from rich.table import Table

    heads = [f"v{v['version']}" + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "") for v in found.versions]
    table = Table("", *heads, title=f"{found.model}: compared with v{found.versions[0]['version']}")
    table.add_row("estimator", *(escape(v["estimator"].rsplit(".", 1)[-1]) for v in found.versions))
    table.add_row("data sha256", *(str(v["data"]["sha256"] or "-")[:12] for v in found.versions))
    table.add_row("rows", *(str(v["data"]["rows"] or "-") for v in found.versions))
    for param, values in found.params.items():
        table.add_row(f"params.{escape(param)}", *(escape(str(v)) if v is not None else "-" for v in values))
    for metric, values in found.metrics.items():
        deltas = found.metric_deltas[metric]
        cells = [
            "-" if v is None else f"{v:.4f}" + ("" if i == 0 or d is None else f" ({d:+.4f})")
            for i, (v, d) in enumerate(zip(values, deltas, strict=True))
        ]
        table.add_row(escape(metric), *cells)
    for gate, passed in found.gates.items():
        table.add_row(f"gate {escape(gate)}", *("-" if p is None else ("pass" if p else "FAIL") for p in passed))
    console.print(table)
    for change in found.data_changes:
        parts = ["same data" if change["same_data"] else "other data"]
        parts += [f"added {', '.join(change['columns_added'])}"] if change["columns_added"] else []
        parts += [f"removed {', '.join(change['columns_removed'])}"] if change["columns_removed"] else []
        parts += [f"{c}: {r['from']} → {r['to']}" for c, r in change["roles_changed"].items()]
        console.print(f"v{change['version']}: {escape('; '.join(parts))}", markup=False)
    console.print("deltas: positive is better (an error that fell counts as a gain)")
