"""Column roles: which columns a model uses, as what, and why; and the first step of every model pipeline.

Roles are inferred from the data with scikit-learn's community library skrub (its ``TableVectorizer``
decides numeric, datetime, low- and high-cardinality columns), after excluding what can never help
a model: columns that are entirely empty, constant, or unique per row (identifiers). The spec can
override any column's role (``data.columns``). ``ColumnRoles`` is fitted into the artifact, so
training, validation, serving and batch prediction all take rows as they appear in the file, and
a row that misses a column or carries text in a numeric column is refused with the column's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from airflow_bridge.exceptions import DataError
from airflow_bridge.ml.sanity import row_number_reason
from airflow_bridge.ml.values import check_dates as _check_dates
from airflow_bridge.ml.values import check_numeric
from airflow_bridge.ml.values import looks_like_dates as _looks_like_dates
from airflow_bridge.ml.values import non_numeric as _non_numeric

EXCLUDED = "ignore"
MISSING_TEXT = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA"}
    | {"NULL", "NaN", "None", "n/a", "nan", "null"}
)
"""Text that means "missing", as pandas reads CSV files: served rows get the same treatment."""
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key)$|^(id|uuid)[_\s-]", re.IGNORECASE)
_MIN_ROWS_FOR_ID = 20
MAX_CATEGORIES = 1000
"""A column the spec calls categorical may have at most this many distinct values (else: role text)."""
_SKRUB_ROLES = {
    "numeric": ("numeric", "numbers"),
    "datetime": ("datetime", "dates: encoded as year, month, day, weekday"),
    "low_cardinality": ("categorical", "{n} distinct values: a category (values unseen in training are tolerated)"),
    "high_cardinality": ("text", "{n} distinct values: too many for one-hot, encoded from the text"),
}


@dataclass(frozen=True)
class ColumnRole:
    """How one column is used: its role, why, and what the data looks like."""

    role: str
    reason: str
    dtype: str
    missing: float
    distinct: int
    warning: str | None = None
    """Why a column kept by the spec looks like a row number (``ml.sanity.row_number_reason``), if it does."""

    def to_dict(self) -> dict[str, Any]:
        found = {"warning": self.warning} if self.warning else {}
        return {
            "role": self.role,
            "reason": self.reason,
            "dtype": self.dtype,
            "missing": self.missing,
            "distinct": self.distinct,
            **found,
        }


def infer_roles(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, ColumnRole]:
    """Every column's role and why (the target included); raises ``DataError`` for mistakes that need a fix.

    ``features`` limits the candidate columns (the rest are ``ignore``, "not in data.training.features").
    """
    overrides = dict(overrides or {})
    candidates = list(features) if features else [str(c) for c in frame.columns if c != target]
    rows = len(frame)
    roles: dict[str, ColumnRole] = {}
    kept: list[str] = []
    for column in (str(c) for c in frame.columns):
        series = frame[column]
        distinct = int(series.nunique(dropna=True))
        if column == target:
            roles[column] = _role("target", "the column to predict", series)
            continue
        excluded = exclusion(column, series, rows=rows, distinct=distinct, candidates=candidates, overrides=overrides)
        if excluded is not None:
            roles[column] = _role(EXCLUDED, excluded, series)
            continue
        if column in overrides:
            _check_override(column, series, overrides[column], distinct)
            warning = row_number_reason(series)
            roles[column] = _role(overrides[column], "set in the spec (data.columns)", series, warning)
        else:
            _check_dates(column, series)
        kept.append(column)
    for column, kind in _skrub_kinds(frame[[c for c in kept if c not in overrides]]).items():
        role, why = _SKRUB_ROLES.get(kind, ("numeric", kind))
        series = frame[column]
        roles[column] = _role(role, why.format(n=int(series.nunique(dropna=True))), series)
    unused = [c for c in overrides if c not in roles]
    if unused:
        from airflow_bridge.issues import did_you_mean

        hints = [did_you_mean(c, [str(x) for x in frame.columns]) for c in unused]
        detail = "; ".join(f"'{c}'" + (f" ({h})" if h else "") for c, h in zip(unused, hints, strict=True))
        raise DataError(f"data.columns names column(s) the data does not have: {detail}")
    return {str(c): roles[str(c)] for c in frame.columns if str(c) in roles}


def _role(role: str, reason: str, series: pd.Series, warning: str | None = None) -> ColumnRole:
    missing = round(float(series.isna().mean()), 6) if len(series) else 0.0
    return ColumnRole(role, reason, str(series.dtype), missing, int(series.nunique(dropna=True)), warning)


def feature_columns(roles: Mapping[str, ColumnRole]) -> list[str]:
    """The columns a model is fitted on, in file order."""
    return [c for c, r in roles.items() if r.role not in (EXCLUDED, "target")]


def exclusion(
    column: str, series: pd.Series, *, rows: int, distinct: int, candidates: Sequence[str], overrides: Mapping[str, str]
) -> str | None:
    if column not in candidates:
        return "not in data.training.features"
    role = overrides.get(column)
    if role == EXCLUDED:
        return "set to ignore in the spec (data.columns)"
    if distinct == 0:
        if role is not None:
            raise DataError(
                f"column '{column}' is entirely empty but data.columns gives it the role '{role}'; "
                "fill it in or remove it from data.columns"
            )
        return "every value is missing"
    if distinct == 1 and role is None:
        return "the same value in every row: it cannot tell rows apart"
    if (
        role is None
        and rows >= _MIN_ROWS_FOR_ID
        and distinct == series.notna().sum()
        and _identifier_like(column, series)
    ):
        return "unique in every row: an identifier, not a feature"
    row_number = row_number_reason(series) if role is None else None
    if row_number is not None:  # a file sorted by outcome makes it the outcome (AUC 1.00)
        return f"{row_number}: an identifier, not a feature; set its role in data.columns to keep it"
    return None


def _identifier_like(column: str, series: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_integer_dtype(series):
        return bool(_ID_NAME.search(column))  # unique integers are common measurements unless named like an id
    sample = series.dropna().astype(str).str.strip().head(2000)
    # Text that never repeats (names, codes, ids) identifies rows; dates and numbers written as text are
    # values, even when every row differs.
    return not (_looks_like_dates(sample) or _non_numeric(sample) is None)


def _check_override(column: str, series: pd.Series, role: str, distinct: int) -> None:
    if role == "categorical" and distinct > MAX_CATEGORIES:
        raise DataError(
            f"column '{column}' has {distinct} distinct values, too many for the role 'categorical' "
            f"(at most {MAX_CATEGORIES}); set data.columns.{column}: text, which encodes it from the text"
        )
    if role == "numeric":
        check_numeric(column, series)
    if role == "datetime":
        _check_dates(column, series, required=True)


def _skrub_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """skrub's kind for each column (numeric, datetime, low_cardinality, high_cardinality)."""
    if frame.shape[1] == 0:
        return {}
    import skrub

    vectorizer = skrub.TableVectorizer()
    vectorizer.fit(frame.head(5000))
    return {str(c): str(k) for c, k in vectorizer.column_to_kind_.items()}


class ColumnRoles(TransformerMixin, BaseEstimator):
    """First pipeline step: select the model's columns and apply the spec's role overrides.

    Rows are checked as they arrive (serving, batch prediction): a missing column or text that is not
    a number in a numeric column is refused with the column's name, never turned into a silent NaN.
    A column that held true/false in training (``boolean_in_``) takes the forms a CSV or JSON holds
    (``True``/``false``, ``yes``/``no``, ``1``/``0``...; :data:`BOOLEAN_TEXT`) and reaches the model as 1.0/0.0.
    """

    def __init__(
        self,
        columns: Sequence[str] = (),
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        datetime: Sequence[str] = (),
        text: Sequence[str] = (),
        *,
        missing_text: Sequence[str] = (),
    ) -> None:
        self.columns = columns
        self.numeric = numeric
        self.categorical = categorical
        self.datetime = datetime
        self.text = text
        self.missing_text = missing_text

    def fit(self, frame: pd.DataFrame, y: Any = None) -> ColumnRoles:
        cast = {*self.categorical, *self.text, *self.datetime}
        self.boolean_in_ = [c for c in self.columns if c not in cast and _holds_booleans(frame[c])]
        self.numeric_in_ = sorted(
            {*self.numeric, *(c for c in self.columns if pd.api.types.is_numeric_dtype(frame[c]))}
            - cast
            - set(self.boolean_in_)
        )
        self.categories_ = {}
        typed = {*self.numeric_in_, *self.boolean_in_, *self.datetime, *self.text}
        for column in self.columns:
            if column in typed:
                continue
            values = frame[column].dropna().astype(str).str.strip()
            if values.nunique() <= MAX_CATEGORIES and not _looks_like_dates(values.head(2000)):
                self.categories_[column] = sorted(set(values) - MISSING_TEXT)
        return self

    def unseen(self, frame: pd.DataFrame) -> list[str]:
        """Categories in ``frame`` that training never saw, one message per column (the model still answers)."""
        notes = []
        for column, known in getattr(self, "categories_", {}).items():
            if column not in frame.columns:
                continue
            values = frame[column].dropna().astype(str).str.strip()
            new = sorted(set(values) - set(known) - self._missing())
            if new:
                shown = ", ".join(repr(v) for v in new[:5])
                notes.append(
                    f"column '{column}': {shown} never seen in training, so it counts as unknown for this "
                    f"prediction (known: {', '.join(known[:10])}{'…' if len(known) > 10 else ''}); retrain with "
                    "data that has it if it matters"
                )
        return notes

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            frame = pd.DataFrame(frame)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(repr(c) for c in missing)}; send every column the model was "
                f"trained on: {', '.join(self.columns)}"
            )
        out = frame[list(self.columns)].copy()
        for column in out.columns:
            if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
                text = out[column].astype("string").str.strip()
                out[column] = out[column].where(~text.isin(self._missing()).fillna(False), None)
        for column in getattr(self, "boolean_in_", ()):  # (absent from artifacts trained before it existed)
            out[column] = _as_booleans(out[column], column)
        for column in getattr(self, "numeric_in_", self.numeric):
            if not pd.api.types.is_numeric_dtype(out[column]):
                bad = _non_numeric(out[column])
                if bad is not None:
                    raise DataError(f"column '{column}' takes numbers; got {bad!r}")
                out[column] = pd.to_numeric(out[column].astype("string").str.strip().replace("", None))
        for column in (*self.categorical, *self.text):
            out[column] = out[column].astype("string")
        for column in self.datetime:
            out[column] = pd.to_datetime(out[column], errors="coerce", format="mixed")
        return out

    def _missing(self) -> frozenset[str]:
        """Text read as missing: pandas' words and the spec's ``data.training.missing_values``."""
        extra = getattr(self, "missing_text", ())  # (absent from artifacts trained before it existed)
        return MISSING_TEXT | frozenset(extra) if extra else MISSING_TEXT

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        import numpy as np

        return np.asarray(list(self.columns), dtype=object)


BOOLEAN_TEXT = {
    **dict.fromkeys(("true", "t", "yes", "y", "1", "1.0"), 1.0),
    **dict.fromkeys(("false", "f", "no", "n", "0", "0.0"), 0.0),
}
"""How true/false is written in CSV exports (any case, surrounding blanks ignored) → the value the model sees."""
_MISSING_LOWER = frozenset(text.lower() for text in MISSING_TEXT)


def _holds_booleans(series: pd.Series) -> bool:
    """Whether a training column holds true/false: a bool dtype, or only bools and ``True``/``False`` text."""
    if pd.api.types.is_bool_dtype(series):
        return True
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        return False
    spelled = set()
    for value in series.dropna().drop_duplicates().head(20):  # True/False in every case: a handful
        if not isinstance(value, bool | np.bool_ | str):
            return False
        spelled.add(str(value).strip().lower())
    spelled -= _MISSING_LOWER
    return bool(spelled) and spelled <= {"true", "false"}


def _as_booleans(values: pd.Series, column: str) -> pd.Series:
    """A true/false column as 1.0/0.0 (missing stays missing); anything else refused with the column's name."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    text = values.astype("string").str.strip().str.lower()  # True → "true", 1 → "1", 1.0 → "1.0"
    converted = text.map(BOOLEAN_TEXT).astype("float64")
    missing = values.isna() | text.isin(_MISSING_LOWER).fillna(True)
    bad = values[converted.isna() & ~missing]
    if len(bad):
        shown = bad.iloc[0].item() if hasattr(bad.iloc[0], "item") else bad.iloc[0]
        raise DataError(f"column '{column}' takes true or false (True/False, yes/no, 1/0, in any case); got {shown!r}")
    return converted


def roles_pipeline_step(roles: Mapping[str, ColumnRole], missing_text: Sequence[str] = ()) -> ColumnRoles:
    """The ``ColumnRoles`` step for these roles: overrides become casts, the rest is skrub's;
    ``missing_text`` (the spec's ``missing_values``) is read as missing in served rows too."""
    used = feature_columns(roles)

    def having(role: str) -> list[str]:
        return [c for c in used if roles[c].role == role and roles[c].reason.startswith("set in the spec")]

    return ColumnRoles(
        columns=used,
        numeric=having("numeric"),
        categorical=having("categorical"),
        datetime=having("datetime"),
        text=having("text"),
        missing_text=tuple(missing_text),
    )
