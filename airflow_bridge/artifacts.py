"""The artifact store: content-addressed, write-once files under a local folder or any fsspec URI.

An artifact's path ends in its sha256, so a path never holds two different contents: a retried
task writes the same bytes to the same place, and nothing is overwritten in place. Reads verify
the checksum and size recorded at registration before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any
from urllib.parse import urlsplit

from airflow_bridge.exceptions import ChecksumMismatchError, DataError
from airflow_bridge.registry.records import ArtifactRef


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
        if _is_local(uri):
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
            target = self._remote(uri)
            if not (target.exists() and target.stat().st_size == len(data)):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)  # object stores publish a PUT atomically
        return ref

    def read_verified(self, ref: ArtifactRef) -> bytes:
        """The artifact's bytes, checked against its checksum (read with the connection it was written with)."""
        return read_verified(ref)

    def _remote(self, uri: str) -> Any:
        return _remote(uri, self.conn_id)


def _remote(uri: str, conn_id: str | None) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id)


def read_verified(ref: ArtifactRef) -> bytes:
    """The artifact's bytes, refused loudly if they no longer match the recorded checksum.

    Every reader goes through here and uses the connection recorded with the artifact, so an artifact
    written with ``artifact_conn_id`` is read back with the same connection.
    """
    try:
        if _is_local(ref.uri):
            with open(urlsplit(ref.uri).path, "rb") as handle:
                data = handle.read()
        else:
            data = _remote(ref.uri, ref.conn_id).read_bytes()
    except FileNotFoundError:
        raise ChecksumMismatchError(f"artifact {ref.uri} is missing; it was deleted after registration") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256 or len(data) != ref.size:
        raise ChecksumMismatchError(
            f"artifact {ref.uri} was modified after registration: sha256 {digest[:12]}… ({len(data)} bytes) "
            f"!= recorded {ref.sha256[:12]}… ({ref.size} bytes); refusing to use it"
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


def _is_local(uri: str) -> bool:
    return urlsplit(uri).scheme in ("", "file")


def dump_model(estimator: Any) -> bytes:
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


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
