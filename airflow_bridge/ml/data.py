"""Reading training tables from local paths or any fsspec URI, profiling and splitting them."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from airflow_bridge.exceptions import DataError
from airflow_bridge.spec.issues import did_you_mean


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
    """The raw bytes at ``uri``; local files directly, anything else through Airflow's ObjectStoragePath."""
    parts = urlsplit(uri)
    try:
        if parts.scheme in ("", "file"):
            with open(parts.path if parts.scheme else uri, "rb") as handle:
                return handle.read()
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(uri, conn_id=conn_id).read_bytes()
    except FileNotFoundError:
        raise DataError(f"data not found: {uri}") from None
    except PermissionError:
        raise DataError(f"no permission to read {uri}") from None
    except IsADirectoryError:
        raise DataError(f"{uri} is a folder; point data.training.uri at a file") from None


def read_table(uri: str, fmt: str | None = None, conn_id: str | None = None) -> Table:
    """Read a CSV or Parquet table; the sha256 of its bytes is the data fingerprint."""
    kind = infer_format(uri, fmt)
    raw = read_bytes(uri, conn_id)
    try:
        frame = pd.read_csv(io.BytesIO(raw)) if kind == "csv" else pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pandas raises many types for malformed files
        raise DataError(f"cannot read {uri} as {kind}: {exc}") from None
    if frame.empty:
        raise DataError(f"{uri} holds no rows")
    return Table(frame, uri, kind, hashlib.sha256(raw).hexdigest(), len(raw))


def select_columns(frame: pd.DataFrame, uri: str, target: str, features: list[str] | None) -> list[str]:
    """The feature columns, after checking the target and features exist."""
    columns = [str(c) for c in frame.columns]
    for name, what in [(target, "target"), *((f, "feature") for f in features or [])]:
        if name not in columns:
            hint = did_you_mean(name, columns)
            raise DataError(
                f"{what} column '{name}' is not in {uri}"
                + (f" ({hint})" if hint else "")
                + f"; columns are: {', '.join(columns[:20])}"
            )
    return list(features) if features else [c for c in columns if c != target]


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
    frame: pd.DataFrame, target: str, features: list[str], *, test_size: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and held-out frames (features + target), reproducible for a seed."""
    from sklearn.model_selection import train_test_split

    data = frame[[*features, target]]
    labels = data[target] if stratify else None
    if labels is not None and (labels.value_counts() < 2).any():
        raise DataError(
            f"cannot stratify on '{target}': some classes have fewer than 2 rows; set data.split.stratify: false"
        )
    try:
        train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"cannot split the data: {exc}") from None
    return train, test
