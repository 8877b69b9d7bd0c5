"""What changed since the live version: columns added or removed, roles changed, and data drift per column.

Drift is measured without the old data: at training time each used column gets a small profile (21
quantiles for a numeric column, the 20 most frequent values for any other, and the missing fraction),
stored with the version's data summary. A later report compares its profiles with the live version's:

* **PSI** (population stability index) over the live version's deciles (numeric) or its top values plus
  "other" (categorical), with missing values as a bin of their own: below 0.1 stable, 0.1 to 0.25 a
  moderate shift, 0.25 or more a major shift (the usual credit-scoring reading).
* **KS**, the largest gap between the two cumulative distributions (numeric columns only), read off the
  quantiles: an approximation, shown for information.

numpy and pandas are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

QUANTILES = 21
"""Quantiles kept per numeric column (every 5 %)."""
TOP_VALUES = 20
"""Most frequent values kept per categorical column."""
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
EPSILON = 1e-4
"""Floor of a bin's share in the PSI sum (an empty bin would make it infinite)."""
SKIPPED_ROLES = ("datetime", "ignore")
MAX_VALUE_CHARS = 80
"""Categorical values are kept (and compared) by their first 80 characters: a profile stays small."""


def column_profiles(frame: Any, columns: Sequence[str], roles: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The profile of each column in ``columns`` (datetime and ignored columns are not profiled)."""
    import numpy as np
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    for column in columns:
        if (roles.get(column) or {}).get("role") in SKIPPED_ROLES or column not in frame.columns:
            continue
        values = frame[column]
        missing = float(values.isna().mean()) if len(values) else 0.0
        present = values.dropna()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = present.to_numpy(dtype=float)
            numbers = numbers[np.isfinite(numbers)]
            if not len(numbers):
                continue
            quantiles = np.quantile(numbers, np.linspace(0, 1, QUANTILES))
            out[column] = {"kind": "numeric", "missing": round(missing, 6), "quantiles": [_round(q) for q in quantiles]}
        else:
            counts = present.astype(str).str.slice(0, MAX_VALUE_CHARS).value_counts()
            shares = counts / max(1, len(present))
            top = shares.sort_index(kind="stable").sort_values(ascending=False, kind="stable").head(TOP_VALUES)
            out[column] = {
                "kind": "categorical",
                "missing": round(missing, 6),
                "top": {str(k): round(float(v), 6) for k, v in top.items()},
            }
    return out


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift between the live version's data and this one's."""

    column: str
    kind: str
    psi: float
    ks: float | None
    live: str
    new: str

    @property
    def level(self) -> str:
        if self.psi >= PSI_MAJOR:
            return "major shift"
        return "moderate shift" if self.psi >= PSI_MODERATE else "stable"


def column_drift(column: str, live: Mapping[str, Any], new: Mapping[str, Any]) -> ColumnDrift | None:
    """PSI (and KS for numbers) of one column from two profiles; None when their kinds differ."""
    if live.get("kind") != new.get("kind"):
        return None
    if live["kind"] == "numeric":
        return _numeric(column, live, new)
    return _categorical(column, live, new)


def _cdf(quantiles: Sequence[float]) -> Any:
    """A cumulative distribution read off equally spaced quantiles (ties take the highest share)."""
    import numpy as np

    points = np.asarray(quantiles, dtype=float)
    shares = np.linspace(0, 1, len(points))
    unique, last = np.unique(points, return_index=False), {}
    for value, share in zip(points, shares, strict=True):
        last[value] = share
    ys = np.asarray([last[v] for v in unique])

    def cdf(x: Any) -> Any:
        return np.interp(x, unique, ys, left=0.0, right=1.0)

    return cdf


def _numeric(column: str, live: Mapping[str, Any], new: Mapping[str, Any]) -> ColumnDrift:
    import numpy as np

    old_q, new_q = live["quantiles"], new["quantiles"]
    old_cdf, new_cdf = _cdf(old_q), _cdf(new_q)
    edges = np.unique(np.asarray(old_q, dtype=float)[2:-1:2])  # the live version's inner deciles
    bounds = np.concatenate([edges, [np.inf]])

    def shares(cdf: Any, missing: float) -> list[float]:
        cumulative = np.concatenate([[0.0], cdf(bounds[:-1]), [1.0]])
        return [*(np.diff(cumulative) * (1 - missing)), missing]

    psi = _psi(shares(old_cdf, float(live.get("missing", 0))), shares(new_cdf, float(new.get("missing", 0))))
    grid = np.union1d(np.asarray(old_q, dtype=float), np.asarray(new_q, dtype=float))
    ks = float(np.max(np.abs(old_cdf(grid) - new_cdf(grid))))
    return ColumnDrift(
        column, "numeric", psi, ks, f"median {_g(old_q[len(old_q) // 2])}", f"median {_g(new_q[len(new_q) // 2])}"
    )


def _categorical(column: str, live: Mapping[str, Any], new: Mapping[str, Any]) -> ColumnDrift:
    old_top, new_top = dict(live.get("top") or {}), dict(new.get("top") or {})
    old_missing, new_missing = float(live.get("missing", 0)), float(new.get("missing", 0))
    keys = list(old_top)

    def shares(top: Mapping[str, float], missing: float) -> list[float]:
        known = [float(top.get(k, 0.0)) for k in keys]
        other = max(0.0, 1.0 - sum(float(v) for v in top.values()))  # values beyond the top, and unknown ones
        other += sum(float(v) for k, v in top.items() if k not in old_top)
        return [*(s * (1 - missing) for s in known), other * (1 - missing), missing]

    psi = _psi(shares(old_top, old_missing), shares(new_top, new_missing))
    return ColumnDrift(column, "categorical", psi, None, _most(old_top), _most(new_top))


def _psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    import math

    total = 0.0
    for old, new in zip(expected, actual, strict=True):
        e, a = max(old, EPSILON), max(new, EPSILON)
        total += (a - e) * math.log(a / e)
    return round(total, 6)


def _most(top: Mapping[str, float]) -> str:
    if not top:
        return "-"
    value, share = next(iter(top.items()))
    return f"{value} ({share:.0%})"


def _g(value: Any) -> str:
    return f"{float(value):.4g}"


@dataclass(frozen=True)
class Changes:
    """What changed between the live version and this one (``live_version`` None: nothing is live)."""

    live_version: int | None
    alias: str
    added: list[str]
    removed: list[str]
    roles: list[tuple[str, str, str]]
    """(column, live role, new role) for columns used by both with another role."""
    drift: list[ColumnDrift]
    not_compared: list[str]
    """Used columns of both versions without comparable profiles (older versions kept none, datetime...)."""


def changes_since(
    live: Mapping[str, Any] | None, live_version: int | None, alias: str, new: Mapping[str, Any]
) -> Changes:
    """Compare the live version's data summary (``ModelVersion.data``) with this version's (``DataSummary``)."""
    if live is None:
        return Changes(None, alias, [], [], [], [], [])
    old_used = _used(live)
    new_used = _used(new)
    old_roles = {c: str((r or {}).get("role", "")) for c, r in (live.get("roles") or {}).items()}
    new_roles = {c: str((r or {}).get("role", "")) for c, r in (new.get("roles") or {}).items()}
    roles = [
        (c, old_roles[c], new_roles[c])
        for c in sorted(set(old_roles) & set(new_roles))
        if old_roles[c] != new_roles[c] and old_roles[c] and new_roles[c]
    ]
    old_profiles, new_profiles = live.get("profiles") or {}, new.get("profiles") or {}
    drift: list[ColumnDrift] = []
    not_compared: list[str] = []
    for column in [c for c in new_used if c in old_used]:
        found = None
        if column in old_profiles and column in new_profiles:
            found = column_drift(column, old_profiles[column], new_profiles[column])
        if found is None:
            not_compared.append(column)
        else:
            drift.append(found)
    drift.sort(key=lambda d: (-d.psi, d.column))
    return Changes(
        live_version,
        alias,
        added=[c for c in new_used if c not in old_used],
        removed=[c for c in old_used if c not in new_used],
        roles=roles,
        drift=drift,
        not_compared=not_compared,
    )


def _used(data: Mapping[str, Any]) -> list[str]:
    """The columns a version used: its features, then its target."""
    features = [str(c) for c in data.get("features") or []]
    target = str(data.get("target") or "")
    return list(dict.fromkeys([*features, *([target] if target else [])]))
