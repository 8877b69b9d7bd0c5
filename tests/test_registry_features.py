"""Registry features on both backends: the artifact's connection, policies bound to models, rollback
targets kept as undo pointers (also after migrating an existing registry), pending approvals, and the
in-memory registry for unit tests.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import ArtifactRef, ModelRegistry, PolicyBinding, RunRef
from airflow_bridge.registry.engine import MIGRATIONS
from airflow_bridge.registry.tables import SCHEMA_REVISION, metadata
from tests.registry_workers import fake_artifact

MODEL = "churn"
RUN = RunRef("train_churn", "scheduled__2026-01-01T00:00:00+00:00", "register")


def _binding(document: dict[str, Any], source: str) -> PolicyBinding:
    """A binding whose sha256 is its document's canonical sha256, as ``binding_for`` makes them."""
    from airflow_bridge.registry.trust import _document_sha256

    return PolicyBinding(_document_sha256(document), document, source)


TEAM_POLICY = _binding({"teams": {"growth": {"approvers": ["dana"]}}}, "specs/_policy.yaml")
NEW_POLICY = _binding({"teams": {"growth": {"approvers": ["dana", "eve"]}}}, "specs/_policy.yaml")


def _register(registry: ModelRegistry, count: int) -> None:
    for i in range(count):
        registry.register_version(MODEL, fake_artifact(f"v{i}"), run=RunRef("d", f"r{i}", "t"))


def _statements(registry: ModelRegistry) -> list[str]:
    """Every SQL statement the registry sends from now on (appended as they run)."""
    sent: list[str] = []

    @sa.event.listens_for(registry.engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    return sent


# -- the artifact's connection ------------------------------------------------------------------


def test_the_artifact_connection_is_recorded_with_the_version(registry: ModelRegistry) -> None:
    plain = fake_artifact("local")
    on_s3 = ArtifactRef("s3://models/churn/abc.joblib", "c" * 64, 123, "aws_models")
    assert registry.register_version(MODEL, on_s3, run=RUN).artifact == on_s3
    registry.register_version(MODEL, plain)

    assert registry.get_version(MODEL, 1).artifact == on_s3
    assert registry.get_version(MODEL, 2).artifact.conn_id is None
    assert registry.register_version(MODEL, fake_artifact("retry"), run=RUN).artifact == on_s3, "a retry"
    created = [e.after for e in registry.audit_events(model=MODEL) if e.action == "version_created"]
    assert created[0]["conn_id"] == "aws_models"
    assert "conn_id" not in created[1], "events of artifacts without a connection keep their layout"
    assert registry.verify_audit().ok


# -- policies -------------------------------------------------------------------------------------


def test_a_registration_binds_the_model_to_its_policy(registry: ModelRegistry) -> None:
    registry.register_version(MODEL, fake_artifact("v1"), run=RUN, actor="airflow", policy=TEAM_POLICY)
    assert registry.bound_policy(MODEL) == TEAM_POLICY
    assert registry.get_model(MODEL).policy_sha256 == TEAM_POLICY.sha256
    registry.register_version(MODEL, fake_artifact("v2"), policy=TEAM_POLICY)  # unchanged: no event
    registry.register_version(MODEL, fake_artifact("v3"))  # no policy given: the binding stays
    registry.register_version(MODEL, fake_artifact("v4"), actor="bob", reason="new approvers", policy=NEW_POLICY)

    assert registry.bound_policy(MODEL) == NEW_POLICY
    assert [e.action for e in registry.audit_events(model=MODEL)] == [
        "policy_bound",
        "version_created",
        "version_created",
        "version_created",
        "policy_bound",
        "version_created",
    ]
    first, second = (e for e in registry.audit_events(model=MODEL) if e.action == "policy_bound")
    assert (first.before, first.after) == (
        {"sha256": None, "source": None},
        {"sha256": TEAM_POLICY.sha256, "source": "specs/_policy.yaml"},
    )
    assert (first.actor, first.run) == ("airflow", RUN)
    assert (second.actor, second.reason) == ("bob", "new approvers")
    assert second.before == {"sha256": TEAM_POLICY.sha256, "source": "specs/_policy.yaml"}
    assert registry.verify_audit().ok


def test_bind_policy_changes_only_what_differs(registry: ModelRegistry) -> None:
    _register(registry, 1)
    assert registry.bound_policy(MODEL) is None
    assert registry.bind_policy(MODEL, TEAM_POLICY, actor="alice", reason="adopt the team policy") is True
    assert registry.bind_policy(MODEL, TEAM_POLICY, actor="alice") is False
    registry.register_version("other", fake_artifact("o1"), policy=TEAM_POLICY)  # the document is shared
    assert registry.bound_policy("other") == registry.bound_policy(MODEL) == TEAM_POLICY
    bound = [e for e in registry.audit_events() if e.action == "policy_bound"]
    assert [(e.model, e.actor, e.reason) for e in bound] == [
        (MODEL, "alice", "adopt the team policy"),
        ("other", "airflow", ""),
    ]
    with pytest.raises(NotFoundError, match="'unknown' is not in the registry"):
        registry.bind_policy("unknown", TEAM_POLICY, actor="alice")
    with pytest.raises(NotFoundError, match="'unknown' is not in the registry"):
        registry.bound_policy("unknown")


def test_an_unchanged_policy_costs_a_registration_no_statement(registry: ModelRegistry) -> None:
    registry.register_version(MODEL, fake_artifact("v1"), policy=TEAM_POLICY)
    registry.register_version(MODEL, fake_artifact("v2"))  # checks the model row once, then knows it
    sent = _statements(registry)
    registry.register_version(MODEL, fake_artifact("v3"))
    without = len(sent)
    registry.register_version(MODEL, fake_artifact("v4"), policy=TEAM_POLICY)
    assert len(sent) - without == without, sent[without:]


# -- rollback targets -----------------------------------------------------------------------------


def test_previous_alias_version_follows_the_moves_without_reading_the_audit_trail(
    registry: ModelRegistry,
) -> None:
    _register(registry, 4)
    assert registry.previous_alias_version(MODEL, "live") is None
    assert registry.previous_alias_version("unknown", "live") is None
    for version in (1, 2, 3):
        registry.deploy(MODEL, version, alias="live", target="local", actor="alice")
    registry.move_alias(MODEL, "staging", 4, actor="alice")

    sent = _statements(registry)
    assert registry.previous_alias_version(MODEL, "live") == 2
    assert registry.previous_alias_version(MODEL, "staging") is None
    assert not [s for s in sent if "ab_audit_events" in s], sent
    registry.rollback(MODEL, "live", actor="bob")
    assert registry.previous_alias_version(MODEL, "live") == 1
    registry.rollback(MODEL, "live", actor="bob")
    assert registry.previous_alias_version(MODEL, "live") is None
    registry.move_alias(MODEL, "live", 2, actor="alice")
    assert registry.previous_alias_version(MODEL, "live") == 1


def test_rollback_targets_survive_the_migration_of_an_existing_registry(registry: ModelRegistry) -> None:
    """A registry from before the undo pointers (revision 0001) gets them from its audit trail."""
    from alembic import command
    from alembic.config import Config

    _register(registry, 5)
    for version in (1, 2, 3, 4):
        registry.deploy(MODEL, version, alias="live", target="local", actor="alice")
    registry.rollback(MODEL, "live", actor="bob")  # back to 3
    registry.deploy(MODEL, 5, alias="live", target="local", actor="alice")
    registry.rollback(MODEL, "live", actor="bob")  # back to 3
    for version in (2, 1):
        registry.move_alias(MODEL, "staging", version, actor="alice")
    expected = {alias: registry.previous_alias_version(MODEL, alias) for alias in ("live", "staging")}
    assert expected == {"live": 2, "staging": 2}

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with registry.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        conn.commit()
        assert "undo_id" not in {c["name"] for c in sa.inspect(conn).get_columns("ab_alias_history")}
        command.upgrade(config, "head")
        conn.commit()

    assert {alias: registry.previous_alias_version(MODEL, alias) for alias in expected} == expected
    assert [registry.rollback(MODEL, "live", actor="bob").version for _ in range(2)] == [2, 1]
    assert registry.verify_audit().ok


# -- approvals ------------------------------------------------------------------------------------


def _approval(
    registry: ModelRegistry,
    action: str,
    version: int,
    alias: str = "live",
    actor: str = "dana",
    model: str = MODEL,
) -> int:
    if action == "approval_granted":  # an answer: only an approver under the model's policy gives it
        return registry.record_decision(action, actor=actor, model=model, version=version, alias=alias, reason="")
    return registry.record_event(action, actor=actor, model=model, version=version, alias=alias)


def test_pending_approvals_are_the_requests_nobody_closed(registry: ModelRegistry) -> None:
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.registry import ModelCard
    from airflow_bridge.registry.records import binding_for

    policy = Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"growth": {"approvers": ["dana"]}}}
    )
    for number in (1, 2, 3):
        registry.register_version(
            MODEL,
            fake_artifact(f"v{number}"),
            card=ModelCard(owner="alice", team="growth"),
            policy=binding_for(policy, "specs/_policy.yaml"),
            actor="alice",
        )
    granted = _approval(registry, "approval_requested", 1)
    _approval(registry, "approval_granted", 1)
    waiting = _approval(registry, "approval_requested", 2)
    _approval(registry, "approval_refused", 2, actor="mallory")  # not allowed to answer: still pending
    _approval(registry, "approval_requested", 1, alias="staging")
    _approval(registry, "approval_superseded", 1, alias="staging")
    again = _approval(registry, "approval_requested", 1)  # asked again after the grant
    elsewhere = _approval(registry, "approval_requested", 7, model="fraud")
    _approval(registry, "approval_timed_out", 3)  # closes nothing that was asked

    assert [e.seq for e in registry.pending_approvals()] == [waiting, again, elsewhere]
    assert [e.seq for e in registry.pending_approvals(MODEL)] == [waiting, again]
    assert registry.pending_approvals("unknown") == []
    assert [(e.action, e.actor) for e in registry.approval_events(MODEL, 2, "live")] == [
        ("approval_requested", "dana"),
        ("approval_refused", "mallory"),
    ]
    assert [(e.seq, e.action) for e in registry.approval_events(MODEL, 1, "live")] == [
        (granted, "approval_requested"),
        (granted + 1, "approval_granted"),
        (again, "approval_requested"),
    ]
    decision = registry.approval_decision(MODEL, 1, "live")
    assert decision is not None and decision.action == "approval_granted"


# -- in memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_registry_works_and_is_private(url: str) -> None:
    registry, other = ModelRegistry(url), ModelRegistry(url)
    _register(registry, 3)
    registry.deploy(MODEL, 1, alias="live", target="local", actor="alice")
    registry.deploy(MODEL, 2, alias="live", target="local", actor="alice")
    assert registry.rollback(MODEL, "live", actor="bob").version == 1
    assert registry.get_model(MODEL).latest_version == 3
    assert registry.verify_audit().ok
    assert other.list_models() == [], "each in-memory registry is its own database"
    registry.dispose()
    other.dispose()


def test_an_in_memory_registry_has_the_migrated_schema() -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(MIGRATIONS).get_current_head() == SCHEMA_REVISION
    registry = ModelRegistry("sqlite://")
    registry.list_models()
    with registry.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": "ab_alembic_version", "compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == SCHEMA_REVISION
    registry.dispose()
