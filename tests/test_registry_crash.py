"""A registration process killed with SIGKILL at random points leaves no partial state behind.

The worker loops "write an artifact, register it". Each round the test starts a fresh worker, aims a
SIGKILL at a moment (inside the artifact write, while the registry's write lock is held, or at a
random delay), then checks the registry and the artifact folder, and proves that the write lock the
victim may have held is free again by registering a version itself.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.registry import ArtifactRef, ModelRegistry, RunRef
from tests.registry_workers import (
    PHASE_LOCKED,
    PHASE_NAMES,
    PHASE_STARTING,
    PHASE_WRITING,
    crash_worker,
    process_context,
    version_rows,
)

CTX = process_context()
MODEL = "crashy"
ROUNDS = 50
ARTIFACT_BYTES = 3 * 1024 * 1024  # a few MB widens the window of a kill inside the write


def _wait_for(condition: Any, timeout: float, what: str, process: Any) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not process.is_alive():
            raise AssertionError(f"the worker died by itself (exit code {process.exitcode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.0002)


class Checker:
    """Everything visible after a kill must be complete: rows, artifact files, audit chain."""

    def __init__(self, url: str, registry: ModelRegistry, folder: Path) -> None:
        self.url = url
        self.registry = registry
        self.folder = folder
        self.hashed_rows: set[int] = set()
        self.hashed_files: set[str] = set()

    def check(self, when: str) -> None:
        rows = version_rows(self.url, MODEL)
        assert [r.version for r in rows] == list(range(1, len(rows) + 1)), f"{when}: versions not contiguous"
        assert self.registry.get_model(MODEL).latest_version == len(rows), f"{when}: latest_version is off"
        for row in rows:
            path = Path(urlsplit(row.artifact_uri).path)
            assert not path.name.startswith(".partial-"), f"{when}: v{row.version} points at a temporary file"
            assert path.is_file(), f"{when}: v{row.version} is registered but {path} does not exist"
            assert path.stat().st_size == row.artifact_size, f"{when}: v{row.version} artifact has the wrong size"
            if row.version not in self.hashed_rows:
                ref = ArtifactRef(row.artifact_uri, row.artifact_sha256, row.artifact_size)
                ArtifactStore(str(self.folder.parent)).read_verified(ref)  # sha256 and size
                self.hashed_rows.add(row.version)
                self.hashed_files.add(path.name)
        # A file under an artifact's final name is always complete: its name is its own sha256.
        for path in self.folder.iterdir():
            if path.name.startswith(".partial-") or path.name in self.hashed_files:
                continue
            assert path.name == hashlib.sha256(path.read_bytes()).hexdigest() + ".bin", f"{when}: {path} is torn"
            self.hashed_files.add(path.name)
        report = self.registry.verify_audit()
        assert report.ok, f"{when}: {report.problem}"
        created = [e for e in self.registry.audit_events(model=MODEL) if e.action == "version_created"]
        assert [e.version for e in created] == [r.version for r in rows], f"{when}: audit and versions disagree"


def test_sigkill_at_random_points_leaves_no_partial_version(registry_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("REGISTRY_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    root = tmp_path / "artifacts"
    store = ArtifactStore(str(root))
    registry = ModelRegistry(registry_url)
    if registry.engine.dialect.name == "postgresql":
        # A row lock left behind by a dead client would make the probe below wait forever: fail instead.
        @event.listens_for(registry.engine, "connect")
        def _lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '15s'")

    registry.register_version(MODEL, store.put(b"first", MODEL, ".bin"), run=RunRef("crash", "setup", "register"))
    checker = Checker(registry_url, registry, root / MODEL)
    phase = CTX.Value("i", PHASE_STARTING, lock=False)
    landed: Counter[str] = Counter()
    started = time.monotonic()
    for k in range(ROUNDS):
        aim = ("artifact", "locked", "any")[k % 3]
        phase.value = PHASE_STARTING
        worker = CTX.Process(
            target=crash_worker, args=(registry_url, str(root), MODEL, k, ARTIFACT_BYTES, phase), daemon=True
        )
        worker.start()
        _wait_for(lambda: phase.value != PHASE_STARTING, 60, "the worker to start", worker)
        if aim == "artifact":
            _wait_for(lambda: phase.value == PHASE_WRITING, 30, "an artifact write", worker)
            time.sleep(rng.uniform(0, 0.004))
        elif aim == "locked":
            _wait_for(lambda: phase.value == PHASE_LOCKED, 30, "a held write lock", worker)
            time.sleep(rng.uniform(0, 0.001))  # the one-statement registration holds its lock briefly
        else:
            time.sleep(rng.uniform(0, 0.25))
        worker.kill()
        worker.join(timeout=30)
        assert worker.exitcode == -9, f"round {k}: worker exited with {worker.exitcode} before the kill"
        where = PHASE_NAMES[phase.value]
        landed[where] += 1
        when = f"round {k} (seed {seed}, killed in phase '{where}')"
        checker.check(when)
        # Whatever lock the victim held is free again: a new registration goes through promptly.
        probe_started = time.monotonic()
        probe = store.put(os.urandom(64), MODEL, ".bin")
        registry.register_version(MODEL, probe, run=RunRef("crash", f"probe-{k}", "register"), actor="probe")
        assert time.monotonic() - probe_started < 15, f"{when}: the next registration waited for a dead writer"

    # A worker that is left alone registers normally after all those deaths.
    worker = CTX.Process(target=crash_worker, args=(registry_url, str(root), MODEL, ROUNDS, 4096, phase, 3))
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == 0
    checker.check("after the last worker")
    rows = version_rows(registry_url, MODEL)
    assert sum(1 for r in rows if r.run_id.startswith(f"w{ROUNDS}-")) == 3
    partial = sum(1 for p in (root / MODEL).iterdir() if p.name.startswith(".partial-"))
    print(f"seed {seed}: kills by phase {dict(landed)}, {len(rows)} versions, {partial} torn temporary files left")
    print(f"{ROUNDS} rounds in {time.monotonic() - started:.1f}s")
    # The kills really landed inside artifact writes and inside held write locks, not only in between.
    assert landed["artifact"] + landed["artifact-write"] >= 5, dict(landed)
    assert landed["locked"] >= 5, dict(landed)
    assert partial >= 1, "no kill landed inside an artifact write"
    registry.dispose()
