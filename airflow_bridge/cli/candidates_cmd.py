"""``airflow-bridge models candidates``: every candidate a model's runs trained, passed or not, with its fate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from airflow_bridge.cli.common import Format, console, format_option, home_option, print_json, registry_option
from airflow_bridge.cli.registry_cmds import _guard, _open, models_app

if TYPE_CHECKING:
    from airflow_bridge.registry.store import ModelRegistry

SHOWN_METRICS = 3
"""Metrics shown per candidate in the text table (the gated ones first); ``--format json`` has them all."""


@models_app.command("candidates")
def models_candidates(
    name: Annotated[str, typer.Argument(help="Model name.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N candidates.")] = 50,
    home: home_option = None,
    registry: registry_option = None,
    output: format_option = Format.text,
) -> None:
    """A model's candidates, newest first: passed or failed, registered or not, and where each stands now."""
    from airflow_bridge.actions.candidates import candidate_fates
    from airflow_bridge.exceptions import NotFoundError

    with _guard(f"cannot list the candidates of '{name}'"):
        store = _open(registry, home)
        found = store.list_candidates(name, limit=limit)
        if not found:
            try:
                store.get_model(name)
            except NotFoundError:
                raise NotFoundError(f"model '{name}' has no candidates and no versions") from None
        fates = candidate_fates(store, name, found)
    if output == Format.json:
        print_json(
            [
                c.to_dict() | {"fate": fates[c.candidate_id].state, "fate_text": fates[c.candidate_id].text}
                for c in found
            ]
        )
        return
    if not found:
        console.print(f"no candidates of '{escape(name)}' recorded (versions registered before candidates existed)")
        return
    from rich.table import Table

    table = Table("candidate", "recorded (UTC)", "fate", "estimator", "metrics", "by", title=f"{name}: candidates")
    for c in found:
        table.add_row(
            c.candidate_id,
            f"{c.created_at:%Y-%m-%d %H:%M}",
            escape(fates[c.candidate_id].text),
            escape(c.estimator.rsplit(".", 1)[-1]),
            escape(_metrics_cell(c.metrics, c.validation)),
            escape(c.recorded_by),
        )
    console.print(table)
    live = _live(store, name)
    if live is not None:
        console.print(f"compare: airflow-bridge models compare {name} {live} {found[0].candidate_id}", markup=False)


def _live(store: ModelRegistry, name: str) -> str | None:
    """The alias to compare candidates with: ``production`` if set, else the first alias (None: nothing live)."""
    from airflow_bridge.exceptions import NotFoundError
    from airflow_bridge.report.fate import live_alias

    try:
        found = live_alias(store.get_model(name).aliases)
    except NotFoundError:
        return None
    return found[0] if found else None


def _metrics_cell(metrics: dict[str, Any], validation: dict[str, Any]) -> str:
    gated = [g.get("name") for g in validation.get("gates") or [] if isinstance(g, dict)]
    names = [n for n in dict.fromkeys([*gated, *metrics]) if n in metrics][:SHOWN_METRICS]
    return ", ".join(f"{n} {metrics[n]:.4f}" if isinstance(metrics[n], int | float) else n for n in names) or "-"
