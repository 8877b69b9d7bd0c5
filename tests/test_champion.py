"""Champion/challenger through ``airflow-bridge run``: the candidate is scored against the live version.

The diabetes example trains a deterministic Ridge regression on a seeded split, so a second run
trains the same model: scored on the same held-out rows, candidate and champion must be equal.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_bridge.registry import ModelRegistry
from tests.helpers import EXAMPLES, cli

pytestmark = pytest.mark.slow
SPEC = "diabetes_progression.yaml"
MODEL = "diabetes_progression"


def _with_champion(folder: Path, min_improvement: float) -> Path:
    path = folder / SPEC
    spec = yaml.safe_load(path.read_text())
    spec["validation"]["champion"] = {"metric": "r2", "min_improvement": min_improvement}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def champion_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three runs in one home: v1 goes live, an equal v2 replaces it, then a stricter spec is refused."""
    base = tmp_path_factory.mktemp("champion")
    shutil.copy(EXAMPLES / SPEC, base / SPEC)
    shutil.copy(EXAMPLES / "_policy.yaml", base / "_policy.yaml")  # its team deploys without approval
    shutil.copytree(EXAMPLES / "data", base / "data")
    home = base / "home"
    runs = {}
    for name, min_improvement in (("first", 0.0), ("equal", 0.0), ("stricter", 0.05)):
        runs[name] = cli("run", _with_champion(base, min_improvement), "--home", home)
    return {"home": home, **runs}


def _registry(home: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")


def test_first_version_has_no_champion(champion_runs: dict[str, Any]) -> None:
    done = champion_runs["first"]

    assert done.returncode == 0, done.stdout + done.stderr
    assert "champion: no live version to compare with" in done.stdout
    champion = _registry(champion_runs["home"]).get_version(MODEL, 1).validation["champion"]
    assert champion["champion"] is None and champion["passed"] is True


def test_challenger_is_scored_against_the_live_version_on_the_same_rows(champion_runs: dict[str, Any]) -> None:
    done = champion_runs["equal"]

    assert done.returncode == 0, done.stdout + done.stderr
    pattern = r"champion: r2 (0\.\d{4}) vs live v1 \(production\) \1: improvement \+0\.0000, required \+0\.0000: pass"
    assert re.search(pattern, done.stdout), done.stdout
    assert "deployed: local alias production → v2 (was v1)" in done.stdout
    registry = _registry(champion_runs["home"])
    v1, v2 = registry.get_version(MODEL, 1), registry.get_version(MODEL, 2)
    champion = v2.validation["champion"]  # stored with the version it judged
    assert champion["champion_version"] == 1 and champion["alias"] == "production"
    assert champion["champion"] == champion["candidate"] == v1.metrics["r2"] == v2.metrics["r2"]
    assert champion["improvement"] == 0.0 and champion["passed"] is True


def test_challenger_that_does_not_improve_enough_is_stopped(champion_runs: dict[str, Any]) -> None:
    done = champion_runs["stricter"]

    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ validate failed" in done.stdout
    line = r"champion: r2 0\.\d{4} vs live v2 \(production\) 0\.\d{4}: improvement \+0\.0000, required \+0\.0500: FAIL"
    assert re.search(line, done.stdout), done.stdout
    assert "it does not beat the live v2 by enough" in done.stderr
    assert re.search(r"FAIL\s+" + line, done.stderr)
    registry = _registry(champion_runs["home"])
    assert [v.version for v in registry.list_versions(MODEL)] == [1, 2]  # nothing registered
    assert registry.alias_version(MODEL, "production").version == 2  # the live model stays
    summary = sorted((champion_runs["home"] / "runs" / "diabetes_progression").glob("*/summary.json"))[-1]
    assert json.loads(summary.read_text())["champion"]["passed"] is False
