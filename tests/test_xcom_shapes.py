"""The JSON shapes tasks exchange through XCom: versioned, documented, and readable across an upgrade.

Milliseconds each. A payload written before shapes were versioned (no ``xcom_version``) is what a run
queued before the upgrade hands to its next task; it must still be read, and typed, the same way.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_bridge.actions.moves import PendingMove
from airflow_bridge.actions.results import XCOM_VERSION, DeploymentResult, Registration, ValidationReport
from airflow_bridge.exceptions import BridgeError
from airflow_bridge.ml.gates import ChampionComparison, GateResult, compare_champion, evaluate_thresholds

BEFORE_UPGRADE: dict[str, Any] = {  # a validate task's XCom as the release before versioning wrote it
    "model": "churn",
    "metrics": {"roc_auc": 0.91, "f1": 0.8},
    "gates": [
        {"name": "roc_auc", "kind": "metric", "value": 0.91, "min": 0.85, "max": None, "passed": True},
        {"name": "max_null_fraction", "kind": "data", "value": 0.01, "min": None, "max": 0.1, "passed": True,
         "column": "age"},
    ],
    "champion": {"metric": "roc_auc", "candidate": 0.91, "champion": 0.9, "champion_version": 3,
                 "improvement": 0.01, "min_improvement": 0.0, "passed": True, "alias": "production"},
    "passed": True,
    "report": None,
    "warnings": [],
    "baseline": None,
    "uncertainty": None,
}  # fmt: skip


def test_a_payload_from_before_the_upgrade_is_read_typed_and_written_back_with_its_version() -> None:
    report = ValidationReport.from_xcom(BEFORE_UPGRADE)
    assert report.gates[1] == GateResult("max_null_fraction", "data", 0.01, None, 0.1, True, column="age")
    assert isinstance(report.champion, ChampionComparison) and report.champion.champion_version == 3
    # the same keys, now versioned; a key added since (the candidate it was recorded as) is written unset
    assert report.to_xcom() == {"xcom_version": XCOM_VERSION, **BEFORE_UPGRADE, "candidate_id": None}
    assert ValidationReport.from_xcom(report.to_xcom()) == report


def test_a_payload_from_a_newer_release_is_refused_with_what_to_do() -> None:
    newer = {**Registration("m", 1, artifact=None).to_xcom(), "xcom_version": XCOM_VERSION + 1}  # type: ignore[arg-type]
    with pytest.raises(
        BridgeError, match=r"registration was written by a newer airflow-bridge.*upgrade airflow-bridge"
    ):
        Registration.from_xcom(newer, "registration")


@pytest.mark.parametrize("payload", [Registration, DeploymentResult, PendingMove, ValidationReport])
def test_every_payload_a_task_hands_on_carries_its_version(payload: type) -> None:
    assert payload.versioned


def test_gate_and_champion_json_keep_their_keys() -> None:
    [gate] = evaluate_thresholds({"f1": 0.7}, {"f1": {"min": 0.8}})
    assert gate.to_json() == {"name": "f1", "kind": "metric", "value": 0.7, "min": 0.8, "max": None, "passed": False}
    first = compare_champion("mae", 2.0, None, 0.0, None, alias="production")
    assert first.to_json() == {
        "metric": "mae", "candidate": 2.0, "champion": None, "champion_version": None, "improvement": None,
        "min_improvement": 0.0, "passed": True, "note": "no live version to compare with", "alias": "production",
    }  # fmt: skip
    assert ChampionComparison.from_json(first.to_json()) == first


def test_each_result_has_one_text_and_one_markdown_rendering() -> None:
    [gate] = evaluate_thresholds({"f1": 0.7}, {"f1": {"min": 0.8}})
    assert gate.line() == "  FAIL  f1 = 0.7000  required >= 0.8"
    assert gate.markdown() == "| f1 | 0.7000 | ≥ 0.8 | FAIL |"
    beaten = compare_champion("mae", 2.0, 2.5, 0.1, 4, alias="production")  # mae: lower is better
    assert beaten.line() == (
        "champion: mae 2.0000 vs live v4 (production) 2.5000: improvement +0.5000, required +0.1000: pass"
    )
    assert beaten.markdown() == (
        "**Champion comparison** on the same held-out rows: `mae` 2.0000 vs live v4 (production) 2.5000: "
        "improvement +0.5000 (required +0.1000, pass)."
    )
