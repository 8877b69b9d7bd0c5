"""``models versions|history|approve|reject|promote|rollback``: every door to a protected alias from the CLI.

The registry binds the team policy to the model at registration, and the commands run from a folder
with no ``_policy.yaml``: the policy must still apply. Assertions read ``--format json`` output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for

POLICY = {
    "apiVersion": "airflow-bridge/v1",
    "kind": "Policy",
    "teams": {"oncology": {"members": ["alice"], "approvers": ["alice", "dana", "erin"]}},
}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    """Three versions of 'tumours' (owner alice, team oncology, policy bound), v1 approved and live.

    The current directory has no policy file: governance must not depend on where the command runs.
    """
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("AIRFLOW_BRIDGE_REGISTRY_URL", url)
    store, registry = ArtifactStore(f"file://{tmp_path / 'artifacts'}"), ModelRegistry(url)
    binding = binding_for(Policy.model_validate(POLICY), "dag_specs/_policy.yaml")
    for number in (1, 2, 3):
        ref = store.put(f"model {number}".encode(), "models/tumours", ".joblib")
        registry.register_version(
            "tumours",
            ref,
            metrics={"roc_auc": 0.9 + number / 100},
            run=RunRef("dag", f"run{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="oncology"),
            policy=binding,
        )
    assert _invoke("models", "approve", "tumours", "1", "--as", "dana")[0] == 0
    assert _invoke("models", "promote", "tumours", "1", "--as", "dana")[0] == 0
    return registry


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


def _json(*args: str) -> Any:
    code, output = _invoke(*args, "--format", "json")
    assert code == 0, output
    return json.loads(output)


def _last_event(registry: ModelRegistry) -> Any:
    return registry.audit_events(model="tumours")[-1]


def test_versions_and_history_list_what_happened(registry: ModelRegistry) -> None:
    versions = _json("models", "versions", "tumours")
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, ["production"]), (2, []), (3, [])]
    history = _json("models", "history", "tumours")
    assert [(e["action"], e["version"], e["alias"]) for e in history][-2:] == [
        ("approval_granted", 1, "production"),
        ("promoted", 1, "production"),
    ]
    assert {"model_card_updated", "policy_bound", "version_created"} <= {e["action"] for e in history}
    assert any(e["action"] == "policy_bound" for e in history)


@pytest.mark.parametrize("actor", ["alice", "mallory", "dana"])
def test_promote_of_an_unapproved_version_is_refused_for_everyone(registry: ModelRegistry, actor: str) -> None:
    code, output = _invoke("models", "promote", "tumours", "3", "--as", actor)

    assert code == 1
    assert "v3 has no recorded approval for 'production' (never approved)" in output
    assert "dana or erin" in output and "models approve tumours 3" in output
    assert registry.alias_version("tumours", "production").version == 1
    refused = _last_event(registry)
    assert (refused.action, refused.actor, refused.version) == ("move_refused", actor, 3)


@pytest.mark.parametrize(
    ("actor", "why"),
    [("alice", "authored this model and cannot approve it"), ("mallory", "'mallory' is not an approver")],
)
def test_approval_by_the_author_or_a_non_approver_is_refused(registry: ModelRegistry, actor: str, why: str) -> None:
    code, output = _invoke("models", "approve", "tumours", "3", "--as", actor)

    assert code == 1 and why in output and "nothing changed" in output
    refused = _last_event(registry)
    assert (refused.action, refused.actor, refused.version) == ("approval_refused", actor, 3)
    assert _invoke("models", "promote", "tumours", "3", "--as", "dana")[0] == 1


def test_an_approved_version_can_be_promoted_once_with_compare_and_set(registry: ModelRegistry) -> None:
    decision = _json("models", "approve", "tumours", "2", "--as", "erin")
    assert (decision["decision"], decision["approver"]) == ("granted", "erin")
    code, output = _invoke("models", "approve", "tumours", "2", "--as", "dana")
    assert code == 1 and "already answered: granted by erin" in output

    moved = _json("models", "promote", "tumours", "2", "--as", "alice", "--reason", "review #42")
    assert (moved["version"], moved["previous_version"], moved["action"]) == (2, 1, "promoted")
    assert moved["approval"]["approver"] == "erin"
    event = _last_event(registry)
    assert (event.action, event.actor, event.reason, event.before, event.after) == (
        "promoted",
        "alice",
        "review #42",
        {"version": 1},
        {"version": 2},
    )
    _json("models", "approve", "tumours", "3", "--as", "dana")
    code, output = _invoke("models", "promote", "tumours", "3", "--as", "dana", "--expect", "1")
    assert code == 1 and "points at v2, not v1" in output
    assert registry.alias_version("tumours", "production").version == 2


def test_a_rejected_version_stays_out(registry: ModelRegistry) -> None:
    assert _json("models", "reject", "tumours", "3", "--as", "dana")["decision"] == "rejected"
    code, output = _invoke("models", "promote", "tumours", "3", "--as", "dana")
    assert code == 1 and "(rejected)" in output
    assert registry.alias_version("tumours", "production").version == 1


def test_a_tampered_artifact_is_neither_approved_nor_promoted(registry: ModelRegistry) -> None:
    _json("models", "approve", "tumours", "3", "--as", "dana")
    path = Path(urlsplit(registry.get_version("tumours", 3).artifact.uri).path)
    path.write_bytes(b"swapped")

    code, output = _invoke("models", "promote", "tumours", "3", "--as", "dana")

    assert code == 1 and "modified after registration" in output
    assert registry.alias_version("tumours", "production").version == 1
    assert _last_event(registry).action == "move_refused"


def test_a_version_that_does_not_exist_is_a_clear_error(registry: ModelRegistry) -> None:
    code, output = _invoke("models", "promote", "tumours", "9", "--as", "dana")
    assert code == 1 and "has no version 9" in output
    code, output = _invoke("models", "approve", "tumours", "9", "--as", "dana")
    assert code == 1 and "has no version 9" in output


def test_rollback_goes_back_only_to_an_approved_version(registry: ModelRegistry) -> None:
    _json("models", "approve", "tumours", "2", "--as", "dana")
    _json("models", "promote", "tumours", "2", "--as", "dana")

    moved = _json("models", "rollback", "tumours", "--as", "erin", "--reason", "latency")
    assert (moved["version"], moved["previous_version"]) == (1, 2)
    code, output = _invoke("models", "rollback", "tumours", "--as", "erin")
    assert code == 1 and "has no earlier version to roll back to" in output

    # The registry's own writer is no side door: moving production to a never-approved v3 is refused there too.
    _json("models", "promote", "tumours", "2", "--as", "dana")
    with pytest.raises(PolicyViolationError, match="v3 has no recorded approval"):
        registry.deploy("tumours", 3, alias="production", target="local", actor="root")
    assert registry.alias_version("tumours", "production").version == 2


def test_an_unbound_model_with_no_policy_in_reach_fails_closed(
    tmp_path: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ArtifactStore(f"file://{tmp_path / 'artifacts'}").put(b"other", "models/other", ".joblib")
    registry.register_version("other", ref, actor="bob", card=ModelCard(owner="bob", team="oncology"))

    code, output = _invoke("models", "promote", "other", "1", "--as", "dana")
    assert code == 1 and "no team policy governs 'other'" in output and "policy_file" in output
    assert registry.alias_version("other", "production") is None

    staging = _json("models", "promote", "other", "1", "--alias", "staging", "--as", "bob")
    assert staging["version"] == 1  # not a protected alias

    policy_file = tmp_path / "team_policy.yaml"  # the deployment's configured policy governs unbound models
    policy_file.write_text(yaml.safe_dump(POLICY))
    monkeypatch.setenv("AIRFLOW_BRIDGE_POLICY", str(policy_file))
    code, output = _invoke("models", "promote", "other", "1", "--as", "dana")
    assert code == 1 and "no recorded approval" in output
    _json("models", "approve", "other", "1", "--as", "dana")
    assert _json("models", "promote", "other", "1", "--as", "dana")["version"] == 1


def test_a_configured_policy_that_is_invalid_refuses_and_changes_nothing(
    tmp_path: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ArtifactStore(f"file://{tmp_path / 'artifacts'}").put(b"other", "models/other", ".joblib")
    registry.register_version("other", ref, actor="bob", card=ModelCard(owner="bob", team="oncology"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: airflow-bridge/v1\nkind: Policy\nteamz: {}\n")
    monkeypatch.setenv("AIRFLOW_BRIDGE_POLICY", str(broken))

    code, output = _invoke("models", "approve", "other", "1", "--as", "dana")
    assert code == 1 and "broken.yaml" in output and "unreadable or invalid" in output
    monkeypatch.setenv("AIRFLOW_BRIDGE_POLICY", str(tmp_path / "missing.yaml"))
    code, output = _invoke("models", "promote", "other", "1", "--as", "dana")
    assert code == 1 and "missing.yaml" in output
    assert registry.alias_version("other", "production") is None


def test_a_different_policy_cannot_override_the_bound_one(
    tmp_path: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    lax = dict(POLICY, defaults={"approval_required_for": []})
    policy_file = tmp_path / "lax.yaml"
    policy_file.write_text(yaml.safe_dump(lax))
    monkeypatch.setenv("AIRFLOW_BRIDGE_POLICY", str(policy_file))  # a configured policy governs unbound models only

    code, output = _invoke("models", "promote", "tumours", "3", "--as", "alice")
    assert code == 1 and "v3 has no recorded approval" in output
    code, output = _invoke("models", "promote", "tumours", "3", "--as", "alice", "--policy", str(policy_file))
    assert code == 2, "--policy is gone: the registry decides which policy governs"
    assert registry.alias_version("tumours", "production").version == 1
