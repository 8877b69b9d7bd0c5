"""The Models page's HTML views, each read in one registry snapshot with paged queries.

No view reads every version or every audit event of a model: the versions table is one page of SQL rows
(``queries.versions_page``), fates come from the few events that decide them (``queries.fate_events``),
the audit trail and alias moves show the newest rows with a link to the paged audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.plugin import charts, pages, tables
from airflow_bridge.plugin.tables import Paging, Sort, query
from airflow_bridge.registry import candidates, queries

if TYPE_CHECKING:
    from airflow_bridge.registry.records import Candidate, ModelRecord
    from airflow_bridge.registry.store import ModelRegistry

RECENT = 20
"""How many alias moves and audit events the model page shows (the audit trail page has them all, paged)."""
CANDIDATES_SHOWN = 20
"""How many of the newest candidates that never became a version the model page shows (``models candidates``
lists them all)."""


@dataclass(frozen=True)
class VersionsQuery:
    """The model page's query string: ``?page=2&per_page=50&sort=metric:roc_auc&desc=1``."""

    page: int = 1
    per_page: int = tables.PER_PAGE
    sort: str = "version"
    desc: bool = True
    around: int | None = None
    """Show the page (newest first) that holds this version: task links point at ``#vN``."""

    def params(self) -> dict[str, Any]:
        return {"page": self.page, "per_page": self.per_page, "sort": self.sort, "desc": int(self.desc)}


def model_page(
    store: ModelRegistry, root: str, airflow: str, name: str, *, asked: VersionsQuery, notice: str = ""
) -> str:
    """One model: card, aliases, the Promote / Roll back forms, a page of versions with charts, approvals,
    alias moves and the newest audit events."""
    from airflow_bridge.registry import approvals
    from airflow_bridge.registry.events import ALIAS_MOVES
    from airflow_bridge.report.fate import fates_from, live_alias

    sort_key, _, metric = asked.sort.partition(":")
    if sort_key not in queries.VERSION_SORTS:
        sort_key, metric = "version", ""
    with store.reading(f"read the Models page of '{name}'") as conn:
        try:
            record = queries.get_model(conn, name)
        except NotFoundError:
            if not candidates.unversioned_models(conn, name=name):
                raise
            # every run so far stopped before registering a version: its candidates say why
            tried = candidates.list_for(conn, name, limit=CANDIDATES_SHOWN)
            return candidates_only_page(root, airflow, name, tried, candidates.count_for(conn, name))
        total = queries.count_versions(conn, name)
        number = asked.page
        if asked.around is not None:  # newest first, on the page that holds v<around>
            newer = queries.count_versions(conn, name, newer_than=asked.around)
            sort_key, metric, asked = "version", "", VersionsQuery(1, asked.per_page)
            number = newer // max(1, min(asked.per_page, tables.MAX_PER_PAGE)) + 1
        paging = Paging.of(number, asked.per_page, total)
        versions = queries.versions_page(
            conn,
            name,
            offset=paging.offset,
            limit=paging.per_page,
            sort=sort_key,
            descending=asked.desc,
            metric=metric or None,
        )
        events = queries.fate_events(conn, name)
        recent, all_events = queries.events_page(conn, model=name, limit=RECENT)
        unregistered = candidates.list_for(conn, name, limit=CANDIDATES_SHOWN, unregistered=True)
        unregistered_total = candidates.count_for(conn, name, unregistered=True)
        pending = approvals.pending(conn, name)
    fates = fates_from(events, dict(record.aliases), record.latest_version)
    live, live_version = live_alias(record.aliases) or (None, None)
    ctx = tables.RowContext(root, airflow, name, live, live_version)
    rows = tables.version_rows(versions, fates, ctx)
    metrics = tables.metric_columns(rows)
    params = asked.params()
    base = f"{root}/models/{quote(name)}"
    sort = Sort(asked.sort if sort_key != "metric" or metric else "version", asked.desc)

    def sort_url(key: str, descending: bool) -> str:
        return base + query(params, sort=key, desc=int(descending), page=1)

    def page_url(number: int) -> str:
        return base + query(params, page=number)

    moves = [e for e in reversed(events) if e.action in ALIAS_MOVES and e.alias][:RECENT]
    card = record.card
    body = (
        notice
        + (f"<p>{escape(card.description)}</p>" if card.description else "")
        + f"<p class='muted'>Owner {escape(card.owner or '—')} · team {escape(card.team or '—')} · "
        f"{total:,} version{'s' if total != 1 else ''}</p>"
        + aliases_line(record)
        + (move_forms(base, record) if total else "")
        + "<h2>Versions</h2>"
        + charts.metric_charts(rows, tables.gate_metrics(rows))
        + paging.html(page_url, "versions")
        + f'<form method="get" action="{base}/compare" data-compare>'
        + tables.versions_table(rows, metrics, sort, sort_url)
        + paging.html(page_url, "versions")
        + candidates_section(name, tables.candidate_rows(unregistered, ctx), metrics, unregistered_total)
        + (
            '<div class="bar"><button class="primary" data-compare-button>Compare selected</button>'
            "<span class='muted small'>Tick two or more versions or candidates (the same comparison as "
            "<code>airflow-bridge models compare</code>).</span></div>"
            if total + unregistered_total > 1
            else ""
        )
        + "</form>"
        + "<h2>Pending approvals</h2>"
        + pages.pending_table(root, airflow, pending)
        + "<h2>Alias moves</h2>"
        + pages.alias_moves_table(moves)
        + "<h2>Audit trail</h2>"
        + f"<p class='muted'>The newest {min(RECENT, all_events)} of {all_events:,} events of {escape(name)}; "
        f'<a href="{root}/audit?model={quote(name)}">all of them</a> (and a check of the hash chains).</p>'
        + pages.audit_table(recent)
    )
    return model_shell(root, name, body)


def candidates_section(
    name: str, rows: list[tables.VersionRow], metrics: list[str], total: int, *, versions: bool = True
) -> str:
    """The newest candidates that never became a version (failed a gate, or their run stopped before
    ``register``), in the versions' form so they can be ticked for compare beside versions."""
    if not total:
        return ""
    shown = f"the newest {len(rows)} of {total:,}" if total > len(rows) else f"{total:,}"
    return (
        "<h3 id='candidates'>Candidates that did not become a version</h3>"
        f"<p class='muted small'>Every run records its candidate, passed or not; {shown} of {escape(name)}'s "
        f"never became a version (all of them: <code>airflow-bridge models candidates {escape(name)}</code>)."
        + (" A registered version's candidate is the version above." if versions else "")
        + "</p>"
        + tables.versions_table(rows, metrics, None, None, first=("Candidate", "Recorded"))
    )


def candidates_only_page(root: str, airflow: str, name: str, tried: list[Candidate], total: int) -> str:
    """A model none of whose runs registered a version yet: its candidates, why each stopped, compare."""
    rows = tables.candidate_rows(tried, tables.RowContext(root, airflow, name, None, None))
    body = (
        f"<p>No version of {escape(name)} yet: none of its {total:,} recorded run{'s' if total != 1 else ''} "
        "registered one (each failed a gate or stopped before <code>register</code>). Its candidates are below, "
        "with their reports; the first version appears here once a run passes every gate.</p>"
        + f'<form method="get" action="{root}/models/{quote(name)}/compare" data-compare>'
        + candidates_section(name, rows, tables.metric_columns(rows), total, versions=False)
        + (
            '<div class="bar"><button class="primary" data-compare-button>Compare selected</button></div>'
            if total > 1
            else ""
        )
        + "</form>"
    )
    return model_shell(root, name, body)


def aliases_line(record: ModelRecord) -> str:
    if not record.aliases:
        return "<p class='muted'>No alias points at a version yet.</p>"
    shown = " ".join(
        f'<a href="#v{v}"><span class="badge live">{escape(a)} → v{v}</span></a>'
        for a, v in sorted(record.aliases.items())
    )
    return f"<p>Aliases: {shown}</p>"


def move_forms(base: str, record: ModelRecord) -> str:
    """Promote and Roll back: each opens a confirmation page that names what goes live and what it replaces."""
    aliases = sorted(record.aliases) or ["production"]
    alias_options = "".join(f'<option value="{escape(a)}">{escape(a)}</option>' for a in aliases)
    return (
        '<div class="forms">'
        f'<form class="card bar" method="get" action="{base}/promote"><strong>Promote</strong> '
        f'v<input type="number" name="version" min="1" max="{record.latest_version}" '
        f'value="{record.latest_version}" required style="width:6rem" aria-label="version"> to alias '
        f'<input name="alias" value="{escape(aliases[0])}" size="12" required aria-label="alias"> '
        "<button>Promote…</button></form>"
        f'<form class="card bar" method="get" action="{base}/rollback"><strong>Roll back</strong> alias '
        f'<select name="alias" aria-label="alias">{alias_options}</select> <button>Roll back…</button></form>'
        "</div>"
    )


@dataclass(frozen=True)
class IndexQuery:
    """The index's query string: ``?q=cancer&team=onc&live=1&sort=latest&desc=1&page=2``."""

    q: str = ""
    team: str = ""
    live: str = ""
    sort: str = "name"
    desc: bool = False
    page: int = 1
    per_page: int = tables.PER_PAGE

    def params(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "team": self.team,
            "live": self.live,
            "sort": self.sort,
            "desc": int(self.desc),
            "page": self.page,
            "per_page": self.per_page,
        }


def index_page(store: ModelRegistry, root: str, airflow: str, asked: IndexQuery) -> str:
    """Every model, searched, filtered (team, live alias), sorted and paged; then pending approvals."""
    from airflow_bridge.registry import approvals

    sort = asked.sort if asked.sort in queries.MODEL_SORTS else "name"
    live = {"1": True, "0": False}.get(asked.live)
    with store.reading("read the Models page") as conn:
        teams = queries.model_teams(conn)
        _, total = queries.models_page(conn, search=asked.q, team=asked.team, live=live, limit=0)
        paging = Paging.of(asked.page, asked.per_page, total)
        found, _ = queries.models_page(
            conn,
            search=asked.q,
            team=asked.team,
            live=live,
            sort=sort,
            descending=asked.desc,
            offset=paging.offset,
            limit=paging.per_page,
        )
        pending = approvals.pending(conn)
        waiting = [] if asked.team or live else candidates.unversioned_models(conn, search=asked.q)
    params = asked.params()
    base = f"{root}/models/"

    def sort_url(key: str, descending: bool) -> str:
        return base + query(params, sort=key, desc=int(descending), page=1)

    order = Sort(sort, asked.desc)
    team_options = "".join(
        f'<option value="{escape(t)}"{" selected" if t == asked.team else ""}>{escape(t)}</option>' for t in teams
    )
    live_options = "".join(
        f'<option value="{v}"{" selected" if v == asked.live else ""}>{label}</option>'
        for v, label in (
            ("", "with or without a live alias"),
            ("1", "with a live alias"),
            ("0", "without a live alias"),
        )
    )
    filters = (
        f'<form class="bar" method="get" action="{base}" role="search">'
        f'<input type="search" name="q" value="{escape(asked.q)}" placeholder="Search models" aria-label="search">'
        f'<select name="team" aria-label="team"><option value="">all teams</option>{team_options}</select>'
        f'<select name="live" aria-label="live alias">{live_options}</select>'
        f'<input type="hidden" name="sort" value="{escape(sort)}">'
        f'<input type="hidden" name="desc" value="{int(asked.desc)}">'
        '<button class="primary">Filter</button>'
        + (f'<a href="{base}">Clear</a>' if asked.q or asked.team or asked.live else "")
        + "</form>"
    )
    body = (
        filters
        + pages.models_table(root, found, order, sort_url)
        + paging.html(lambda n: base + query(params, page=n), "models")
        + unversioned_list(base, waiting)
        + "<h2>Pending approvals</h2>"
        + pages.pending_table(root, airflow, pending)
    )
    return pages.page("Models", body, root=root, crumbs=f'Models · <a href="{root}/audit">Audit trail</a>')


def unversioned_list(base: str, waiting: list[tuple[str, int]]) -> str:
    """Models with candidates but no version yet (every run failed a gate), linked to their pages."""
    if not waiting:
        return ""
    items = "".join(
        f'<li><a href="{base}{quote(name)}#candidates">{escape(name)}</a> '
        f"<span class='muted'>{count:,} candidate{'s' if count != 1 else ''}</span></li>"
        for name, count in waiting
    )
    return (
        "<h2>No version yet</h2><p class='muted small'>Models whose runs all stopped before registering a "
        f"version (a failed gate, most often): their candidates say why.</p><ul>{items}</ul>"
    )


def audit_page(
    store: ModelRegistry, root: str, model: str | None, page: int, per_page: int, *, verify: bool = False
) -> str:
    """The audit trail (of one model, or all), newest first and paged; with ``verify``, the verdict of the
    hash chains (``verify_audit()`` reads every event of the registry, so it runs when asked, not on every view)."""
    with store.reading("read the audit trail") as conn:
        if model:
            queries.get_model(conn, model)
        _, total = queries.events_page(conn, model=model, limit=0)
        paging = Paging.of(page, per_page, total)
        events, _ = queries.events_page(conn, model=model, offset=paging.offset, limit=paging.per_page)
    params = {"model": model, "page": paging.page, "per_page": paging.per_page}
    title = f"Audit trail of {model}" if model else "Audit trail"
    check = (
        pages.verdict(store.verify_audit())
        if verify
        else f'<form class="bar" method="get" action="{root}/audit">'
        + (f'<input type="hidden" name="model" value="{escape(model)}">' if model else "")
        + '<input type="hidden" name="verify" value="1"><button class="primary">Verify the hash chains</button>'
        "<span class='muted small'>Recomputes every event's hash and signature in the registry "
        "(<code>airflow-bridge audit verify</code> does the same).</span></form>"
    )
    body = check + paging.html(lambda n: f"{root}/audit" + query(params, page=n), "events") + pages.audit_table(events)
    crumbs = f'<a href="{root}/models/">Models</a>' + (
        f' &rsaquo; <a href="{root}/models/{quote(model)}">{escape(model)}</a>' if model else ""
    )
    return pages.page(title, body, root=root, crumbs=crumbs)


def lineage_page(store: ModelRegistry, root: str, name: str, version: int) -> str:
    """Where a version came from and went (``airflow-bridge lineage MODEL --version N``), as a page."""
    import json

    from airflow_bridge.lineage.chain import model_lineage

    found = model_lineage(store, name, version)
    [chain] = found["versions"]
    data, run, artifact = chain["data"], chain["run"], chain["artifact"]
    facts: Mapping[str, Any] = {
        "Training data": data.get("uri") or "—",
        "Data sha256": data.get("sha256") or "—",
        "Rows": data.get("rows") or "—",
        "OpenLineage dataset": f"{found['dataset']['namespace']} / {found['dataset']['name']}",
        "DAG run": " / ".join(str(run[k]) for k in ("dag_id", "run_id", "task_id") if run.get(k))
        or "— (not from Airflow)",
        "Spec sha256": chain.get("spec_sha256") or "—",
        "Estimator": chain.get("estimator") or "—",
        "Artifact": f"{artifact['uri']} ({artifact['size']:,} bytes, sha256 {artifact['sha256']})",
    }
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts.items())
    body = (
        f"<dl class='facts'>{dl}</dl>"
        "<p class='muted'>The same as <code>airflow-bridge lineage "
        f"{escape(name)} --version {version} --format json</code>:</p>"
        f"<pre class='card mono' style='overflow:auto'>{escape(json.dumps(chain, indent=2, default=str))}</pre>"
    )
    return pages.page(f"Lineage of {name} v{version}", body, root=root, crumbs=model_crumbs(root, name, f"#v{version}"))


def model_shell(root: str, name: str, body: str) -> str:
    """A model's own page (``Models > NAME``, the name not a link): with versions, or candidates only."""
    return pages.page(
        f"Model {name}", body, root=root, crumbs=f'<a href="{root}/models/">Models</a> &rsaquo; {escape(name)}'
    )


def model_crumbs(root: str, name: str, anchor: str = "") -> str:
    """``Models > NAME``: the way back from a model's sub-page."""
    return (
        f'<a href="{root}/models/">Models</a> &rsaquo; <a href="{root}/models/{quote(name)}{anchor}">{escape(name)}</a>'
    )
