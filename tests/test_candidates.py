"""Every candidate is tracked: recorded passed or failed, linked to the version its run registered, with its
fate now, pruned under the policy's retention, and comparable with versions. Milliseconds each: no training."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from airflow_bridge.actions.candidates import candidate_fates, candidate_id
from airflow_bridge.actions.comparison import compare_versions
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import NotFoundError, RequestError
from airflow_bridge.governance.loader import load_policy
from airflow_bridge.governance.policy import OPEN_POLICY, CandidateRetention, Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import Candidate
from tests.helpers import EXAMPLES

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
R2_GATE = {"name": "r2", "kind": "metric", "min": 0.5, "max": None}


def _candidate(run_id: str, r2: float, *, when: dt.datetime = NOW, model: str = "prices", **extra: Any) -> Candidate:
    run = RunRef("prices_dag", run_id, "validate")
    return Candidate(
        candidate_id=candidate_id(model, run),
        model=model,
        run=run,
        spec_sha256="f" * 64,
        estimator="sklearn.ensemble.RandomForestRegressor",
        task_kind="regression",
        params={"n_estimators": 100, **extra},
        metrics={"r2": r2, "mae": 40.0},
        validation={"gates": [{**R2_GATE, "value": r2, "passed": r2 >= 0.5}]},
        data={"uri": "prices.csv", "sha256": "a" * 64, "rows": 500, "roles": {"rooms": {"role": "numeric"}}},
        artifact_sha256="b" * 64,
        artifact_uri="file:///artifacts/model.joblib",
        passed=r2 >= 0.5,
        recorded_by="alice",
        created_at=when,
    )


def _register(registry: ModelRegistry, store: ArtifactStore, run_id: str, r2: float) -> int:
    return registry.register_version(
        "prices",
        store.put(run_id.encode(), "models/prices", ".joblib"),
        metrics={"r2": r2, "mae": 40.0},
        validation={"gates": [{**R2_GATE, "value": r2, "passed": True}]},
        params={"n_estimators": 300},
        data={"uri": "prices.csv", "sha256": "a" * 64, "rows": 500, "roles": {"rooms": {"role": "numeric"}}},
        run=RunRef("prices_dag", run_id, "register"),
        actor="alice",
        card=ModelCard(owner="alice", team="lab"),
    ).version


@pytest.fixture
def url(registry_url: str) -> str:
    """An empty registry: SQLite, then PostgreSQL."""
    return registry_url


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'artifacts'}")


def test_a_candidate_id_names_the_model_and_run_and_is_random_outside_airflow() -> None:
    run = RunRef("d", "manual__1", "validate")
    assert candidate_id("m", run) == candidate_id("m", RunRef("d", "manual__1", "train"))  # every task of the run
    assert candidate_id("m", run) != candidate_id("m", RunRef("d", "manual__2", "validate"))
    assert candidate_id("m", None) != candidate_id("m", None)
    assert candidate_id("m", run).startswith("c-") and len(candidate_id("m", run)) == 12


def test_failed_and_passed_candidates_are_listed_with_their_fate_and_version(url: str, store: ArtifactStore) -> None:
    registry = ModelRegistry(url, principal="os:alice")
    failed, passed = _candidate("r1", 0.3), _candidate("r2", 0.8, when=NOW + dt.timedelta(minutes=5))
    for candidate in (failed, passed):
        assert registry.record_candidate(candidate, keep_last=100, keep_days=None) == 0
    version = _register(registry, store, "r2", 0.8)
    registry.deploy("prices", version, alias="staging", target="local", actor="alice")

    found = registry.list_candidates("prices")
    assert [c.candidate_id for c in found] == [passed.candidate_id, failed.candidate_id]  # newest first
    assert [c.version for c in found] == [1, None]
    assert found[0].principal == "os:alice" and found[0].recorded_by == "alice"  # who really wrote it, and the claim
    fates = candidate_fates(registry, "prices", found)
    assert fates[passed.candidate_id].state == "live"
    assert fates[passed.candidate_id].text.startswith("v1: live as staging")
    assert fates[failed.candidate_id].state == "failed"
    assert fates[failed.candidate_id].text == "failed gate(s) r2 (candidate, not registered)"


def test_models_without_a_version_are_found_until_their_first_registration(url: str, store: ArtifactStore) -> None:
    from airflow_bridge.registry.candidates import unversioned_models

    registry = ModelRegistry(url)
    for run, r2 in (("r1", 0.1), ("r2", 0.2)):
        registry.record_candidate(_candidate(run, r2), keep_last=100, keep_days=None)
    registry.record_candidate(_candidate("r1", 0.1, model="odd_50%_name"), keep_last=100, keep_days=None)
    with registry.reading("test") as conn:
        assert unversioned_models(conn) == [("odd_50%_name", 1), ("prices", 2)]
        assert unversioned_models(conn, search="PRI") == [("prices", 2)]
        assert unversioned_models(conn, search="%") == [("odd_50%_name", 1)]  # taken literally, not a wildcard
        assert unversioned_models(conn, name="prices") == [("prices", 2)]
    _register(registry, store, "r3", 0.9)
    with registry.reading("test") as conn:
        assert unversioned_models(conn) == [("odd_50%_name", 1)]  # prices has a version now


def test_a_retried_validate_records_its_candidate_once(url: str) -> None:
    registry = ModelRegistry(url)
    registry.record_candidate(_candidate("r1", 0.3), keep_last=100, keep_days=None)
    registry.record_candidate(_candidate("r1", 0.6), keep_last=100, keep_days=None)
    (only,) = registry.list_candidates("prices")
    assert only.metrics["r2"] == 0.6 and only.passed


def test_retention_prunes_only_old_unregistered_candidates_beyond_the_newest(url: str, store: ArtifactStore) -> None:
    registry = ModelRegistry(url)
    old = NOW - dt.timedelta(days=30)
    for number in range(5):
        registry.record_candidate(
            _candidate(f"old{number}", 0.8 if number == 0 else 0.1, when=old + dt.timedelta(minutes=number)),
            keep_last=100,
            keep_days=None,
        )
    _register(registry, store, "old0", 0.8)  # registered: a version's candidate is never pruned
    registry.record_candidate(_candidate("other", 0.1, model="houses"), keep_last=1, keep_days=None)

    pruned = registry.record_candidate(_candidate("new", 0.1), keep_last=2, keep_days=7)

    assert pruned == 3  # old1, old2, old3: old4 and the new one are the newest two, old0 is v1
    assert {c.run.run_id for c in registry.list_candidates("prices")} == {"old0", "old4", "new"}
    assert [c.run.run_id for c in registry.list_candidates("houses")] == ["other"]  # other models untouched
    # keep_days null: no age protection, only the newest keep_last failed ones stay
    assert registry.record_candidate(_candidate("newer", 0.1, when=NOW), keep_last=1, keep_days=None) == 2
    assert {c.run.run_id for c in registry.list_candidates("prices")} == {"old0", "newer"}


def test_compare_a_failed_candidate_with_the_live_version(url: str, store: ArtifactStore) -> None:
    registry = ModelRegistry(url)
    version = _register(registry, store, "r0", 0.8)
    registry.deploy("prices", version, alias="staging", target="local", actor="alice")
    failed = _candidate("r1", 0.3, max_depth=4)
    failed = dataclasses.replace(failed, validation={**failed.validation, "champion": {"passed": False}})
    registry.record_candidate(failed, keep_last=100, keep_days=None)

    found = compare_versions(registry, "prices", ["staging", failed.candidate_id])

    assert found.headers == ["v1 (staging)", failed.candidate_id]
    assert found.metric_deltas["r2"][1] == pytest.approx(-0.5)
    assert found.gates["r2"] == [True, False]
    assert found.gates["champion"] == [None, False]  # the champion comparison reads as a gate
    shown = CliRunner().invoke(app, ["models", "candidates", "prices", "--registry-url", registry.url])
    assert f"compare: airflow-bridge models compare prices staging {failed.candidate_id}" in shown.output
    assert found.params["max_depth"] == [None, 4]
    assert found.versions[1]["candidate"] == failed.candidate_id and found.versions[1]["version"] is None
    assert found.change_lines() == [f"{failed.candidate_id}: same data"]


def test_compare_refuses_unknown_candidates_and_candidates_of_another_model(url: str, store: ArtifactStore) -> None:
    registry = ModelRegistry(url)
    _register(registry, store, "r0", 0.8)
    houses = _candidate("h1", 0.3, model="houses")
    registry.record_candidate(houses, keep_last=100, keep_days=None)
    with pytest.raises(NotFoundError, match=r"model 'prices' has no candidate 'c-0000000000'.*pruned"):
        compare_versions(registry, "prices", ["1", "c-0000000000"])
    with pytest.raises(NotFoundError, match=f"model 'prices' has no candidate '{houses.candidate_id}'"):
        compare_versions(registry, "prices", ["1", houses.candidate_id])
    with pytest.raises(RequestError, match="is a version of 'houses', not of 'prices'"):
        compare_versions(registry, "prices", ["1", f"houses:{houses.candidate_id}"])


def test_models_candidates_cli_text_and_json(url: str) -> None:
    registry = ModelRegistry(url)
    failed = _candidate("r1", 0.3)
    registry.record_candidate(failed, keep_last=100, keep_days=None)

    shown = CliRunner().invoke(app, ["models", "candidates", "prices", "--registry-url", url])
    as_json = CliRunner().invoke(app, ["models", "candidates", "prices", "--registry-url", url, "--format", "json"])
    unknown = CliRunner().invoke(app, ["models", "candidates", "nope", "--registry-url", url])

    assert shown.exit_code == 0, shown.output
    assert "compare:" not in shown.output  # nothing live to compare with
    (row,) = json.loads(as_json.output)
    assert (row["candidate_id"], row["fate"], row["metrics"]["r2"]) == (failed.candidate_id, "failed", 0.3)
    assert row["fate_text"] == "failed gate(s) r2 (candidate, not registered)"
    assert unknown.exit_code == 1 and "model 'nope' has no candidates and no versions" in unknown.output


def test_retention_comes_from_the_team_then_the_defaults_and_unset_keeps_the_policy_sha256(tmp_path: Path) -> None:
    document = {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"lab": {}, "onc": {}}}
    plain = Policy.model_validate(document)
    document["defaults"] = {"candidate_retention": {"keep_last": 10}}
    document["teams"]["onc"] = {"candidate_retention": {"keep_last": 3, "keep_days": None}}
    ruled = Policy.model_validate(document)

    assert plain.candidate_retention_for("lab") == CandidateRetention(keep_last=100, keep_days=90.0)
    assert ruled.candidate_retention_for("lab") == CandidateRetention(keep_last=10, keep_days=90.0)
    assert ruled.candidate_retention_for("onc") == CandidateRetention(keep_last=3, keep_days=None)
    assert "candidate_retention" not in json.dumps(plain.document())
    # the sha256 models are bound with did not change when candidate_retention was added
    assert OPEN_POLICY.canonical_sha256() == "9ec8cec1e325ff91f2f2bd0eadcc4efb369c3e0d6c15dd70f3703e050204ec44"
    before = tmp_path / "_policy.yaml"  # the example policy as it was before the keys added since
    lines = (EXAMPLES / "_policy.yaml").read_text().splitlines(keepends=True)
    before.write_text("".join(line for line in lines if "max_search_trials" not in line))
    example = load_policy(str(before)).policy
    assert example is not None
    assert example.canonical_sha256() == "725dd052474797c8d3a98928dbf265207df4be465e799b6552fa9ec43ae88e15"
