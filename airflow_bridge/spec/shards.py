"""Sharded loading: a folder's specs split over N loader files, each spec always in the same one.

A spec's shard depends only on its file's path relative to the folder (SHA-256, never Python's
salted ``hash()``) and on N, so adding or removing other specs never moves it. This module imports
nothing heavy (no Airflow): the CLI (``airflow-bridge loaders``, ``validate``) uses it without Airflow.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_bridge.exceptions import BridgeError
from airflow_bridge.spec.yamlsafe import read_bounded

SPECS_PER_SHARD = 500
"""``--shards auto`` aims at this many specs per loader file (about 2 s of parsing; see docs)."""
BUILD_SECONDS_PER_SPEC = 0.005
"""Estimated parse cost of one spec in a loader file (read, check, build; a loaded 2-core machine)."""
DEFAULT_IMPORT_TIMEOUT = 30.0
"""Airflow's ``[core] dagbag_import_timeout`` default, in seconds."""
MARKER = "# Written by 'airflow-bridge loaders'"
"""First comment of every file the command writes: only files carrying it are ever removed."""
_FILE = re.compile(r"airflow_bridge_(dags|spec_errors)_shard_(\d+)_of_(\d+)\.py")
_NAME = re.compile(rb"""^name:[ \t]*["']?([^"'#\s]+)["']?[ \t]*(?:#.*)?$""", re.MULTILINE)


class ShardError(BridgeError):
    """A shard layout that cannot work (a count of 0, more shards than specs, a bad index)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ShardError(f"shard count {self.count!r} must be a whole number of at least 1")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise ShardError(f"shard index {self.index!r} must be between 0 and {self.count - 1} (of {self.count})")

    @classmethod
    def of(cls, value: Shard | tuple[int, int]) -> Shard:
        return value if isinstance(value, Shard) else cls(*value)

    def holds(self, path: str, folder: str) -> bool:
        """Whether the spec file ``path`` (under ``folder``) belongs to this shard."""
        return shard_of(shard_key(path, folder), self.count) == self.index


def shard_key(path: str, folder: str) -> str:
    """The stable key of a spec: its path relative to the folder, with '/' separators."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(folder)).replace(os.sep, "/")


def shard_of(key: str, count: int) -> int:
    """The shard (0-based) of ``key`` among ``count``: SHA-256, stable across processes and machines."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % count


def assign(paths: Iterable[str], folder: str, count: int) -> list[list[str]]:
    """``paths`` split into ``count`` shards (every path in exactly one)."""
    shards: list[list[str]] = [[] for _ in range(count)]
    for path in paths:
        shards[shard_of(shard_key(path, folder), count)].append(path)
    return shards


def auto_count(spec_count: int) -> int:
    """The shard count ``--shards auto`` picks: at most ``SPECS_PER_SHARD`` specs per file, at least one file."""
    return max(1, math.ceil(spec_count / SPECS_PER_SHARD))


def shard_file_names(index: int, count: int) -> tuple[str, str]:
    """The loader file and the spec-errors file of shard ``index`` of ``count``."""
    suffix = f"shard_{index:02d}_of_{count:02d}.py"
    return f"airflow_bridge_dags_{suffix}", f"airflow_bridge_spec_errors_{suffix}"


def written_shard_files(folder: Path) -> list[Path]:
    """Shard files in ``folder`` that this command wrote (name pattern and marker both match)."""
    found = []
    for path in sorted(folder.glob("airflow_bridge_*_shard_*_of_*.py")):
        if _FILE.fullmatch(path.name) and path.is_file() and _starts_with_marker(path):
            found.append(path)
    return found


def shard_count_in(folder: Path) -> int | None:
    """The shard count of the loader files written in ``folder`` (None: no shard files)."""
    counts = {int(m.group(3)) for p in written_shard_files(folder) if (m := _FILE.fullmatch(p.name))}
    return max(counts) if counts else None


def _starts_with_marker(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return MARKER.encode() in handle.read(512)
    except OSError:
        return False


def names_elsewhere(paths: Sequence[str], names: set[str]) -> dict[str, list[str]]:
    """For each of ``names``, the files among ``paths`` whose top-level ``name:`` line claims it.

    A cheap text scan (no YAML parsing), so a shard can see a name another shard's spec also uses.
    """
    found: dict[str, list[str]] = {}
    if not names:
        return found
    for path in paths:
        try:
            raw = read_bounded(path)
        except (OSError, ValueError):
            continue
        match = _NAME.search(raw) if isinstance(raw, bytes) else None
        if match is not None and (name := match.group(1).decode("utf-8", "replace")) in names:
            found.setdefault(name, []).append(path)
    return found
