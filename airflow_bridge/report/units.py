"""The unit a column name carries (``price_usd``, ``Price ($)``, ``weight [kg]``, ``MAE (ms)``) and whether
a target needs a log scale. numpy is imported inside the function that needs it."""

from __future__ import annotations

import math
import re
from typing import Any

from airflow_bridge.ml.catalogue import UNIT_POWERS

LOG_SPAN = 1000.0
"""A target whose positive values span more than this ratio (max / min) is drawn on a log scale."""

_BRACKETED = re.compile(r"[(\[]\s*([^()\[\]]{1,16}?)\s*[)\]]\s*$")
_SUFFIX = re.compile(r"[_\s.\-]([A-Za-z%$€£¥°]+)$")
SUFFIX_UNITS = {
    **{code: code.upper() for code in ("usd", "eur", "gbp", "jpy", "chf", "cad", "aud", "cny", "inr")},
    "dollars": "USD",
    "euros": "EUR",
    **{u: u for u in ("kg", "mg", "lb", "lbs", "oz", "km", "cm", "mm", "mi", "ft", "ms", "us", "ns", "min")},
    **{u: u for u in ("kwh", "wh", "kw", "mw", "kb", "mb", "gb", "tb", "ml", "hz", "mhz", "ghz", "mph", "kmh")},
    "sec": "s",
    "secs": "s",
    "seconds": "s",
    "mins": "min",
    "minutes": "min",
    "hr": "h",
    "hrs": "h",
    "hours": "h",
    "days": "days",
    "bytes": "bytes",
    "pct": "%",
    "percent": "%",
    "degc": "°C",
    "celsius": "°C",
    "degf": "°F",
    "%": "%",
    "$": "$",
    "€": "€",
    "£": "£",
}
"""Unit words recognised after a separator at the end of a name (one-letter words are too ambiguous)."""
UNIT_METRICS = {**UNIT_POWERS, "max_error": 1, "median_absolute_error": 1}
"""Regression metrics in the target's unit (``mse`` in its square); r2, mape and the like have none."""


def unit_of(column: str) -> str | None:
    """The unit in a column name: the text in a trailing (...) or [...], or a known unit word after ``_``."""
    name = column.strip()
    bracketed = _BRACKETED.search(name)
    if bracketed:
        text = bracketed.group(1).strip()
        if text and not re.fullmatch(r"[\d.,\s\-]+", text):  # "(2019)" is not a unit
            return text
        return None
    suffix = _SUFFIX.search(name)
    if suffix:
        return SUFFIX_UNITS.get(suffix.group(1).lower())
    return None


def with_unit(metric: str, value: float, unit: str | None) -> str:
    """``84.69 USD`` for a metric in the target's unit, the bare number otherwise."""
    text = (
        f"{value:.4g}" if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{value:.4f}".rstrip("0").rstrip(".")
    )
    power = UNIT_METRICS.get(metric)
    if not unit or not power or not math.isfinite(value):
        return text
    return f"{text} {unit}" if power == 1 else f"{text} {unit}²"


def needs_log_scale(values: Any) -> bool:
    """True when every value is positive and the largest is more than ``LOG_SPAN`` times the smallest."""
    import numpy as np

    numbers = np.asarray(values, dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers) or numbers.min() <= 0:
        return False
    return bool(numbers.max() / numbers.min() > LOG_SPAN)
