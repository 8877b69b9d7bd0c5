"""Server-rendered HTML of the Models page: plain tables, escaped values, no JavaScript."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_bridge.actions.comparison import Comparison
    from airflow_bridge.registry.chain import ChainReport
    from airflow_bridge.registry.records import AuditEvent, ModelRecord, ModelVersion
    from airflow_bridge.report.fate import Fate

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1f2328;max-width:1200px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #d0d7de;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}
.msg{padding:.6rem .9rem;border-radius:6px;margin:1rem 0}.msg.ok{background:#dafbe1}.msg.bad{background:#ffebe9}
form{display:inline-block;margin:0 1.5rem 1rem 0}code{background:#f6f8fa;padding:0 .2rem}
"""


def page(title: str, body: str, *, root: str) -> str:
    """A whole page with the navigation back to the models list and the audit trail."""
    nav = f'<p><a href="{root}/models/">Models</a> · <a href="{root}/audit">Audit trail</a></p>'
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{nav}<h1>{escape(title)}</h1>{body}</body></html>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """An HTML table; cells are already-escaped HTML. ``empty`` is shown when there are no rows."""
    rows = list(rows)
    if not rows:
        return f"<p><em>{escape(empty)}</em></p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


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


def models_table(root: str, models: Sequence[ModelRecord]) -> str:
    rows = [
        [
            model_link(root, m.name),
            escape(m.card.team),
            escape(m.card.owner),
            f"v{m.latest_version}" if m.latest_version else "none",
            escape(", ".join(f"{a} → v{v}" for a, v in sorted(m.aliases.items())) or "—"),
        ]
        for m in models
    ]
    return table(["Model", "Team", "Owner", "Latest", "Aliases"], rows, "No models registered yet.")


def gates_cell(version: ModelVersion) -> str:
    """Each gate of the version: PASS/FAIL, the value and the bounds it needed."""
    from airflow_bridge.ml.gates import gates_of

    gates = gates_of((version.validation or {}).get("gates"))
    if not gates:
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in sorted(version.metrics.items()))
        return escape(metrics) or "—"
    parts = [gate.html() for gate in gates]
    return "<br>".join(parts)


def versions_table(root: str, name: str, versions: Sequence[ModelVersion], events: Sequence[AuditEvent] = ()) -> str:
    from airflow_bridge.report.fate import fates_from

    aliases = {alias: v.version for v in versions for alias in v.aliases}
    fates = fates_from(events, aliases, max((v.version for v in versions), default=0))
    live = "production" if "production" in aliases else next(iter(sorted(aliases)), None)
    compare = f"{root}/models/{quote(name)}/compare"
    rows = [
        [
            f'<span id="v{v.version}">v{v.version}</span>',
            escape(f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}"),
            escape(v.estimator),
            gates_cell(v),
            _fate_cell(fates.get(v.version)),
            f'<a href="{root}/models/{quote(name)}/versions/{v.version}/report">report</a>'
            if (v.validation or {}).get("report")
            else "—",
            f'<a href="{compare}?v={quote(live)}&amp;v={v.version}">vs {escape(live)}</a>'
            if live is not None and aliases[live] != v.version
            else "—",
            f"<code>{escape(v.artifact.sha256[:12])}</code>",
        ]
        for v in reversed(versions)
    ]
    headers = ["Version", "Registered", "Estimator", "Gates", "Fate", "Report", "Compare", "sha256"]
    return table(headers, rows, "No versions.")


def _fate_cell(fate: Fate | None) -> str:
    """A version's fate (``report.fate``: the same words as its report's title), live in bold."""
    if fate is None:
        return "registered"
    return f'<strong class="ok">{escape(fate.text)}</strong>' if fate.state == "live" else escape(fate.text)


def alias_moves_table(events: Sequence[AuditEvent]) -> str:
    """Every move of an alias, newest first: when, which alias, to which version, who and why."""
    rows = [
        [
            f'<span id="alias-{escape(e.alias or "")}">{escape(e.alias or "")}</span>',
            f"v{e.version}",
            escape(e.action.replace("_", " ")),
            escape(e.who),
            escape(e.reason),
            escape(f"{e.created_at:%Y-%m-%d %H:%M:%S}"),
        ]
        for e in reversed(events)
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
    rows = [
        [
            str(e.seq),
            escape(f"{e.created_at:%Y-%m-%d %H:%M:%S}"),
            escape(e.who),
            escape(e.action),
            escape(e.model or ""),
            f"v{e.version}" if e.version else "",
            escape(e.alias or ""),
            escape(e.reason),
            escape(f"{e.run.dag_id} / {e.run.run_id} / {e.run.task_id}" if e.run.dag_id else ""),
        ]
        for e in reversed(events)
    ]
    headers = ["#", "When", "Actor", "Action", "Model", "Version", "Alias", "Why", "Run"]
    return table(headers, rows, "The audit trail is empty.")


def move_forms(root: str, name: str, record: ModelRecord, versions: Sequence[ModelVersion]) -> str:
    """Promote a version to an alias, or roll an alias back; the team policy decides (see the refusal)."""
    action = f"{root}/models/{quote(name)}"
    options = "".join(f'<option value="{v.version}">v{v.version}</option>' for v in reversed(versions))
    aliases = sorted(record.aliases) or ["production"]
    alias_options = "".join(f'<option value="{escape(a)}">{escape(a)}</option>' for a in aliases)
    return (
        f'<form method="post" action="{action}/promote"><strong>Promote</strong> '
        f'<select name="version">{options}</select> to alias <input name="alias" value="{escape(aliases[0])}" '
        'size="12" required> why <input name="reason" size="30" required> <button>Promote</button></form>'
        f'<form method="post" action="{action}/rollback"><strong>Roll back</strong> alias '
        f'<select name="alias">{alias_options}</select> why <input name="reason" size="30" required> '
        "<button>Roll back</button></form>"
    )


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def compare_form(root: str, name: str, versions: Sequence[ModelVersion]) -> str:
    """Pick two or more versions to see side by side (a GET: the comparison has its own address)."""
    options = "".join(f'<option value="{v.version}">v{v.version}</option>' for v in versions)
    return (
        f'<form method="get" action="{root}/models/{quote(name)}/compare"><strong>Compare</strong> '
        f'<select name="v" multiple size="{min(len(versions), 5)}" required>{options}</select> '
        "<button>Compare</button></form>"
    )


def comparison(found: Comparison) -> str:
    """The same rows as ``airflow-bridge models compare``, as a table."""
    rows = [[escape(label), *(escape(cell) for cell in cells)] for label, cells in found.rows()]
    changes = "".join(f"<li>{escape(line)}</li>" for line in found.change_lines())
    return (
        table(["", *found.headers], rows, "Nothing to compare.")
        + (f"<h2>Data changes</h2><ul>{changes}</ul>" if changes else "")
        + "<p>Deltas are against the first version; positive is better (an error that fell counts as a gain).</p>"
    )
