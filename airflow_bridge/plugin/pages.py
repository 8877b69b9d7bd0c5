"""Server-rendered HTML pieces of the Models page: tables, messages, the comparison; escaped values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_bridge.actions.comparison import Comparison
    from airflow_bridge.plugin.tables import Sort
    from airflow_bridge.registry.chain import ChainReport
    from airflow_bridge.registry.records import AuditEvent, ModelRecord, ModelVersion


def page(title: str, body: str, *, root: str, crumbs: str = "") -> str:
    """A whole page in Airflow's look and colour mode (``plugin.theme``)."""
    from airflow_bridge.plugin import theme

    return theme.page(title, body, root=root, crumbs=crumbs)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """An HTML table; cells are already-escaped HTML. ``empty`` is shown when there are no rows."""
    rows = list(rows)
    if not rows:
        return f"<p class='muted'><em>{escape(empty)}</em></p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def message(text: str, ok: bool) -> str:
    return f'<div class="msg {"ok" if ok else "bad"}" role="status">{escape(text)}</div>'


def verdict(report: ChainReport) -> str:
    """``verify_audit()``'s verdict in one line."""
    if report.ok:
        return f'<p class="ok">Audit trail intact: {report.checked} events, hash chain verified.</p>'
    return (
        f'<p class="bad">Audit trail BROKEN at event {report.broken_seq}: {escape(report.problem)} '
        f"({report.checked} events checked).</p>"
    )


def model_link(root: str, name: str) -> str:
    return f'<a href="{root}/models/{quote(name)}">{escape(name)}</a>'


def models_table(
    root: str,
    models: Sequence[ModelRecord],
    sort: Sort | None = None,
    sort_url: Callable[[str, bool], str] | None = None,
) -> str:
    """Models with their team, owner, newest version and aliases (live ones as badges); sortable headers."""
    rows = [
        [
            model_link(root, m.name) + _summary(m.card.description),
            escape(m.card.team) or "—",
            escape(m.card.owner) or "—",
            f"v{m.latest_version}" if m.latest_version else "none",
            " ".join(f'<span class="badge live">{escape(a)} → v{v}</span>' for a, v in sorted(m.aliases.items()))
            or "<span class='muted'>—</span>",
        ]
        for m in models
    ]
    labels = [("Model", "name", False), ("Team", "team", False), ("Owner", "owner", False), ("Latest", "latest", True)]
    headers = [label for label, _, _ in labels] + ["Aliases"]
    if sort is not None and sort_url is not None:
        headers = [sort.header(label, key, sort_url, default_desc=d) for label, key, d in labels] + ["Aliases"]
        return table_html(headers, rows, "No models match." if models == [] else "No models registered yet.")
    return table(headers, rows, "No models registered yet.")


def _summary(description: str, limit: int = 120) -> str:
    """A model's description under its name, cut at a word with an ellipsis when long."""
    if not description:
        return ""
    short = description if len(description) <= limit else description[:limit].rsplit(" ", 1)[0] + "…"
    return f"<br><span class='muted small'>{escape(short)}</span>"


def table_html(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """``table`` with headers that are already HTML (sort links)."""
    rows = list(rows)
    if not rows:
        return f"<p class='muted'><em>{escape(empty)}</em></p>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def gates_cell(version: ModelVersion) -> str:
    """Each gate of the version: PASS/FAIL, the value and the bounds it needed."""
    from airflow_bridge.ml.gates import gates_of

    gates = gates_of((version.validation or {}).get("gates"))
    if not gates:
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in sorted(version.metrics.items()))
        return escape(metrics) or "—"
    parts = [gate.html() for gate in gates]
    return "<br>".join(parts)


def alias_moves_table(events: Sequence[AuditEvent]) -> str:
    """Moves of an alias (give them newest first): when, which alias, to which version, who and why."""
    rows = [
        [
            f'<span id="alias-{escape(e.alias or "")}">{escape(e.alias or "")}</span>',
            f"v{e.version}",
            escape(e.action.replace("_", " ")),
            escape(e.who),
            escape(e.reason),
            f"<span class='nowrap'>{e.created_at:%Y-%m-%d %H:%M:%S}</span>",
        ]
        for e in events
    ]
    return table(["Alias", "Version", "Action", "By", "Why", "When"], rows, "No alias has been moved yet.")


def pending_table(root: str, airflow_base: str, events: Sequence[AuditEvent]) -> str:
    rows = [
        [
            model_link(root, e.model or ""),
            f"v{e.version}",
            escape(e.alias or ""),
            escape(e.actor),
            escape(f"{e.created_at:%Y-%m-%d %H:%M}"),
            f'<a href="{airflow_base}/required_actions" target="_top">answer in Required Actions</a>'
            + (f" ({escape(e.run.dag_id)} / {escape(e.run.run_id or '')})" if e.run.dag_id else ""),
        ]
        for e in events
    ]
    return table(["Model", "Version", "Alias", "Requested by", "Since", ""], rows, "No approvals pending.")


def audit_table(events: Sequence[AuditEvent]) -> str:
    """Audit events in the order given (the pages give them newest first)."""
    rows = [
        [
            str(e.seq),
            f"<span class='nowrap'>{e.created_at:%Y-%m-%d %H:%M:%S}</span>",
            escape(e.who),
            escape(e.action),
            escape(e.model or ""),
            f"v{e.version}" if e.version else "",
            escape(e.alias or ""),
            escape(e.reason),
            escape(f"{e.run.dag_id} / {e.run.run_id} / {e.run.task_id}" if e.run.dag_id else ""),
        ]
        for e in events
    ]
    headers = ["#", "When", "Actor", "Action", "Model", "Version", "Alias", "Why", "Run"]
    return table(headers, rows, "The audit trail is empty.")


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def comparison(found: Comparison) -> str:
    """The same rows as ``airflow-bridge models compare``, as a table."""
    rows = [[escape(label), *(escape(cell) for cell in cells)] for label, cells in found.rows()]
    changes = "".join(f"<li>{escape(line)}</li>" for line in found.change_lines())
    return (
        table(["", *found.headers], rows, "Nothing to compare.")
        + (f"<h2>Data changes</h2><ul>{changes}</ul>" if changes else "")
        + "<p>Deltas are against the first version; positive is better (an error that fell counts as a gain).</p>"
    )
