"""The versions table of the Models page: typed rows built in one place, paging and sorting.

:func:`version_rows` turns registry versions into :class:`VersionRow` objects (status badge, gate metric
values, links to the DAG run, task logs, report, lineage, artifact and comparison); :func:`versions_table`
renders any rows. A row has a ``kind``, so candidates (runs that were not registered) can be added as rows
of kind ``candidate`` by another builder and shown in the same table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from airflow_bridge.ml.gates import GateResult
    from airflow_bridge.registry.records import Candidate, ModelVersion
    from airflow_bridge.report.fate import Fate

PER_PAGE = 50
MAX_PER_PAGE = 200

STATUS_LABELS = {
    "live": "live",
    "approved": "approved",
    "pending": "pending",
    "rejected": "rejected",
    "superseded": "superseded",
    "failed": "failed gate",
    "timed_out": "timed out",
    "deleted": "deleted",
    "registered": "registered",
    "candidate": "candidate",
    "unregistered": "not registered",
}
"""The badge word of each state (``report.fate.Fate.state``, plus ``failed`` for a failed gate)."""


@dataclass(frozen=True)
class Paging:
    """Which slice of ``total`` rows a page shows (pages count from 1; an out-of-range page is clamped)."""

    page: int
    per_page: int
    total: int

    @classmethod
    def of(cls, page: int, per_page: int, total: int) -> Paging:
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        pages = max(1, math.ceil(total / per_page))
        return cls(max(1, min(page, pages)), per_page, total)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def html(self, url: Callable[[int], str], noun: str) -> str:
        """``Showing 51-100 of 10,000 versions`` with first/previous/next/last links."""
        if self.total == 0:
            return ""
        first, last = self.offset + 1, min(self.offset + self.per_page, self.total)
        links = [
            ("« First", 1, self.page > 1),
            ("&lsaquo; Previous", self.page - 1, self.page > 1),
            ("Next &rsaquo;", self.page + 1, self.page < self.pages),
            ("Last »", self.pages, self.page < self.pages),
        ]
        if self.pages == 1:
            shown = noun.removesuffix("s") if self.total == 1 else noun
            return f'<div class="pager"><span>{self.total:,} {shown}</span></div>'
        shown = " ".join(
            f'<a class="button" href="{escape(url(n))}">{label}</a>' if ok else f"<span class='muted'>{label}</span>"
            for label, n, ok in links
        )
        return (
            f'<div class="pager"><span>Showing {first:,}&ndash;{last:,} of {self.total:,} {noun} '
            f"(page {self.page:,} of {self.pages:,})</span>{shown}</div>"
        )


@dataclass(frozen=True)
class Sort:
    """A table's order: a key, and descending or not (``?sort=metric:roc_auc&desc=1``)."""

    key: str
    descending: bool

    def header(self, label: str, key: str, url: Callable[[str, bool], str], *, default_desc: bool = False) -> str:
        """A sortable column header: a link that sorts by ``key`` (toggling the direction when already sorted)."""
        if key == self.key:
            arrow = " ▼" if self.descending else " ▲"
            return f'<a class="sorted" href="{escape(url(key, not self.descending))}">{escape(label)}{arrow}</a>'
        return f'<a href="{escape(url(key, default_desc))}">{escape(label)}</a>'


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    top: bool = False
    """Open in the whole window (an Airflow UI page), not inside the Models iframe."""

    def html(self) -> str:
        target = ' target="_top"' if self.top else ""
        return f'<a class="nowrap" href="{escape(self.href)}"{target}>{escape(self.label)}</a>'


@dataclass(frozen=True)
class VersionRow:
    """One row of the versions table: a registered version, or (``kind="candidate"``) a run that was not."""

    kind: Literal["version", "candidate"]
    key: str
    """What compare takes for this row (``3`` for v3)."""
    label: str
    created: str
    created_by: str
    estimator: str
    state: str
    """The badge's state (a key of STATUS_LABELS)."""
    status: str
    """The fate in words (``rejected by erin: too slow``)."""
    metrics: Mapping[str, float | None]
    gates: Sequence[GateResult] = ()
    links: Sequence[Link] = ()
    sha256: str = ""
    live: bool = False
    anchor: str = ""


@dataclass(frozen=True)
class RowContext:
    """What every row of one model's page links with."""

    root: str
    """Where the Models app is mounted (``/airflow-bridge``)."""
    airflow: str
    """The Airflow UI's base (``''`` for host-relative links)."""
    model: str
    live_alias: str | None = None
    live_version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def version_rows(versions: Sequence[ModelVersion], fates: Mapping[int, Fate], ctx: RowContext) -> list[VersionRow]:
    """The table rows of registered versions: badge from the version's fate, gate metrics, links."""
    from airflow_bridge.ml.gates import gates_of

    model_url = f"{ctx.root}/models/{quote(ctx.model)}"
    rows = []
    for v in versions:
        gates = gates_of((v.validation or {}).get("gates"))
        fate = fates.get(v.version)
        state = fate.state if fate is not None else "registered"
        if state in ("registered", "approved") and any(not g.passed for g in gates):
            state = "failed"
        links = [*_run_links(v, ctx.airflow)]
        if (v.validation or {}).get("report"):
            links.append(Link("report", f"{model_url}/versions/{v.version}/report"))
        links.append(Link("lineage", f"{model_url}/versions/{v.version}/lineage"))
        links.append(Link("artifact", f"{model_url}/versions/{v.version}/artifact"))
        if ctx.live_alias is not None and ctx.live_version not in (None, v.version):
            links.append(Link(f"vs {ctx.live_alias}", f"{model_url}/compare?v={quote(ctx.live_alias)}&v={v.version}"))
        metrics = row_metrics(gates, v.metrics)
        rows.append(
            VersionRow(
                kind="version",
                key=str(v.version),
                label=f"v{v.version}",
                created=f"{v.created_at:%Y-%m-%d %H:%M}",
                created_by=v.created_by,
                estimator=v.estimator.rsplit(".", 1)[-1],
                state=state,
                status=fate.text if fate is not None else "registered",
                metrics=metrics,
                gates=gates,
                links=links,
                sha256=v.artifact.sha256,
                live=state == "live",
                anchor=f"v{v.version}",
            )
        )
    return rows


def candidate_rows(found: Sequence[Candidate], ctx: RowContext) -> list[VersionRow]:
    """The table rows of candidates that never became a version: badge from the gates they failed, their
    metrics, links to their run, the validate task's logs, their report and their comparison with the live one."""
    from airflow_bridge.actions.candidates import unregistered_fate
    from airflow_bridge.ml.gates import gates_of

    model_url = f"{ctx.root}/models/{quote(ctx.model)}"
    rows = []
    for c in found:
        gates = gates_of((c.validation or {}).get("gates"))
        fate = unregistered_fate(c)
        links = _run_links(c, ctx.airflow)
        if (c.validation or {}).get("report"):
            links.append(Link("report", f"{model_url}/candidates/{quote(c.candidate_id)}/report"))
        if ctx.live_alias is not None:
            links.append(
                Link(f"vs {ctx.live_alias}", f"{model_url}/compare?v={quote(ctx.live_alias)}&v={c.candidate_id}")
            )
        metrics = row_metrics(gates, c.metrics)
        rows.append(
            VersionRow(
                kind="candidate",
                key=c.candidate_id,
                label=c.candidate_id,
                created=f"{c.created_at:%Y-%m-%d %H:%M}",
                created_by=c.recorded_by,
                estimator=c.estimator.rsplit(".", 1)[-1],
                state=fate.state,
                status=fate.text,
                metrics=metrics,
                gates=gates,
                links=links,
                sha256=c.artifact_sha256,
                anchor=c.candidate_id,
            )
        )
    return rows


def row_metrics(gates: Sequence[GateResult], metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """A row's metric values: each gate's value first, then the other numeric metrics by name."""
    found: dict[str, float | None] = {
        g.name: g.value for g in gates if g.kind == "metric" and isinstance(g.value, int | float)
    }
    for name, value in sorted(metrics.items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.setdefault(name, float(value))
    return found


def _run_links(v: ModelVersion | Candidate, airflow: str) -> list[Link]:
    """The DAG run that made the version (or candidate) and its task's logs, in the Airflow 3 UI."""
    if not (v.run.dag_id and v.run.run_id):
        return []
    run = f"{airflow}/dags/{quote(v.run.dag_id, safe='')}/runs/{quote(v.run.run_id, safe='')}"
    links = [Link("run", run, top=True)]
    if v.run.task_id:
        links.append(Link("logs", f"{run}/tasks/{quote(v.run.task_id, safe='')}", top=True))
    return links


def gate_metrics(rows: Sequence[VersionRow]) -> list[str]:
    """The metrics the versions' gates judge, in gate order (what the page charts)."""
    names: list[str] = []
    for row in rows:
        names += [g.name for g in row.gates if g.kind == "metric" and g.name not in names]
    return names


def metric_columns(rows: Sequence[VersionRow], limit: int = 6) -> list[str]:
    """The metric columns of a page: gate metrics first (in gate order), then the others, at most ``limit``."""
    names: list[str] = []
    for row in rows:
        for gate in row.gates:
            if gate.kind == "metric" and gate.name not in names:
                names.append(gate.name)
    for row in rows:
        names += [name for name in row.metrics if name not in names]
    return names[:limit]


def badge(state: str, text: str = "") -> str:
    label = STATUS_LABELS.get(state, state.replace("_", " "))
    title = f' title="{escape(text)}"' if text and text != label else ""
    return f'<span class="badge {escape(state)}"{title}>{escape(label)}</span>'


def versions_table(
    rows: Sequence[VersionRow],
    metrics: Sequence[str],
    sort: Sort | None,
    sort_url: Callable[[str, bool], str] | None,
    *,
    first: tuple[str, str] = ("Version", "Registered"),
) -> str:
    """The rows as a table (a checkbox per row for compare); with ``sort``, headers link to sort by that column.
    ``first`` names the first two columns (``("Candidate", "Recorded")`` for candidates)."""
    if not rows:
        return "<p class='muted'><em>No versions.</em></p>"

    def header(label: str, key: str, default_desc: bool) -> str:
        if sort is None or sort_url is None:
            return f"<th>{escape(label)}</th>"
        return f"<th>{sort.header(label, key, sort_url, default_desc=default_desc)}</th>"

    sortable = [(first[0], "version", True), (first[1], "created", True), ("Estimator", "estimator", False)]
    head = ["<th><span class='muted'>Compare</span></th>"]
    head += [header(label, key, d) for label, key, d in sortable]
    head += ["<th>Status</th>"]
    head += [header(name, f"metric:{name}", True) for name in metrics]
    head += ["<th>Links</th>", "<th>sha256</th>"]
    body = []
    for row in rows:
        gates = {g.name: g for g in row.gates}
        cells = [
            f'<input type="checkbox" name="v" value="{escape(row.key)}" aria-label="compare {escape(row.label)}">',
            f'<strong id="{escape(row.anchor)}">{escape(row.label)}</strong>',
            f"<span class='nowrap'>{escape(row.created)}</span><br>"
            f"<span class='muted small'>by {escape(row.created_by)}</span>",
            escape(row.estimator),
            badge(row.state, row.status) + f"<br><span class='muted small'>{escape(row.status)}</span>",
        ]
        for name in metrics:
            cells.append(_metric_cell(row.metrics.get(name), gates.get(name)))
        cells.append(" · ".join(link.html() for link in row.links) or "—")
        cells.append(f"<code title='{escape(row.sha256)}'>{escape(row.sha256[:12])}</code>")
        body.append(
            f"<tr data-kind='{row.kind}' data-state='{escape(row.state)}'>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    table = f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class='tablewrap'>{table}</div>"


def _metric_cell(value: float | None, gate: GateResult | None) -> str:
    if value is None:
        return "<span class='muted'>—</span>"
    shown = f"{value:.4f}"
    if gate is None:
        return shown
    needs = gate.bounds(at_least="≥", at_most="≤")
    mark = "ok" if gate.passed else "bad"
    word = "PASS" if gate.passed else "FAIL"
    return f"<span class='{mark}' title='{word}: needs {escape(needs)}'>{shown}</span>"


def query(params: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from the page's parameters with ``changes`` (None drops a parameter)."""
    merged = {**params, **changes}
    return "?" + urlencode([(k, v) for k, v in merged.items() if v not in (None, "")], doseq=True)
