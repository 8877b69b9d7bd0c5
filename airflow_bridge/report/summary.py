"""The report's key figures as a short Markdown summary, for the body of an approval request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_bridge.ml.gates import GateResult, champion_of, gates_of
from airflow_bridge.report.inputs import ModelReport

TOP_FEATURES = 3


def summary_markdown(figures: ModelReport | Mapping[str, Any]) -> str:
    """3 to 6 Markdown lines: the verdict, the metrics against their gates, the champion delta, what changed
    since the live version, the top 3 features.

    Takes a report or its ``key_figures`` (JSON, e.g. as stored with the version), so an approval task can
    render it without rebuilding the report.
    """
    key = figures.key_figures if isinstance(figures, ModelReport) else figures
    gates = gates_of(key.get("gates"))
    version = key.get("version")
    label = f"{_code(key.get('model'))} v{version}" if version is not None else f"{_code(key.get('model'))} (candidate)"
    failed = [g.name for g in gates if not g.passed]
    champion = champion_of(key.get("champion"))
    if champion is not None and not champion.passed:
        failed.append("champion")
    if failed:
        verdict = f"fails {', '.join(_code(f) for f in failed)}"
    else:
        verdict = f"passes all {len(gates)} gates" if gates else "passes (no gates set)"
    lines = [f"**{label}** ({key.get('task_kind')}): {verdict}."]
    lines += warning_lines(key.get("warnings") or [])
    metric_gates = [g for g in gates if g.kind == "metric"]
    if metric_gates:
        lines.append(
            "- Metrics vs gates: "
            + "; ".join(f"{_code(g.name)} {g.shown_value()} ({g.bounds()}, {_result(g)})" for g in metric_gates)
        )
    elif key.get("metrics"):
        lines.append("- Metrics: " + "; ".join(f"{_code(k)} {_value(v)}" for k, v in key["metrics"].items()))
    lines += context_lines(key)
    search = key.get("search")
    if search:
        params = ", ".join(f"{k}: {v}" for k, v in (search.get("best_params") or {}).items())
        lines.append(
            f"- Hyperparameter search: best of {search.get('trials')} trials ({search.get('complete')} complete) is "
            f"trial {search.get('best_trial')}, cross-validated {_code(search.get('metric'))} "
            f"{_value(search.get('best_value'))} with {params}"
        )
    data_gates = [g for g in gates if g.kind == "data"]
    if data_gates:
        lines.append("- Data checks: " + "; ".join(f"{_code(g.name)} {_result(g)}" for g in data_gates))
    if champion is not None:
        lines.append("- " + champion.markdown())
    if key.get("changes"):
        from airflow_bridge.report.story import changes_line

        lines.append("- " + changes_line(key["changes"]))
    top = list(key.get("top_features") or [])[:TOP_FEATURES]
    if top:
        lines.append(
            f"- Top features (drop in {key.get('importance_scoring', 'score')} when shuffled): "
            + ", ".join(f"{_code(f['feature'])} {f['importance']:.3f}" for f in top)
        )
    return "\n".join(lines)


def _result(result: GateResult) -> str:
    return "pass" if result.passed else "**FAIL**"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _code(text: Any) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def warning_lines(warnings: list[Mapping[str, Any]]) -> list[str]:
    """One Markdown line per leakage or sanity warning, flagged, for the approval request."""
    return [
        f"- **{'FAIL' if w.get('failing') else 'Warning'}** {_code(w.get('code'))}: {w.get('message')}"
        for w in warnings
    ]


def context_lines(key: Mapping[str, Any]) -> list[str]:
    """The dummy baseline and the uncertainty of the headline metrics (when recorded), one line each."""
    names = list(key.get("metrics") or {})
    lines = []
    base = (key.get("baseline") or {}).get("metrics") or {}
    shown = [f"{_code(n)} {_value(base[n])}" for n in names if n in base]
    if shown:
        strategy = {"most_frequent": "always the most frequent class", "mean": "always the mean"}.get(
            str((key.get("baseline") or {}).get("strategy")), "a dummy model"
        )
        lines.append(f"- Baseline ({strategy}) on the same rows: " + ", ".join(shown))
    spread = key.get("uncertainty") or {}
    found = spread.get("metrics") or {}
    if spread.get("method") == "cross_validation":
        shown = [f"{_code(n)} {found[n]['mean']:.4f} ± {found[n]['std']:.4f}" for n in names if n in found]
        label = f"{spread.get('folds')}-fold cross-validation"
    else:
        shown = [f"{_code(n)} {found[n]['low']:.4f}-{found[n]['high']:.4f}" for n in names if n in found]
        label = f"{float(spread.get('level') or 0.95):.0%} bootstrap interval"
    if shown:
        lines.append(f"- {label}: " + ", ".join(shown))
    return lines
