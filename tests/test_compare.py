"""``airflow-bridge models compare``: versions of one model side by side, and the comparisons it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.cli.main import app
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef

GATE = {"name": "mae", "kind": "metric", "min": None, "max": 50.0}


def _version(registry: ModelRegistry, store: ArtifactStore, number: int, **fields: Any) -> None:
    roles = fields.pop("roles")
    registry.register_version(
        "prices",
        store.put(f"model {number}".encode(), "models/prices", ".joblib"),
        estimator="sklearn.ensemble.RandomForestRegressor",
        params=fields.pop("params"),
        metrics=fields.pop("metrics"),
        validation={"gates": [{**GATE, "value": fields["mae"], "passed": fields.pop("mae") <= 50}]},
        data={"uri": "prices.csv", "sha256": fields.pop("sha"), "rows": 500, "roles": roles},
        run=RunRef("prices", f"r{number}", "register"),
        actor="alice",
        card=ModelCard(owner="alice", team="lab"),
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry, store = ModelRegistry(url), ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    base = {"rooms": {"role": "numeric"}, "district": {"role": "categorical"}}
    _version(
        registry,
        store,
        1,
        params={"n_estimators": 100},
        metrics={"mae": 40.0, "r2": 0.8},
        mae=40.0,
        sha="a" * 64,
        roles=base,
    )
    changed = {"rooms": {"role": "numeric"}, "district": {"role": "ignore"}, "year": {"role": "datetime"}}
    _version(
        registry,
        store,
        2,
        params={"n_estimators": 300, "max_depth": 8},
        metrics={"mae": 35.0, "r2": 0.85},
        mae=35.0,
        sha="b" * 64,
        roles=changed,
    )
    _version(
        registry,
        store,
        3,
        params={"n_estimators": 50},
        metrics={"mae": 60.0, "r2": 0.7},
        mae=60.0,
        sha="a" * 64,
        roles=base,
    )
    registry.deploy("prices", 1, alias="staging", target="local", actor="alice")
    registry.delete_version("prices", 3, actor="alice", reason="bad run")
    return url


def _compare(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["models", "compare", "prices", *args, "--registry-url", url, "--format", "json"])


def test_versions_side_by_side_with_deltas_against_the_first(url: str) -> None:
    done = _compare(url, "staging", "2")
    assert done.exit_code == 0, done.output
    found = json.loads(done.output)
    assert [v["version"] for v in found["versions"]] == [1, 2] and found["versions"][0]["aliases"] == ["staging"]
    assert found["params"] == {"max_depth": [None, 8], "n_estimators": [100, 300]}
    assert found["metrics"]["mae"] == [40.0, 35.0]
    assert found["metric_deltas"]["mae"] == [0.0, 5.0]  # an error that fell: positive is better
    assert found["metric_deltas"]["r2"] == [0.0, pytest.approx(0.05)]
    assert found["gates"] == {"mae": [True, True]}
    assert found["data_changes"] == [
        {
            "label": "v2",
            "version": 2,
            "same_data": False,
            "columns_added": ["year"],
            "columns_removed": [],
            "roles_changed": {"district": {"from": "categorical", "to": "ignore"}},
        }
    ]
    text = CliRunner().invoke(app, ["models", "compare", "prices", "1", "2", "--registry-url", url])
    assert (
        text.exit_code == 0 and "35.0000 (+5.0000)" in text.output and "district: categorical → ignore" in text.output
    )


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        (["1"], "name two or more versions or candidates of 'prices' to compare"),
        (["1", "other:2"], "'other:2' is a version of 'other', not of 'prices': compare versions of one model"),
        (["1", "3"], "prices v3 was deleted"),
        (["1", "9"], "9"),
        (["1", "staging"], "name the same version twice"),
    ],
)
def test_a_comparison_that_cannot_be_made_says_why_and_changes_nothing(
    url: str, asked: list[str], message: str
) -> None:
    before = ModelRegistry(url).audit_events(model="prices")
    done = _compare(url, *asked)
    assert done.exit_code == 1 and message in done.output, done.output
    assert ModelRegistry(url).audit_events(model="prices") == before
