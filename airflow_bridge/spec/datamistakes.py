"""Data mistakes ``validate`` finds in the values of a training file, before training is tried.

Called by :mod:`airflow_bridge.spec.datacheck` with the table it read (whole, or its first rows):
text among the numbers of a column, numbers written with a decimal comma, mixed date formats and a
date column declared numeric, too many missing targets, too few rows, and held-out rows that also
occur among the training rows. What depends only on the file is computed once per file (the table's
``cache``); the checks use the same functions as training (:mod:`airflow_bridge.ml.values`,
:func:`airflow_bridge.ml.data.split` and :func:`airflow_bridge.ml.data.duplicates_across`), so
validate and training agree. Pandas is imported inside the functions; scikit-learn only for the
split (once per process).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bridge.ml.catalogue import TaskKind
    from airflow_bridge.spec.datacheck import _Table
    from airflow_bridge.spec.models import Experiment
    from airflow_bridge.spec.semantics import Finding

_URI = ("data", "training", "uri")
_SAMPLE = 2000
"""Values of a column looked at to decide whether it is meant to hold numbers."""


@dataclass(frozen=True)
class _Odd:
    """Values of a text column that would read as numbers but for some: ``kind`` text or decimal comma."""

    kind: str
    count: int
    total: int
    examples: tuple[str, ...]
    distinct: int = 0


def value_findings(spec: Experiment, table: _Table, shown: str, warnings: list[Finding]) -> Iterator[Finding]:
    """Text among numbers, decimal commas and date problems in the columns training would use."""
    training = spec.data.training
    overrides = spec.data.columns
    used = set(training.features) if training.features is not None else None
    odd = _odd_columns(table)
    decimal = []
    for column in table.columns:
        found = odd.get(column)
        if column == training.target:
            if found is not None and found.kind == "decimal" and training.decimal == ".":
                decimal.append((column, found))
            continue
        if column in table.empty or (used is not None and column not in used):
            continue
        role = overrides.get(column)
        if role == "ignore":
            continue
        where = _position(spec, column)
        if role in ("numeric", "datetime"):
            problem = _cached(table, ("declared", column, role), lambda c=column, r=role: _declared(table, c, r))
            if problem:
                yield (where, *problem)
            if problem or role == "numeric":
                continue
        if found is not None and found.kind == "decimal" and training.decimal == ".":
            decimal.append((column, found))
            continue
        if found is not None and found.kind == "text" and role is None:
            yield (where, *_text_among_numbers(column, found, shown, table.complete))
            continue
        if role is None:
            problem = _cached(table, ("dates", column), lambda c=column: _declared(table, c, None))
            if problem:
                yield (where, *problem)
        if role in (None, "datetime"):
            bad = _cached(table, ("bad_dates", column), lambda c=column: _invalid_dates(table, c))
            if bad:
                yield (where, *_not_dates(column, bad, shown, role))
    if decimal:
        names = ", ".join(f"'{c}'" for c, _ in decimal)
        example = decimal[0][1].examples[0]
        yield (
            _URI,
            f"column{'s' if len(decimal) > 1 else ''} {names} of {shown} hold{'' if len(decimal) > 1 else 's'} "
            f"numbers written with a decimal comma (e.g. '{example}'): training would read them as text",
            'add decimal: "," under data.training (the file\'s numbers are then read as numbers)',
        )


def misread_target(spec: Experiment, table: _Table) -> bool:
    """Whether the target holds numbers with a decimal comma the spec does not declare (read as text)."""
    found = _odd_columns(table).get(spec.data.training.target)
    return found is not None and found.kind == "decimal" and spec.data.training.decimal == "."


def row_findings(
    spec: Experiment, table: _Table, shown: str, kind: TaskKind | None, warnings: list[Finding]
) -> Iterator[Finding]:
    """The missing-target fraction and ``min_rows`` against the spec's data checks."""
    checks = spec.data.checks
    target = spec.data.training.target
    missing = _cached(table, ("missing_target", target), lambda: _missing_target(table, target))
    rows = table.rows - missing
    fraction = missing / table.rows if table.rows else 0.0
    read = f"{shown}" if table.complete else f"the first {table.rows:,} rows of {shown} (all validate reads)"
    if fraction > checks.max_missing_target_fraction:
        message = (
            f"{missing:,} of {table.rows:,} rows ({fraction:.1%}) of {read} have no value in target '{target}', "
            f"over max_missing_target_fraction: {checks.max_missing_target_fraction:g}"
        )
        hint = "fill in the labels, or raise the bound if dropping those rows is intended"
        where = ("data", "checks", "max_missing_target_fraction")
        if table.complete:
            yield (where, f"{message}: training would stop at its data checks", hint)
        else:
            warnings.append((where, f"{message}; training checks the whole file", hint))
    if rows < checks.min_rows:
        where = ("data", "checks", "min_rows")
        labelled = f"{rows:,} rows with a target" if missing else f"{rows:,} rows"
        if table.complete:
            yield (
                where,
                f"{shown} has {labelled}, fewer than min_rows: {checks.min_rows:,}: training would stop at its data "
                "checks",
                "use a larger export, or lower min_rows",
            )
        else:
            warnings.append(
                (
                    where,
                    f"validate read only the first {table.rows:,} rows of {shown} ({labelled}), fewer than "
                    f"min_rows: {checks.min_rows:,}; training counts the whole file",
                    None,
                )
            )


def split_findings(spec: Experiment, table: _Table, shown: str, kind: TaskKind | None, warnings: list[Finding]) -> None:
    """Held-out rows identical to a training row, with the split training makes (a warning)."""
    count = _split_duplicates(spec, table, kind)
    if not count:
        return
    split = spec.data.split
    read = "" if table.complete else f" (in the first {table.rows:,} rows, all validate reads)"
    warnings.append(
        (
            ("data", "split"),
            f"{count:,} held-out row{'s' if count > 1 else ''} of {shown}{read} also occur among the training rows "
            f"(the same values in every column the model uses, seed {split.seed}, test_size {split.test_size:g}): "
            "the held-out metrics score answers the model has seen",
            "remove duplicate rows from the export, or check that the rows are really distinct measurements",
        )
    )


# -- per file ------------------------------------------------------------------------------------------------------


def _cached(table: _Table, key: tuple[Any, ...], compute: Any) -> Any:
    if key not in table.cache:
        table.cache[key] = compute()
    return table.cache[key]


def _odd_columns(table: _Table) -> dict[str, _Odd]:
    """Per text column: mostly numbers but some text, or numbers with a decimal comma (once per file)."""
    if "odd" not in table.cache:
        from airflow_bridge.ml.values import is_text

        found = {}
        for column in table.columns:
            series = table.frame[column]
            if is_text(series):
                odd = _odd(series)
                if odd is not None:
                    found[column] = odd
        table.cache["odd"] = found
    result: dict[str, _Odd] = table.cache["odd"]
    return result


def _odd(series: Any) -> _Odd | None:
    import pandas as pd

    def numbers(text: Any) -> Any:
        return pd.to_numeric(text, errors="coerce").notna()

    def values(part: Any) -> Any:
        text = part.dropna().astype(str).str.strip()
        return text[text != ""]

    sample = values(series.head(_SAMPLE * 5)).head(_SAMPLE)
    if sample.empty:
        return None
    if numbers(sample).mean() > 0.5:  # mostly numbers: count the text among them in the whole column
        text = values(series)
        bad = text[~numbers(text)]
        distinct = bad.drop_duplicates()
        return _Odd("text", len(bad), len(text), tuple(distinct.head(3)), len(distinct)) if len(bad) else None
    commas = sample.str.contains(",", regex=False)
    european = sample.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    if commas.any() and numbers(european).mean() > 0.5:
        return _Odd("decimal", int(commas.sum()), len(sample), tuple(sample[commas].head(3)))
    return None


def _declared(table: _Table, column: str, role: str | None) -> tuple[str, str] | None:
    """What training would refuse in ``column`` with this role (None: inferred), as message and hint."""
    from airflow_bridge.exceptions import DataError
    from airflow_bridge.ml.values import check_dates, check_numeric

    try:
        if role == "numeric":
            check_numeric(column, table.frame[column])
        else:
            check_dates(column, table.frame[column], required=role == "datetime")
    except DataError as exc:
        message, _, hint = str(exc).partition("; ")
        return message, hint
    return None


def _invalid_dates(table: _Table, column: str) -> tuple[int, int, list[str]] | None:
    from airflow_bridge.ml.values import invalid_dates

    return invalid_dates(table.frame[column])


def _missing_target(table: _Table, target: str) -> int:
    from airflow_bridge.exceptions import DataError
    from airflow_bridge.ml.data import drop_missing_target

    try:
        return drop_missing_target(table.frame, target)[1]
    except DataError:  # every target missing: reported as an empty target column
        return 0


def _split_duplicates(spec: Experiment, table: _Table, kind: TaskKind | None) -> int:
    """The count training records as ``duplicates_across_split``: its rows, columns and split."""
    training = spec.data.training
    split = spec.data.split
    features = tuple(training.features) if training.features is not None else None
    key = ("split", training.target, features, tuple(sorted(spec.data.columns.items())), split, kind)
    return int(_cached(table, key, lambda: _count_split_duplicates(spec, table, kind)))


def _count_split_duplicates(spec: Experiment, table: _Table, kind: TaskKind | None) -> int:
    """Training's own split (scikit-learn, imported only when the file has duplicate rows at all)."""
    from airflow_bridge.exceptions import DataError
    from airflow_bridge.ml import data as data_io

    training = spec.data.training
    target = training.target
    frame = _cached(table, ("labelled", target), lambda: _labelled(table, target))
    if frame is None:
        return 0
    candidates = list(training.features) if training.features else [c for c in frame.columns if c != target]
    used = tuple(c for c in candidates if spec.data.columns.get(c) != "ignore")
    if not _cached(table, ("repeats", target, used), lambda: _may_repeat(frame, list(used), target)):
        return 0
    from airflow_bridge.ml.columns import exclusion

    rows = len(frame)

    features = []
    for column in candidates:
        series = frame[column]
        distinct = int(series.nunique(dropna=True))
        overrides = dict(spec.data.columns)
        if exclusion(column, series, rows=rows, distinct=distinct, candidates=candidates, overrides=overrides) is None:
            features.append(column)
    if not features:
        return 0
    try:
        train, test = data_io.split(
            frame,
            training.target,
            features,
            test_size=spec.data.split.test_size,
            seed=spec.data.split.seed,
            stratify=spec.data.split.stratify and kind == "classification",
        )
    except DataError:  # training reports why it cannot split
        return 0
    return data_io.duplicates_across(train, test, [*features, training.target])


def _labelled(table: _Table, target: str) -> Any:
    """The rows training keeps (those with a target), or None when no row has one."""
    from airflow_bridge.exceptions import DataError
    from airflow_bridge.ml.data import drop_missing_target

    try:
        return drop_missing_target(table.frame, target)[0]
    except DataError:
        return None


def _may_repeat(frame: Any, candidates: list[str], target: str) -> bool:
    """Whether two rows can be equal in the columns training uses: a cheap test that needs no split.

    Compares fewer columns than training may use (every column unique per row left out, as training
    leaves out identifiers), so "no repeated row" here means none for training either.
    """
    rows = len(frame)
    kept = [c for c in candidates if not (rows >= 2 and frame[c].nunique(dropna=True) == rows)]
    return bool(frame[[*kept, target]].duplicated().any())


# -- messages ------------------------------------------------------------------------------------------------------


def _position(spec: Experiment, column: str) -> tuple[str | int, ...]:
    if column in spec.data.columns:
        return ("data", "columns", column)
    features = spec.data.training.features
    if features is not None and column in features:
        return ("data", "training", "features", features.index(column))
    return _URI


def _text_among_numbers(column: str, odd: _Odd, shown: str, complete: bool) -> tuple[str, str]:
    examples = ", ".join(f"'{v}'" for v in odd.examples)
    rows = "" if complete else " (in the rows validate read)"
    message = (
        f"column '{column}' of {shown} holds numbers but {odd.count:,} of its {odd.total:,} values{rows} are text "
        f"({examples}{', …' if odd.distinct > len(odd.examples) else ''}): training would read the whole column as text"
    )
    listed = ", ".join(_yaml_text(v) for v in odd.examples)
    hint = (
        f"if they mean 'missing', list them under data.training.missing_values: [{listed}]; otherwise fix them in "
        f"the file, or use the column as text (under data.columns: {_yaml_text(column)}: text)"
    )
    return message, hint


def _not_dates(column: str, bad: tuple[int, int, list[str]], shown: str, role: str | None) -> tuple[str, str]:
    count, total, examples = bad
    listed = ", ".join(f"'{v}'" for v in examples)
    becomes = "them as missing" if role == "datetime" else "the whole column as categories or text, not dates"
    return (
        f"column '{column}' of {shown} holds dates but {count:,} of its {total:,} values are not dates of that "
        f"form ({listed}{', …' if count > len(examples) else ''}): training would read {becomes}",
        "fix them in the file, or list words that mean 'missing' under data.training.missing_values",
    )


def _yaml_text(value: str) -> str:
    """``value`` as YAML would read it back: quoted unless plain letters, digits, blanks, '_' and '-'."""
    plain = value.replace(" ", "").replace("_", "").replace("-", "").isalnum() and not value[0].isdigit()
    return value if plain else "'" + value.replace("'", "''") + "'"
