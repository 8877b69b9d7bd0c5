"""OpenLineage dataset names for training data, artifacts, the model registry and deployments.

Storage follows the OpenLineage naming spec (https://openlineage.io/docs/spec/naming): a local
file is namespace ``file`` and its absolute path; ``s3://bucket/key`` is ``s3://bucket`` + ``key``;
``gs://`` likewise; Azure is ``abfss://container@account.dfs.core.windows.net`` + path; PostgreSQL
is ``postgres://host:port`` + ``db.schema.table``. The registry is ``model-registry://host:port/db``
(or ``model-registry://sqlite/abs/path.db``): derived from the registry URL, never its credentials.
Pure functions: no Airflow, no OpenLineage.
"""

from __future__ import annotations

import os
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

REGISTRY_SCHEME = "model-registry"
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}


class DatasetId(NamedTuple):
    """An OpenLineage dataset identity: ``namespace`` (the datasource) and ``name`` within it."""

    namespace: str
    name: str


def storage_dataset(uri: str) -> DatasetId:
    """The OpenLineage dataset of a file or object at ``uri`` (a local path or any fsspec URI)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = parts.netloc.rpartition("@")[2]  # never keep user:password@
    key = unquote(parts.path).lstrip("/")
    if scheme in ("", "file") or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        if scheme == "file" and host not in ("", "localhost"):
            return DatasetId(f"file://{host}", unquote(parts.path))
        path = unquote(parts.path) if scheme == "file" else uri
        return DatasetId("file", os.path.abspath(path))
    if scheme in ("s3", "s3a", "s3n"):
        return DatasetId(f"s3://{host}", key)
    if scheme in ("gs", "gcs"):
        return DatasetId(f"gs://{host}", key)
    if scheme in ("abfs", "abfss", "az", "wasb", "wasbs"):
        # abfss://container@account.dfs.core.windows.net/path; the short fsspec form (abfs://container/path)
        # does not carry the account, so its namespace keeps the container only.
        container = parts.username
        kind = "wasbs" if scheme.startswith("wasb") else "abfss"
        return DatasetId(f"{kind}://{container}@{host}" if container else f"{kind}://{host}", key)
    if scheme in ("postgres", "postgresql"):
        port = parts.port or 5432
        table = ".".join(p for p in key.split("/") if p)
        return DatasetId(f"postgres://{parts.hostname}:{port}", table)
    if scheme in ("http", "https"):
        return DatasetId(f"{scheme}://{host}", unquote(parts.path) or "/")
    return DatasetId(f"{scheme}://{host}", key or unquote(parts.path))


def registry_namespace(url: str) -> str:
    """The namespace of every model in the registry at SQLAlchemy ``url``; the same for all its users.

    ``model-registry://db.internal:5432/model_registry`` or ``model-registry://sqlite/abs/registry.db``.
    User names and passwords are never part of it.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ":memory:"
        if database == ":memory:":
            return f"{REGISTRY_SCHEME}://sqlite:memory:"
        return f"{REGISTRY_SCHEME}://sqlite{os.path.abspath(database)}"
    port = parsed.port or _DEFAULT_PORTS.get(backend)
    authority = f"{parsed.host or 'localhost'}:{port}" if port else (parsed.host or "localhost")
    return f"{REGISTRY_SCHEME}://{authority}/{parsed.database or ''}".rstrip("/")


def model_dataset_name(model: str) -> str:
    """A registered model as a dataset: its versions are the dataset's versions."""
    return f"model/{model}"


def alias_dataset_name(model: str, alias: str) -> str:
    """What an alias serves (target ``local``: the registry itself answers ``registry://model@alias``)."""
    return f"model/{model}@{alias}"


def deployment_dataset(endpoint: str, model: str, alias: str, registry_ns: str) -> DatasetId:
    """The dataset a deployment writes: the alias in the registry, or the serving endpoint elsewhere."""
    if not endpoint or endpoint.startswith("registry://"):
        return DatasetId(registry_ns, alias_dataset_name(model, alias))
    return storage_dataset(endpoint)
