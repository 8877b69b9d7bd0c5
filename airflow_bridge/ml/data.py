"""Reading training tables from local paths or any fsspec URI, profiling and splitting them."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from airflow_bridge.exceptions import DataError
from airflow_bridge.issues import did_you_mean


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    uri: str
    format: str
    sha256: str
    size: int


def infer_format(uri: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = os.path.splitext(urlsplit(uri).path)[1].lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise DataError(f"cannot infer the format of {uri}; set data.training.format to csv or parquet")


def read_bytes(uri: str, conn_id: str | None = None) -> bytes:
    """The raw bytes at ``uri``; local files directly, anything else through Airflow's ObjectStoragePath.

    Remote failures become a ``DataError`` (missing object, a folder) or a ``StorageError`` (unknown
    connection, refused credentials, missing bucket), each naming the URI and the connection.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        try:
            with open(parts.path if parts.scheme else uri, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            missing_local_file(uri)
            raise DataError(f"data not found: {uri}") from None
        except PermissionError:
            raise DataError(f"no permission to read {uri}") from None
        except IsADirectoryError:
            raise DataError(f"{uri} is a folder; point data.training.uri at a file") from None
    from airflow_bridge.artifacts import raise_storage_error, remote_path, s3_error_code
    from airflow_bridge.exceptions import StorageError

    via = f"connection '{conn_id}'" if conn_id else "no connection id"
    path = remote_path(uri, conn_id)
    try:
        data: bytes = path.read_bytes()
        if not data and path.is_dir():  # a prefix reads as empty bytes
            raise IsADirectoryError(uri)
    except StorageError:
        raise
    except IsADirectoryError:
        raise DataError(
            f"{uri} is a folder (a prefix), not an object ({via}); point data.training.uri at a file"
        ) from None
    except FileNotFoundError as exc:
        if s3_error_code(exc) == "NoSuchBucket":
            raise_storage_error(exc, uri, conn_id, "reading")
        raise DataError(
            f"data not found: {uri} ({via}); check the object's key (upload the file, or fix data.training.uri)"
        ) from None
    except Exception as exc:
        raise_storage_error(exc, uri, conn_id, "reading")
    return data


def read_table(
    uri: str,
    fmt: str | None = None,
    conn_id: str | None = None,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    nrows: int | None = None,
    decimal: str = ".",
    missing_values: Sequence[str] = (),
) -> Table:
    """Read a CSV or Parquet table; the sha256 of its bytes is the data fingerprint.

    Mistakes users make with real files get a message that names the fix: another delimiter, another
    encoding, a header without rows, nested Parquet columns. ``nrows`` reads only the first rows
    (``validate``); the fingerprint is still of the whole file. ``decimal`` and ``missing_values`` (CSV
    only) read ``1,5`` as a number and the file's own words for "missing" (``unknown``) as NA.
    """
    try:
        kind = infer_format(uri, fmt)
    except DataError:
        missing_local_file(uri)  # a mistyped name (.cvs) is "not found", before any question of format
        raise
    raw = read_bytes(uri, conn_id)
    frame = (
        _read_csv(raw, uri, delimiter, encoding, nrows, decimal=decimal, missing_values=missing_values)
        if kind == "csv"
        else _read_parquet(raw, uri, nrows)
    )
    if frame.empty:
        what = "only a header" if len(frame.columns) else "nothing"
        raise DataError(f"{uri} holds {what}: no rows to train on; check that the file was exported completely")
    return Table(frame, uri, kind, hashlib.sha256(raw).hexdigest(), len(raw))


_OTHER_DELIMITERS = (";", "\t", "|")


def missing_local_file(uri: str) -> None:
    """Raise "not found" (with the closest name in its folder) when ``uri`` is a local path with no file."""
    parts = urlsplit(uri)
    if parts.scheme not in ("", "file"):
        return
    path = parts.path if parts.scheme else uri
    if os.path.exists(path):
        return
    folder = os.path.dirname(path) or "."
    try:
        siblings = [os.path.join(os.path.dirname(uri), name) for name in os.listdir(folder)]
    except OSError:
        siblings = []
    hint = did_you_mean(uri, siblings)
    raise DataError(f"data not found: {uri}" + (f" ({hint})" if hint else ""))


def _read_csv(
    raw: bytes,
    uri: str,
    delimiter: str | None,
    encoding: str | None,
    nrows: int | None,
    *,
    decimal: str = ".",
    missing_values: Sequence[str] = (),
) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep=delimiter or ",",
            encoding=encoding or "utf-8",
            nrows=nrows,
            skipinitialspace=True,
            decimal=decimal,
            na_values=list(missing_values) or None,
        )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{uri} is not {encoding or 'UTF-8'} text (byte {exc.start}: {exc.reason}); set data.training.encoding "
            "to the file's encoding, e.g. latin-1 or cp1252, or save it as UTF-8"
        ) from None
    except LookupError:
        raise DataError(f"{uri}: unknown encoding '{encoding}'; use a Python codec name such as latin-1") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{uri} is empty: no header and no rows") from None
    except Exception as exc:  # pandas raises many types for malformed files
        raise DataError(f"cannot read {uri} as CSV: {exc}") from None
    if delimiter is None and len(frame.columns) == 1:
        header = str(frame.columns[0])
        for separator in _OTHER_DELIMITERS:
            if separator in header:
                shown = "\\t" if separator == "\t" else separator
                raise DataError(
                    f"{uri} looks '{shown}'-separated (its header is one column: '{header[:60]}'); set "
                    f"data.training.delimiter: '{shown}' or save it comma-separated"
                )
    return frame


def _read_parquet(raw: bytes, uri: str, nrows: int | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:
        raise DataError(f"cannot read {uri} as Parquet: {exc}") from None
    nested = [f.name for f in table.schema if pa_nested(f.type)]
    if nested:
        raise DataError(
            f"{uri} has nested columns ({', '.join(nested)}: lists, structs or maps); models take flat columns. "
            "Flatten them before training, or list only flat columns in data.training.features"
        )
    frame = table.to_pandas()
    return frame.head(nrows) if nrows is not None else frame


def pa_nested(arrow_type: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_nested(arrow_type))


def select_columns(
    frame: pd.DataFrame, uri: str, target: str, features: list[str] | None, groups: Sequence[str] = ()
) -> list[str]:
    """The feature columns, after checking the target, features and ``data.groups`` columns exist."""
    columns = [str(c) for c in frame.columns]
    named = [
        (target, "target column '{}'"),
        *((f, "feature column '{}'") for f in features or []),
        *((g, "groups column '{}' (data.groups)") for g in groups),
    ]
    for name, what in named:
        if name not in columns:
            hint = did_you_mean(name, columns)
            raise DataError(
                f"{what.format(name)} is not in {uri}"
                + (f" ({hint})" if hint else "")
                + f"; columns are: {', '.join(columns[:20])}"
            )
    return list(features) if features else [c for c in columns if c != target]


def drop_missing_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """Rows whose target is missing cannot teach or test a model: they are dropped and counted."""
    missing = frame[target].isna()
    if pd.api.types.is_object_dtype(frame[target]) or pd.api.types.is_string_dtype(frame[target]):
        missing |= frame[target].astype("string").str.strip().fillna("") == ""
    count = int(missing.sum())
    if count == len(frame):
        raise DataError(f"target column '{target}' is empty in every row; point data.training.target at the label")
    return (frame.loc[~missing].reset_index(drop=True), count) if count else (frame, 0)


def check_target(frame: pd.DataFrame, target: str, task_kind: str, uri: str) -> None:
    """A classifier needs at least two classes in the target."""
    if task_kind != "classification":
        return
    classes = frame[target].dropna().unique()
    if len(classes) < 2:
        raise DataError(
            f"target '{target}' in {uri} has a single class ({classes[0]!r}); a classifier needs at least two. "
            "Check the export (a filtered file?) or pick another target"
        )


def profile(frame: pd.DataFrame, used_columns: list[str]) -> dict[str, Any]:
    """Rows, column types and null fractions: what data checks and lineage facets need."""
    rows = len(frame)
    return {
        "rows": rows,
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
        "null_fraction": {str(c): float(frame[c].isna().mean()) if rows else 0.0 for c in frame.columns},
        "used_columns": used_columns,
    }


def split(
    frame: pd.DataFrame,
    target: str,
    features: list[str],
    *,
    test_size: float,
    seed: int,
    stratify: bool,
    estimator: str | None = None,
    keep: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and held-out frames (features + target), reproducible for a seed.

    ``estimator`` (its dotted name) lets the error for a classifier on a continuous target name the
    regressor to use instead; with a continuous target, ``stratify: false`` would only hide the mistake.
    ``keep`` names extra columns (``data.groups``) carried in both frames but never fitted on.
    """
    from sklearn.model_selection import train_test_split

    from airflow_bridge.ml.targets import counterpart, target_shape

    data = frame[list(dict.fromkeys([*features, *keep, target]))]  # keep: data.groups columns, for the report
    labels = data[target] if stratify else None
    if labels is not None and (labels.value_counts() < 2).any():
        shape = target_shape(labels)
        if shape.kind == "continuous":
            other = counterpart(estimator or "", "regression")
            instead = (
                f"use {estimator.rsplit('.', 1)[-1]}'s regressor counterpart, model.estimator: {other}"
                if estimator
                else f"use a regressor, e.g. model.estimator: {other}"
            )
            raise DataError(
                f"target '{target}' looks continuous ({shape.describe()}), so a classifier cannot learn it: "
                f"{instead}, with regression metrics such as r2 or mae"
            )
        raise DataError(
            f"cannot stratify on '{target}': some classes have fewer than 2 rows; set data.split.stratify: false"
        )
    try:
        train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"cannot split the data: {exc}") from None
    return train, test


def duplicates_across(train: pd.DataFrame, test: pd.DataFrame, columns: Sequence[str]) -> int:
    """Held-out rows whose ``columns`` (features and target) equal those of some training row.

    Such rows are scored on answers the model has seen, which flatters the held-out metrics. One
    vectorised hash per row (missing values compare equal); used by training and by ``validate``.
    """
    if train.empty or test.empty:
        return 0
    names = list(columns)
    seen = pd.util.hash_pandas_object(train[names], index=False)
    held = pd.util.hash_pandas_object(test[names], index=False)
    return int(held.isin(seen).sum())
