"""A version's fate (pending, approved, rejected, superseded, live...) and the report page's fate blocks.

The report is built at validate time, before the version is registered or approved, and stored as
checksummed artifacts; its fate changes later. So the page marks every fate it shows between HTML
comments (``<!--fate:self-->…<!--/fate-->`` for its own version, ``<!--fate:3-->…<!--/fate-->`` for v3 in
the history, ``<!--version:self-->…<!--/version-->`` for its own version's label), and the readers
(``airflow-bridge models report`` and the Models page) verify the stored page's checksum, then rewrite
those blocks from the registry's state now with :func:`current_page`. One function, :func:`model_fates`,
computes every version's fate, from the model's aliases and audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_bridge.registry.records import AuditEvent
    from airflow_bridge.registry.store import ModelRegistry

SELF = "self"


@dataclass(frozen=True)
class Fate:
    """Where a version stands: ``state`` (one word, for styling and tests) and ``text`` (what a person reads)."""

    state: str
    text: str


def candidate_fate(passed: bool, failing: Sequence[str] = ()) -> Fate:
    """The fate of a candidate at validate time, before registration."""
    if passed:
        return Fate("candidate", "candidate, passed every gate (registered next)")
    what = ", ".join(failing) or "see the gates"
    return Fate("failed", f"failed gate(s) {what} (candidate, not registered)")


def model_fates(registry: ModelRegistry, model: str) -> dict[int, Fate]:
    """The fate of every version of ``model``, from one read of its aliases, alias history and audit trail."""
    record = registry.get_model(model)
    return fates_from(registry.audit_events(model=model), dict(record.aliases), record.latest_version)


def version_fate(registry: ModelRegistry, model: str, version: int) -> Fate:
    """The fate of one version (see :func:`fates_from` for the rules)."""
    return model_fates(registry, model).get(version) or Fate("registered", "registered")


def fates_from(events: Sequence[AuditEvent], aliases: Mapping[str, int], latest: int) -> dict[int, Fate]:
    """Every version's fate from the model's audit events and its aliases now; the first rule that applies wins:

    1. deleted; 2. live (an alias points at it now), with who approved it; 3. pending approval (an open
    request); 4. rejected by X, with the reason; 5. superseded by vN (an alias it held moved on, or its
    request was closed for a newer version); 6. approved by X (not deployed); 7. approval timed out;
    8. registered.
    """
    from airflow_bridge.registry.events import ALIAS_MOVES, AuditAction

    last: dict[int, dict[str, AuditEvent]] = {}
    pending: dict[int, set[str]] = {}
    deleted: set[int] = set()
    held: dict[int, list[str]] = {}
    for event in sorted(events, key=lambda e: e.seq):
        if event.version is None:
            continue
        if event.action in ALIAS_MOVES and event.alias:
            held.setdefault(event.version, []).append(event.alias)
        if event.action == AuditAction.VERSION_DELETED:
            deleted.add(event.version)
        if event.action == AuditAction.APPROVAL_REQUESTED:
            pending.setdefault(event.version, set()).add(event.alias or "")
        elif event.action in _CLOSERS:
            pending.get(event.version, set()).discard(event.alias or "")
            last.setdefault(event.version, {})[event.action] = event
    live: dict[int, list[str]] = {}
    for alias, number in sorted(aliases.items()):
        live.setdefault(number, []).append(alias)
    out: dict[int, Fate] = {}
    for number in range(1, latest + 1):
        out[number] = _fate(
            number,
            deleted=deleted,
            live=live,
            answers=last.get(number, {}),
            pending=pending.get(number, set()),
            held=held,
            aliases=aliases,
        )
    return out


_CLOSERS = ("approval_granted", "approval_rejected", "approval_timed_out", "approval_superseded")


def _fate(
    number: int,
    *,
    deleted: set[int],
    live: Mapping[int, list[str]],
    answers: Mapping[str, AuditEvent],
    pending: set[str],
    held: Mapping[int, list[str]],
    aliases: Mapping[str, int],
) -> Fate:
    granted = answers.get("approval_granted")
    approved = f"approved by {granted.actor}" if granted else ""
    if number in deleted:
        return Fate("deleted", "deleted")
    if number in live:
        text = "live as " + ", ".join(live[number])
        return Fate("live", f"{text}, {approved}" if approved else text)
    if pending:  # an open request is newer than any answer for its alias
        return Fate("pending", "pending approval for " + ", ".join(sorted(a for a in pending if a) or ["an alias"]))
    rejected = answers.get("approval_rejected")
    if rejected and (granted is None or rejected.seq > granted.seq):
        comment = (rejected.after or {}).get("comment") if isinstance(rejected.after, Mapping) else None
        why = str(comment or rejected.reason or "").strip()
        return Fate("rejected", f"rejected by {rejected.actor}" + (f": {why}" if why else ""))
    superseded = answers.get("approval_superseded")
    if number in held:
        alias = held[number][-1]
        now = aliases.get(alias)
        after = f"superseded by v{now}" if now is not None else f"retired from {alias}"
        return Fate("superseded", f"{after} (was live as {alias}" + (f", {approved})" if approved else ")"))
    if superseded is not None:
        newer = (superseded.after or {}).get("superseded_by") if isinstance(superseded.after, Mapping) else None
        return Fate("superseded", f"superseded by v{newer}" if newer else "superseded")
    if granted:
        return Fate("approved", f"{approved} (not deployed)")
    if "approval_timed_out" in answers:
        return Fate("timed_out", "approval timed out (nobody answered)")
    return Fate("registered", "registered (no approval asked)")


# -- the page's fate blocks ------------------------------------------------------------------------------------


def block(key: str | int, text: str) -> str:
    """A fate to print in the page, marked so a reader can rewrite it (``key``: a version or ``self``)."""
    return f"<!--fate:{key}-->{escape(text)}<!--/fate-->"


def version_label(text: str) -> str:
    """The page's own version label (``candidate`` at validate time), marked for the readers."""
    return f"<!--version:self-->{escape(text)}<!--/version-->"


def compare_block(inner: str = "") -> str:
    """Where a reader puts the link to this version's comparison with the live one (empty at validate time)."""
    return f"<!--compare:self-->{inner}<!--/compare-->"


_FATE = re.compile(r"<!--fate:(\w+)-->.*?<!--/fate-->", re.DOTALL)
_COMPARE = re.compile(r"<!--compare:self-->.*?<!--/compare-->", re.DOTALL)
_VERSION = re.compile(r"<!--version:self-->.*?<!--/version-->", re.DOTALL)
_TITLE = re.compile(r"<title>.*?</title>", re.DOTALL)


def refresh(html: str, model: str, version: int, fates: Mapping[int, Fate]) -> str:
    """The page with every marked fate and its own version label rewritten (``fates`` by version number)."""
    own = fates.get(version)

    def fate(match: re.Match[str]) -> str:
        key = match.group(1)
        found = own if key == SELF else fates.get(int(key)) if key.isdigit() else None
        return block(key, found.text) if found is not None else match.group(0)

    page = _VERSION.sub(lambda _: version_label(f"v{version}"), _FATE.sub(fate, html))
    if own is not None:
        title = f"<title>Model report: {escape(model)} v{version} — {escape(own.text)}</title>"
        page = _TITLE.sub(lambda _: title, page, count=1)
    return page


def current_page(
    registry: ModelRegistry, model: str, version: int, stored: bytes, compare_url: str | None = None
) -> bytes:
    """A stored (checksum-verified) report page with its fates as the registry says now, and a link to its
    comparison with the live version (``compare_url``: the Models page's compare route; None: the command)."""
    page = stored.decode("utf-8")
    if "<!--fate:" not in page:
        return stored  # a report built before fate blocks existed
    page = refresh(page, model, version, model_fates(registry, model))
    live = live_alias(registry.get_model(model).aliases, version)
    if live is None:
        return page.encode("utf-8")
    alias, number = live
    what = f"compare with the live v{number} ({escape(alias)})"
    if compare_url is not None:
        inner = f' · <a href="{escape(compare_url)}?v={quote(alias)}&amp;v={version}">{what}</a>'
    else:
        command = f"airflow-bridge models compare {escape(model)} {escape(alias)} {version}"
        inner = f" · {what}: <code>{command}</code>"
    return _COMPARE.sub(lambda _: compare_block(inner), page, count=1).encode("utf-8")


def live_alias(aliases: Mapping[str, int], version: int | None = None) -> tuple[str, int] | None:
    """The live alias and its version: ``production`` if set, else the first alias by name; None when nothing
    is live, or when ``version`` (the one to compare with it) is the live one."""
    for alias in sorted(aliases, key=lambda a: (a != "production", a)):
        return None if aliases[alias] == version else (alias, aliases[alias])
    return None
