"""Concurrent writers in separate processes: no lost or duplicated version, one winner per alias race.

Every worker is a separate process (forkserver: nothing inherited from the test) with its own engine;
all of them connect (and migrate) first and are then released together by a barrier, so their
transactions really overlap.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.registry import ModelRegistry
from tests.registry_workers import (
    collect,
    fake_artifact,
    move_alias_rounds,
    process_context,
    register_many,
    register_same_runs,
    registry_database,
    version_rows,
)

CTX = process_context()
MODEL = "churn"
WORKERS = 8


@pytest.fixture
def start(registry_url: str) -> Iterator[Any]:
    """Start worker processes; any still running when the test ends (it failed) are killed first."""
    started: list[Any] = []

    def start(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
        processes = [CTX.Process(target=target, args=a, daemon=True) for a in args]
        for process in processes:
            process.start()
            started.append(process)
        return processes

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
            process.join()


def _release(barrier: Any, results: Any) -> None:
    """Wait until every worker is connected and at the barrier; a worker that died first fails the test."""
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:
        collect(results, 1, timeout=5)  # raises with the worker's traceback
        raise


def _stop(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=60)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_concurrent_registrations_never_duplicate_or_lose_a_version(registry_url: str, start: Any) -> None:
    per_worker = 200
    total = WORKERS * per_worker
    barrier, results = CTX.Barrier(WORKERS + 1), CTX.Queue()
    processes = start(register_many, [(registry_url, MODEL, w, per_worker, barrier, results) for w in range(WORKERS)])
    reader = ModelRegistry(registry_url)
    verified: list[int] = []

    def verify_while_writing() -> None:
        # Readers see a consistent trail while writers append to it: never a false tamper alarm.
        report = reader.verify_audit()
        assert report.ok, f"verify_audit during concurrent writes: {report.problem}"
        verified.append(report.checked)

    _release(barrier, results)
    outcome = collect(results, WORKERS, while_waiting=verify_while_writing)
    _stop(processes)
    reader.dispose()
    # At least one check ran while the trail was still growing (timing decides how many more do).
    assert verified and verified[0] < total and verified == sorted(verified), verified

    returned = {run_id: version for _, _, pairs in outcome for run_id, version in pairs}
    assert len(returned) == total
    assert sorted(returned.values()) == list(range(1, total + 1)), "duplicate or missing version numbers"
    for _, worker, pairs in outcome:
        numbers = [v for _, v in pairs]
        assert numbers == sorted(numbers), f"worker {worker} saw its own versions go backwards"

    rows = version_rows(registry_url, MODEL)
    assert [r.version for r in rows] == list(range(1, total + 1))
    assert Counter((r.dag_id, r.run_id, r.task_id) for r in rows).most_common(1)[0][1] == 1
    assert {r.run_id: r.version for r in rows} == returned

    registry = ModelRegistry(registry_url)
    assert registry.get_model(MODEL).latest_version == total
    report = registry.verify_audit()
    assert report.ok, report.problem
    assert report.checked >= total
    created = [e for e in registry.audit_events(model=MODEL) if e.action == "version_created"]
    assert [e.version for e in created] == list(range(1, total + 1)), "audit order differs from version order"
    assert {e.run.run_id for e in created} == set(returned)
    registry.dispose()


def test_concurrent_retries_of_the_same_run_get_the_same_version(registry_url: str, start: Any) -> None:
    run_ids = [f"manual__2026-01-{day:02d}" for day in range(1, 21)]
    barrier, results = CTX.Barrier(WORKERS + 1), CTX.Queue()
    orders = [random.Random(w).sample(run_ids, len(run_ids)) for w in range(WORKERS)]
    processes = start(
        register_same_runs, [(registry_url, MODEL, w, orders[w], barrier, results) for w in range(WORKERS)]
    )
    _release(barrier, results)
    outcome = collect(results, WORKERS)
    _stop(processes)

    answers: dict[str, set[int]] = {}
    for _, _, pairs in outcome:
        for run_id, version in pairs:
            answers.setdefault(run_id, set()).add(version)
    assert all(len(v) == 1 for v in answers.values()), f"a run got several versions: {answers}"
    rows = version_rows(registry_url, MODEL)
    assert [r.version for r in rows] == list(range(1, len(run_ids) + 1))
    assert {r.run_id: r.version for r in rows} == {k: next(iter(v)) for k, v in answers.items()}

    registry = ModelRegistry(registry_url)
    created = [e for e in registry.audit_events(model=MODEL) if e.action == "version_created"]
    assert len(created) == len(run_ids), "a retry wrote a second audit event"
    assert registry.verify_audit().ok
    registry.dispose()


def _check_alias_history(registry: ModelRegistry, alias: str) -> None:
    """One line of periods: each ends where the next starts, only the last is open, it is the alias now."""
    history = registry.alias_history(MODEL, alias)
    open_periods = [p for p in history if p["valid_to"] is None]
    assert len(open_periods) == 1, f"{len(open_periods)} open periods: {history}"
    assert history[-1]["valid_to"] is None, f"the open period is not the newest: {history}"
    current = registry.alias_version(MODEL, alias)
    assert current is not None
    assert history[-1]["version"] == current.version
    for before, after in itertools.pairwise(history):
        assert before["valid_from"] <= before["valid_to"], f"period ends before it starts: {before}"
        assert before["valid_to"] == after["valid_from"], f"gap or overlap between {before} and {after}"
        assert before["version"] != after["version"]
    moves = [e for e in registry.audit_events(model=MODEL) if e.alias == alias]
    assert [e.after["version"] for e in moves] == [p["version"] for p in history], "history and audit disagree"
    assert [e.before["version"] for e in moves[1:]] == [e.after["version"] for e in moves[:-1]]


def test_concurrent_alias_moves_have_exactly_one_winner(registry_url: str, start: Any) -> None:
    registry = ModelRegistry(registry_url)
    versions = [registry.register_version(MODEL, fake_artifact(f"a{i}")).version for i in range(WORKERS + 1)]
    registry.move_alias(MODEL, "live", versions[0], expected=None, actor="setup")
    barrier, results = CTX.Barrier(WORKERS), CTX.Queue()
    commands = [CTX.Queue() for _ in range(WORKERS)]
    processes = start(
        move_alias_rounds, [(registry_url, MODEL, w, commands[w], barrier, results) for w in range(WORKERS)]
    )
    collect(results, WORKERS)  # all connected
    rng = random.Random(7)
    current = versions[0]
    try:
        for round_no in range(20):
            targets = rng.sample([v for v in versions if v != current], WORKERS)
            for w in range(WORKERS):
                commands[w].put((round_no, "live", targets[w], current))
            outcome = collect(results, WORKERS)
            winners = [item for item in outcome if item[0] == "moved"]
            assert len(winners) == 1, f"round {round_no}: {len(winners)} winners: {outcome}"
            for kind, _worker, (_, _, message) in outcome:
                if kind == "conflict":
                    assert f"alias 'live' of model '{MODEL}'" in message, message
                    assert f"not v{current}" in message and "moved concurrently" in message, message
            current = winners[0][2][1]
            now = registry.alias_version(MODEL, "live")
            assert now is not None and now.version == current
            _check_alias_history(registry, "live")

        # Unconditional moves (no expected version) all succeed, one after the other: the history and the
        # audit trail must still form one line, in the order the database applied them.
        for round_no in range(20, 25):
            targets = rng.sample(versions, WORKERS)
            for w in range(WORKERS):
                commands[w].put((round_no, "staging", targets[w], "UNSET"))
            outcome = collect(results, WORKERS)
            assert all(kind == "moved" for kind, _, _ in outcome), outcome
            _check_alias_history(registry, "staging")
    finally:
        for queue in commands:
            queue.put(None)
        _stop(processes)

    report = registry.verify_audit()
    assert report.ok, report.problem
    registry.dispose()


def test_the_daily_quota_holds_under_concurrent_writers(registry_url: str) -> None:
    """``max_versions_per_day`` is checked under the model lock: racing writers cannot overshoot it."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_bridge.exceptions import PolicyViolationError
    from airflow_bridge.registry import RunRef

    quota, attempts = 10, 24
    registry = ModelRegistry(registry_url)
    registry.list_models()
    go = threading.Barrier(WORKERS)

    def attempt(i: int) -> str:
        if i < WORKERS:
            go.wait(timeout=60)
        try:
            registry.register_version(
                MODEL, fake_artifact(f"q{i}"), run=RunRef("quota", f"r{i}", "t"), max_versions_per_day=quota
            )
        except PolicyViolationError as exc:
            assert f"max_versions_per_day: {quota}" in str(exc)
            return "refused"
        return "registered"

    with ThreadPoolExecutor(WORKERS) as pool:
        outcome = Counter(pool.map(attempt, range(attempts)))
    assert outcome == {"registered": quota, "refused": attempts - quota}
    rows = version_rows(registry_url, MODEL)
    assert [r.version for r in rows] == list(range(1, quota + 1))
    # A retry of a run that got in is still answered (idempotence comes before the quota).
    again = registry.register_version(
        MODEL, fake_artifact("retry"), run=RunRef("quota", rows[-1].run_id, "t"), max_versions_per_day=quota
    )
    assert again.version == quota
    registry.dispose()


@pytest.mark.postgres
def test_a_known_models_registrations_are_one_prepared_statement_each(tmp_path: Path) -> None:
    """After its first registration of a model, a process registers each further version with one statement,
    prepared once per connection; a retried run gets its version back, and the records match the full path."""
    from airflow_bridge.registry import RunRef, fastpath
    from tests.registry_workers import ONE_STATEMENT, on_driver_statement

    with registry_database("postgresql", tmp_path) as url:
        registry = ModelRegistry(url)
        sent: list[str] = []
        on_driver_statement(registry._autocommit(), sent.append)
        first = registry.register_version(MODEL, fake_artifact("v0"), run=RunRef("d", "r0", "t"), metrics={"auc": 1})
        later = [
            registry.register_version(MODEL, fake_artifact(f"v{i}"), run=RunRef("d", f"r{i}", "t"), metrics={"auc": 1})
            for i in range(1, 5)
        ]
        assert [v.version for v in [first, *later]] == [1, 2, 3, 4, 5]
        assert [s.split(" ", 1)[0] for s in sent] == ["PREPARE"] + ["EXECUTE"] * 4, sent
        assert all(s.startswith(ONE_STATEMENT) for s in sent[1:])

        again = registry.register_version(MODEL, fake_artifact("v4"), run=RunRef("d", "r4", "t"))
        assert again.version == 5, "a retried run gets the version it registered"
        assert len(sent) == 6, "the retry was tried on the one-statement path first"

        fastpath.remember(registry.engine, MODEL, None)  # the full path for the next one
        full = registry.register_version(MODEL, fake_artifact("v5"), run=RunRef("d", "r5", "t"), metrics={"auc": 1})
        assert len(sent) == 6 and full.version == 6
        fast, slow = registry.get_version(MODEL, 5), registry.get_version(MODEL, 6)
        skip = {"version", "artifact", "run", "created_at"}
        assert {k: v for k, v in vars(fast).items() if k not in skip} == {
            k: v for k, v in vars(slow).items() if k not in skip
        }
        events = [e for e in registry.audit_events(model=MODEL) if e.action == "version_created"]
        assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
        assert registry.verify_audit().ok
        registry.dispose()
