"""Nothing left behind, nothing unmarked: artifacts that no version needs, versions whose artifact is gone.

``check_artifacts`` looks at every version's artifact (and model report) in its store: missing, another
size, or (``deep``) other bytes. ``collect_garbage`` finds what a killed writer or an abandoned run left
under the artifact root: ``.partial-*`` files and artifacts no version references (held-out splits of
finished runs, models of runs that never registered), older than a grace period; it deletes them only
when asked. Deploy and ``serve`` already refuse a version whose artifact is missing or differs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactRef
    from airflow_bridge.registry.records import ModelVersion
    from airflow_bridge.registry.store import ModelRegistry


@dataclass(frozen=True)
class ArtifactProblem:
    model: str
    version: int
    uri: str
    problem: str


def _refs(version: ModelVersion) -> Iterator[ArtifactRef]:
    """The version's model artifact and its report's files."""
    from airflow_bridge.artifacts import ArtifactRef

    yield version.artifact
    report = (version.validation or {}).get("report") or {}
    for ref in [report.get("html"), *(report.get("pngs") or {}).values()]:
        if isinstance(ref, dict) and {"uri", "sha256", "size"} <= set(ref):
            yield ArtifactRef(str(ref["uri"]), str(ref["sha256"]), int(ref["size"]), ref.get("conn_id"))


def check_artifacts(registry: ModelRegistry, model: str | None = None, *, deep: bool = False) -> list[ArtifactProblem]:
    """Every live version's artifact that is missing, has another size, or (``deep``: read and hashed)
    other bytes; deleted versions are skipped."""
    from airflow_bridge.artifacts import read_verified
    from airflow_bridge.exceptions import BridgeError

    names = [model] if model else [m.name for m in registry.list_models()]
    found: list[ArtifactProblem] = []
    for name in names:
        for version in registry.list_versions(name):
            for ref in _refs(version):
                try:
                    if deep:
                        read_verified(ref)
                    else:
                        problem = _stat_problem(ref)
                        if problem:
                            found.append(ArtifactProblem(name, version.version, ref.uri, problem))
                except (BridgeError, OSError) as exc:
                    found.append(ArtifactProblem(name, version.version, ref.uri, str(exc)))
    return found


def _stat_problem(ref: ArtifactRef) -> str | None:
    """Missing or another size, asked of the store without reading the bytes."""
    size = _size(ref.uri, ref.conn_id)
    if size is None:
        return "missing: it was deleted after registration; this version can no longer be deployed or served"
    if size != ref.size:
        return f"{size} bytes, but {ref.size} were registered: it was replaced after registration"
    return None


def _size(uri: str, conn_id: str | None) -> int | None:
    from airflow_bridge.artifacts import is_local, remote_path

    if is_local(uri):
        try:
            return os.stat(urlsplit(uri).path if uri.startswith("file:") else uri).st_size
        except FileNotFoundError:
            return None
    target = remote_path(uri, conn_id)
    target.fs.invalidate_cache(target.path)
    try:
        return int(target.fs.info(target.path)["size"])
    except FileNotFoundError:
        return None


@dataclass
class GcReport:
    """What ``collect_garbage`` found (and deleted, when applied)."""

    root: str
    applied: bool
    partial: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)
    kept_recent: int = 0
    """Unreferenced files younger than the grace period (a run may still register them)."""
    freed_bytes: int = 0


def referenced(registry: ModelRegistry) -> set[str]:
    """Every artifact URI a version (deleted ones too: kept for audit) refers to."""
    found: set[str] = set()
    for model in registry.list_models(include_deleted=True):
        for version in registry.list_versions(model.name, include_deleted=True):
            found.update(ref.uri for ref in _refs(version))
    return found


def collect_garbage(
    registry: ModelRegistry, root: str, conn_id: str | None = None, *, grace: dt.timedelta, apply: bool = False
) -> GcReport:
    """Partial files and unreferenced artifacts under ``root`` older than ``grace``; deleted with ``apply``."""
    keep = referenced(registry)
    now = dt.datetime.now(dt.UTC)
    report = GcReport(root, apply)
    for uri, size, modified in _files(root, conn_id):
        name = uri.rsplit("/", 1)[-1]
        partial = name.startswith(".partial-")
        if not partial and uri in keep:
            continue
        if now - modified < grace:
            report.kept_recent += 0 if partial else 1
            continue
        (report.partial if partial else report.unreferenced).append(uri)
        report.freed_bytes += size
        if apply:
            _delete(uri, conn_id)
    return report


def _files(root: str, conn_id: str | None) -> Iterator[tuple[str, int, dt.datetime]]:
    """(URI, size, modified) of every file under ``root``."""
    from airflow_bridge.artifacts import is_local, remote_path

    if is_local(root):
        base = urlsplit(root).path if root.startswith("file:") else root
        for folder, _dirs, files in os.walk(base):
            for name in files:
                path = os.path.join(folder, name)
                info = os.stat(path)
                yield f"file://{path}", info.st_size, dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
        return
    top = remote_path(root, conn_id)
    scheme = urlsplit(root).scheme
    for path, info in top.fs.find(top.path, detail=True).items():
        modified = info.get("LastModified") or info.get("mtime") or dt.datetime.now(dt.UTC)
        if not isinstance(modified, dt.datetime):
            modified = dt.datetime.fromtimestamp(float(modified), dt.UTC)
        yield f"{scheme}://{path}", int(info.get("size") or 0), modified


def _delete(uri: str, conn_id: str | None) -> None:
    from airflow_bridge.artifacts import is_local, remote_path

    if is_local(uri):
        os.unlink(urlsplit(uri).path)
        return
    target: Any = remote_path(uri, conn_id)
    target.unlink()
