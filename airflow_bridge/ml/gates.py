"""Gate evaluation: thresholds, data checks and the champion comparison. Pure functions, no ML imports.

Results are plain dicts so they travel through XCom, the registry and OpenLineage facets unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from airflow_bridge.ml.catalogue import LOWER_IS_BETTER


def evaluate_thresholds(
    metrics: Mapping[str, float], thresholds: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
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
        results.append({"name": metric, "kind": "metric", "value": value, "min": low, "max": high, "passed": passed})
    return results


def evaluate_data_checks(profile: Mapping[str, Any], checks: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Row count, required columns and null fractions of a data profile against the spec's checks."""
    if not checks:
        return []
    results: list[dict[str, Any]] = []
    min_rows = checks.get("min_rows")
    if min_rows is not None:
        rows = int(profile["rows"])
        results.append(
            {
                "name": "min_rows",
                "kind": "data",
                "value": rows,
                "min": min_rows,
                "max": None,
                "passed": rows >= min_rows,
            }
        )
    required = checks.get("required_columns") or []
    if required:
        missing = [c for c in required if c not in profile["columns"]]
        results.append(
            {
                "name": "required_columns",
                "kind": "data",
                "value": missing or "all present",
                "min": None,
                "max": None,
                "passed": not missing,
            }
        )
    max_missing_target = checks.get("max_missing_target_fraction")
    dropped = int(profile.get("missing_target_rows") or 0)
    if max_missing_target is not None and int(profile.get("rows") or 0) + dropped:
        fraction = dropped / (int(profile["rows"]) + dropped)
        results.append(
            {
                "name": "max_missing_target_fraction",
                "kind": "data",
                "value": round(fraction, 6),
                "min": None,
                "max": max_missing_target,
                "passed": fraction <= max_missing_target,
            }
        )
    max_null = checks.get("max_null_fraction")
    if max_null is not None and max_null < 1:
        used = profile.get("used_columns") or list(profile["columns"])
        fractions = {c: profile["null_fraction"].get(c, 0.0) for c in used}
        worst = max(fractions, key=lambda c: fractions[c]) if fractions else None
        worst_value = fractions[worst] if worst else 0.0
        results.append(
            {
                "name": "max_null_fraction",
                "kind": "data",
                "value": round(worst_value, 6),
                "column": worst,
                "min": None,
                "max": max_null,
                "passed": worst_value <= max_null,
            }
        )
    return results


def compare_champion(
    metric: str,
    candidate: float,
    champion: float | None,
    min_improvement: float,
    champion_version: int | None,
) -> dict[str, Any]:
    """Does the candidate beat the live version by at least ``min_improvement`` on ``metric``?"""
    if champion is None or champion_version is None:
        return {
            "metric": metric,
            "candidate": candidate,
            "champion": None,
            "champion_version": None,
            "improvement": None,
            "min_improvement": min_improvement,
            "passed": True,
            "note": "no live version to compare with",
        }
    improvement = (champion - candidate) if metric in LOWER_IS_BETTER else (candidate - champion)
    return {
        "metric": metric,
        "candidate": candidate,
        "champion": champion,
        "champion_version": champion_version,
        "improvement": improvement,
        "min_improvement": min_improvement,
        "passed": improvement >= min_improvement,
    }


def gate_value(result: Mapping[str, Any]) -> str:
    """A gate's measured value as shown to people: floats to 4 decimals."""
    value = result.get("value")
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def gate_bounds(result: Mapping[str, Any], *, at_least: str = ">=", at_most: str = "<=") -> str:
    """A gate's requirement, e.g. ``>= 0.9 and <= 1.0``; ``-`` when it has no bounds."""
    bounds = []
    if result.get("min") is not None:
        bounds.append(f"{at_least} {result['min']}")
    if result.get("max") is not None:
        bounds.append(f"{at_most} {result['max']}")
    return " and ".join(bounds) or "-"


def format_gate_table(results: list[dict[str, Any]]) -> str:
    """Human-readable gate results: one line per gate with its value and bounds."""
    lines = []
    for result in results:
        column = f" (column {result['column']})" if result.get("column") else ""
        status = "PASS" if result["passed"] else "FAIL"
        lines.append(f"  {status}  {result['name']} = {gate_value(result)}{column}  required {gate_bounds(result)}")
    return "\n".join(lines)
