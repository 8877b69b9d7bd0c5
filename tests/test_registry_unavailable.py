"""The registry database is unreachable: errors are retryable, name the host, never the password, and
nothing half-done is left behind.

The shared PostgreSQL server is never stopped: a small TCP proxy in front of it is brought down, or
cuts every live connection at a chosen statement of a transaction.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from airflow_bridge.exceptions import RegistryError, RegistryUnavailableError
from airflow_bridge.hooks.registry import ModelRegistryHook, connection_to_url
from airflow_bridge.registry import ModelRegistry, RunRef, fastpath
from tests.pgproxy import PASSWORD, CuttableProxy
from tests.registry_workers import ONE_STATEMENT, fake_artifact, on_driver_statement, postgres_url

MODEL = "churn"


def _proxied_url(proxy: CuttableProxy, database: str) -> str:
    return f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/{database}"


def _assert_retryable_and_safe(info: pytest.ExceptionInfo[RegistryUnavailableError]) -> None:
    message = str(info.value)
    assert "127.0.0.1" in message, message
    assert "retry" in message, message
    rendered = "".join(traceback.format_exception(info.value))
    assert PASSWORD not in rendered, rendered


def _state(database: str) -> dict[str, Any]:
    """What is in the database, read directly (not through the proxy, not through the registry)."""
    engine = sa.create_engine(postgres_url(database), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            has_schema = sa.inspect(conn).has_table("ab_models")
            if not has_schema:
                return {"schema": False}
            return {
                "schema": True,
                "versions": conn.execute(sa.text("SELECT version FROM ab_model_versions ORDER BY 1")).scalars().all(),
                "latest": conn.execute(
                    sa.text("SELECT latest_version FROM ab_models WHERE name = :m"), {"m": MODEL}
                ).scalar(),
                "events": conn.execute(sa.text("SELECT count(*) FROM ab_audit_events")).scalar_one(),
                "head": conn.execute(sa.text("SELECT seq FROM ab_audit_head")).scalar_one(),
                "aliases": dict(conn.execute(sa.text("SELECT alias, version_id FROM ab_aliases")).all()),
                "history": conn.execute(sa.text("SELECT count(*) FROM ab_alias_history")).scalar_one(),
            }
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_registry_down_before_registration_then_back(database: str, proxy: CuttableProxy) -> None:
    registry = ModelRegistry(_proxied_url(proxy, database))
    run = RunRef("train_churn", "scheduled__2026-01-01", "register")
    proxy.down()
    # First use of a fresh registry: the migration cannot even start.
    with pytest.raises(RegistryUnavailableError) as info:
        registry.register_version(MODEL, fake_artifact("v1"), run=run)
    _assert_retryable_and_safe(info)
    assert _state(database) == {"schema": False}

    proxy.up()
    assert registry.register_version(MODEL, fake_artifact("v1"), run=run).version == 1

    # Down again, now between two registrations of a migrated registry.
    proxy.down()
    second = RunRef("train_churn", "scheduled__2026-01-02", "register")
    before = _state(database)
    with pytest.raises(RegistryUnavailableError) as info:
        registry.register_version(MODEL, fake_artifact("v2"), run=second)
    _assert_retryable_and_safe(info)
    assert _state(database) == before
    proxy.up()
    assert registry.register_version(MODEL, fake_artifact("v2"), run=second).version == 2
    assert registry.verify_audit().ok
    registry.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "cut_at",
    [
        "UPDATE ab_models",  # the version number is allocated, the model row (and its chain head) locked
        "WITH v AS",  # version, audit event and the model's chain head in one statement
        "COMMIT",
    ],
    ids=["allocate", "write", "commit"],
)
def test_connection_cut_mid_registration_leaves_nothing(database: str, proxy: CuttableProxy, cut_at: str) -> None:
    registry = ModelRegistry(_proxied_url(proxy, database))
    for i in range(3):
        registry.register_version(MODEL, fake_artifact(f"v{i}"), run=RunRef("d", f"r{i}", "register"))
    armed = {"at": ""}

    @event.listens_for(registry.engine, "before_cursor_execute")
    def _cut_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed["at"] and statement.startswith(armed["at"]):
            armed["at"] = ""
            proxy.cut()

    @event.listens_for(registry.engine, "commit")
    def _cut_commit(conn: Any) -> None:
        if armed["at"] == "COMMIT":
            armed["at"] = ""
            proxy.cut()

    fastpath.remember(registry.engine, MODEL, None)  # the full path: this process forgets the model row
    before = _state(database)
    run = RunRef("d", "r3", "register")
    armed["at"] = cut_at
    with pytest.raises(RegistryUnavailableError) as info:
        registry.register_version(MODEL, fake_artifact("v3"), run=run)
    assert armed["at"] == "", "the cut never happened"
    _assert_retryable_and_safe(info)
    if cut_at != "COMMIT":  # before COMMIT was sent the outcome is known: nothing was saved
        assert "nothing was written" in str(info.value) or "rolled back" in str(info.value), str(info.value)
    assert _state(database) == before, "a cut transaction left something behind"
    assert before["versions"] == [1, 2, 3] and before["latest"] == 3

    retried = registry.register_version(MODEL, fake_artifact("v3"), run=run)
    assert retried.version == 4
    report = registry.verify_audit()
    assert report.ok, report.problem
    assert report.checked == before["events"] + 1
    registry.dispose()


@pytest.mark.postgres
def test_reply_to_commit_lost_then_retry_returns_the_committed_version(database: str, proxy: CuttableProxy) -> None:
    """The ambiguous failure: COMMIT reached the server, its reply did not reach the client.

    The registry must not claim that nothing was written; a retry of the same run finds the version.
    """
    registry = ModelRegistry(_proxied_url(proxy, database))
    registry.register_version(MODEL, fake_artifact("v1"), run=RunRef("d", "r1", "register"))
    fastpath.remember(registry.engine, MODEL, None)  # the full path: this process forgets the model row
    armed = {"on": True}

    def cut_once_committed() -> None:
        deadline = time.monotonic() + 30
        while _state(database)["versions"] != [1, 2] and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.cut()

    @event.listens_for(registry.engine, "commit")
    def _lose_the_reply(conn: Any) -> None:
        if armed["on"]:
            armed["on"] = False
            proxy.drop_replies = True  # the COMMIT goes through, its reply never comes back
            threading.Thread(target=cut_once_committed, daemon=True).start()

    run = RunRef("d", "r2", "register")
    with pytest.raises(RegistryUnavailableError) as info:
        registry.register_version(MODEL, fake_artifact("v2"), run=run)
    proxy.drop_replies = False
    _assert_retryable_and_safe(info)
    assert "may or may not have been saved" in str(info.value), "a lost COMMIT reply must not claim a rollback"
    assert _state(database)["versions"] == [1, 2], "the commit was expected to have reached the server"
    assert registry.register_version(MODEL, fake_artifact("v2"), run=run).version == 2
    assert _state(database)["versions"] == [1, 2]
    assert registry.verify_audit().ok
    registry.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("trouble", ["cut", "lost reply"])
def test_the_one_statement_registration_settles_a_dropped_connection_on_the_full_path(
    database: str, proxy: CuttableProxy, trouble: str
) -> None:
    """A run's registration on the one-statement path whose connection drops (before or after the server
    saved it) is settled by the full path of the same run: one version, never two, never an error."""
    registry = ModelRegistry(_proxied_url(proxy, database))
    for i in range(2):
        registry.register_version(MODEL, fake_artifact(f"v{i}"), run=RunRef("d", f"r{i}", "register"))
    assert fastpath.known(registry.engine, MODEL) is not None, "the next registration takes one statement"

    def settle_then_cut() -> None:
        deadline = time.monotonic() + 30
        while _state(database)["versions"] != [1, 2, 3] and time.monotonic() < deadline:
            time.sleep(0.05)
        proxy.cut()
        proxy.drop_replies = False

    def _trouble(statement: str) -> None:
        if statement.startswith(ONE_STATEMENT):
            if trouble == "cut":
                proxy.cut()  # the statement never reaches the server
            else:
                proxy.drop_replies = True  # it is saved, its reply never comes back
                threading.Thread(target=settle_then_cut, daemon=True).start()

    on_driver_statement(registry._autocommit(), _trouble)
    registered = registry.register_version(MODEL, fake_artifact("v2"), run=RunRef("d", "r2", "register"))
    assert registered.version == 3
    assert _state(database)["versions"] == [1, 2, 3]
    assert registry.verify_audit().ok
    registry.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("cut_at", ["UPDATE ab_aliases", "INSERT INTO ab_alias_history", "INSERT INTO ab_deployments"])
def test_connection_cut_mid_deploy_leaves_the_alias_alone(database: str, proxy: CuttableProxy, cut_at: str) -> None:
    registry = ModelRegistry(_proxied_url(proxy, database))
    for i in range(2):
        registry.register_version(MODEL, fake_artifact(f"v{i}"))
    registry.deploy(MODEL, 1, alias="live", target="local", expected=None, actor="alice")
    armed = {"at": cut_at}

    @event.listens_for(registry.engine, "before_cursor_execute")
    def _cut_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed["at"] and statement.startswith(armed["at"]):
            armed["at"] = ""
            proxy.cut()

    before = _state(database)
    with pytest.raises(RegistryUnavailableError) as info:
        registry.deploy(MODEL, 2, alias="live", target="local", expected=1, actor="alice")
    _assert_retryable_and_safe(info)
    assert _state(database) == before
    assert [d.version for d in registry.deployments(MODEL)] == [1]
    assert registry.deploy(MODEL, 2, alias="live", target="local", expected=1, actor="alice").version == 2
    assert [p["version"] for p in registry.alias_history(MODEL, "live")] == [1, 2]
    assert registry.verify_audit().ok
    registry.dispose()


# -- SQLite: an unusable path -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["under_a_file", "unwritable_root"])
def test_sqlite_registry_in_an_unusable_folder_names_the_path(tmp_path: Path, where: str) -> None:
    if where == "under_a_file":
        blocker = tmp_path / "not_a_folder"
        blocker.write_text("a file where a folder should be")
        path = blocker / "registry" / "registry.db"
    else:
        path = Path("/proc/airflow-bridge-registry/registry.db")  # cannot be created, not even by root
    registry = ModelRegistry(f"sqlite:///{path}")  # a bad path is reported on use, not at construction
    with pytest.raises(RegistryError) as info:
        registry.register_version(MODEL, fake_artifact("v1"))
    assert str(path) in str(info.value), str(info.value)
    with pytest.raises(RegistryError) as info:
        registry.list_models()
    assert str(path) in str(info.value), str(info.value)
    assert not path.exists()


# -- the hook: URLs from connection fields --------------------------------------------------------


def _url(**fields: Any) -> str:
    base: dict[str, Any] = {"host": None, "port": None, "schema": None, "login": None, "password": None, "extra": {}}
    base.update(fields)
    return connection_to_url(conn_id="ml_registry", **base)


def test_connection_fields_build_a_postgres_url_with_an_escaped_password() -> None:
    tricky = "p@ss:w/rd%?#"
    url = sa.make_url(_url(host="db.internal", port=6432, schema="registry", login="writer", password=tricky))
    assert (url.drivername, url.host, url.port, url.database, url.username) == (
        "postgresql+psycopg2",
        "db.internal",
        6432,
        "registry",
        "writer",
    )
    assert url.password == tricky
    assert sa.make_url(_url(host="db.internal")).port == 5432
    assert sa.make_url(_url(host="db.internal")).database == "postgres"


def test_connection_extra_url_gets_the_password_field() -> None:
    url = sa.make_url(_url(password=PASSWORD, extra={"url": "postgresql+psycopg2://writer@db.internal/registry"}))
    assert url.password == PASSWORD and url.host == "db.internal"
    assert _url(extra={"url": "postgresql+psycopg2://writer@db.internal/registry"}).endswith("@db.internal/registry")
    assert _url(schema="/data/registry.db", extra={"backend": "sqlite"}) == "sqlite:////data/registry.db"
    assert _url(schema="/data/registry.db", extra={"extra__model_registry__backend": "sqlite"}).startswith("sqlite")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"password": PASSWORD, "extra": {"url": f"postgresql://writer:{PASSWORD}@db/registry"}}, "Password field"),
        ({"password": PASSWORD, "extra": {"url": "::not a url::"}}, "not a SQLAlchemy URL"),
        ({"password": PASSWORD, "extra": {"backend": "sqlite"}}, "SQLite file path"),
        ({"password": PASSWORD, "extra": {"backend": "postgresql"}}, "set Host"),
        ({"host": "db", "password": PASSWORD, "extra": {"backend": "oracle"}}, "not supported"),
    ],
)
def test_connection_errors_name_the_connection_never_the_password(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(RegistryError) as info:
        _url(**fields)
    assert "'ml_registry'" in str(info.value) and problem in str(info.value), str(info.value)
    assert PASSWORD not in "".join(traceback.format_exception(info.value))


def test_connection_extra_url_with_a_bad_port_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="ml_registry"):
        _url(password=PASSWORD, extra={"url": "postgresql://writer@db:notaport/registry"})


@pytest.mark.postgres
def test_hook_reports_an_unreachable_registry_without_the_password(
    database: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {
        "conn_type": "model_registry",
        "host": "127.0.0.1",
        "port": proxy.port,
        "login": "postgres",
        "password": PASSWORD,
        "schema": database,
    }
    monkeypatch.setenv("AIRFLOW_CONN_ML_REGISTRY_PROXIED", json.dumps(fields))
    hook = ModelRegistryHook("ml_registry_proxied")
    assert sa.make_url(hook.get_url()).password == PASSWORD  # the URL itself carries it, for the driver only
    registry = hook.get_registry()
    assert PASSWORD not in repr(registry)
    proxy.down()
    ok, message = hook.test_connection()
    assert not ok and "127.0.0.1" in message and PASSWORD not in message, message
    with pytest.raises(RegistryUnavailableError) as info:
        registry.register_version(MODEL, fake_artifact("v1"), run=RunRef("d", "r", "t"))
    _assert_retryable_and_safe(info)
    proxy.up()
    ok, message = hook.test_connection()
    assert ok and PASSWORD not in message, message
    assert registry.register_version(MODEL, fake_artifact("v1"), run=RunRef("d", "r", "t")).version == 1
    with pytest.raises(RegistryError, match="'ml_registry_missing' is not defined"):
        ModelRegistryHook("ml_registry_missing").get_url()
    registry.dispose()


@pytest.mark.postgres
def test_a_silent_client_holding_a_lock_costs_other_writers_seconds(
    database: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that goes silent (a network blackhole) while it holds a model's lock: writers of that model
    fail after lock_timeout, retryably; writers of other models never wait; the server cuts the silent
    session after idle_in_transaction_session_timeout, and the model takes writes again."""
    from airflow_bridge.registry.audit import lock_head

    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__REGISTRY_LOCK_TIMEOUT", "1s")
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__REGISTRY_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "3s")
    direct = ModelRegistry(postgres_url(database))
    for model in (MODEL, "other"):
        direct.register_version(model, fake_artifact(f"{model}-1"))
    silent = ModelRegistry(_proxied_url(proxy, database))
    holding = threading.Event()

    def go_silent() -> None:
        try:
            with silent.transaction("hold the lock") as conn:
                lock_head(conn, MODEL)  # what appending an event takes (the one global lock before issue 16)
                proxy.freeze()
                holding.set()
                time.sleep(8)
        except Exception:  # the server cut the session meanwhile: what the silent client finds on its return
            pass

    thread = threading.Thread(target=go_silent, daemon=True)
    thread.start()
    assert holding.wait(30)
    try:
        started = time.monotonic()
        direct.register_version("other", fake_artifact("other-2"))  # another model: no wait at all
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match="lock_timeout") as info:
            direct.register_version(MODEL, fake_artifact(f"{MODEL}-2"))
        assert time.monotonic() - started < 3.0
        assert "retry" in str(info.value)
        time.sleep(3.5)  # the server has cut the silent session by now
        started = time.monotonic()
        assert direct.register_version(MODEL, fake_artifact(f"{MODEL}-2")).version == 2
        assert time.monotonic() - started < 2.0
    finally:
        proxy.thaw()
        thread.join(15)
    assert direct.verify_audit().ok
    direct.dispose()
    silent.dispose()
