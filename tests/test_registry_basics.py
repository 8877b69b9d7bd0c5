"""Registry behaviour on both backends: retries, cards, soft delete, rollback, a tamper-evident audit
trail, verified artifacts, and migrations that match the schema and run once.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import ChecksumMismatchError, ConflictError, NotFoundError, RegistryError
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef, fastpath
from airflow_bridge.registry.engine import MIGRATIONS
from airflow_bridge.registry.tables import metadata
from tests.registry_workers import (
    collect,
    fake_artifact,
    open_fresh_registry,
    process_context,
)

MODEL = "churn"
RUN = RunRef("train_churn", "scheduled__2026-01-01T00:00:00+00:00", "register")


def _register(registry: ModelRegistry, count: int, model: str = MODEL) -> list[int]:
    return [
        registry.register_version(model, fake_artifact(f"{model}-{i}"), run=RunRef("d", f"{model}-r{i}", "t")).version
        for i in range(count)
    ]


def _actions(registry: ModelRegistry) -> list[str]:
    return [e.action for e in registry.audit_events(model=MODEL)]


def _execute(registry: ModelRegistry, statement: str) -> None:
    with registry.engine.begin() as conn:
        conn.execute(sa.text(statement))


# -- versions -------------------------------------------------------------------------------------


def test_a_retried_registration_returns_the_same_version(registry: ModelRegistry) -> None:
    first = registry.register_version(MODEL, fake_artifact("one"), run=RUN, metrics={"roc_auc": 0.91})
    again = registry.register_version(MODEL, fake_artifact("retry wrote other bytes"), run=RUN)
    assert (first.version, again.version) == (1, 1)
    assert again.artifact == first.artifact, "a retry must not replace the recorded artifact"
    other = registry.register_version(MODEL, fake_artifact("two"), run=RunRef(RUN.dag_id, "manual__x", RUN.task_id))
    assert other.version == 2
    # Without a run ref (a manual CLI action) every call is a new version.
    assert registry.register_version(MODEL, fake_artifact("three")).version == 3
    assert registry.register_version(MODEL, fake_artifact("three")).version == 4
    assert _actions(registry) == ["version_created"] * 4
    assert registry.get_model(MODEL).latest_version == 4
    assert registry.get_version(MODEL, 1).metrics == {"roc_auc": 0.91}
    assert registry.get_version(MODEL, 1).run == RUN


def test_model_card_updates_are_audited(registry: ModelRegistry) -> None:
    card = ModelCard(description="Predict churn.", owner="alice", team="growth")
    registry.register_version(MODEL, fake_artifact("one"), card=card, run=RUN)
    assert registry.get_model(MODEL).card == card
    update = ModelCard(team="growth", intended_use="Retention campaigns", limitations="EU only")
    registry.register_version(MODEL, fake_artifact("two"), card=update, actor="bob")
    same = ModelCard(owner="alice", team="growth")
    registry.register_version(MODEL, fake_artifact("three"), card=same)  # no change, no event
    assert registry.get_model(MODEL).card == ModelCard(
        "Predict churn.", "alice", "growth", "Retention campaigns", "EU only"
    )
    events = [e for e in registry.audit_events(model=MODEL) if e.action == "model_card_updated"]
    assert len(events) == 2
    assert events[0].after["owner"] == "alice" and events[0].run == RUN
    assert events[1].actor == "bob" and events[1].before["limitations"] == ""
    assert events[1].after["limitations"] == "EU only"


def test_a_version_behind_an_alias_cannot_be_deleted(registry: ModelRegistry) -> None:
    _register(registry, 2)
    registry.deploy(MODEL, 1, alias="live", target="local", expected=None, actor="alice")
    with pytest.raises(ConflictError, match="churn v1 is behind alias\\(es\\) live"):
        registry.delete_version(MODEL, 1, actor="alice", reason="leaks PII")
    assert registry.get_version(MODEL, 1).deleted_at is None
    registry.deploy(MODEL, 2, alias="live", target="local", expected=1, actor="alice")
    registry.delete_version(MODEL, 1, actor="alice", reason="leaks PII")

    assert [v.version for v in registry.list_versions(MODEL)] == [2]
    deleted = registry.get_version(MODEL, 1)  # kept for audit
    assert deleted.deleted_at is not None
    assert [v.version for v in registry.list_versions(MODEL, include_deleted=True)] == [1, 2]
    event = registry.audit_events(model=MODEL)[-1]
    assert (event.action, event.version, event.reason) == ("version_deleted", 1, "leaks PII")
    with pytest.raises(RegistryError, match="v1 was deleted"):
        registry.move_alias(MODEL, "live", 1, actor="alice")
    with pytest.raises(RegistryError, match="v1 was deleted"):
        registry.delete_version(MODEL, 1, actor="alice", reason="twice")
    # Rolling back skips the deleted version: there is nothing older to go to.
    with pytest.raises(NotFoundError, match="no earlier version"):
        registry.rollback(MODEL, "live", actor="alice")
    assert registry.verify_audit().ok


# -- aliases, deployments, rollback -------------------------------------------------------------


def test_rollback_moves_the_alias_back_and_records_it(registry: ModelRegistry) -> None:
    _register(registry, 3)
    registry.deploy(MODEL, 1, alias="live", target="local", expected=None, actor="alice")
    registry.deploy(MODEL, 2, alias="live", target="local", expected=1, actor="alice")
    registry.deploy(MODEL, 3, alias="live", target="local", expected=2, actor="alice")
    registry.delete_version(MODEL, 1, actor="alice", reason="retired")  # not behind the alias any more

    deployment = registry.rollback(MODEL, "live", actor="bob", reason="latency regression")
    assert (deployment.version, deployment.action, deployment.actor) == (2, "rolled_back", "bob")
    now = registry.alias_version(MODEL, "live")
    assert now is not None and now.version == 2
    assert [(d.version, d.action) for d in registry.deployments(MODEL)] == [
        (1, "deployed"),
        (2, "deployed"),
        (3, "deployed"),
        (2, "rolled_back"),
    ]
    event = registry.audit_events(model=MODEL)[-1]
    assert (event.action, event.actor, event.alias, event.reason) == (
        "rolled_back",
        "bob",
        "live",
        "latency regression",
    )
    assert (event.before, event.after) == ({"version": 3}, {"version": 2})
    assert registry.verify_audit().ok


def test_rolling_back_twice_walks_back_through_the_deployments(registry: ModelRegistry) -> None:
    _register(registry, 4)
    for version in (1, 2, 3):
        registry.deploy(MODEL, version, alias="live", target="local", actor="alice")

    assert registry.rollback(MODEL, "live", actor="bob").version == 2
    assert registry.rollback(MODEL, "live", actor="bob").version == 1  # an undo, not a toggle back to 3
    registry.deploy(MODEL, 4, alias="live", target="local", expected=1, actor="alice")
    assert registry.rollback(MODEL, "live", actor="bob").version == 1
    with pytest.raises(NotFoundError, match="no earlier version"):
        registry.rollback(MODEL, "live", actor="bob")


def test_rollback_without_history_is_a_clear_not_found(registry: ModelRegistry) -> None:
    _register(registry, 2)
    with pytest.raises(NotFoundError, match="alias 'live' of model 'churn' points at no version"):
        registry.rollback(MODEL, "live", actor="bob")
    registry.deploy(MODEL, 1, alias="live", target="local", expected=None, actor="alice")
    with pytest.raises(NotFoundError, match="alias 'live' of model 'churn' has no earlier version"):
        registry.rollback(MODEL, "live", actor="bob")
    assert [d.action for d in registry.deployments(MODEL)] == ["deployed"]


def test_compare_and_set_refuses_a_stale_expectation(registry: ModelRegistry) -> None:
    _register(registry, 3)
    registry.move_alias(MODEL, "live", 1, expected=None, actor="alice")
    with pytest.raises(ConflictError, match="points at v1, not no version"):
        registry.move_alias(MODEL, "live", 2, expected=None, actor="bob")
    with pytest.raises(ConflictError, match="points at v1, not v3: it was moved concurrently"):
        registry.move_alias(MODEL, "live", 2, expected=3, actor="bob")
    move = registry.move_alias(MODEL, "live", 2, expected=1, actor="bob")
    assert (move.previous_version, move.version) == (1, 2)
    assert registry.resolve(MODEL, "live").version == 2
    assert registry.resolve(MODEL, "v3").version == 3
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.move_alias(MODEL, "live", 7, actor="bob")


# -- the audit trail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("reason", "'nothing to see'"), ("actor", "'mallory'"), ("created_at", "created_at")],
)
def test_an_edited_audit_row_is_named(registry: ModelRegistry, column: str, value: str) -> None:
    _register(registry, 5)
    assert registry.verify_audit().ok
    if column == "created_at":  # shift the time by one second, in each dialect's own way
        with registry.engine.connect() as conn:
            when = conn.execute(sa.text("SELECT created_at FROM ab_audit_events WHERE seq = 3")).scalar_one()
        with registry.engine.begin() as conn:
            table = sa.table("ab_audit_events", sa.column("seq"), sa.column("created_at", sa.DateTime(True)))
            when = when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(when)
            conn.execute(table.update().where(table.c.seq == 3).values(created_at=when + dt.timedelta(seconds=1)))
    else:
        _execute(registry, f"UPDATE ab_audit_events SET {column} = {value} WHERE seq = 3")
    report = registry.verify_audit()
    assert not report.ok
    assert report.broken_seq == 3 and report.checked == 2
    assert "seq 3" in report.problem and "modified" in report.problem, report.problem


def test_an_edited_payload_is_named(registry: ModelRegistry) -> None:
    _register(registry, 4)
    json_text = '{"artifact_uri": "file:///evil.bin", "sha256": "00", "size": 1, "metrics": {}}'
    _execute(registry, f"UPDATE ab_audit_events SET after = '{json_text}' WHERE seq = 2")
    report = registry.verify_audit()
    assert (report.ok, report.broken_seq) == (False, 2), report


def test_a_deleted_middle_row_is_named(registry: ModelRegistry) -> None:
    _register(registry, 5)
    _execute(registry, "DELETE FROM ab_audit_events WHERE stream_seq = 3")
    report = registry.verify_audit()
    assert not report.ok and report.broken_seq == 4  # the row found where event 3 was expected
    assert "event 3 of model churn's chain is missing" in report.problem, report.problem


def test_a_deleted_last_row_is_detected(registry: ModelRegistry) -> None:
    _register(registry, 5)
    _execute(registry, "DELETE FROM ab_audit_events WHERE stream_seq = 5")
    report = registry.verify_audit()
    assert not report.ok and report.checked == 4
    assert "4 remain" in report.problem and "records 5 events" in report.problem, report.problem


def test_a_rewritten_row_that_keeps_its_hash_breaks_the_link(registry: ModelRegistry) -> None:
    _register(registry, 4)
    _execute(registry, "UPDATE ab_audit_events SET prev_hash = '" + "f" * 64 + "' WHERE seq = 2")
    report = registry.verify_audit()
    assert (report.ok, report.broken_seq) == (False, 2)
    assert "does not link" in report.problem


# -- artifacts (the store is backend independent: not parametrized) --------------------------------


def test_read_verified_refuses_a_modified_artifact(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    data = os.urandom(4096)
    ref = store.put(data, "churn", ".joblib")
    assert store.put(data, "churn", ".joblib") == ref, "the same bytes land at the same place"
    assert ref.uri.endswith(f"/churn/{ref.sha256}.joblib") and ref.size == 4096
    assert store.read_verified(ref) == data
    assert not [p for p in (tmp_path / "artifacts" / "churn").iterdir() if p.name.startswith(".partial-")]

    path = Path(ref.uri.removeprefix("file://"))
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, one bit flipped
    with pytest.raises(ChecksumMismatchError) as info:
        store.read_verified(ref)
    assert ref.uri in str(info.value) and "modified after registration" in str(info.value)
    path.write_bytes(data[:100])
    with pytest.raises(ChecksumMismatchError, match="100 bytes"):
        store.read_verified(ref)
    path.unlink()
    with pytest.raises(ChecksumMismatchError, match=f"{ref.uri} is missing"):
        store.read_verified(ref)


# -- migrations -----------------------------------------------------------------------------------


def test_migrations_produce_exactly_the_declared_schema(registry: ModelRegistry) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    registry.list_models()  # migrate
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": "ab_alembic_version", "compare_type": True, "compare_server_default": True}
        )
        diffs = compare_metadata(context, metadata)
        assert diffs == [], diffs
        head = ScriptDirectory(MIGRATIONS).get_current_head()
        assert context.get_current_revision() == head


def test_migrations_run_once_when_many_processes_start_together(registry_url: str) -> None:
    from alembic.script import ScriptDirectory

    workers = 8
    ctx = process_context()
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    processes = [
        ctx.Process(target=open_fresh_registry, args=(registry_url, w, barrier, results), daemon=True)
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    outcome = collect(results, workers)
    for process in processes:
        process.join(timeout=60)
    assert [kind for kind, _, _ in outcome] == ["ok"] * workers
    assert [p.exitcode for p in processes] == [0] * workers
    engine = sa.create_engine(registry_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            head = ScriptDirectory(MIGRATIONS).get_current_head()
            assert conn.execute(sa.text("SELECT version_num FROM ab_alembic_version")).scalars().all() == [head]
            assert conn.execute(sa.text("SELECT id, seq FROM ab_audit_head")).all() == [(1, 0)]
    finally:
        engine.dispose()
    registry = ModelRegistry(registry_url)
    assert registry.register_version(MODEL, fake_artifact("after")).version == 1
    assert registry.verify_audit().ok
    registry.dispose()


def test_a_registration_reads_its_models_governance_from_an_index_not_every_version(registry: ModelRegistry) -> None:
    """Under the model's lock a registration reads the newest event that set the model's governance; the
    partial index answers that in one step, so the lock is not held longer as versions accumulate."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def _capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("UPDATE ab_models SET latest_version"):
            sent.append((statement, parameters))

    for i in range(3):
        registry.register_version("churn", fake_artifact(f"v{i}"))  # the first one creates the model
    event.listen(registry.engine, "before_cursor_execute", _capture)
    fastpath.remember(registry.engine, "churn", None)  # the full path, which allocates under the lock
    registry.register_version("churn", fake_artifact("v3"))
    statement, parameters = sent[0]
    postgres = registry.engine.dialect.name == "postgresql"
    with registry.engine.connect() as conn:
        if postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: the planner would scan them anyway
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + statement, parameters))
        conn.rollback()
    assert "ix_ab_audit_events_governing" in plan, plan
