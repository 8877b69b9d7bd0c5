"""Helpers for the registry tests: isolated databases, and workers that run in separate processes.

Everything here must import in a freshly spawned interpreter (``multiprocessing`` 'spawn' or
'forkserver'), so it imports no pytest at module level and touches no test fixture state.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import queue
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import ConflictError
from airflow_bridge.registry import ArtifactRef, ModelRegistry, RunRef

POSTGRES_URL = os.environ.get("AIRFLOW_BRIDGE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def process_context() -> Any:
    """A 'forkserver' context: every worker is a fresh process (no engine, socket or lock inherited from the
    test), forked from a server that imported the registry once, so dozens of workers start in milliseconds.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "__main__",
            "tests.registry_workers",
            "psycopg2",
            "alembic.command",
            "alembic.config",
            "alembic.script",
            "alembic.runtime.migration",
            "sqlalchemy.dialects.postgresql",
            "sqlalchemy.dialects.sqlite",
        ]
    )
    return context


# -- isolated databases ---------------------------------------------------------------------------


def _admin_connection() -> Any:
    import psycopg2

    url = sa.make_url(POSTGRES_URL)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        connect_timeout=5,
    )
    connection.autocommit = True
    return connection


def postgres_url(database: str) -> str:
    return sa.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


def create_pg_database(prefix: str = "ab_reg") -> str:
    """A new, empty PostgreSQL database; returns its name."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return name


def drop_pg_database(name: str) -> None:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


@contextlib.contextmanager
def registry_database(backend: str, tmp_path: Path, name: str = "registry") -> Iterator[str]:
    """The URL of an empty registry database: a SQLite file under ``tmp_path`` or a fresh PG database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    import pytest

    try:
        database = create_pg_database()
    except Exception as exc:  # the shared server is not there: skip, do not fail
        pytest.skip(f"PostgreSQL is not reachable at {sa.make_url(POSTGRES_URL).host}: {exc}")
    try:
        yield postgres_url(database)
    finally:
        drop_pg_database(database)


ONE_STATEMENT = "EXECUTE ab_register_"
"""How the one-statement registration starts (a prepared statement sent on a raw psycopg2 cursor)."""


def on_driver_statement(engine: sa.Engine, callback: Callable[[str], None]) -> None:
    """Call ``callback(statement)`` before each statement any cursor of the engine's connections sends, even
    a raw driver cursor (the one-statement registration passes no SQLAlchemy cursor events)."""
    import psycopg2.extensions

    class _Cursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            callback(query if isinstance(query, str) else bytes(query).decode())
            return super().execute(query, vars)

    def _hook(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.cursor_factory = _Cursor

    sa.event.listen(engine, "connect", _hook)
    engine.dispose()  # every connection from now on is hooked


def fake_artifact(key: str) -> ArtifactRef:
    """A reference that is never read: registration only records it."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return ArtifactRef(f"file:///artifacts/{digest}.bin", digest, len(key))


def version_rows(url: str, model: str) -> list[Any]:
    """Every version row of ``model`` straight from the table (one query; no registry code involved)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "SELECT v.version, v.artifact_uri, v.artifact_sha256, v.artifact_size, v.dag_id, v.run_id,"
                        " v.task_id FROM ab_model_versions v JOIN ab_models m ON m.id = v.model_id"
                        " WHERE m.name = :model ORDER BY v.version"
                    ),
                    {"model": model},
                )
            )
    finally:
        engine.dispose()


@contextlib.contextmanager
def _report_errors(results: Any, worker: int) -> Iterator[None]:
    """Send any exception's traceback to the parent (which fails the test with it), then re-raise it."""
    try:
        yield
    except BaseException:
        results.put(("error", worker, traceback.format_exc()))
        raise


# -- concurrency workers ------------------------------------------------------------------------


def register_many(url: str, model: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Connect, wait for every sibling, then register ``count`` versions with distinct run refs."""
    with _report_errors(results, worker):
        registry = ModelRegistry(url)
        registry.list_models()  # connected and migrated before the start signal
        barrier.wait(timeout=120)
        got = []
        for i in range(count):
            run = RunRef("concurrency", f"w{worker}-r{i}", "register")
            version = registry.register_version(model, fake_artifact(run.run_id or ""), run=run, actor=f"w{worker}")
            got.append((run.run_id, version.version))
        results.put(("ok", worker, got))
        registry.dispose()


def register_same_runs(url: str, model: str, worker: int, run_ids: list[str], barrier: Any, results: Any) -> None:
    """Every worker registers the same run refs (in its own order): retries racing each other."""
    with _report_errors(results, worker):
        registry = ModelRegistry(url)
        registry.list_models()
        barrier.wait(timeout=120)
        got = []
        for run_id in run_ids:
            run = RunRef("retries", run_id, "register")
            version = registry.register_version(model, fake_artifact(run_id), run=run, actor=f"w{worker}")
            got.append((run_id, version.version))
        results.put(("ok", worker, got))
        registry.dispose()


def move_alias_rounds(url: str, model: str, worker: int, commands: Any, barrier: Any, results: Any) -> None:
    """Per command ``(round, alias, target, expected)``: wait for all siblings, then try the move."""
    with _report_errors(results, worker):
        registry = ModelRegistry(url)
        registry.list_models()
        results.put(("ready", worker, None))
        while True:
            command = commands.get(timeout=120)
            if command is None:
                break
            round_no, alias, target, expected = command
            barrier.wait(timeout=60)
            kwargs: dict[str, Any] = {} if expected == "UNSET" else {"expected": expected}
            try:
                registry.move_alias(model, alias, target, actor=f"w{worker}", reason=f"round {round_no}", **kwargs)
            except ConflictError as exc:
                results.put(("conflict", worker, (round_no, target, str(exc))))
            else:
                results.put(("moved", worker, (round_no, target, None)))
        registry.dispose()


def open_fresh_registry(url: str, worker: int, barrier: Any, results: Any) -> None:
    """First use of a never-migrated registry, at the same moment as the siblings."""
    with _report_errors(results, worker):
        registry = ModelRegistry(url)
        barrier.wait(timeout=120)
        models = registry.list_models()
        results.put(("ok", worker, len(models)))
        registry.dispose()


def collect(
    results: Any, expected: int, timeout: float = 180, while_waiting: Callable[[], None] | None = None
) -> list[tuple[str, int, Any]]:
    """``expected`` messages from workers; a worker's traceback fails the test with its text.

    ``while_waiting`` is called again and again until they are all in (e.g. to read while others write).
    """
    out: list[tuple[str, int, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < expected:
        try:
            item = results.get(timeout=0.02 if while_waiting else max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(out)} of {expected} worker results arrived in {timeout}s") from None
            if while_waiting is not None:
                while_waiting()
            continue
        if item[0] == "error":
            raise AssertionError(f"worker {item[1]} failed:\n{item[2]}")
        out.append(item)
    return out


# -- crash worker -------------------------------------------------------------------------------

PHASE_STARTING = 0
PHASE_ARTIFACT = 1  # inside ArtifactStore.put
PHASE_DB = 2  # inside register_version, before the write lock is held
PHASE_LOCKED = 3  # the write lock (BEGIN IMMEDIATE / SELECT ... FOR UPDATE) is held, not yet committed
PHASE_COMMITTED = 4  # COMMIT returned; register_version is returning
PHASE_WRITING = 5  # inside ArtifactStore.put, between creating the temporary file and renaming it
PHASE_NAMES = {0: "starting", 1: "artifact", 2: "db", 3: "locked", 4: "committed", 5: "artifact-write"}


def crash_worker(url: str, root: str, model: str, worker: int, size: int, phase: Any, limit: int = 0) -> None:
    """Write an artifact, register it, repeat; publishes where it is in ``phase`` so kills can be aimed.

    Runs until killed (or ``limit`` registrations when ``limit`` > 0).
    """
    import tempfile

    from sqlalchemy import event

    # Publish the moment the temporary file exists and the moment it is renamed (this process only).
    real_mkstemp, real_replace = tempfile.mkstemp, os.replace

    def mkstemp(*args: Any, **kwargs: Any) -> Any:
        created = real_mkstemp(*args, **kwargs)
        phase.value = PHASE_WRITING
        return created

    def replace(*args: Any, **kwargs: Any) -> None:
        real_replace(*args, **kwargs)
        phase.value = PHASE_ARTIFACT

    tempfile.mkstemp = mkstemp
    os.replace = replace

    registry = ModelRegistry(url)
    store = ArtifactStore(root)
    registering = False

    @event.listens_for(registry.engine, "after_cursor_execute")
    def _locked(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        takes_lock = ("FOR UPDATE", "BEGIN IMMEDIATE", "UPDATE ab_models")  # the allocation locks the model row
        if registering and any(marker in statement for marker in takes_lock):
            phase.value = PHASE_LOCKED

    def _locking(statement: str) -> None:
        if registering and statement.startswith(ONE_STATEMENT):  # the one-statement registration takes the lock
            phase.value = PHASE_LOCKED

    if registry.engine.dialect.name == "postgresql":
        on_driver_statement(registry._autocommit(), _locking)

    @event.listens_for(registry.engine, "commit")
    def _committing(conn: Any) -> None:
        if registering:
            phase.value = PHASE_LOCKED  # still locked while COMMIT runs

    registry.list_models()  # connected and migrated
    done = 0
    rng = secrets.SystemRandom()
    while limit <= 0 or done < limit:
        data = os.urandom(rng.randint(size // 2, size))
        phase.value = PHASE_ARTIFACT
        ref = store.put(data, folder=model, suffix=".bin")
        phase.value = PHASE_DB
        registering = True
        if done % 3:  # two registrations in three take the full path (four round trips), the third one statement
            from airflow_bridge.registry import fastpath

            fastpath.remember(registry.engine, model, None)
        registry.register_version(model, ref, run=RunRef("crash", f"w{worker}-{done}", "register"), actor="crash")
        registering = False
        phase.value = PHASE_COMMITTED
        done += 1
    registry.dispose()
