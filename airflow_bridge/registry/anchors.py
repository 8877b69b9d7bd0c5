"""Audit-chain anchors in write-once storage: the chain head (seq, hash) kept where the registry cannot reach.

Whoever can write to the registry database can rewrite the hash chain from some row on, or cut off its newest
rows, and it still verifies; an earlier anchor in storage that refuses overwrites and deletes (S3 Object Lock in
COMPLIANCE mode, read-only files) shows it. Writes never overwrite; rewriting the same anchor is a no-op. Store
failures are ``StorageError`` (outages ``ConnectionError``/``OSError``, retried by Airflow), content and setup
problems ``AnchorError``; messages name the URI and connection, never a secret. moto 5.2.5 (the tests' S3) has
Object Lock, COMPLIANCE puts, IfNoneMatch and refuses deleting a locked version, but answers GetObjectRetention
with a 500: retention is read from get_object's ObjectLock* fields (as on S3), get_object_retention as fallback.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_bridge.exceptions import BridgeError, StorageError

FORMAT = "airflow-bridge-anchor/v1"
FORMAT_HEADS = "airflow-bridge-anchor/v2"
"""v2 anchors carry the head of every audit stream (per-model chains); ``hash`` is ``heads_root(heads)``."""
_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {"seq", "hash", "anchored_at", "registry", "format"}
_KEYS_HEADS = {*_KEYS, "heads"}
_NO_LOCK = ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "InvalidRequest")


class AnchorError(BridgeError):
    """An anchor cannot be written or read: malformed content, a conflicting anchor, or unsafe storage."""


@dataclass(frozen=True)
class Anchor:
    """The audit chain's head at a moment, and where it was written to or read from."""

    seq: int
    hash: str
    anchored_at: dt.datetime
    registry: str
    location: str = ""
    retention: str = ""
    heads: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict, compare=False, hash=False)
    """Stream → (position, hash) of every audit chain's head (v2); empty for a v1 anchor of one chain."""

    @property
    def covered(self) -> dict[str, tuple[int, str]]:
        """The heads this anchor vouches for: its streams (v2), or the one global chain (v1)."""
        return dict(self.heads) if self.heads else {"": (self.seq, self.hash)}

    @property
    def name(self) -> str:
        """The file or object name: sorts by seq; the hash prefix keeps two heads with one seq apart."""
        return f"{self.seq:020d}-{self.hash[:16]}.json"


def heads_root(heads: dict[str, tuple[int, str]]) -> str:
    """One hash for a set of stream heads (a v2 anchor's ``hash``)."""
    canonical = json.dumps({s: list(h) for s, h in sorted(heads.items())}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def of_heads(heads: dict[str, tuple[int, str]], anchored_at: dt.datetime, registry: str) -> Anchor:
    """A v2 anchor of ``heads``: ``seq`` counts every event they cover, ``hash`` is their root."""
    return Anchor(sum(p for p, _ in heads.values()), heads_root(heads), anchored_at, registry, heads=dict(heads))


def _heads_problem(heads: Any) -> str | None:
    if not isinstance(heads, dict):
        return "heads must be a mapping of stream to [position, hash]"
    for stream, head in heads.items():
        ok = isinstance(head, list | tuple) and len(head) == 2 and isinstance(head[0], int) and head[0] >= 0
        if not (isinstance(stream, str) and ok and isinstance(head[1], str) and _HASH.match(head[1])):
            return f"the head of stream {stream!r} must be [position >= 0, 64 lowercase hex], not {head!r}"
    return None


def _problem(anchor: Anchor) -> str | None:
    if anchor.heads:
        problem = _heads_problem(anchor.heads)
        if problem:
            return problem
        if anchor.hash != heads_root(anchor.heads) or anchor.seq != sum(p for p, _ in anchor.heads.values()):
            return "seq and hash must count and hash its heads"
    if isinstance(anchor.seq, bool) or not isinstance(anchor.seq, int) or anchor.seq < 0:
        return f"seq must be an integer >= 0, not {anchor.seq!r}"
    if not isinstance(anchor.hash, str) or not _HASH.match(anchor.hash):
        return f"hash must be 64 lowercase hex characters, not {anchor.hash!r}"
    if not isinstance(anchor.anchored_at, dt.datetime) or anchor.anchored_at.utcoffset() is None:
        return f"anchored_at must be a timezone-aware datetime, not {anchor.anchored_at!r}"
    if not isinstance(anchor.registry, str) or urlsplit(anchor.registry).password not in (None, "***"):
        return "registry must be a string without a password (registry.describe_url hides it)"
    return None


def anchor_to_json(anchor: Anchor) -> bytes:
    """The anchor's canonical JSON (sorted keys, no spaces): equal anchors give equal bytes."""
    if problem := _problem(anchor):
        raise AnchorError(f"invalid anchor: {problem}")
    at = anchor.anchored_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields: dict[str, Any] = {
        "seq": anchor.seq,
        "hash": anchor.hash,
        "anchored_at": at,
        "registry": anchor.registry,
        "format": FORMAT,
    }
    if anchor.heads:
        fields.update(format=FORMAT_HEADS, heads={s: list(h) for s, h in anchor.heads.items()})
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def anchor_from_json(data: bytes, location: str) -> Anchor:
    """Parse and check one anchor; anything malformed is an ``AnchorError`` naming ``location``."""
    try:
        fields = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnchorError(f"anchor {location} is not valid JSON ({exc})") from None
    v2 = isinstance(fields, dict) and set(fields) == _KEYS_HEADS and fields["format"] == FORMAT_HEADS
    if not v2 and (not isinstance(fields, dict) or set(fields) != _KEYS or fields["format"] != FORMAT):
        raise AnchorError(f"anchor {location} is not an {FORMAT} object (keys {sorted(_KEYS)}) or {FORMAT_HEADS}")
    try:
        at = dt.datetime.fromisoformat(fields["anchored_at"])
    except (TypeError, ValueError):
        raise AnchorError(f"anchor {location}: anchored_at is not ISO 8601: {fields['anchored_at']!r}") from None
    heads = fields.get("heads") or {}
    if problem := _heads_problem(heads):
        raise AnchorError(f"anchor {location}: {problem}")
    anchor = Anchor(
        fields["seq"],
        fields["hash"],
        at,
        fields["registry"],
        location=location,
        heads={s: (int(h[0]), str(h[1])) for s, h in heads.items()},
    )
    if problem := _problem(anchor):
        raise AnchorError(f"anchor {location}: {problem}")
    return dataclasses.replace(anchor, anchored_at=at.astimezone(dt.UTC))


def _named(data: bytes, location: str) -> Anchor:
    """A stored anchor, whose name must match its content (a renamed or copied file is not trusted)."""
    anchor = anchor_from_json(data, location)
    if location.rsplit("/", 1)[-1] != anchor.name:
        raise AnchorError(f"anchor {location} holds seq {anchor.seq}, hash {anchor.hash[:16]}…: not its name")
    return anchor


def write_anchor(uri: str, anchor: Anchor, *, conn_id: str | None = None, retain_days: int = 3650) -> Anchor:
    """Write one anchor as JSON; never overwrites. Returns the anchor with ``location`` set."""
    data = anchor_to_json(anchor)
    kind, where = _parse(uri)
    if kind == "s3" and retain_days < 1:
        raise AnchorError(f"retain_days must be at least 1 for {uri}, not {retain_days}")
    if kind == "file":
        location = _write_file(Path(where), anchor.name, data, uri)
    else:
        location = _write_s3(uri, where, anchor.name, data, conn_id=conn_id, retain_days=retain_days)
    return dataclasses.replace(anchor, location=location, retention="")


def read_anchors(uri: str, *, conn_id: str | None = None) -> list[Anchor]:
    """Every anchor under ``uri``, oldest (lowest seq) first; a malformed object is an AnchorError naming it."""
    kind, where = _parse(uri)
    anchors = _read_files(Path(where), uri) if kind == "file" else _read_s3(uri, where, conn_id)
    return sorted(set(anchors), key=lambda anchor: (anchor.seq, anchor.location))  # set: identical S3 versions


def _parse(uri: str) -> tuple[str, str]:
    """``("file", folder)`` or ``("s3", "bucket/prefix")``; anything else is an ``AnchorError``."""
    parts = urlsplit(uri)
    if not parts.scheme and uri:
        return "file", uri
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return "file", parts.path
    if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
        return "s3", f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    raise AnchorError(f"unsupported anchor location {uri!r}: use a folder (path or file:///dir) or s3://bucket/prefix")


def _write_file(folder: Path, name: str, data: bytes, uri: str) -> str:
    """Create the file read-only and exclusively (a crash mid-write leaves a file read_anchors calls malformed)."""
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444)
        except FileExistsError:
            if path.read_bytes() == data:
                return str(path)
            raise AnchorError(f"anchor {path} under {uri} already exists with other content; not overwritten") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        folder_fd = os.open(folder, os.O_RDONLY)
        os.fsync(folder_fd)  # the new name is durable too
        os.close(folder_fd)
    except OSError as exc:
        raise StorageError(f"cannot write anchor {path} under {uri}: {exc}") from None
    return str(path)


def _read_files(folder: Path, uri: str) -> list[Anchor]:
    if not folder.is_dir():
        raise AnchorError(f"anchor folder {folder} of {uri} does not exist")
    anchors = []
    for path in sorted(folder.glob("*.json")):
        try:
            data, mode = path.read_bytes(), path.stat().st_mode
        except OSError as exc:
            raise StorageError(f"cannot read anchor {path} under {uri}: {exc}") from None
        retention = "writable file (not write-once)" if mode & 0o222 else "read-only file"
        anchors.append(dataclasses.replace(_named(data, str(path)), retention=retention))
    return anchors


def _client(uri: str, conn_id: str | None) -> Any:
    """A boto3 S3 client: from the Airflow AWS connection ``conn_id``, else the default AWS chain."""
    if not conn_id:
        import boto3

        return boto3.client("s3")
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:  # S3Hook would silently fall back to the default AWS chain for an unknown id
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise StorageError(f"connection '{conn_id}' for {uri} is not defined; define it or fix the id") from None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def _store_error(exc: Exception, uri: str, conn_id: str | None, doing: str) -> Exception:
    """The clear error for a failed S3 request (see ``artifacts.storage_error``), naming URI and connection."""
    from airflow_bridge.artifacts import storage_error

    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return StorageError(f"no credentials to reach {uri} (no connection id): pass conn_id or set AWS credentials")
    return storage_error(exc, uri, conn_id, doing)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _locked(client: Any, bucket: str) -> bool:
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except Exception as exc:
        if _code(exc) in _NO_LOCK:
            return False
        raise
    return bool(config.get("ObjectLockEnabled") == "Enabled")


def _write_s3(uri: str, where: str, name: str, data: bytes, *, conn_id: str | None, retain_days: int) -> str:
    bucket, _, prefix = where.partition("/")
    key = f"{prefix}/{name}".lstrip("/")
    location, via = f"s3://{bucket}/{key}", f"connection '{conn_id}'" if conn_id else "default AWS credentials"
    try:
        client = _client(uri, conn_id)
        if not _locked(client, bucket):
            raise AnchorError(
                f"bucket '{bucket}' of {uri} ({via}) has no Object Lock, so anchors there could be deleted "
                "or overwritten; write them to a bucket created with Object Lock (aws s3api create-bucket --bucket "
                "NAME --object-lock-enabled-for-bucket)"
            )
        existing = _body_or_none(client, bucket, key)
        if existing is None:
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=retain_days)
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()  # Object Lock needs it
            put: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data, "ContentMD5": md5}
            put |= {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until}
            try:
                client.put_object(**put, IfNoneMatch="*")  # a concurrent writer loses instead of overwriting
                return location
            except Exception as exc:
                if _code(exc) == "NotImplemented":  # a store without conditional writes: the check above must do
                    client.put_object(**put)
                    return location
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            existing = _body_or_none(client, bucket, key)
    except BridgeError:
        raise
    except Exception as exc:
        raise _store_error(exc, uri, conn_id, "writing") from None
    if existing != data:
        raise AnchorError(f"anchor {location} already exists with other content ({via}); not overwritten")
    return location


def _body_or_none(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:
        if _code(exc) in ("404", "NoSuchKey"):
            return None
        raise


def _read_s3(uri: str, where: str, conn_id: str | None) -> list[Anchor]:
    """Every version, not just the latest: a delete marker hides a locked anchor from a plain listing."""
    bucket, _, prefix = where.partition("/")
    folder = f"{prefix}/" if prefix else ""
    anchors = []
    try:
        client = _client(uri, conn_id)
        locked = _locked(client, bucket)
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=folder):
            for item in page.get("Versions", []):
                key = item["Key"]
                if not key.endswith(".json") or "/" in key[len(folder) :]:
                    continue
                got = client.get_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
                anchor = _named(got["Body"].read(), f"s3://{bucket}/{key}")
                retention = _retention(client, bucket, item, got) if locked else "no retention (not write-once)"
                anchors.append(dataclasses.replace(anchor, retention=retention))
    except BridgeError:
        raise
    except Exception as exc:
        raise _store_error(exc, uri, conn_id, "reading") from None
    return anchors


def _retention(client: Any, bucket: str, item: dict[str, Any], got: dict[str, Any]) -> str:
    """``"COMPLIANCE until <iso>"`` and the like, from get_object's lock fields or get_object_retention."""
    mode, until = got.get("ObjectLockMode"), got.get("ObjectLockRetainUntilDate")
    if not mode:
        try:
            found = client.get_object_retention(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        except Exception as exc:
            if _code(exc) not in _NO_LOCK:
                raise
            return "no retention (not write-once)"
        mode, until = found["Retention"].get("Mode"), found["Retention"].get("RetainUntilDate")
    if not mode or not isinstance(until, dt.datetime):
        return "no retention (not write-once)"
    text = f"{mode} until {until.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    if until < dt.datetime.now(dt.UTC):
        return f"{text} (expired: not write-once)"
    return f"{text} (can be bypassed)" if mode == "GOVERNANCE" else text
