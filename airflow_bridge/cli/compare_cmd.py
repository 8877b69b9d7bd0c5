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
        list[str],
        typer.Argument(
            help="Two or more versions (numbers or aliases) or candidates (c-…); the first is the reference."
        ),
    ],
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Versions and candidates side by side: parameters, data, metrics with deltas against the first, gates,
    data changes."""
    from airflow_bridge.actions.comparison import compare_versions

    with _guard(f"cannot compare versions of '{name}'"):
        found = compare_versions(_open(registry, home), name, versions)
    if output == Format.json:
        print_json(found.to_json())
        return
    _print_comparison(found)


def _print_comparison(found: Comparison) -> None:
    from rich.table import Table

    table = Table("", *found.headers, title=f"{found.model}: compared with {found.versions[0]['label']}")
    for label, cells in found.rows():
        table.add_row(escape(label), *(escape(cell) for cell in cells))
    console.print(table)
    for line in found.change_lines():
        console.print(line, markup=False)
    console.print("deltas: positive is better (an error that fell counts as a gain)")
