"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import enum
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from airflow_bridge.registry.store import ModelRegistry

_COMMAND_START_WINDOW = 10.0
"""A command's own process gets to its work within seconds of starting; an older process is a caller's."""
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
        help="SQLAlchemy URL of the registry [default: connection model_registry_default (as AIRFLOW_CONN_*), "
        "[airflow_bridge] registry_url, $AIRFLOW_BRIDGE_REGISTRY_URL, else SQLite in --home]",
    ),
]
format_option = Annotated[Format, typer.Option("--format", help="Output format.")]


def resolve_home(home: Path | None) -> Path:
    """The local home of the CLI and ``run``: --home, $AIRFLOW_BRIDGE_HOME or ./.airflow-bridge."""
    from airflow_bridge.resolution import local_home

    return local_home(home)


def registry_url(url: str | None, home: Path | None) -> str:
    """The registry the CLI uses, by the one resolution order every entry point shares."""
    from airflow_bridge.resolution import resolve_registry

    return resolve_registry(url=url, home=home).value


def open_cli_registry(url: str | None, home: Path | None) -> ModelRegistry:
    from airflow_bridge.resolution import audit_key, registry_for_url

    return registry_for_url(registry_url(url, home), audit_key())


def command_started_at() -> float:
    """Wall-clock time (``time.time()``) the user started this command: what their stopwatch starts from.

    The process start time the kernel records (Linux ``/proc``, 10 ms ticks) when this process is the
    command; when it is older (a test or script calling the CLI in-process), or elsewhere: now.
    """
    now = time.time()
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0 <= age < _COMMAND_START_WINDOW else now


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, sort_keys=True))


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)
