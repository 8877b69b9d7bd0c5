"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_HOME = ".airflow-bridge"


class Format(enum.StrEnum):
    text = "text"
    json = "json"


home_option = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help=f"airflow-bridge home for local runs and the embedded registry "
        f"[env AIRFLOW_BRIDGE_HOME; default ./{DEFAULT_HOME}]",
        file_okay=False,
    ),
]
registry_option = Annotated[
    str | None,
    typer.Option(
        "--registry-url",
        help="SQLAlchemy URL of the registry [env AIRFLOW_BRIDGE_REGISTRY_URL; default: SQLite in --home]",
    ),
]
format_option = Annotated[Format, typer.Option("--format", help="Output format.")]


def resolve_home(home: Path | None) -> Path:
    return (home or Path(os.environ.get("AIRFLOW_BRIDGE_HOME") or DEFAULT_HOME)).resolve()


def registry_url(url: str | None, home: Path | None) -> str:
    """The registry the CLI reads: --registry-url, $AIRFLOW_BRIDGE_REGISTRY_URL, or SQLite in the home."""
    chosen = url or os.environ.get("AIRFLOW_BRIDGE_REGISTRY_URL")
    if chosen:
        return chosen
    return f"sqlite:///{resolve_home(home) / 'airflow_bridge' / 'registry.db'}"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, sort_keys=True))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)
