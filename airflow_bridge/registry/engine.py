"""Engines for the registry database: SQLite (embedded default) and PostgreSQL, migrated on first use.

Connection failures become :class:`RegistryUnavailableError` naming the host (never the
password), so operators can retry them; everything else about the database stays here.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from airflow_bridge.exceptions import RegistryError, RegistryUnavailableError

MIGRATIONS = str(Path(__file__).with_name("migrations"))
VERSION_TABLE = "ab_alembic_version"
_ADVISORY_LOCK_KEY = 0x61625F7265  # 'ab_re': serialises concurrent first-use migrations on PostgreSQL
_migrated: set[str] = set()


def describe_url(url: str | sa.URL) -> str:
    """The URL with its password hidden: safe for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def is_memory(url: str | sa.URL) -> bool:
    """An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``): for fast unit tests."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def create_registry_engine(url: str | sa.URL, *, connect_timeout: int = 10, autocommit: bool = False) -> Engine:
    """An engine tuned for the registry's short write transactions (``autocommit``: for one-statement
    writes, which are their own transaction; PostgreSQL only)."""
    parsed = make_url(url)
    if is_memory(parsed):
        # One connection shared by every caller: a second connection would open a second, empty database.
        engine = sa.create_engine(parsed, connect_args={"check_same_thread": False}, poolclass=sa.pool.StaticPool)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # A folder that cannot be created is reported, with the path, on first use (see _open_lock_file).
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, connect_args={"timeout": 60, "check_same_thread": False}, poolclass=sa.pool.NullPool
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args.update(postgres_session_settings(connect_timeout))
    # No pre-ping (a round trip per transaction): a connection the server dropped fails its transaction with
    # the retryable RegistryUnavailableError, is discarded, and the retry gets a new one; idle ones are recycled.
    extra: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    return sa.create_engine(parsed, pool_recycle=600, pool_size=2, max_overflow=2, connect_args=connect_args, **extra)


SESSION_DEFAULTS = {
    "lock_timeout": "5s",
    "statement_timeout": "60s",
    "idle_in_transaction_session_timeout": "30s",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
"""PostgreSQL settings of every registry session; ``[airflow_bridge] registry_<name>`` overrides each one.

A client that goes silent while it holds a model's lock costs other writers of that model at most
``lock_timeout`` (they fail, retryably) and is cut by the server after ``idle_in_transaction_session_timeout``;
the server's keepalives notice a client host that vanished, the client's notice a server that did.
"""


def postgres_session_settings(connect_timeout: int) -> dict[str, Any]:
    """libpq connection arguments: timeouts and keepalives on both sides (see ``SESSION_DEFAULTS``)."""
    from airflow_bridge.config import bridge_config

    settings = {name: bridge_config(f"registry_{name}") or default for name, default in SESSION_DEFAULTS.items()}
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    return {
        "connect_timeout": connect_timeout,
        "application_name": "airflow-bridge",
        "options": options,
        "keepalives": 1,
        "keepalives_idle": int(settings["tcp_keepalives_idle"]),
        "keepalives_interval": int(settings["tcp_keepalives_interval"]),
        "keepalives_count": int(settings["tcp_keepalives_count"]),
    }


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, issue BEGIN so writers can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # Writers take the lock at BEGIN (IMMEDIATE): no deadlocked read-to-write upgrades under load.
    readonly = connection.get_execution_options().get("ab_readonly", False)
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


@contextlib.contextmanager
def translate_errors(url: str | sa.URL, action: str, *, committing: bool = False) -> Iterator[None]:
    """Turn driver errors into registry errors; connection problems are retryable.

    With ``committing``, the connection was lost while COMMIT was under way: the server may have saved
    the change without the reply reaching us, so the message must not claim that nothing was written.
    """
    try:
        yield
    except OperationalError as exc:
        parsed = make_url(url)
        where = parsed.host or parsed.database or "the registry database"
        waited = _timed_out(exc)
        if waited is not None:
            raise RegistryUnavailableError(
                f"model registry at {where} could not {action}: {waited}; nothing was written, retry (another "
                "client held the lock or the database was too slow; the registry's timeouts are in docs/registry.md)"
            ) from None
        if _is_connection_error(exc):
            if committing:
                raise _lost_commit(where, action) from None
            raise RegistryUnavailableError(
                f"model registry at {where} is unreachable while trying to {action}: "
                f"{_first_line(exc)}; nothing was written, retry when it is back"
            ) from None
        raise RegistryError(f"model registry at {where} failed to {action}: {_first_line(exc)}") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            where = make_url(url).host or "the registry database"
            if committing:
                raise _lost_commit(where, action) from None
            raise RegistryUnavailableError(
                f"model registry at {where} dropped the connection while trying to {action}; "
                "the transaction was rolled back, retry when it is back"
            ) from None
        raise


def _lost_commit(where: str, action: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"model registry at {where} dropped the connection while committing (trying to {action}): the change "
        "may or may not have been saved; retry when it is back (a registration retried for the same run "
        "returns the version if it was saved) or check the audit trail"
    )


def _timed_out(exc: DBAPIError) -> str | None:
    """What timed out, for a lock or statement timeout (PostgreSQL 55P03 / 57014); None otherwise."""
    code = getattr(exc.orig, "pgcode", None)
    if code == "55P03":
        return f"waited longer than lock_timeout ({_setting('lock_timeout')}) for a lock another client holds"
    if code == "57014":
        return f"a statement ran longer than statement_timeout ({_setting('statement_timeout')})"
    return None


def _setting(name: str) -> str:
    from airflow_bridge.config import bridge_config

    return bridge_config(f"registry_{name}") or SESSION_DEFAULTS[name]


def _is_connection_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    markers = (
        "could not connect",
        "connection refused",
        "server closed",
        "terminating connection",
        "timeout expired",
        "could not translate host",
        "no route",
        "connection reset",
        "the database system is shutting down",
        "the database system is starting up",
        "unable to open database",
        "idle-in-transaction timeout",
        "ssl syscall error",
    )
    return exc.connection_invalidated or any(marker in text for marker in markers)


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", exc)
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when many processes start at once."""
    if is_memory(engine.url):
        with engine.connect() as connection:  # the one connection is the database: it records its schema
            if not connection.info.get("ab_schema"):
                _create_memory_schema(connection)
                connection.commit()
                connection.info["ab_schema"] = True
        return
    key = engine.url.render_as_string(hide_password=False)
    if key in _migrated:
        return
    with _migration_lock(engine):
        if not _at_schema_revision(engine):  # the common case needs no alembic import (~0.1 s per process)
            _upgrade(engine)
    _migrated.add(key)


def _upgrade(engine: Engine) -> None:
    import logging

    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    loggers = [logging.getLogger(name) for name in ("alembic", "alembic.runtime.migration")]
    levels = [log.level for log in loggers]
    for log in loggers:  # no "Running upgrade ..." INFO lines in every task's log
        log.setLevel(logging.WARNING)
    try:
        with engine.connect() as connection:
            if _current_revision(connection) != _head_revision(config):
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _create_memory_schema(connection: Connection) -> None:
    """A new in-memory database gets the declared schema directly, stamped with the head revision.

    Running the migrations costs ~140 ms on first use in a process (~30 ms after), ``create_all`` ~20 ms
    (~8 ms): it matters for unit tests that open a registry each. Tests keep the declared schema equal to
    the migrations' and ``SCHEMA_REVISION`` equal to the head revision, so both paths give one schema.
    """
    from airflow_bridge.registry.audit import GENESIS_HASH
    from airflow_bridge.registry.tables import SCHEMA_REVISION, audit_head, metadata

    version_table = sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), primary_key=True),
    )
    metadata.create_all(connection)
    version_table.create(connection)
    connection.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))
    connection.execute(version_table.insert().values(version_num=SCHEMA_REVISION))


def _at_schema_revision(engine: Engine) -> bool:
    """Whether the database records ``SCHEMA_REVISION`` (the head revision, as tests keep it)."""
    from airflow_bridge.registry.tables import SCHEMA_REVISION

    with engine.connect().execution_options(ab_readonly=True) as connection:
        try:
            found = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        except DBAPIError:  # no version table yet: the full path creates it
            return False
    return found == [SCHEMA_REVISION]


def _head_revision(config: Any) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as lock_connection:
            lock_connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
            try:
                yield
            finally:
                lock_connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_KEY})
                lock_connection.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with _open_lock_file(engine.url.database) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def _open_lock_file(database: str) -> IO[str]:
    """The SQLite registry's migration lock file; a folder that is missing or read-only is named."""
    try:
        return open(f"{database}.migrate.lock", "a")
    except OSError as exc:
        raise RegistryError(
            f"cannot open the SQLite model registry {database}: {exc.strerror} ({exc.filename}); "
            "check that its folder exists and is writable"
        ) from None
