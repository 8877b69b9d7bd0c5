"""The report's self-contained HTML page: inline CSS, figures as base64 PNG, no external references.

Every value that comes from users (model, column and class names, reasons) is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from airflow_bridge.ml.gates import ChampionComparison, GateResult
from airflow_bridge.report import story
from airflow_bridge.report.evaluation import History, Importance
from airflow_bridge.report.fate import compare_block
from airflow_bridge.report.inputs import ReportInputs

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
background:#f6f8fa;margin:0;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:24px 28px;background:#fff;min-height:100vh}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;border-bottom:1px solid #d0d7de;padding-bottom:4px;
margin-top:32px}
.meta{color:#57606a;margin:0 0 12px}.note{color:#57606a;font-size:.92em}
nav a{margin-right:14px;color:#0969da;text-decoration:none}
table{border-collapse:collapse;margin:8px 0 12px;font-size:.93em}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.verdict{display:inline-block;padding:6px 12px;border-radius:6px;font-weight:600}
.verdict.pass{background:#dafbe1}.verdict.fail{background:#ffebe9}
figure{margin:12px 0;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.9em;max-width:520px}
.warnings{border:2px solid #bf8700;background:#fff8c5;border-radius:6px;padding:8px 14px;margin:12px 0}
.warnings h2{border:0;margin:4px 0;font-size:1.1em}.warnings li.failing{color:#cf222e}
"""


@dataclass(frozen=True)
class Plot:
    """One figure: its file name, the section it belongs to, a caption saying how to read it, its PNG."""

    name: str
    section: str
    caption: str
    png: bytes


@dataclass
class Content:
    """What the page shows, computed by the builder."""

    inputs: ReportInputs
    held_out_rows: int
    plots: list[Plot] = field(default_factory=list)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    importance: Importance | None = None
    history: History | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, tuple[str, str]] = field(default_factory=dict)
    """The story sections (``report.story``) by key: (title, HTML)."""

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


def render(content: Content, passed: bool) -> str:
    """The whole page."""
    inputs = content.inputs
    sections = [
        ("gates", "Gates", _gates(inputs.gates)),
        ("champion", "Champion comparison", _champion(inputs.champion)),
        ("metrics", "All metrics", _metrics(inputs)),
        ("performance", "Performance on the held-out rows", _per_class(content.per_class)),
        ("importance", "Feature importance", _importance(content.importance)),
        *_search(inputs),
        ("history", "Metric history", _history(content)),
        ("data", "Data profile", _profile(inputs, content.held_out_rows)),
    ]
    sections = story.arrange(sections, content.extra)
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "\n".join(
        f'<section id="{key}"><h2>{title}</h2>\n{html}\n{_notes(content.notes.get(key, []))}'
        f"{_plots(content.plots, key)}</section>"
        for key, title, html in sections
    )
    failing = [g.name for g in inputs.gates if not g.passed]
    if inputs.champion is not None and not inputs.champion.passed:
        failing.append("champion comparison")
    verdict = (
        '<p class="verdict pass">Passed every gate</p>'
        if passed
        else f'<p class="verdict fail">Failed: {escape(", ".join(failing) or "see the gates")}</p>'
    )
    meta = " · ".join(
        escape(part)
        for part in (
            inputs.estimator,
            inputs.task_kind,
            f"{content.held_out_rows} held-out rows",
            f"target {inputs.target}",
        )
        if part
    )
    title, title_html = story.title(inputs, passed, failing)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Model report: {escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n"
        f"<h1>Model report: {title_html}</h1>\n"
        f'<p class="meta">{meta}{compare_block()}</p>\n{verdict}\n{warnings_box(inputs.warnings)}<nav>{nav}</nav>\n'
        f'{body}\n<p class="note">Built by airflow-bridge from the held-out split the model was validated on.</p>'
        "\n</main></body></html>\n"
    )


def _status(passed: Any) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape(str(value)) if value is not None else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = [
        "<tr>"
        + "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    ]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _gates(gates: Sequence[GateResult]) -> str:
    """The one HTML rendering of the gates (the report; the Models page embeds the report)."""
    if not gates:
        return '<p class="note">The spec sets no gates: nothing stops this version but the approval.</p>'
    rows = [
        [
            escape(g.name) + (f" (column {escape(g.column)})" if g.column else ""),
            escape(g.kind),
            escape(g.shown_value()),
            escape(g.bounds()),
            _status(g.passed),
        ]
        for g in gates
    ]
    return _table(["gate", "kind", "value", "required", "result"], rows, numeric=(2,))


def _champion(champion: ChampionComparison | None) -> str:
    """The one HTML rendering of the champion comparison."""
    if champion is None:
        return '<p class="note">The spec asks for no champion comparison.</p>'
    if not champion.compared:
        note = champion.note or "no live version to compare with"
        return f'<p class="note">{escape(note).capitalize()}: this version is compared with gates only.</p>'
    alias = f", alias {escape(champion.alias)}" if champion.alias else ""
    rows = [
        [
            escape(champion.metric),
            _num(champion.candidate),
            f"{_num(champion.champion)} (v{champion.champion_version}{alias})",
            _signed(champion.improvement),
            f"&gt;= {_signed(champion.min_improvement)}",
            _status(champion.passed),
        ]
    ]
    table = _table(["metric", "this version", "live version", "improvement", "required", "result"], rows, (1, 3))
    return table + '<p class="note">Both versions scored on the same held-out rows.</p>'


def _signed(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, int | float) else "-"


def _metrics(inputs: ReportInputs) -> str:
    if not inputs.metrics:
        return '<p class="note">No metrics were recorded.</p>'
    gated = {g.name: g for g in inputs.gates if g.kind == "metric"}
    base = dict((inputs.baseline or {}).get("metrics") or {})
    spread = dict((inputs.uncertainty or {}).get("metrics") or {})
    cv = (inputs.uncertainty or {}).get("method") == "cross_validation"
    rows = [
        [
            escape(name),
            _num(value),
            _interval(spread.get(name), cv),
            _num(base.get(name)),
            escape(gated[name].bounds()) if name in gated else "-",
        ]
        for name, value in sorted(inputs.metrics.items())
    ]
    header = ["metric", "value", _uncertainty_label(inputs.uncertainty), _baseline_label(inputs.baseline), "gate"]
    return _table(header, rows, numeric=(1, 2, 3)) + _uncertainty_note(inputs.uncertainty)


def warnings_box(warnings: Sequence[Mapping[str, Any]]) -> str:
    """The flagged box at the top of the page: every leakage and sanity warning (failing ones first)."""
    if not warnings:
        return ""
    ordered = sorted(warnings, key=lambda w: not w.get("failing"))
    items = "".join(
        f'<li class="{"failing" if w.get("failing") else "warning"}"><b>{escape(str(w["code"]))}</b>'
        f"{' (fails: team policy)' if w.get('failing') else ''}: {escape(str(w['message']))}</li>"
        for w in ordered
    )
    count = f"{len(warnings)} warning" + ("s" if len(warnings) != 1 else "")
    return (
        f'<section class="warnings" id="warnings"><h2>&#9888; {count}: check before trusting these numbers</h2>'
        f"<ul>{items}</ul></section>\n"
    )


def _interval(found: Any, cv: bool) -> str:
    if not isinstance(found, Mapping):
        return "-"
    if cv:
        return f"{found['mean']:.4f} &plusmn; {found['std']:.4f}"
    return f"{found['low']:.4f} &ndash; {found['high']:.4f}"


def _uncertainty_label(uncertainty: Mapping[str, Any] | None) -> str:
    if (uncertainty or {}).get("method") == "cross_validation":
        return f"{(uncertainty or {}).get('folds')}-fold CV mean ± std"
    return f"{(uncertainty or {}).get('level', 0.95):.0%} interval"


def _baseline_label(baseline: Mapping[str, Any] | None) -> str:
    strategy = (baseline or {}).get("strategy")
    return {"most_frequent": "baseline (most frequent class)", "mean": "baseline (mean)"}.get(str(strategy), "baseline")


def _uncertainty_note(uncertainty: Mapping[str, Any] | None) -> str:
    if not uncertainty:
        return ""
    if uncertainty.get("method") == "cross_validation":
        text = (
            f"Cross-validation: the same pipeline refitted on {uncertainty.get('folds')} folds of the training rows; "
            "a wide spread means the held-out value depends on which rows were held out."
        )
    else:
        text = (
            f"Interval: {uncertainty.get('resamples')} bootstrap resamples of the held-out predictions (no refit); "
            "a wide interval means too few held-out rows to tell close models apart."
        )
    text += " Baseline: a dummy model fitted on the training rows, scored on the same held-out rows."
    return f'<p class="note">{escape(text)}</p>'


def _per_class(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    table = _table(
        ["class", "precision", "recall", "f1", "support"],
        [[escape(r["class"]), _num(r["precision"]), _num(r["recall"]), _num(r["f1"]), str(r["support"])] for r in rows],
        numeric=(1, 2, 3, 4),
    )
    return "<h3>Per class</h3>" + table


def _importance(importance: Importance | None) -> str:
    if importance is None:
        return ""
    return (
        f'<p class="note">How much {escape(importance.scoring)} drops on the held-out rows when one raw column\'s '
        f"values are shuffled ({_repeats(importance.repeats)}, {importance.rows} rows): the model relies most on the "
        "columns at the top. Near zero or negative: the model does not use the column (or another column carries "
        "the same information).</p>"
    )


def _repeats(count: int) -> str:
    return "1 repeat" if count == 1 else f"{count} repeats"


def _history(content: Content) -> str:
    history = content.history
    if history is None or not history.series:
        return ""
    names = list(history.series)
    rows = [
        [*story.history_cells(version, i == history.new_index, content.inputs), escape(created)]
        + [_num(history.series[n][i]) for n in names]
        for i, (version, created) in enumerate(zip(history.versions, history.dates, strict=True))
    ]
    return _table(["version", "fate", "created", *names], rows, numeric=tuple(range(3, len(names) + 3)))


def _profile(inputs: ReportInputs, held_out_rows: int) -> str:
    profile = dict(inputs.profile or {})
    facts = [
        f"{profile[key]} {label}"
        for key, label in (("rows", "rows read"), ("train_rows", "training rows"), ("test_rows", "held-out rows"))
        if profile.get(key)
    ]
    facts.append(f"{held_out_rows} rows scored for this report")
    dtypes = profile.get("columns") or {}
    if not isinstance(dtypes, Mapping):
        dtypes = {str(c): "" for c in dtypes}
    roles: Mapping[str, Any] = profile.get("roles") or {}
    nulls: Mapping[str, Any] = profile.get("null_fraction") or {}
    columns = list(dict.fromkeys([*dtypes, *roles, *inputs.features, inputs.target]))
    features = set(inputs.features)
    rows = []
    for column in columns:
        info = roles.get(column) or {}
        default = "target" if column == inputs.target else ("feature" if column in features else "not used")
        null = nulls.get(column, info.get("missing"))
        distinct = info.get("distinct")
        rows.append(
            [
                escape(column),
                escape(str(dtypes.get(column) or info.get("dtype") or "")),
                escape(str(info.get("role") or default)),
                escape(str(info.get("reason") or "")),
                str(distinct) if isinstance(distinct, int) else "-",
                f"{null:.1%}" if isinstance(null, int | float) else "-",
            ]
        )
    header = ["column", "type", "role", "why", "distinct values", "nulls"]
    return f"<p>{escape(', '.join(facts))}.</p>" + _table(header, rows, (4, 5))


def _search(inputs: ReportInputs) -> list[tuple[str, str, str]]:
    """The hyperparameter search section, when a search chose the parameters."""
    if not inputs.search:
        return []
    from airflow_bridge.report.search import SECTION, search_html

    return [(*SECTION, search_html(inputs.search))]


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{escape(n)}</p>' for n in notes)


def _plots(plots: Sequence[Plot], section: str) -> str:
    return "".join(
        f'<figure id="fig-{escape(p.name.removesuffix(".png"))}"><img alt="{escape(p.caption)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{escape(p.caption)}</figcaption></figure>"
        for p in plots
        if p.section == section
    )
