"""The artifact store: content-addressed, write-once files under a local folder or any fsspec URI.

An artifact's path ends in its sha256, so a path never holds two different contents: a retried
task writes the same bytes to the same place, and nothing is overwritten in place. Reads verify
the checksum and size recorded at registration before anything is unpickled. Remote roots
(``s3://...``) go through Airflow's ObjectStoragePath and an Airflow connection; their failures
become a ``StorageError`` naming the URI and the connection (docs/storage.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from airflow_bridge.exceptions import ChecksumMismatchError, DataError, StorageError


@dataclass(frozen=True)
class ArtifactRef:
    """An immutable artifact: where it is, its sha256, its size in bytes, and the Airflow connection it was
    written with (None for local files), so readers can fetch it with the same credentials."""

    uri: str
    sha256: str
    size: int
    conn_id: str | None = None


class ArtifactStore:
    """Write-once artifacts under ``root`` (``file:///...``, a plain path, or ``s3://...`` with ``conn_id``)."""

    def __init__(self, root: str, conn_id: str | None = None) -> None:
        self.root = root if urlsplit(root).scheme else "file://" + os.path.abspath(root)
        self.conn_id = conn_id

    def put(self, data: bytes, folder: str, suffix: str) -> ArtifactRef:
        """Store ``data`` at ``<root>/<folder>/<sha256><suffix>`` unless it is already there."""
        digest = hashlib.sha256(data).hexdigest()
        uri = f"{self.root.rstrip('/')}/{folder.strip('/')}/{digest}{suffix}"
        ref = ArtifactRef(uri, digest, len(data), self.conn_id)
        if is_local(uri):
            path = urlsplit(uri).path
            if not _holds(path, digest):  # a damaged copy under this name is replaced, never trusted
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".partial-")
                try:
                    os.fchmod(fd, ARTIFACT_MODE)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, path)  # atomic: readers see all bytes or no file
                    _fsync_folder(os.path.dirname(path))  # the name is durable before the version row is
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        else:
            _put_remote(ref, data)
        return ref

    def read_verified(self, ref: ArtifactRef) -> bytes:
        """The artifact's bytes, checked against its checksum (read with the connection it was written with)."""
        return read_verified(ref)


def _put_remote(ref: ArtifactRef, data: bytes) -> None:
    """Upload unless the object is already there with these exact bytes; never overwrite other bytes.

    An object store publishes a PUT whole or not at all, so other bytes under a content-addressed name
    were written by someone else (a bug or tampering): they are kept as evidence and the write is refused.
    """
    target = remote_path(ref.uri, ref.conn_id)
    try:
        found = _remote_size(target)
        if found is None:
            if urlsplit(ref.uri).scheme not in OBJECT_STORES:  # (s3fs's mkdir would create a missing bucket)
                target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return
        existing = target.read_bytes() if found == ref.size else None
    except StorageError:
        raise
    except Exception as exc:
        raise_storage_error(exc, ref.uri, ref.conn_id, "writing")
    if existing is not None and hashlib.sha256(existing).hexdigest() == ref.sha256:
        return  # a retry: the same bytes are already there
    shown = f"{found} bytes" + (f", sha256 {hashlib.sha256(existing).hexdigest()[:12]}…" if existing else "")
    raise StorageError(
        f"{ref.uri} already exists with other bytes ({shown}; expected {ref.size} bytes, sha256 "
        f"{ref.sha256[:12]}…), written outside airflow-bridge ({_via(ref.conn_id)}); it was not overwritten. "
        "Inspect it, then delete it and retry: the retry writes the right bytes"
    )


def _remote_size(target: Any) -> int | None:
    """The object's size, asked of the store (not a cached listing), or None when there is no object."""
    target.fs.invalidate_cache(target.path)
    try:
        info = target.fs.info(target.path)
    except FileNotFoundError as exc:
        if s3_error_code(exc) == "NoSuchBucket":
            raise
        return None
    return int(info["size"]) if info.get("type") == "file" else None


OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
"""Schemes without real folders: nothing is created before an object is written."""


def remote_path(uri: str, conn_id: str | None) -> Any:
    """``ObjectStoragePath(uri, conn_id)``, after checking that the connection is defined.

    Airflow would otherwise fall back to the default AWS credential chain and real AWS endpoints when
    the connection is missing, failing minutes later with an unrelated network error. Works inside an
    Airflow task (connections through the task API) and in a plain process (``AIRFLOW_CONN_<ID>``).
    """
    if conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise StorageError(
                f"connection '{conn_id}' for {uri} is not defined; create it (Admin → Connections, or "
                f"AIRFLOW_CONN_{conn_id.upper()} in the environment of the process that reads or writes, "
                "e.g. the pod) or fix the connection id"
            ) from None
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id)


def raise_storage_error(exc: BaseException, uri: str, conn_id: str | None, doing: str) -> NoReturn:
    """Raise :func:`storage_error`; a user's mistake without the botocore trace, an outage with it."""
    error = storage_error(exc, uri, conn_id, doing)
    if isinstance(error, StorageError):
        raise error from None
    raise error from exc


def storage_error(exc: BaseException, uri: str, conn_id: str | None, doing: str) -> Exception:
    """A clear error for a failed request to object storage: what went wrong, with what, and what to do.

    What the user must fix (refused credentials, a missing bucket, no credentials) is a ``StorageError``:
    retrying cannot help. An unreachable or failing store is a builtin ``ConnectionError`` (anything
    unknown an ``OSError``), which is not a ``BridgeError``, so Airflow retries the task.
    """
    via = _via(conn_id)
    code = s3_error_code(exc)
    kind = type(exc).__name__
    if code == "NoSuchBucket":
        return StorageError(
            f"bucket '{urlsplit(uri).netloc}' of {uri} does not exist ({via}); create it, or fix the bucket "
            "name in the URI"
        )
    if isinstance(exc, PermissionError) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageError(
            f"the credentials of {via} were refused while {doing} {uri} ({exc}); check the access key and "
            "secret in the connection (login and password), and that its user or role may "
            f"{'write to' if doing == 'writing' else 'read'} this bucket"
        )
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return StorageError(
            f"no credentials to reach {uri} ({via}); name an Airflow connection holding the access key "
            "(artifact_conn_id, data.training.conn_id) or give the process AWS credentials"
        )
    if kind in _UNREACHABLE or code in _UNAVAILABLE:
        return ConnectionError(
            f"cannot reach the object store for {uri} ({via}): {exc}; check endpoint_url in the connection's "
            "extra and that the store is up (the task is retried)"
        )
    return OSError(f"{doing} {uri} failed ({via}): {kind}: {exc}")


_UNREACHABLE = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
    }
)
_UNAVAILABLE = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "500", "503"})


def _via(conn_id: str | None) -> str:
    return f"connection '{conn_id}'" if conn_id else "no connection id: the default AWS credential chain"


def s3_error_code(exc: BaseException) -> str | None:
    """The S3 error code (``NoSuchBucket``...) behind an exception s3fs translated, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code") or "") or None
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, FileNotFoundError) and "bucket does not exist" in str(exc).lower():
        return "NoSuchBucket"
    return None


def read_verified(ref: ArtifactRef) -> bytes:
    """The artifact's bytes, refused loudly if they no longer match the recorded checksum.

    Every reader goes through here and uses the connection recorded with the artifact, so an artifact
    written with ``artifact_conn_id`` is read back with the same connection.
    """
    via = f" (connection '{ref.conn_id}')" if ref.conn_id else ""
    missing = ChecksumMismatchError(
        f"artifact {ref.uri} is missing; it was deleted after registration{via}. Nothing can be read from "
        "this version: train and register a new one"
    )
    if is_local(ref.uri):
        try:
            with open(urlsplit(ref.uri).path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise missing from None
    else:
        try:
            data = remote_path(ref.uri, ref.conn_id).read_bytes()
        except StorageError:
            raise
        except FileNotFoundError as exc:
            if s3_error_code(exc) == "NoSuchBucket":
                raise_storage_error(exc, ref.uri, ref.conn_id, "reading")
            raise missing from None
        except Exception as exc:
            raise_storage_error(exc, ref.uri, ref.conn_id, "reading")
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256 or len(data) != ref.size:
        raise ChecksumMismatchError(
            f"artifact {ref.uri} was modified after registration{via}: sha256 {digest[:12]}… ({len(data)} "
            f"bytes) != recorded {ref.sha256[:12]}… ({ref.size} bytes); refusing to use it"
        )
    return data


def _fsync_folder(folder: str) -> None:
    """Persist a rename: without it a power cut can lose the new name though the file's bytes were synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


ARTIFACT_MODE = 0o644
"""Artifacts are readable by other local accounts (a model server running as another user)."""


def _holds(path: str, digest: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest() == digest
    except FileNotFoundError:
        return False


def is_local(uri: str) -> bool:
    return urlsplit(uri).scheme in ("", "file")


def dump_model(estimator: Any) -> bytes:
    """A zlib-compressed pickle that ``joblib.load`` reads (KServe's sklearn server loads ``.joblib`` so).

    Pickled by the C pickler, not joblib's: joblib's pure-Python pickler copies pickle's dispatch table
    when joblib is imported, so in a process that imported dill first (Airflow's do) every artifact
    would need dill to load. These bytes need only the Pipeline's own packages, wherever they are written.
    """
    import pickle
    import zlib

    return zlib.compress(pickle.dumps(estimator, protocol=5), 3)


def load_model(data: bytes) -> Any:
    """Unpickle a model; only ever called on bytes whose checksum was verified."""
    import io

    import joblib

    return joblib.load(io.BytesIO(data))


def dump_frame(frame: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def load_frame(data: bytes) -> Any:
    import io

    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise DataError(f"cannot read the held-out split: {exc}") from None


def verify_artifact(ref: ArtifactRef) -> None:
    """Raise ``ChecksumMismatchError`` unless the artifact's bytes match the registered checksum."""
    read_verified(ref)
