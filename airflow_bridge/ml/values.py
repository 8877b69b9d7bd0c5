"""What the values of a text column look like: dates (in which formats), numbers, text among numbers.

Pandas only (no scikit-learn), so ``airflow-bridge validate`` can use the same checks as training
(:mod:`airflow_bridge.ml.columns`) without importing the model stack.
"""

from __future__ import annotations

import re

import pandas as pd

from airflow_bridge.exceptions import DataError

DATE_PATTERNS = {
    "YYYY-MM-DD": re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$"),
    "DD/MM/YYYY or MM/DD/YYYY": re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"),
    "DD.MM.YYYY": re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"),
    "YYYY/MM/DD": re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"),
}
DATE_SAMPLE = 2000
"""Values looked at to decide whether a column holds dates, and in which formats."""


def is_text(series: pd.Series) -> bool:
    return bool(pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series))


def check_dates(column: str, series: pd.Series, *, required: bool = False) -> None:
    """Text dates written in several formats are ambiguous (is 03/04 March or April?): refuse them."""
    if not is_text(series):
        return
    values = series.dropna().astype(str).str.strip()
    if values.empty:
        return
    sample = values.head(DATE_SAMPLE)
    seen = date_formats(sample)
    if sum(seen.values()) < 0.8 * len(sample):
        if required:
            raise DataError(
                f"column '{column}' is declared datetime but most values are not dates "
                f"(e.g. {sample.iloc[0]!r}); write dates as YYYY-MM-DD or set another role"
            )
        return
    formats = [name for name, count in seen.items() if count]
    if len(formats) > 1:
        examples = ", ".join(repr(sample[sample.str.match(DATE_PATTERNS[f])].iloc[0]) for f in formats)
        raise DataError(
            f"column '{column}' mixes date formats ({', '.join(formats)}: {examples}); write every date one way "
            f"(ISO YYYY-MM-DD is unambiguous) or set data.columns.{column}: categorical"
        )


def check_numeric(column: str, series: pd.Series) -> None:
    """A column declared numeric holds numbers: dates or text in it are refused with an example."""
    if pd.api.types.is_numeric_dtype(series):
        return
    bad = non_numeric(series)
    if bad is None:
        return
    sample = series.dropna().astype(str).str.strip().head(DATE_SAMPLE)
    if looks_like_dates(sample):
        raise DataError(
            f"column '{column}' is declared numeric but holds dates (e.g. {bad!r}); set data.columns.{column}: "
            "datetime, which encodes them as year, month, day and weekday"
        )
    raise DataError(f"column '{column}' is declared numeric but holds {bad!r}; fix the value or set another role")


def date_formats(sample: pd.Series) -> dict[str, int]:
    return {name: int(sample.str.match(pattern).sum()) for name, pattern in DATE_PATTERNS.items()}


def looks_like_dates(sample: pd.Series) -> bool:
    return len(sample) > 0 and sum(date_formats(sample).values()) >= 0.8 * len(sample)


def non_numeric(series: pd.Series) -> str | None:
    """The first value that is not a number (blanks and missing values aside), or None."""
    text = series.dropna().astype(str).str.strip()
    converted = pd.to_numeric(text, errors="coerce")
    bad = text[converted.isna() & (text != "")]
    return str(bad.iloc[0]) if len(bad) else None


_PARSE_FORMATS = {
    "YYYY-MM-DD": ("ISO8601",),
    "DD/MM/YYYY or MM/DD/YYYY": ("%d/%m/%Y", "%m/%d/%Y"),
    "DD.MM.YYYY": ("%d.%m.%Y",),
    "YYYY/MM/DD": ("%Y/%m/%d",),
}


def invalid_dates(series: pd.Series) -> tuple[int, int, list[str]] | None:
    """In a text column of dates written one way: how many values are not dates of that form
    (``2007-13-45``, ``unknown``), of how many, and the first few. None when the column is not dates
    or mixes formats (:func:`check_dates` refuses that). One vectorised parse per format."""
    if not is_text(series):
        return None
    text = series.dropna().astype(str).str.strip()
    text = text[text != ""]
    sample = text.head(DATE_SAMPLE)
    if not looks_like_dates(sample):
        return None
    formats = [name for name, count in date_formats(sample).items() if count]
    if len(formats) != 1:
        return None
    valid = pd.Series(False, index=text.index)
    for form in _PARSE_FORMATS[formats[0]]:
        valid |= pd.to_datetime(text, format=form, errors="coerce").notna()
    bad = text[~valid]
    return (len(bad), len(text), list(bad.drop_duplicates().head(3))) if len(bad) else None
