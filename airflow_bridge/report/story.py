"""The report sections that tell a version's story: its fate in the title, what changed since the live
version, calibration, metrics per group, the worst-predicted rows, the target (regression: distribution,
unit, log scale), hyperparameters and the data checksum.

Everything is computed from the held-out rows and one ``predict_proba`` call: no refits. Every value that
comes from users or the data is HTML-escaped. numpy, pandas and scikit-learn are imported inside functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, Protocol

from airflow_bridge.report import fate as fates
from airflow_bridge.report.drift import PSI_MAJOR, PSI_MODERATE, Changes
from airflow_bridge.report.units import needs_log_scale, unit_of, with_unit

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from airflow_bridge.registry.records import ModelVersion
    from airflow_bridge.registry.store import ModelRegistry
    from airflow_bridge.report.html import Content
    from airflow_bridge.report.inputs import ReportInputs


class Trained(Protocol):
    """What the story reads of a training result (``actions.results.TrainingResult``, a layer above)."""

    @property
    def model(self) -> str: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def effective_params(self) -> Mapping[str, Any]: ...
    @property
    def data(self) -> Any: ...


WORST_ROWS = 10
WORST_COLUMNS = 8
"""Feature columns shown beside the worst rows (the most important first)."""
MAX_GROUPS = 15
"""Values of a groups column shown one by one; the rest are pooled as "other"."""
FEW_ROWS = 10


def title(inputs: ReportInputs, passed: bool, failing: Sequence[str]) -> tuple[str, str]:
    """The page title as text (for ``<title>``) and as HTML with the marked fate (for ``<h1>``)."""
    own = fates.candidate_fate(passed, failing).text if inputs.version is None else inputs.fate or "registered"
    label = f"v{inputs.version}" if inputs.version is not None else "candidate"
    text = f"{inputs.model_name} {label} — {own}"
    html = f"{escape(inputs.model_name)} {fates.version_label(label)} — {fates.block(fates.SELF, own)}"
    return text, html


def history_cells(version: str, is_new: bool, inputs: ReportInputs) -> list[str]:
    """The version and fate cells of one row of the history table."""
    if is_new:
        return [
            fates.version_label(version if inputs.version is not None else "candidate"),
            fates.block(fates.SELF, "this version"),
        ]
    number = int(version.lstrip("v")) if version.lstrip("v").isdigit() else None
    text = inputs.fates.get(number, "") if number is not None else ""
    return [escape(version), fates.block(number, text) if number is not None else escape(text)]


def arrange(sections: list[tuple[str, str, str]], extra: Mapping[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The page's sections with the story sections placed after their anchors."""
    after = {"target": "metrics", "groups": "performance", "worst": "groups", "changes": "history", "model": "data"}
    out = list(sections)
    for key in ("target", "groups", "worst", "changes", "model"):
        if key not in extra:
            continue
        keys = [k for k, _, _ in out]
        anchor = after[key]
        while anchor not in keys and anchor in after:
            anchor = after[anchor]
        position = keys.index(anchor) + 1 if anchor in keys else len(out)
        out.insert(position, (key, extra[key][0], extra[key][1]))
    return out


def add_story(content: Content, features: Any, labels: Any, predictions: Any, probabilities: Any | None) -> None:
    """Compute the story sections and figures into ``content`` (after the performance figures).

    ``probabilities``: the model's ``predict_proba`` of the held-out rows (classification; None without them).
    """
    from airflow_bridge.report.html import Plot
    from airflow_bridge.report.story_figures import calibration, target_histogram

    inputs = content.inputs
    if inputs.task_kind == "classification":
        classes = [*getattr(inputs.model, "classes_", [])]
        if probabilities is not None and len(classes) == 2 and labels.nunique() == 2:
            bins = max(2, min(10, len(labels) // 20))
            truth = (labels == classes[1]).to_numpy()
            content.plots.append(
                Plot(
                    "calibration.png",
                    "performance",
                    f"When the model says {classes[1]} with probability p, is it right p of the time? Dots on the "
                    "diagonal: yes; below it: over-confident; above it: under-confident.",
                    calibration(truth, probabilities[:, 1], classes[1], bins),
                )
            )
        elif probabilities is None:
            content.note("performance", "The model gives no probabilities: no calibration curve.")
        else:
            content.note("performance", "The calibration curve is drawn for two classes only.")
    else:
        unit = unit_of(inputs.target)
        log_scale = needs_log_scale(labels)
        content.extra["target"] = ("Target", _target(inputs, labels, unit, log_scale))
        content.plots.append(
            Plot(
                "target_distribution.png",
                "target",
                "How the target's values are spread over the held-out rows" + (" (log scale)." if log_scale else "."),
                target_histogram(labels, inputs.target, unit, log_scale),
            )
        )
    if inputs.groups:
        content.extra["groups"] = ("Metrics per group", _groups(inputs, labels, predictions))
    content.extra["worst"] = (
        "Worst-predicted held-out rows",
        _worst(content, features, labels, predictions, probabilities),
    )
    content.extra["changes"] = ("Changes since the live version", _changes(inputs.changes))
    content.extra["model"] = ("Hyperparameters and data", _model(inputs))


def story_inputs(
    registry: ModelRegistry | None, training: Trained, alias: str, live: ModelVersion | None
) -> dict[str, Any]:
    """The story fields of :class:`ReportInputs` at validate time: hyperparameters, groups, the earlier
    versions' fates and the changes since ``live``, the version behind ``alias`` (read once by validate)."""
    from airflow_bridge.exceptions import NotFoundError
    from airflow_bridge.report.drift import changes_since

    out: dict[str, Any] = {
        "params": dict(training.effective_params or training.params),
        "groups": list(training.data.groups),
    }
    if registry is None:
        return out
    try:
        out["fates"] = {n: f.text for n, f in fates.model_fates(registry, training.model).items()}
    except NotFoundError:  # the model's first version
        pass
    except Exception:  # the story must never fail validation: the report says "not compared"
        log.warning("could not read the fates of %s for its report", training.model, exc_info=True)
        return out
    summary = training.data.for_registry()
    out["changes"] = changes_since(live.data if live else None, live.version if live else None, alias, summary)
    return out


def changes_figures(changes: Changes | None) -> dict[str, Any] | None:
    """The changes since the live version in the report's key figures (JSON): what the approval summary says."""
    if changes is None or changes.live_version is None:
        return None
    return {
        "live_version": changes.live_version,
        "alias": changes.alias,
        "added": changes.added,
        "removed": changes.removed,
        "roles": [list(r) for r in changes.roles],
        "drifted": [
            {"column": d.column, "psi": d.psi, "level": d.level} for d in changes.drift if d.psi >= PSI_MODERATE
        ],
    }


def changes_line(figures: Mapping[str, Any]) -> str:
    """One Markdown line: columns added/removed, roles changed, drifted columns since the live version."""
    parts = [
        f"{what} {', '.join(_code(c) for c in figures.get(key) or [])}"
        for key, what in (("added", "columns added"), ("removed", "columns removed"))
        if figures.get(key)
    ]
    parts += [f"{_code(c)} {old} → {new}" for c, old, new in figures.get("roles") or []]
    parts += [f"{_code(d['column'])} {d['level']} (PSI {d['psi']:.2f})" for d in figures.get("drifted") or []]
    live = f"v{figures.get('live_version')} ({figures.get('alias')})"
    return f"Since live {live}: " + ("; ".join(parts) if parts else "same columns and roles, no drift") + "."


def _code(text: Any) -> str:
    return "`" + str(text).replace("`", "'") + "`"


# -- sections -----------------------------------------------------------------------------------------------


def _target(inputs: ReportInputs, labels: Any, unit: str | None, log: bool) -> str:
    import numpy as np

    values = np.asarray(labels, dtype=float)
    said = f"Unit <b>{escape(unit)}</b>, read from the column name." if unit else "No unit in the column name."
    scale = (
        f" The values span {values.max() / values.min():.0f} times (over 1000): the distribution and the prediction "
        "plots use a log scale."
        if log
        else ""
    )
    stats = [
        ["min", with_unit("mae", float(values.min()), unit)],
        ["median", with_unit("mae", float(np.median(values)), unit)],
        ["mean", with_unit("mae", float(values.mean()), unit)],
        ["max", with_unit("mae", float(values.max()), unit)],
    ]
    errors = [
        [escape(name), escape(with_unit(name, float(value), unit))]
        for name, value in sorted(inputs.metrics.items())
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return (
        f"<p>{said}{scale}</p>"
        + _table(["held-out target", "value"], [[n, escape(v)] for n, v in stats], (1,))
        + _table(["metric", "value"], errors, (1,))
    )


def _groups(inputs: ReportInputs, labels: Any, predictions: Any) -> str:
    import numpy as np

    parts = []
    truth, predicted = np.asarray(labels), np.asarray(predictions)
    for column in inputs.groups:
        if column not in inputs.holdout.columns:
            parts.append(f'<p class="note">Groups column {escape(column)} is not in the held-out rows.</p>')
            continue
        values = inputs.holdout[column].astype("string").fillna("(missing)").reset_index(drop=True)
        counts = values.value_counts(sort=False).sort_index().sort_values(ascending=False, kind="stable")
        shown = list(counts.index[:MAX_GROUPS])
        keys = values.where(values.isin(shown), "(other)")
        rows = [["<i>all rows</i>", str(len(truth)), *_group_metrics(inputs, truth, predicted)]]
        for key in [*shown, *(["(other)"] if len(counts) > MAX_GROUPS else [])]:
            mask = (keys == key).to_numpy()
            rows.append([escape(str(key)), str(int(mask.sum())), *_group_metrics(inputs, truth[mask], predicted[mask])])
        header = ["accuracy", "f1 (macro)"] if inputs.task_kind == "classification" else ["mae", "rmse", "mean error"]
        parts.append(
            f"<h3>By {escape(column)}</h3>" + _table([column, "rows", *header], rows, tuple(range(1, 2 + len(header))))
        )
    few = f"Groups with fewer than {FEW_ROWS} rows give noisy numbers." if parts else ""
    return (
        "".join(parts)
        + f'<p class="note">The held-out metrics of each value of the declared data.groups columns. {few}</p>'
    )


def _group_metrics(inputs: ReportInputs, truth: Any, predicted: Any) -> list[str]:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    if inputs.task_kind == "classification":
        accuracy = float(accuracy_score(truth, predicted))
        f1 = float(f1_score(truth, predicted, average="macro", zero_division=0))
        return [f"{accuracy:.4f}", f"{f1:.4f}"]
    error = np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)
    unit = unit_of(inputs.target)
    return [
        escape(with_unit("mae", float(np.abs(error).mean()), unit)),
        escape(with_unit("rmse", float(np.sqrt((error**2).mean())), unit)),
        escape(with_unit("mae", float(error.mean()), unit)),
    ]


def worst_rows(
    inputs: ReportInputs, labels: Any, predictions: Any, *, probabilities: Any | None = None, top: int = WORST_ROWS
) -> tuple[list[int], list[float], str]:
    """The positions of the ``top`` worst-predicted rows, their loss, and what the loss is.

    Classification: the lowest probability of the true class (without probabilities: the wrong predictions
    first). Regression: the largest absolute error. Ties keep the held-out order.
    """
    import numpy as np

    truth = np.asarray(labels)
    if inputs.task_kind == "regression":
        loss = np.abs(np.asarray(predictions, dtype=float) - truth.astype(float))
        order = np.argsort(-loss, kind="stable")[:top]
        return [int(i) for i in order], [float(loss[i]) for i in order], "absolute error"
    if probabilities is not None:
        classes = list(getattr(inputs.model, "classes_", []))
        index = {c: i for i, c in enumerate(classes)}
        columns = np.asarray([index.get(t, -1) for t in truth])
        p_true = np.where(columns >= 0, probabilities[np.arange(len(truth)), np.maximum(columns, 0)], 0.0)
        order = np.argsort(p_true, kind="stable")[:top]
        return [int(i) for i in order], [float(p_true[i]) for i in order], "probability of the true class"
    wrong = (np.asarray(predictions) != truth).astype(int)
    order = np.argsort(-wrong, kind="stable")[: min(top, int(wrong.sum()))]
    return [int(i) for i in order], [float(wrong[i]) for i in order], "wrong (1) or right (0)"


def _worst(content: Content, features: Any, labels: Any, predictions: Any, probabilities: Any | None) -> str:
    import numpy as np

    inputs = content.inputs
    positions, losses, what = worst_rows(inputs, labels, predictions, probabilities=probabilities)
    if not positions:
        return '<p class="note">Every held-out row is predicted right.</p>'
    ranked = [f["feature"] for f in (content.importance.features if content.importance else [])]
    shown = [c for c in [*ranked, *features.columns] if c in features.columns]
    shown = list(dict.fromkeys(shown))[:WORST_COLUMNS]
    truth, predicted = np.asarray(labels), np.asarray(predictions)
    rows = []
    for position, loss in zip(positions, losses, strict=True):
        cells = [str(features.index[position]), escape(_cell(truth[position])), escape(_cell(predicted[position]))]
        cells.append(
            f"{loss:.4f}" if what != "absolute error" else escape(with_unit("mae", loss, unit_of(inputs.target)))
        )
        cells += [escape(_cell(features.iloc[position][c])) for c in shown]
        rows.append(cells)
    more = len(features.columns) - len(shown)
    note = (
        f'<p class="note">Ranked by {escape(what)} (worst first); the {len(shown)} most important feature columns'
        + (f" of {len(features.columns)}" if more > 0 else "")
        + " beside them. Look for a pattern: a data error, a group the model never saw, a label that is wrong.</p>"
    )
    header = ["held-out row", "actual", "predicted", what, *shown]
    return note + _table(header, rows, (3,))


def _changes(changes: Changes | None) -> str:
    if changes is None:
        return '<p class="note">Not compared: this report was built without the registry.</p>'
    if changes.live_version is None:
        return f'<p class="note">Nothing is live behind alias {escape(changes.alias)}: nothing to compare with yet.</p>'
    parts = [f"<p>Compared with v{changes.live_version}, live as {escape(changes.alias)}.</p>"]
    lines = [
        ("Columns added", changes.added),
        ("Columns removed", changes.removed),
        ("Roles changed", [f"{c}: {old} → {new}" for c, old, new in changes.roles]),
    ]
    parts.append("<ul>" + "".join(f"<li>{t}: {escape(', '.join(v)) if v else 'none'}</li>" for t, v in lines) + "</ul>")
    if changes.drift:
        rows = [
            [
                escape(d.column),
                escape(d.kind),
                f"{d.psi:.3f}",
                f'<span class="{"fail" if d.psi >= PSI_MAJOR else "pass" if d.psi < PSI_MODERATE else ""}">'
                f"{escape(d.level)}</span>",
                f"{d.ks:.3f}" if d.ks is not None else "-",
                escape(d.live),
                escape(d.new),
            ]
            for d in changes.drift
        ]
        parts.append(_table(["column", "kind", "PSI", "drift", "KS", "live version", "this version"], rows, (2, 4)))
        parts.append(
            f'<p class="note">PSI compares the share of rows in the live version\'s deciles (numbers) or top values '
            f"(categories), missing values included: below {PSI_MODERATE} stable, {PSI_MODERATE} to {PSI_MAJOR} a "
            f"moderate shift, {PSI_MAJOR} or more a major shift. KS: the largest gap between the two cumulative "
            "distributions, read off stored quantiles (approximate). Both use the whole training tables.</p>"
        )
    if changes.not_compared:
        parts.append(
            f'<p class="note">Not compared (no stored profile of both, or datetime columns): '
            f"{escape(', '.join(changes.not_compared))}.</p>"
        )
    return "".join(parts)


def _model(inputs: ReportInputs) -> str:
    profile = dict(inputs.profile or {})
    params = [[escape(str(k)), escape(_json(v))] for k, v in sorted(inputs.params.items())]
    data = [
        [escape(label), escape(str(profile.get(key)))]
        for key, label in (
            ("uri", "uri"),
            ("sha256", "sha256"),
            ("rows", "rows"),
            ("size", "bytes"),
            ("format", "format"),
        )
        if profile.get(key) not in (None, "")
    ]
    params_html = (
        _table(["parameter", "value"], params)
        if params
        else '<p class="note">No hyperparameters were recorded with this version.</p>'
    )
    return (
        f"<h3>Hyperparameters of {escape(inputs.estimator or 'the estimator')} (as fitted)</h3>{params_html}"
        f"<h3>Training data</h3>{_table(['', 'value'], data)}"
        '<p class="note">The same sha256 is the same file: rerun the spec on it to get this version again.</p>'
    )


def _json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _cell(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    from airflow_bridge.report.html import _table as table

    return table(header, rows, numeric)
