"""Governance that holds against the people who would break it, on SQLite and PostgreSQL.

Each test reproduces a hole found by trying the registry as another team, as a caller of the public
Python API, and as someone with write access to the database; each fails on the code before issue 15.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.actions.ownership import transfer
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import (
    AuditMismatchError,
    ConflictError,
    OwnershipError,
    PolicyViolationError,
    RequestError,
)
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry import audit as audit_module
from airflow_bridge.registry.records import binding_for
from tests.registry_workers import registry_database

ONCOLOGY = Policy.model_validate(
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "teams": {"oncology": {"members": ["alice"], "approvers": ["dana", "erin"]}},
    }
)
GROWTH = Policy.model_validate(  # another folder's policy: its team deploys production without approval
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "teams": {
            "growth": {"members": ["mallory"], "approvers": ["dana"], "approval_required_for": []},
            "oncology": {"members": ["mallory"], "approvers": ["mallory2"], "approval_required_for": []},
        },
    }
)
ONC_SOURCE, GROWTH_SOURCE = "oncology/_policy.yaml", "growth/_policy.yaml"
KEY = b"an-audit-key-held-outside-the-db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with registry_database(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'artifacts'}")


@pytest.fixture
def registry(url: str, store: ArtifactStore) -> Iterator[ModelRegistry]:
    """breast_cancer of team oncology: v1 and v2 registered by alice, v1 approved by dana and live."""
    registry = ModelRegistry(url)
    for number in (1, 2):
        _register(registry, store, number)
    approval.decide(registry, model="breast_cancer", version=1, alias="production", responder="dana", approve=True)
    deployment.move(registry, MoveRequest(model="breast_cancer", version=1, alias="production"), actor="alice")
    yield registry
    registry.dispose()


def _register(registry: ModelRegistry, store: ArtifactStore, number: int, **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "card": ModelCard(owner="alice", team="oncology"),
        "policy": binding_for(ONCOLOGY, ONC_SOURCE),
        "actor": "alice",
        "run": RunRef("breast_cancer_classifier", f"run{number}-{id(changes)}", "register"),
    }
    fields.update(changes)
    artifact = store.put(pickle.dumps({"model": number}), "models/breast_cancer", ".joblib")
    return registry.register_version("breast_cancer", artifact, **fields)


def _sql(url: str, statement: str, **params: Any) -> None:
    """A write straight to the database, as someone with its credentials would make it."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(statement), params)
    engine.dispose()


def _state(registry: ModelRegistry) -> tuple[Any, ...]:
    model = registry.get_model("breast_cancer")
    return model.latest_version, model.card, dict(model.aliases), registry.chain_heads()


# -- a model belongs to its team ----------------------------------------------------------------


def test_another_team_cannot_register_rebind_or_claim_a_model(registry: ModelRegistry, store: ArtifactStore) -> None:
    before = _state(registry)
    with pytest.raises(OwnershipError, match=r"belongs to team .oncology.*team .growth. cannot register"):
        _register(
            registry,
            store,
            3,
            card=ModelCard(owner="mallory", team="growth"),
            policy=binding_for(GROWTH, GROWTH_SOURCE),
        )
    with pytest.raises(OwnershipError, match=f"the policy {GROWTH_SOURCE} may not govern it"):  # team name forged
        _register(
            registry,
            store,
            3,
            card=ModelCard(owner="mallory", team="oncology"),
            policy=binding_for(GROWTH, GROWTH_SOURCE),
        )
    with pytest.raises(OwnershipError, match="a writer that names no team cannot register"):
        _register(registry, store, 3, card=None, policy=None)
    with pytest.raises(OwnershipError, match="may not govern it"):
        registry.bind_policy("breast_cancer", binding_for(GROWTH, GROWTH_SOURCE), actor="mallory")
    assert _state(registry) == before, "nothing was written"
    assert registry.reconcile() == [] and registry.verify_audit().ok


def test_only_an_approver_of_both_teams_transfers_a_model(
    registry: ModelRegistry, store: ArtifactStore, tmp_path: Path
) -> None:
    both = tmp_path / "growth" / "_policy.yaml"
    both.parent.mkdir()
    both.write_text(
        "apiVersion: airflow-bridge/v1\nkind: Policy\nteams:\n  growth: {members: [mallory], approvers: [dana]}\n"
    )
    with pytest.raises(PolicyViolationError, match="'mallory' is not an approver of team 'oncology'"):
        transfer(registry, model="breast_cancer", team="growth", policy_file=str(both), actor="mallory", reason="mine")
    moved = transfer(
        registry, model="breast_cancer", team="growth", policy_file=str(both), actor="dana", reason="reorg"
    )
    assert (moved.previous_team, moved.team) == ("oncology", "growth")
    assert registry.get_model("breast_cancer").card.team == "growth"
    last = registry.audit_events(model="breast_cancer")[-1]
    assert (last.action, last.actor, last.reason) == ("ownership_transferred", "dana", "reorg")
    assert registry.reconcile() == [] and registry.verify_audit().ok


# -- no public call moves a protected alias or records an approval past the rules -------------------


def test_the_public_writers_apply_the_same_rules(registry: ModelRegistry) -> None:
    before = _state(registry)
    with pytest.raises(PolicyViolationError, match="not written with record_event"):
        registry.record_event("approval_granted", actor="erin", model="breast_cancer", version=2, alias="production")
    with pytest.raises(PolicyViolationError, match="v2 has no recorded approval for 'production'"):
        registry.move_alias("breast_cancer", "production", 2, actor="root")
    with pytest.raises(PolicyViolationError, match="v2 has no recorded approval"):
        registry.deploy("breast_cancer", 2, alias="production", target="local", actor="root")
    for claimed in ("alice", "mallory"):  # the author, an outsider
        with pytest.raises(PolicyViolationError, match="refused"):
            registry.record_decision(
                "approval_granted", actor=claimed, model="breast_cancer", version=2, alias="production", reason=""
            )
    with pytest.raises(PolicyViolationError, match="forbids turning enforcement off"):
        registry.move_alias("breast_cancer", "production", 2, actor="root", override=True)
    assert _state(registry) == before


# -- rows the chain does not explain are not trusted --------------------------------------------


def test_a_forged_approval_row_is_not_honoured(url: str, registry: ModelRegistry) -> None:
    position, _ = registry.chain_heads()["breast_cancer"]
    _sql(
        url,
        "INSERT INTO ab_audit_events (seq, created_at, actor, action, model, version, alias, reason, prev_hash, hash,"
        " after, stream, stream_seq) VALUES (1000, CURRENT_TIMESTAMP, 'erin', 'approval_granted', 'breast_cancer',"
        " 2, 'production', 'erin chose Approve', 'x', 'y', '{\"approver\": \"erin\"}', 'breast_cancer', :position)",
        position=position + 1,
    )
    _sql(url, "UPDATE ab_models SET chain_seq = :position, chain_hash = 'y'", position=position + 1)
    with pytest.raises(AuditMismatchError, match=r"the chain was edited|was modified"):
        deployment.move(
            registry,
            MoveRequest(model="breast_cancer", version=2, alias="production", action="promoted"),
            actor="alice",
        )
    assert registry.alias_version("breast_cancer", "production").version == 1  # type: ignore[union-attr]
    assert not registry.verify_audit().ok


def test_a_well_hashed_forgery_is_refused_when_events_are_signed(url: str, store: ArtifactStore) -> None:
    """Someone with database access computes a correct hash for a forged approval: only the key stops them."""
    registry = ModelRegistry(url, audit_key=KEY)
    for number in (1, 2):
        _register(registry, store, number)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        head = audit_module.lock_head(connection, "breast_cancer")
        forged = audit_module.next_event(
            head,
            actor="erin",
            action="approval_granted",
            now=_now(),
            model="breast_cancer",
            version=2,
            alias="production",
            reason="erin chose Approve",
            after={"approver": "erin"},
        )
        audit_module.write_event(connection, forged)
    engine.dispose()
    with pytest.raises(AuditMismatchError, match="not signed with the audit key"):
        deployment.move(
            registry,
            MoveRequest(model="breast_cancer", version=2, alias="production", action="promoted"),
            actor="alice",
        )
    assert registry.alias_version("breast_cancer", "production") is None
    report = registry.verify_audit()
    assert not report.ok and "not signed" in report.problem
    assert ModelRegistry(url).verify_audit().ok, (
        "without the key the forgery is a valid chain: the key is what stops it"
    )


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_an_edited_alias_row_is_reported_and_never_served(url: str, registry: ModelRegistry) -> None:
    _sql(url, "UPDATE ab_aliases SET version_id = (SELECT id FROM ab_model_versions WHERE version = 2)")
    assert registry.verify_audit().ok, "the chain itself is intact: only reconciling shows the edit"
    [problem] = registry.reconcile()
    assert "alias 'production' of breast_cancer points at v2 but the audit trail's last move" in problem
    with pytest.raises(AuditMismatchError, match="the alias row was edited outside airflow-bridge"):
        registry.trusted_version("breast_cancer", "production")
    approval.decide(registry, model="breast_cancer", version=2, alias="production", responder="dana", approve=True)
    with pytest.raises(AuditMismatchError, match="the alias row was edited"):
        deployment.move(
            registry,
            MoveRequest(model="breast_cancer", version=2, alias="production", action="promoted"),
            actor="alice",
        )


def test_an_edited_version_row_is_never_unpickled(url: str, registry: ModelRegistry, tmp_path: Path) -> None:
    import hashlib

    from airflow_bridge.serving.app import ModelHolder

    marker = tmp_path / "code-ran"
    crafted = pickle.dumps(_Exploit(str(marker)))
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(crafted)
    _sql(
        url,
        "UPDATE ab_model_versions SET artifact_uri = :uri, artifact_sha256 = :sha, artifact_size = :size"
        " WHERE version = 1",
        uri=f"file://{evil}",
        sha=hashlib.sha256(crafted).hexdigest(),
        size=len(crafted),
    )
    assert any("breast_cancer v1: artifact_uri" in p for p in registry.reconcile())
    with pytest.raises(AuditMismatchError, match="version row was edited outside airflow-bridge"):
        ModelHolder(registry, "breast_cancer", "production").load_initial()
    assert not marker.exists(), "the crafted pickle was never loaded"


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))


def test_truncating_or_rewriting_history_is_caught_by_an_anchor(
    url: str, registry: ModelRegistry, tmp_path: Path
) -> None:
    from airflow_bridge.actions.anchoring import anchor, verify

    anchors = f"file://{tmp_path / 'anchors'}"
    approval.request_approval(
        registry, model="breast_cancer", version=2, alias="production", requested_by="alice", approvers=["dana"]
    )
    written = anchor(registry, anchors)
    assert verify(registry, anchors).ok
    # delete the model's newest event and rewind its chain's head: the chain alone still verifies
    newest, _ = written.heads["breast_cancer"]
    _sql(url, "DELETE FROM ab_audit_events WHERE stream = 'breast_cancer' AND stream_seq = :p", p=newest)
    _sql(
        url,
        "UPDATE ab_models SET chain_seq = :p, chain_hash = (SELECT hash FROM ab_audit_events WHERE"
        " stream = 'breast_cancer' AND stream_seq = :p)",
        p=newest - 1,
    )
    assert registry.verify_audit().ok
    verdict = verify(registry, anchors)
    assert not verdict.ok and "truncated" in verdict.chain.problem


# -- rollback acts on what it checked ------------------------------------------------------------


def test_rollback_moves_only_the_version_it_checked(registry: ModelRegistry, store: ArtifactStore) -> None:
    _register(registry, store, 3)
    for number in (2, 3):
        approval.decide(
            registry, model="breast_cancer", version=number, alias="production", responder="dana", approve=True
        )
        deployment.move(registry, MoveRequest(model="breast_cancer", version=number, alias="production"), actor="alice")
    pending = deployment.begin_move(
        registry, MoveRequest(model="breast_cancer", alias="production", action="rolled_back"), actor="erin"
    )
    assert pending.version == 2
    registry.delete_version("breast_cancer", 2, actor="root", reason="deleted during the KServe wait")
    from airflow_bridge.targets import Outcome

    with pytest.raises(ConflictError, match="checked for v2, but it would now go back to v1"):
        deployment.settle(registry, pending, Outcome(True, "local://x"))
    assert registry.alias_version("breast_cancer", "production").version == 3  # type: ignore[union-attr]


# -- approvals ----------------------------------------------------------------------------------


def test_a_comment_too_long_is_refused_before_anything_is_recorded(registry: ModelRegistry) -> None:
    before = registry.chain_heads()
    with pytest.raises(RequestError, match="10000 characters long; at most 2000"):
        approval.decide(
            registry,
            model="breast_cancer",
            version=2,
            alias="production",
            responder="erin",
            approve=False,
            comment="x" * 10_000,
        )
    assert registry.chain_heads() == before
    decided = approval.decide(
        registry,
        model="breast_cancer",
        version=2,
        alias="production",
        responder="erin",
        approve=False,
        comment="the recall on the new site is too low",
    )
    assert decided.decision == "rejected" and decided.reason.endswith(": the recall on the new site is too low")
    assert registry.audit_events(model="breast_cancer")[-1].after["comment"] == "the recall on the new site is too low"


def test_a_principal_is_recorded_beside_a_claimed_name(registry: ModelRegistry) -> None:
    claimed = registry.acting_as("os:root")
    approval.decide(claimed, model="breast_cancer", version=2, alias="production", responder="dana", approve=True)
    last = registry.audit_events(model="breast_cancer")[-1]
    assert (last.actor, last.principal, last.who) == ("dana", "os:root", "dana (os:root)")
    assert registry.verify_audit().ok, "the principal is hashed with the event"
