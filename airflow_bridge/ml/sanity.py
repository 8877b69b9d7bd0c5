"""Leakage and sanity warnings of a run: results too good to be true, and the data habits that cause them.

A warning never stops a run by itself: it is shown in the run output, at the top of the model report and
in the approval request. A team policy lists the codes that fail instead (``fail_on_warnings``); those
become gates of kind ``warning``. Each warning is a plain dict (XCom, registry, report):
``{"code", "message", "column", "failing"}``. No heavy imports at module level (the policy imports
:data:`WARNING_CODES` at parse time).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from airflow_bridge.ml.gates import GateResult

WARNING_CODES = (
    "near_perfect_score",
    "dominant_feature",
    "new_dominant_column",
    "train_test_duplicates",
    "id_like_column",
)
"""Every warning a run can raise; ``fail_on_warnings`` in the team policy takes these."""

NEAR_PERFECT = {"balanced_accuracy": 0.99, "roc_auc": 0.999, "r2": 0.99}
"""A held-out metric at or above its value is near perfect. roc_auc 0.995 is common on clean data (the
breast-cancer example); 0.999 and more is rare without leakage. Accuracy is left out: a rare class makes
it high for free (balanced accuracy is not)."""
DOMINANT_SHARE = 0.5
"""One feature carrying more than this share of the total positive permutation importance dominates ..."""
DOMINANT_MIN_DROP = 0.05
"""... when shuffling it also costs at least this much score (accuracy or r2): tiny drops are noise."""
NEW_COLUMN_SHARE = 0.3
"""A column the live version did not use that carries at least this share of the importance."""
MIN_ROWS_FOR_ROW_NUMBER = 20
"""Fewer rows than this: a sorted unique integer column is too likely by chance to call it a row number."""


def row_number_reason(series: Any) -> str | None:
    """Why a numeric column looks like a row number (None when it does not).

    A row number is whole numbers, unique per row, none missing, and either increasing or decreasing
    through the file (a file sorted by outcome turns it into the outcome), or exactly 0..n-1 or 1..n in
    any order. Float measurements (``mean_radius``) are never row numbers.
    """
    import numpy as np
    import pandas as pd

    rows = len(series)
    if rows < MIN_ROWS_FOR_ROW_NUMBER or pd.api.types.is_bool_dtype(series):
        return None
    if not pd.api.types.is_numeric_dtype(series) or series.isna().any():
        return None
    values = series.to_numpy(dtype="float64")
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return None
    if len(np.unique(values)) != rows:
        return None
    if series.is_monotonic_increasing or series.is_monotonic_decreasing:
        direction = "increasing" if series.is_monotonic_increasing else "decreasing"
        return f"a row number: unique per row and {direction} through the file"
    low = values.min()
    if low in (0, 1) and values.max() == low + rows - 1:
        return f"a row number: the numbers {int(low)}..{int(low) + rows - 1}, once each"
    return None


def _warning(code: str, message: str, column: str | None, fail_on: Collection[str]) -> dict[str, Any]:
    return {"code": code, "message": message, "column": column, "failing": code in fail_on}


def run_warnings(
    *,
    metrics: Mapping[str, Any],
    importance: Sequence[Mapping[str, Any]] = (),
    scoring: str = "score",
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    duplicates_across_split: int = 0,
    live_features: Collection[str] | None = None,
    live_version: int | None = None,
    held_out_rows: int = 0,
    fail_on: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Every warning of one validated model, in a fixed order.

    ``importance`` is the permutation importance (``{"feature", "importance"}``, high to low) on the
    held-out rows; ``roles`` the training data's column roles; ``live_features`` the columns of the
    version behind the champion alias (None when nothing is live).
    """
    found: list[dict[str, Any]] = []
    for name, limit in NEAR_PERFECT.items():
        value = metrics.get(name)
        if isinstance(value, int | float) and value >= limit:
            found.append(
                _warning(
                    "near_perfect_score",
                    f"{name} {value:.4f} on {held_out_rows} held-out rows is near perfect (>= {limit}): possible on an "
                    "easy problem, but also the mark of a leak; check that no column is recorded after the outcome, "
                    "derived from it, or carries the file's order",
                    None,
                    fail_on,
                )
            )
            break
    positive = [f for f in importance if float(f.get("importance") or 0) > 0]
    total = sum(float(f["importance"]) for f in positive)
    if total > 0 and len(importance) > 1:
        top = positive[0]
        share = float(top["importance"]) / total
        if share > DOMINANT_SHARE and float(top["importance"]) >= DOMINANT_MIN_DROP:
            found.append(
                _warning(
                    "dominant_feature",
                    f"column '{top['feature']}' carries {share:.0%} of the feature importance (shuffling it costs "
                    f"{float(top['importance']):.3f} {scoring}): check it is known before the outcome and is "
                    "not a stand-in for it",
                    str(top["feature"]),
                    fail_on,
                )
            )
    if live_features is not None and total > 0:
        known = set(live_features)
        for item in positive:
            share = float(item["importance"]) / total
            if str(item["feature"]) not in known and share >= NEW_COLUMN_SHARE:
                found.append(
                    _warning(
                        "new_dominant_column",
                        f"column '{item['feature']}' is new since the live v{live_version} and carries {share:.0%} "
                        "of the feature importance: a gain that rests on a new column is only real if that column "
                        "is known when predictions are made",
                        str(item["feature"]),
                        fail_on,
                    )
                )
    if duplicates_across_split > 0:
        found.append(
            _warning(
                "train_test_duplicates",
                f"{duplicates_across_split} held-out row(s) also appear in the training rows: the held-out "
                "metrics partly measure memory; remove duplicate rows or split by a group",
                None,
                fail_on,
            )
        )
    for column, role in (roles or {}).items():
        if role.get("warning"):
            found.append(
                _warning(
                    "id_like_column",
                    f"column '{column}' looks like {role['warning']}, but data.columns gives it the role "
                    f"'{role.get('role')}', so the model uses it: if the file is sorted by anything related to "
                    "the outcome the model learns the order",
                    column,
                    fail_on,
                )
            )
    return found


def warning_gates(warnings: Sequence[Mapping[str, Any]]) -> list[GateResult]:
    """The failing warnings as failed gates of kind ``warning`` (the run stops like at any gate)."""
    return [
        GateResult(str(w["code"]), "warning", "raised", column=w.get("column"), message=w["message"])
        for w in warnings
        if w.get("failing")
    ]


def format_warnings(warnings: Sequence[Mapping[str, Any]]) -> str:
    """One line per warning, for logs and the run output."""
    return "\n".join(f"  {'FAIL' if w.get('failing') else 'WARN'}  {w['code']}: {w['message']}" for w in warnings)
