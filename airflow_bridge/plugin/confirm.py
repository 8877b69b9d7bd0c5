"""The confirmation step before a promote or a rollback: a page that names what goes live and what it replaces.

The Promote and Roll back forms of the model page are GETs to these pages; nothing changes until the user
posts the confirmation. The confirmation carries what the user saw (the version the alias serves now, and
for a rollback the version it goes back to), so if the alias moved in between, the move is refused and the
user confirms again: what was confirmed is what happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow_bridge.exceptions import ConflictError, NotFoundError
from airflow_bridge.plugin import pages

if TYPE_CHECKING:
    from airflow_bridge.registry.store import ModelRegistry


@dataclass(frozen=True)
class PlannedMove:
    """A move as the confirmation page states it: ``production: v3 → v5``."""

    model: str
    alias: str
    action: str
    """``promote`` or ``rollback``."""
    to_version: int
    from_version: int | None
    fate: str = ""
    """Where the version that goes live stands (``rejected by erin: ...``), so the confirmation says it."""

    @property
    def statement(self) -> str:
        was = f"v{self.from_version}" if self.from_version is not None else "unset"
        return f"{self.alias}: {was} → v{self.to_version}"


def plan_promote(store: ModelRegistry, model: str, version: int, alias: str) -> PlannedMove:
    """What promoting ``version`` to ``alias`` would do now (NotFoundError for an unknown model or version)."""
    from airflow_bridge.registry import queries
    from airflow_bridge.report.fate import fates_from

    with store.reading(f"plan a promotion of {model} v{version}") as conn:
        record = queries.get_model(conn, model)
        queries.get_version(conn, model, version)
        events = queries.fate_events(conn, model)
    fate = fates_from(events, dict(record.aliases), record.latest_version).get(version)
    return PlannedMove(model, alias, "promote", version, record.aliases.get(alias), fate.text if fate else "")


def plan_rollback(store: ModelRegistry, model: str, alias: str) -> PlannedMove:
    """What rolling ``alias`` back would do now: the version it serves and the one it goes back to."""
    record = store.get_model(model)
    live = record.aliases.get(alias)
    if live is None:
        raise NotFoundError(f"alias '{alias}' of '{model}' points at no version: there is nothing to roll back")
    previous = store.previous_alias_version(model, alias)
    if previous is None:
        raise NotFoundError(f"alias '{alias}' of '{model}' has no earlier version to roll back to")
    return PlannedMove(model, alias, "rollback", previous, live)


def check_unchanged(store: ModelRegistry, confirmed: PlannedMove) -> None:
    """ConflictError (nothing changes) when the alias no longer moves as the user confirmed it would."""
    now = plan_rollback(store, confirmed.model, confirmed.alias) if confirmed.action == "rollback" else None
    if now is not None and (now.from_version, now.to_version) != (confirmed.from_version, confirmed.to_version):
        raise ConflictError(
            f"'{confirmed.alias}' of {confirmed.model} changed since you confirmed '{confirmed.statement}': a rollback "
            f"would now be '{now.statement}'. Nothing changed; confirm again"
        )


def confirm_page(root: str, planned: PlannedMove) -> str:
    """The confirmation: the move in one line, a required reason, Confirm (POST) or Cancel."""
    base = f"{root}/models/{quote(planned.model)}"
    verb = "Promote" if planned.action == "promote" else "Roll back"
    if planned.from_version == planned.to_version:
        body = (
            pages.message(
                f"'{planned.alias}' of {planned.model} already serves v{planned.to_version}: nothing to do.", ok=True
            )
            + f'<p><a href="{base}">Back to {escape(planned.model)}</a></p>'
        )
        return pages.page(f"{verb} {planned.model}", body, root=root, crumbs=_crumbs(root, planned.model))
    replaces = (
        f"It replaces v{planned.from_version}, which '{planned.alias}' serves now."
        if planned.from_version is not None
        else f"'{planned.alias}' serves no version yet."
    )
    hidden = {"alias": planned.alias, "expect": planned.from_version if planned.from_version is not None else ""}
    if planned.action == "promote":
        hidden["version"] = planned.to_version
    else:
        hidden["to"] = planned.to_version
    fields = "".join(f'<input type="hidden" name="{k}" value="{escape(str(v))}">' for k, v in hidden.items())
    compare = (
        f' <a href="{base}/compare?v={planned.from_version}&amp;v={planned.to_version}">Compare '
        f"v{planned.from_version} with v{planned.to_version}</a> first."
        if planned.from_version is not None
        else ""
    )
    body = (
        "<div class='card narrow'>"
        f"<p class='move' data-move>{escape(planned.statement)}</p>"
        f"<p>v{planned.to_version}"
        + (f" ({escape(planned.fate)})" if planned.fate else "")
        + f" goes live as <strong>{escape(planned.alias)}</strong> of "
        f"{escape(planned.model)}. {escape(replaces)} The team policy still decides (a protected alias needs an "
        f"approval); a refusal is shown with its reason and nothing moves.{compare}</p>"
        f'<form method="post" action="{base}/{planned.action}" class="bar">{fields}'
        '<input name="reason" size="50" required placeholder="Why (recorded in the audit trail)" aria-label="reason">'
        f'<button class="{"primary" if planned.action == "promote" else "danger"}">Confirm: '
        f"{escape(planned.statement)}</button>"
        f'<a class="button" href="{base}">Cancel</a></form></div>'
    )
    return pages.page(f"{verb} {planned.model}?", body, root=root, crumbs=_crumbs(root, planned.model))


def _crumbs(root: str, model: str) -> str:
    return f'<a href="{root}/models/">Models</a> &rsaquo; <a href="{root}/models/{quote(model)}">{escape(model)}</a>'
