"""``airflow-bridge targets``: the deployment targets installed here, their settings, and the broken ones."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from airflow_bridge.cli.common import Format, console, format_option, print_json


def targets(output: format_option = Format.text) -> None:
    """List the deployment targets this environment has (entry points 'airflow_bridge.targets').

    A target that fails to load, or whose name two packages claim, is listed with why; specs naming it
    get that error, the other targets work. Exit code 1 when any target is broken."""
    import typer

    from airflow_bridge.spec.targets import installed_targets

    installed = installed_targets()
    usable: dict[str, dict[str, Any]] = {
        name: {"settings": list(plugin.settings.model_fields), "docs": plugin.docs, "module": type(plugin).__module__}
        for name, plugin in sorted(installed.usable.items())
    }
    if output == Format.json:
        print_json({"usable": usable, "broken": dict(installed.broken)})
    else:
        for name, about in usable.items():
            takes = ", ".join(about["settings"]) or "no settings"
            console.print(f"[green]✓[/] {escape(name)}: {escape(takes)} ({escape(about['module'])}; {about['docs']})")
        for name, why in sorted(installed.broken.items()):
            console.print(f"[red]✗[/] {escape(name)}: {escape(why)}")
    if installed.broken:
        raise typer.Exit(1)
