"""A spec checked against its training data: the mistakes that would otherwise fail a run minutes in.

Used by ``airflow-bridge validate`` (unless ``--no-data``) when the data is a local file (a path
relative to the spec, or file://); remote URIs (s3://, gs://...) need credentials and are not read.
The file is read with the same reader as training (:func:`airflow_bridge.ml.data.read_table`): whole
when it is small, its first rows otherwise. Each file is read once per process however many specs
use it. Reports, with their position in the spec: an unreadable file, columns the spec names that
the file lacks, a target that does not suit the task, and empty columns; the mistakes in the values
(text among numbers, decimal commas, dates, missing targets, ``min_rows``, rows repeated across the
split) come from :mod:`airflow_bridge.spec.datamistakes`. Imports pandas (through the reader) only
when called, and never Airflow or scikit-learn (except to check the parameters of an estimator a
team policy adds, which the committed table does not cover, and to reproduce training's split for a
file that has repeated rows).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_bridge.issues import did_you_mean
from airflow_bridge.ml.targets import TargetShape, counterpart, target_shape
from airflow_bridge.spec.params import ParamTable, check_params

if TYPE_CHECKING:
    from airflow_bridge.ml.catalogue import TaskKind
    from airflow_bridge.spec.models import Experiment, TrainingData
    from airflow_bridge.spec.semantics import Finding

WHOLE_FILE_BYTES = 32 * 2**20
"""Files up to this size are read whole; larger ones only their first ``SAMPLE_ROWS`` rows."""
SAMPLE_ROWS = 100_000
MAX_FILE_BYTES = 2**30
"""Larger files are not read by validate (the reader loads the file's bytes); training checks them."""

_URI = ("data", "training", "uri")
_TARGET = ("data", "training", "target")


@dataclass
class _Table:
    """What validate needs from a data file; cached per file (and its size and mtime)."""

    columns: tuple[str, ...]
    rows: int
    complete: bool
    frame: Any
    empty: frozenset[str]
    targets: dict[str, TargetShape] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)
    """What the checks of :mod:`airflow_bridge.spec.datamistakes` compute once per file."""

    def target(self, name: str) -> TargetShape:
        if name not in self.targets:
            self.targets[name] = target_shape(self.frame[name])
        return self.targets[name]


@dataclass(frozen=True)
class _Unreadable:
    message: str
    hint: str | None = None


def local_data_path(resolved_uri: str) -> str | None:
    """The local file behind a resolved data URI, or None for remote storage (never read here)."""
    return resolved_uri[len("file://") :] if resolved_uri.startswith("file://") else None


def check_data(spec: Experiment, path: str, kind: TaskKind | None, warnings: list[Finding]) -> Iterator[Finding]:
    """Every problem of ``spec`` with the local data file at ``path``; notes that block nothing go to ``warnings``."""
    training = spec.data.training
    shown = training.uri
    table = _read(path, training, warnings)
    if table is None:
        return
    if isinstance(table, _Unreadable):
        yield (_URI, table.message, table.hint)
        return
    from airflow_bridge.spec import datamistakes

    missing = list(_missing_columns(spec, table, shown))
    yield from missing
    yield from _empty_columns(spec, table, shown, warnings)
    if training.target in table.columns and not datamistakes.misread_target(spec, table):
        yield from _target_problems(spec, table, shown, kind)
    if missing:  # the checks below take the columns the spec names as present
        return
    values = list(datamistakes.value_findings(spec, table, shown, warnings))
    yield from values
    yield from datamistakes.row_findings(spec, table, shown, kind, warnings)
    if not values:  # a split of misread columns would count the wrong thing
        datamistakes.split_findings(spec, table, shown, kind, warnings)


def check_imported_params(estimator: str, params: dict[str, Any]) -> Iterator[Finding]:
    """Parameters of an estimator outside the committed table (a team policy's): imports its class.

    Nothing is reported when the class cannot be imported here (it may exist only on the workers).
    """
    table = _imported_table(estimator)
    if table:
        yield from check_params(estimator, params, table)


@functools.lru_cache(maxsize=64)
def _imported_table(estimator: str) -> ParamTable | None:
    import importlib

    from airflow_bridge.spec.params import constraints_of

    module, _, name = estimator.rpartition(".")
    try:
        return constraints_of(getattr(importlib.import_module(module), name))
    except Exception:  # any import-time failure of a third-party package: skip, training reports it
        return None


# -- reading ------------------------------------------------------------------------------------------------------


def _read(path: str, training: TrainingData, warnings: list[Finding]) -> _Table | _Unreadable | None:
    shown = training.uri
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return not_found(path, shown)
    except OSError as exc:
        return _Unreadable(f"cannot read {shown}: {exc.strerror}")
    if os.path.isdir(path):
        return _Unreadable(f"{shown} is a folder", "point data.training.uri at a file")
    if stat.st_size > MAX_FILE_BYTES:
        warnings.append(
            (
                _URI,
                f"{shown} is not read by validate: {stat.st_size / 2**30:.1f} GiB is over its "
                f"{MAX_FILE_BYTES // 2**30} GiB limit; training checks its columns and target",
                "pass --no-data to skip reading data",
            )
        )
        return None
    suffix = PurePosixPath(path).suffix.lower()
    options = (
        training.format or ("parquet" if suffix in (".parquet", ".pq") else "csv"),
        training.delimiter,
        training.encoding,
        training.decimal,
        tuple(training.missing_values),
    )
    loaded = _load(path, (stat.st_mtime_ns, stat.st_size), options)
    if isinstance(loaded, _Unreadable):  # the reader names the absolute path: show it as the spec writes it
        return _Unreadable(loaded.message.replace(path, shown), loaded.hint)
    return loaded


def not_found(path: str, shown: str) -> _Unreadable:
    """The data file is missing: say so, with the closest name in its folder."""
    folder = os.path.dirname(path)
    written_folder = shown.rsplit("/", 1)[0] + "/" if "/" in shown else ""
    try:
        siblings = [written_folder + name for name in os.listdir(folder)]
    except OSError:
        siblings = []
    hint = did_you_mean(shown, siblings) or "a relative path starts from the spec file's folder"
    return _Unreadable(f"data file '{shown}' not found at {path}", hint)


@functools.lru_cache(maxsize=16)
def _load(
    path: str, version: tuple[int, int], options: tuple[str, str | None, str | None, str, tuple[str, ...]]
) -> _Table | _Unreadable:
    """Read once per file version (mtime, size) and options (format, delimiter, encoding, decimal mark,
    missing values): the same file serves every spec that uses it."""
    from airflow_bridge.exceptions import DataError
    from airflow_bridge.ml.data import read_table

    fmt, delimiter, encoding, decimal, missing_values = options
    complete = version[1] <= WHOLE_FILE_BYTES
    try:
        frame = read_table(
            path,
            fmt,
            None,
            delimiter=delimiter,
            encoding=encoding,
            nrows=None if complete else SAMPLE_ROWS,
            decimal=decimal,
            missing_values=missing_values,
        ).frame
    except DataError as exc:
        return _Unreadable(str(exc))
    complete = complete or len(frame) < SAMPLE_ROWS
    columns = tuple(str(c) for c in frame.columns)
    frame.columns = list(columns)
    return _Table(columns, len(frame), complete, frame, _empty_columns_of(frame) if complete else frozenset())


def _empty_columns_of(frame: Any) -> frozenset[str]:
    """Columns without a value: all missing, or (text) only blanks. Numbers in one vectorised pass."""
    import numpy as np

    numeric = frame.select_dtypes("number")
    missing = np.isnan(numeric.to_numpy(dtype=float)).all(axis=0) if len(numeric) else [True] * numeric.shape[1]
    empty = {str(c) for c, none in zip(numeric.columns, missing, strict=True) if none}
    for column in frame.columns.difference(numeric.columns, sort=False):
        values = frame[column].dropna()
        if values.empty or (str(values.iloc[0]).strip() == "" and (values.astype(str).str.strip() == "").all()):
            empty.add(str(column))
    return frozenset(empty)


# -- checks -------------------------------------------------------------------------------------------------------


def _missing_columns(spec: Experiment, table: _Table, shown: str) -> Iterator[Finding]:
    training = spec.data.training
    named: list[tuple[tuple[str | int, ...], str, str]] = [(_TARGET, training.target, "target column")]
    named += [(("data", "training", "features", i), c, "feature column") for i, c in enumerate(training.features or [])]
    named += [
        (("data", "checks", "required_columns", i), c, "required column")
        for i, c in enumerate(spec.data.checks.required_columns)
    ]
    named += [(("data", "columns", c), c, "column") for c in spec.data.columns]
    named += [(("data", "groups", i), c, "groups column") for i, c in enumerate(spec.data.groups)]
    for where, column, what in named:
        if column not in table.columns:
            hint = did_you_mean(column, table.columns) or f"its columns: {_listing(table.columns)}"
            yield (where, f"{what} '{column}' is not in {shown}", hint)


def _empty_columns(spec: Experiment, table: _Table, shown: str, warnings: list[Finding]) -> Iterator[Finding]:
    """Empty columns are excluded from training: an error when the spec asks to use one, else a warning."""
    training = spec.data.training
    for index, column in enumerate(training.features or []):
        if column in table.empty:
            yield (
                ("data", "training", "features", index),
                f"column '{column}' is empty in every row of {shown}: training would exclude it",
                "fill it in, or remove it from features",
            )
    for column, role in spec.data.columns.items():
        if column in table.empty and role != "ignore":
            yield (
                ("data", "columns", column),
                f"column '{column}' is empty in every row of {shown}: it cannot be used as {role}",
                f"fill it in, or set it to ignore ({column}: ignore)",
            )
    if training.features is None:
        unnamed = [c for c in table.columns if c in table.empty and c != training.target and c not in spec.data.columns]
        if unnamed:
            listed = ", ".join(f"'{c}'" for c in unnamed)
            several = len(unnamed) > 1
            warnings.append(
                (
                    _URI,
                    f"column{'s' if several else ''} {listed} {'are' if several else 'is'} empty in every row of "
                    f"{shown}: training excludes {'them' if several else 'it'}",
                    "nothing to fix; remove the column from the file to silence this warning",
                )
            )


def _target_problems(spec: Experiment, table: _Table, shown: str, kind: TaskKind | None) -> Iterator[Finding]:
    target = spec.data.training.target
    shape = table.target(target)
    if shape.kind == "empty":
        if table.complete:
            yield (
                _TARGET,
                f"target column '{target}' is empty in every row of {shown}",
                "point data.training.target at the column that holds the labels",
            )
        return
    if kind is None:
        return
    estimator = spec.model.estimator
    short = estimator.rsplit(".", 1)[-1]
    where = ("model", "task") if spec.model.task else ("model", "estimator")
    if shape.kind == "single" and table.complete:
        if kind == "classification":
            message = f"target '{target}' has a single class ({shape.examples[0]}) in all {shape.rows} rows of {shown}"
            yield (_TARGET, f"{message}: a classifier needs at least two", "check the export (a filtered file?)")
        else:
            message = f"target '{target}' has the same value ({shape.examples[0]}) in all {shape.rows} rows of {shown}"
            yield (_TARGET, f"{message}: there is nothing to predict", "check the export, or pick another target")
    elif kind == "classification" and shape.kind == "continuous":
        other = counterpart(estimator, "regression")
        yield (
            where,
            f"{short} is a classifier but target '{target}' looks continuous: {shape.describe()}",
            f"to predict a quantity use a regressor, {other}, and regression metrics such as r2 or mae"
            + (", with task: regression" if spec.model.task else ""),
        )
    elif kind == "regression" and shape.kind == "text":
        other = counterpart(estimator, "classification")
        holds = "true/false values" if shape.boolean else "text"
        yield (
            where,
            f"{short} is a regressor but target '{target}' holds {holds} ({', '.join(shape.examples)})",
            f"to predict classes use a classifier, {other}, and classification metrics such as accuracy or f1"
            + (", with task: classification" if spec.model.task else ""),
        )


def _listing(columns: tuple[str, ...], limit: int = 20) -> str:
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    return ", ".join(columns[:limit]) + more
