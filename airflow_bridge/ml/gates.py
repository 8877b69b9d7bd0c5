"""Gate evaluation: thresholds, data checks and the champion comparison. Pure functions, no ML imports.

Results are typed (:class:`GateResult`, :class:`ChampionComparison`), each with one renderer per
medium: ``line()`` for terminals, logs and error messages, ``markdown()`` for the approval body and the
report summary; the HTML report renders their fields in ``report/html.py``. They travel through XCom,
the registry and OpenLineage as the JSON of ``to_json()``, whose keys are those of every earlier
release, and ``from_json`` reads every earlier shape back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_bridge.ml.catalogue import LOWER_IS_BETTER

_OPTIONAL = ("column", "metric", "baseline", "message", "basis")
MARKDOWN_GATE_HEADER = ("| gate | value | required | result |", "|---|---|---|---|")


@dataclass(frozen=True)
class GateResult:
    """One gate: what was measured, what was required, whether it passed."""

    name: str
    kind: str
    """metric, data, baseline (beat the dummy) or warning (a warning the spec makes fail)."""
    value: Any
    min: Any = None
    max: Any = None
    passed: bool = False
    column: str | None = None
    """The column a data gate found worst (max_null_fraction), or the one a warning is about."""
    metric: str | None = None
    """The metric a baseline gate compares on."""
    baseline: float | None = None
    """The dummy baseline's value of that metric."""
    message: str | None = None
    """A warning gate's message."""
    basis: str | None = None
    """What the value is when it is not the held-out metric (the cross-validation's lower bound)."""

    def to_json(self) -> dict[str, Any]:
        found = {"name": self.name, "kind": self.kind, "value": self.value, "min": self.min, "max": self.max}
        found["passed"] = self.passed
        return found | {key: getattr(self, key) for key in _OPTIONAL if getattr(self, key) is not None}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | GateResult) -> GateResult:
        """A gate as XCom, the registry or a report stored it (keys of a newer release are ignored)."""
        if isinstance(value, GateResult):
            return value
        known = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in value.items() if k in known}
        return cls(**{"kind": "metric", "value": None, **found})

    def shown_value(self) -> str:
        """The measured value as shown to people: floats to 4 decimals."""
        return _shown(self.value)

    def bounds(self, *, at_least: str = ">=", at_most: str = "<=") -> str:
        """The requirement, e.g. ``>= 0.9 and <= 1.0``; ``-`` when it has none."""
        found = [f"{at_least} {self.min}"] if self.min is not None else []
        found += [f"{at_most} {self.max}"] if self.max is not None else []
        return " and ".join(found) or "-"

    def line(self) -> str:
        """One line for terminals, logs and error messages."""
        column = f" (column {self.column})" if self.column else ""
        status = "PASS" if self.passed else "FAIL"
        return f"  {status}  {self.name} = {self.shown_value()}{column}  required {self.bounds()}"

    def html(self) -> str:
        """Inline HTML (the Models page's gates column): PASS/FAIL, the value and the bounds it needed."""
        from html import escape

        css, word = ("ok", "PASS") if self.passed else ("bad", "FAIL")
        bounds = self.bounds(at_least="≥", at_most="≤")
        needs = f" (needs {escape(bounds)})" if bounds != "-" else ""
        return f'<span class="{css}">{word}</span> {escape(self.name)} = {escape(self.shown_value())}{needs}'

    def markdown(self) -> str:
        """A row of the Markdown gate table (:data:`MARKDOWN_GATE_HEADER`)."""
        bounds = self.bounds(at_least="≥", at_most="≤")
        return f"| {self.name} | {self.shown_value()} | {bounds} | {'pass' if self.passed else 'FAIL'} |"


@dataclass(frozen=True)
class ChampionComparison:
    """The candidate against the version live on the alias, on the same held-out rows."""

    metric: str
    candidate: float
    champion: float | None
    """The live version's score; None when there was none to compare with (``note`` says why)."""
    champion_version: int | None
    improvement: float | None
    min_improvement: float
    passed: bool
    note: str | None = None
    alias: str | None = None

    @property
    def compared(self) -> bool:
        return self.champion is not None and self.champion_version is not None

    def to_json(self) -> dict[str, Any]:
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in found.items() if v is not None or k not in ("note", "alias")}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | ChampionComparison) -> ChampionComparison:
        if isinstance(value, ChampionComparison):
            return value
        known = {f.name for f in dataclasses.fields(cls)}
        found: dict[str, Any] = {"champion": None, "champion_version": None, "improvement": None}
        found |= {"min_improvement": 0.0, "passed": True} | {k: v for k, v in value.items() if k in known}
        return cls(**found)

    def line(self) -> str:
        """One line for terminals, logs and error messages."""
        if not self.compared:
            return (
                f"champion: {self.note or 'no live version to compare with'} ({self.metric} {_shown(self.candidate)})"
            )
        alias = f" ({self.alias})" if self.alias else ""
        return (
            f"champion: {self.metric} {_shown(self.candidate)} vs live v{self.champion_version}{alias} "
            f"{_shown(self.champion)}: improvement {_signed(self.improvement)}, required "
            f"{_signed(self.min_improvement)}: {'pass' if self.passed else 'FAIL'}"
        )

    def markdown(self) -> str:
        """A sentence for the approval body and the report summary."""
        if not self.compared:
            note = self.note or "no live version to compare with"
            return f"**Champion comparison:** {note} (`{self.metric}` {_shown(self.candidate)})."
        alias = f" ({self.alias})" if self.alias else ""
        return (
            f"**Champion comparison** on the same held-out rows: `{self.metric}` {_shown(self.candidate)} vs live "
            f"v{self.champion_version}{alias} {_shown(self.champion)}: improvement {_signed(self.improvement)} "
            f"(required {_signed(self.min_improvement)}, {'pass' if self.passed else '**FAIL**'})."
        )


def gates_of(found: Sequence[Mapping[str, Any] | GateResult] | None) -> list[GateResult]:
    """Gates as stored (registry, report, XCom) or already typed."""
    return [GateResult.from_json(g) for g in found or ()]


def champion_of(found: Mapping[str, Any] | ChampionComparison | None) -> ChampionComparison | None:
    """A champion comparison as stored, or already typed; None when there was none."""
    return ChampionComparison.from_json(found) if found else None


def _shown(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _signed(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, int | float) else "-"


def evaluate_thresholds(metrics: Mapping[str, float], thresholds: Mapping[str, Mapping[str, Any]]) -> list[GateResult]:
    """One result per threshold: metric, value, min, max, passed."""
    results = []
    for metric, bounds in thresholds.items():
        value = metrics.get(metric)
        low, high = bounds.get("min"), bounds.get("max")
        passed = (
            value is not None
            and not math.isnan(value)
            and (low is None or value >= low)
            and (high is None or value <= high)
        )
        results.append(GateResult(metric, "metric", value, low, high, passed))
    return results


def evaluate_data_checks(profile: Mapping[str, Any], checks: Mapping[str, Any] | None) -> list[GateResult]:
    """Row count, required columns and null fractions of a data profile against the spec's checks."""
    if not checks:
        return []
    results: list[GateResult] = []
    min_rows = checks.get("min_rows")
    if min_rows is not None:
        rows = int(profile["rows"])
        results.append(GateResult("min_rows", "data", rows, min_rows, None, rows >= min_rows))
    required = checks.get("required_columns") or []
    if required:
        missing = [c for c in required if c not in profile["columns"]]
        results.append(GateResult("required_columns", "data", missing or "all present", passed=not missing))
    max_missing_target = checks.get("max_missing_target_fraction")
    dropped = int(profile.get("missing_target_rows") or 0)
    if max_missing_target is not None and int(profile.get("rows") or 0) + dropped:
        fraction = dropped / (int(profile["rows"]) + dropped)
        passed = fraction <= max_missing_target
        results.append(
            GateResult("max_missing_target_fraction", "data", round(fraction, 6), None, max_missing_target, passed)
        )
    max_null = checks.get("max_null_fraction")
    if max_null is not None and max_null < 1:
        used = profile.get("used_columns") or list(profile["columns"])
        fractions = {c: profile["null_fraction"].get(c, 0.0) for c in used}
        worst = max(fractions, key=lambda c: fractions[c]) if fractions else None
        worst_value = fractions[worst] if worst else 0.0
        passed = worst_value <= max_null
        results.append(GateResult("max_null_fraction", "data", round(worst_value, 6), None, max_null, passed, worst))
    return results


def compare_champion(
    metric: str,
    candidate: float,
    champion: float | None,
    min_improvement: float,
    champion_version: int | None,
    *,
    alias: str | None = None,
) -> ChampionComparison:
    """Does the candidate beat the live version by at least ``min_improvement`` on ``metric``?"""
    if champion is None or champion_version is None:
        note = "no live version to compare with"
        return ChampionComparison(metric, candidate, None, None, None, min_improvement, True, note=note, alias=alias)
    improvement = (champion - candidate) if metric in LOWER_IS_BETTER else (candidate - champion)
    passed = improvement >= min_improvement
    return ChampionComparison(
        metric, candidate, champion, champion_version, improvement, min_improvement, passed, None, alias
    )


def format_gate_table(results: Sequence[GateResult]) -> str:
    """Human-readable gate results: one line per gate with its value and bounds."""
    return "\n".join(result.line() for result in results)
