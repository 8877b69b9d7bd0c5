"""``models versions|history|promote|rollback`` against a real registry, with the team policy applied."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.cli.main import app
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef

POLICY = {
    "apiVersion": "airflow-bridge/v1",
    "kind": "Policy",
    "teams": {"oncology": {"members": ["alice"], "approvers": ["alice", "dana"]}},
}


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    """Three versions of 'tumours' (owner alice, team oncology), v1 live; cwd holds the team policy."""
    (tmp_path / "_policy.yaml").write_text(yaml.safe_dump(POLICY))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("AIRFLOW_BRIDGE_REGISTRY_URL", url)
    store, registry = ArtifactStore(f"file://{tmp_path / 'artifacts'}"), ModelRegistry(url)
    for number in (1, 2, 3):
        ref = store.put(f"model {number}".encode(), "models/tumours", ".joblib")
        registry.register_version(
            "tumours",
            ref,
            metrics={"roc_auc": 0.9 + number / 100},
            run=RunRef("dag", f"run{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="oncology"),
        )
    registry.deploy("tumours", 1, alias="production", target="local", actor="dana")
    return registry


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    return result.exit_code, result.output


def test_versions_and_history_list_what_happened(registry: ModelRegistry) -> None:
    code, output = _invoke("models", "versions", "tumours", "--format", "json")
    assert code == 0
    assert [(v["version"], v["aliases"]) for v in json.loads(output)] == [(1, ["production"]), (2, []), (3, [])]

    code, output = _invoke("models", "history", "tumours", "--format", "json")
    assert code == 0
    assert [(e["seq"], e["action"], e["version"], e["alias"]) for e in json.loads(output)][-2:] == [
        (4, "version_created", 3, None),
        (5, "deployed", 1, "production"),
    ]
    code, output = _invoke("models", "history", "tumours")
    assert code == 0 and "version_created" in output


@pytest.mark.parametrize(("actor", "why"), [("alice", "the owner cannot approve"), ("mallory", "needs approval")])
def test_promote_to_a_governed_alias_needs_an_approver_who_is_not_the_owner(
    registry: ModelRegistry, actor: str, why: str
) -> None:
    code, output = _invoke("models", "promote", "tumours", "3", "--alias", "production", "--actor", actor)

    assert code == 1
    assert f"'{actor}' may not move 'production' of tumours" in output and why in output
    assert registry.alias_version("tumours", "production").version == 1
    refused = registry.audit_events(model="tumours")[-1]
    assert (refused.action, refused.actor) == ("approval_refused", actor)


def test_promote_by_an_approver_moves_the_alias_with_compare_and_set(registry: ModelRegistry) -> None:
    code, output = _invoke(
        "models", "promote", "tumours", "2", "--actor", "dana", "--reason", "review #42", "--format", "json"
    )
    assert code == 0, output
    assert json.loads(output) == {
        "model": "tumours",
        "alias": "production",
        "version": 2,
        "previous_version": 1,
        "actor": "dana",
    }
    event = registry.audit_events(model="tumours")[-1]
    assert (event.action, event.actor, event.reason, event.before, event.after) == (
        "promoted",
        "dana",
        "review #42",
        {"version": 1},
        {"version": 2},
    )

    code, output = _invoke("models", "promote", "tumours", "3", "--actor", "dana", "--expect", "1")
    assert code == 1 and "points at v2, not v1" in output
    assert registry.alias_version("tumours", "production").version == 2


def test_promote_refuses_a_tampered_artifact(registry: ModelRegistry) -> None:
    path = Path(urlsplit(registry.get_version("tumours", 3).artifact.uri).path)
    path.write_bytes(b"swapped")

    code, output = _invoke("models", "promote", "tumours", "3", "--actor", "dana")

    assert code == 1 and "modified after registration" in output
    assert registry.alias_version("tumours", "production").version == 1


def test_rollback_goes_back_and_says_when_there_is_nowhere_to_go(registry: ModelRegistry) -> None:
    assert _invoke("models", "promote", "tumours", "2", "--actor", "dana")[0] == 0

    code, output = _invoke("models", "rollback", "tumours", "--actor", "erin", "--reason", "latency")
    assert code == 0 and "rolled back to v1 (was v2)" in output
    assert registry.alias_version("tumours", "production").version == 1

    code, output = _invoke("models", "rollback", "tumours", "--actor", "erin")
    assert code == 1 and "has no earlier version to roll back to" in output
