"""``models report``: write a version's model report (HTML page and figures) from the registry to files.

The report was built when the version was validated and is stored as checksummed artifacts; this command
reads them back (verifying each checksum) and writes them where a person can open them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, fail, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, chosen_version, models_app

HTML_NAME = "report.html"


@models_app.command("report")
def models_report(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="Version number or alias (default: the newest version).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder to write report.html and the figures into, or an .html file (figures next to it) "
            "(default: ./MODEL-vN-report/)",
        ),
    ] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")] = False,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """Write the model report of a version (gates, champion, plots, importance, history, data) and print its path."""
    from airflow_bridge.artifacts import read_verified
    from airflow_bridge.report.fate import current_page
    from airflow_bridge.report.storage import stored_report

    with _guard(f"cannot read the report of '{name}'"):
        store = _open(registry, home)
        _, chosen = chosen_version(store, name, version)
        label = f"{name} v{chosen.version}"
        stored = stored_report(chosen.validation, label)
        if stored is None:
            raise fail(
                f"{label} has no model report: it was registered without one (before reports existed, or by a DAG "
                f"that skips the validate step); see its numbers with: airflow-bridge models show {name} "
                f"--version {chosen.version}"
            )
        page = current_page(store, name, chosen.version, read_verified(stored.html))
        figures = {figure: read_verified(ref) for figure, ref in stored.pngs.items()}

    html_path = _html_path(out, name, chosen.version)
    try:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_bytes(page)
        written: dict[str, str] = {}
        for figure, data in figures.items():
            path = html_path.parent / _png_name(figure)
            path.write_bytes(data)
            written[figure] = str(path)
    except OSError as exc:
        raise fail(f"cannot write the report of {label} to {html_path.parent}: {exc.strerror or exc}") from None

    if output == Format.json:
        folder = str(html_path.parent)
        html = str(html_path)
        print_json({"model": name, "version": chosen.version, "html": html, "folder": folder, "pngs": written})
    else:
        console.print(f"[green]wrote the report of {escape(label)}[/] ({len(written)} figures next to it):")
        console.print(str(html_path), markup=False)
    if open_page:
        import webbrowser

        if not webbrowser.open(html_path.as_uri()):
            console.print(f"no web browser found: open {escape(str(html_path))} yourself")


def _html_path(out: Path | None, model: str, version: int) -> Path:
    """``--out`` as a file when it ends in .html, else the folder holding report.html; absolute."""
    if out is None:
        return (Path.cwd() / f"{_safe(model)}-v{version}-report" / HTML_NAME).resolve()
    out = out.expanduser()
    return (out if out.suffix.lower() in (".html", ".htm") else out / HTML_NAME).resolve()


def _png_name(name: str) -> str:
    """A figure's file name as recorded, kept inside the output folder (no separators, no leading dot)."""
    stem = _safe(Path(name).name).lstrip(".") or "figure"
    return stem if stem.lower().endswith(".png") else f"{stem}.png"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
