"""The actions on an in-memory registry: approval eligibility, every door to a protected alias, supersession.

Milliseconds each: no Airflow, no training. The slow end-to-end paths live in test_end_to_end and test_cli.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.actions.registration import UNGOVERNED_SOURCE, register
from airflow_bridge.actions.results import DataSummary, Registration, TrainingResult, ValidationReport
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import BridgeError, ConflictError, NotFoundError, PolicyViolationError
from airflow_bridge.governance.enforcement import approval_refusal, is_protected
from airflow_bridge.governance.policy import OPEN_POLICY, Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for

POLICY = Policy.model_validate(
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "defaults": {"approval_required_for": ["production"]},
        "teams": {
            "onc": {"approvers": ["alice", "dana", "erin"]},
            "lab": {"approvers": ["dana"], "approval_required_for": ["staging"], "allow_enforcement_opt_out": True},
        },
    }
)


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry("sqlite://")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path}")


def _versions(
    registry: ModelRegistry, store: ArtifactStore, count: int, *, team: str = "onc", policy: Any = POLICY
) -> None:
    binding = binding_for(policy, "team/_policy.yaml") if policy is not None else None
    for number in range(1, count + 1):
        registry.register_version(
            "m",
            store.put(f"model {number}".encode(), "models/m", ".joblib"),
            run=RunRef("d", f"r{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team=team),
            policy=binding,
        )


def _move(registry: ModelRegistry, version: int, **kwargs: Any) -> Any:
    return deployment.move(registry, MoveRequest("m", version=version, **kwargs), actor="bob")


def _alias(registry: ModelRegistry, alias: str = "production") -> int | None:
    live = registry.alias_version("m", alias)
    return live.version if live else None


# -- the rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("dana", None),
        ("alice", "'alice' authored this model and cannot approve it (separation of duties)"),
        ("mallory", "'mallory' is not an approver of team 'onc' (approvers: dana, erin)"),
        ("", "the answer carries no user"),
    ],
)
def test_who_may_approve(user: str, expected: str | None) -> None:
    assert approval_refusal(POLICY, "onc", {"alice"}, user) == expected


def test_with_no_policy_nobody_approves_and_production_is_protected() -> None:
    assert approval_refusal(None, "onc", set(), "dana") == "no team policy governs this model, so nobody is an approver"
    assert is_protected(None, "onc", "production") and not is_protected(None, "onc", "staging")
    assert is_protected(POLICY, "lab", "staging") and not is_protected(POLICY, "lab", "production")
    assert is_protected(OPEN_POLICY, "any", "production"), "no policy file: production fails closed"


def test_results_have_one_xcom_form_and_say_what_is_wrong() -> None:
    data = DataSummary(
        "file:///d.csv", "csv", "a" * 64, 10, 5, {"x": "int64"}, {"x": 0.0}, ["x", "y"], "y", ["x"], 4, 1, 0.2, 1
    )
    registration = Registration("m", 3, ArtifactStore("/tmp").put(b"z", "t", ".bin"))
    artifact = registration.artifact
    training = TrainingResult("m", "E", "classification", artifact, data, holdout=artifact)
    assert TrainingResult.from_xcom(training.to_xcom()) == training
    assert Registration.from_xcom({"model": "m", "version": "3"}).version == 3
    with pytest.raises(BridgeError, match="registration must be the XCom of the upstream airflow-bridge task"):
        Registration.from_xcom([1, 2], "registration")
    with pytest.raises(BridgeError, match="is not a ValidationReport XCom"):
        ValidationReport.from_xcom({"metrics": {}})


# -- deploy, promote, rollback ------------------------------------------------------------------------


def test_an_unprotected_alias_moves_without_approval(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 1)
    result = _move(registry, 1, alias="staging")
    assert (result.version, result.previous_version, result.approval) == (1, None, None)


def test_a_protected_alias_needs_an_approval_by_an_allowed_approver(
    registry: ModelRegistry, store: ArtifactStore
) -> None:
    _versions(registry, store, 1)
    with pytest.raises(PolicyViolationError, match="has no recorded approval for 'production' \\(never approved\\)"):
        _move(registry, 1)
    assert _alias(registry) is None
    assert registry.audit_events(model="m")[-1].action == "move_refused"

    with pytest.raises(PolicyViolationError, match="authored this model"):
        approval.decide(registry, model="m", version=1, alias="production", responder="alice", approve=True)
    granted = approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=True)
    assert granted.granted
    result = _move(registry, 1)
    assert (result.version, result.approval.approver if result.approval else None) == (1, "dana")


def test_an_approver_removed_from_the_policy_no_longer_counts(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 1)
    approval.decide(registry, model="m", version=1, alias="production", responder="erin", approve=True)
    stricter = Policy.model_validate(
        {**POLICY.document(), "teams": {"onc": {"approvers": ["dana"]}, "lab": POLICY.document()["teams"]["lab"]}}
    )
    registry.bind_policy("m", binding_for(stricter, "team/_policy.yaml"), actor="ops")
    with pytest.raises(PolicyViolationError, match="the approval by 'erin' does not count"):
        _move(registry, 1)


def test_an_answered_approval_cannot_be_answered_again(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 1)
    approval.request_approval(
        registry, model="m", version=1, alias="production", requested_by="alice", approvers=["dana"]
    )
    approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=False)
    with pytest.raises(ConflictError, match="already answered: rejected by dana"):
        approval.decide(registry, model="m", version=1, alias="production", responder="erin", approve=True)
    with pytest.raises(PolicyViolationError, match="\\(rejected\\)"):
        _move(registry, 1)


def test_a_newer_request_supersedes_the_pending_one(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 2)
    for number in (1, 2):
        approval.request_approval(
            registry, model="m", version=number, alias="production", requested_by="alice", approvers=["dana"]
        )
    assert [(e.version, e.alias) for e in registry.pending_approvals("m")] == [(2, "production")]
    superseded = registry.audit_events(model="m")[-2]
    assert (superseded.action, superseded.version, superseded.reason) == ("approval_superseded", 1, "superseded by v2")
    with pytest.raises(ConflictError, match="already answered: superseded"):
        approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=True)


def test_rollback_goes_back_only_to_a_version_approved_for_the_alias(
    registry: ModelRegistry, store: ArtifactStore
) -> None:
    _versions(registry, store, 3)
    for number in (1, 2):
        approval.decide(registry, model="m", version=number, alias="production", responder="dana", approve=True)
        _move(registry, number)
    result = deployment.move(registry, MoveRequest(model="m", alias="production", action="rolled_back"), actor="erin")
    assert (result.version, result.previous_version, result.action) == (1, 2, "rolled_back")
    recorded = registry.deployments("m")[-1]
    assert (recorded.version, recorded.action, recorded.endpoint) == (1, "rolled_back", result.endpoint)
    assert recorded.endpoint  # the rollback's row says where the version is served, like a deploy's
    with pytest.raises(NotFoundError, match="no earlier version"):
        deployment.move(registry, MoveRequest(model="m", alias="production", action="rolled_back"), actor="erin")

    with pytest.raises(PolicyViolationError, match="v3 has no recorded approval"):  # the raw writer checks too
        registry.deploy("m", 3, alias="production", target="local", actor="root")
    assert _alias(registry) == 1


def test_enforcement_opt_out_is_audited_where_allowed_and_refused_elsewhere(
    registry: ModelRegistry, store: ArtifactStore
) -> None:
    _versions(registry, store, 1)
    with pytest.raises(PolicyViolationError, match="forbids turning enforcement off"):
        _move(registry, 1, enforce_policy=False)
    assert _alias(registry) is None

    other = ModelRegistry("sqlite://")
    _versions(other, store, 1, team="lab")
    result = deployment.move(
        other, MoveRequest(model="m", version=1, alias="staging", reason="hotfix #7", enforce_policy=False), actor="bob"
    )
    assert result.policy_override
    override = [e for e in other.audit_events(model="m") if e.action == "policy_override"]
    assert [(e.actor, e.reason, e.alias) for e in override] == [("bob", "hotfix #7", "staging")]


def test_no_policy_in_reach_fails_closed_for_production(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 1, policy=None)
    with pytest.raises(PolicyViolationError, match=r"no team policy governs 'm'.*policy_file"):
        _move(registry, 1)
    assert _move(registry, 1, alias="staging").version == 1


def test_a_governed_model_is_not_rebound_to_the_open_policy(registry: ModelRegistry, store: ArtifactStore) -> None:
    _versions(registry, store, 1)
    artifact = registry.get_version("m", 1).artifact
    training = TrainingResult("m", "E", "classification", artifact, DataSummary("file:///d.csv"))
    with pytest.raises(PolicyViolationError, match="a spec or operator with no team policy cannot register it"):
        register(
            training,
            None,
            registry=registry,
            actor="alice",
            card=ModelCard(owner="alice", team="onc"),
            policy=binding_for(OPEN_POLICY, UNGOVERNED_SOURCE),
        )
    assert registry.governing_policy("m").policy == POLICY


def test_team_only_moves_are_refused_for_outsiders_at_the_gate(registry: ModelRegistry, store: ArtifactStore) -> None:
    """The Models page's rule (team_only) is a gate check: refused before anything moves, audited with the version."""
    _versions(registry, store, 2)
    for number in (1, 2):
        approval.decide(registry, model="m", version=number, alias="production", responder="dana", approve=True)
    deployment.move(
        registry, MoveRequest(model="m", version=1, alias="production", action="promoted", team_only=True), actor="erin"
    )
    deployment.move(
        registry, MoveRequest(model="m", version=2, alias="production", action="promoted", team_only=True), actor="erin"
    )
    with pytest.raises(PolicyViolationError, match=r"rollback of m v1 .* 'mallory' is not a member or approver"):
        deployment.move(
            registry, MoveRequest(model="m", alias="production", action="rolled_back", team_only=True), actor="mallory"
        )
    assert _alias(registry) == 2
    refused = registry.audit_events(model="m")[-1]
    assert (refused.action, refused.actor, refused.version) == ("move_refused", "mallory", 1)
    assert (
        deployment.move(
            registry, MoveRequest(model="m", alias="production", action="rolled_back"), actor="mallory"
        ).version
        == 1
    )  # no team rule
