"""Approvals through Airflow's real HITL ApprovalOperator in ``dag.test()``.

Answers go through Airflow's own HITL API handler (what the Required Actions page calls), so the
assigned-user check is Airflow's; the operator checks the decision again when it resumes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_bridge.cli.respond import Answer, Responder
from airflow_bridge.registry import ModelRegistry
from tests.helpers import task_states

pytestmark = pytest.mark.slow
SPEC = "breast_cancer_classifier.yaml"  # owner alice, team oncology: approvers dana and erin
MODEL = "breast_cancer"


def _run_with_answers(run_answered, spec_dir: Path, answers: list[Answer]) -> tuple[dict[str, str], Responder]:
    _, dag_run, responder = run_answered(spec_dir / SPEC, answers)
    return task_states(dag_run), responder


def _approval_body(run_id: str) -> str:
    """What approvers read on the Required Actions page, from Airflow's metadata DB."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(HITLDetail.body)
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(TaskInstance.dag_id == "breast_cancer_classifier", TaskInstance.run_id == run_id)
    )
    with create_session() as session:
        return str(session.scalars(query).one())


def _actions(registry: ModelRegistry) -> list[tuple[str, str]]:
    return [(e.action, e.actor) for e in registry.audit_events(model=MODEL) if e.action.startswith("approval")]


def test_approved_deployment_goes_live(spec_dir: Path, registry_env: dict, run_answered) -> None:
    states, responder = _run_with_answers(run_answered, spec_dir, [Answer("dana")])

    assert responder.outcome.accepted == Answer("dana")
    assert states == dict.fromkeys(["train", "validate", "register", "approve", "deploy"], "success")
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version(MODEL, "production").version == 1
    assert _actions(registry) == [("approval_requested", "alice"), ("approval_granted", "dana")]
    assert registry.verify_audit().ok


def test_rejected_deployment_fails_the_run_and_is_recorded(spec_dir: Path, registry_env: dict, run_answered) -> None:
    states, _ = _run_with_answers(run_answered, spec_dir, [Answer("erin", approve=False)])

    assert states["approve"] == "failed"  # red in the grid: not deployed
    assert states["deploy"] == "upstream_failed"
    registry = ModelRegistry(registry_env["url"])
    assert registry.get_version(MODEL, 1)  # registered, but not live
    assert registry.alias_version(MODEL, "production") is None
    assert registry.deployments(MODEL) == []
    assert _actions(registry) == [("approval_requested", "alice"), ("approval_rejected", "erin")]


@pytest.mark.parametrize("intruder", ["alice", "mallory"], ids=["author", "non-approver"])
def test_author_and_non_approvers_are_refused_by_airflow(
    intruder: str, spec_dir: Path, registry_env: dict, run_answered
) -> None:
    states, responder = _run_with_answers(run_answered, spec_dir, [Answer(intruder), Answer("dana", approve=False)])

    (attempt, accepted, detail), closing = responder.outcome.responses
    assert attempt.user == intruder and not accepted
    assert "403" in detail and intruder in detail
    assert closing[1]  # dana's rejection ends the run
    assert states["deploy"] == "upstream_failed"
    assert ModelRegistry(registry_env["url"]).alias_version(MODEL, "production") is None


def test_author_approval_is_refused_by_the_operator_even_if_airflow_lets_it_through(
    spec_dir: Path, registry_env: dict, run_answered, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With simple_auth_manager_all_admins, Airflow lets anyone answer: the operator is the last line.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")

    states, responder = _run_with_answers(run_answered, spec_dir, [Answer("alice")])

    assert responder.outcome.accepted == Answer("alice")
    assert states["approve"] == "failed"
    assert states["deploy"] == "upstream_failed"
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version(MODEL, "production") is None
    refused = [e for e in registry.audit_events(model=MODEL) if e.action == "approval_refused"]
    assert len(refused) == 1
    assert refused[0].actor == "alice" and "separation of duties" in refused[0].reason


def test_approvers_see_the_model_card_gates_and_the_champion(spec_dir: Path, registry_env: dict, run_answered) -> None:
    _, first_run, _ = run_answered(spec_dir / SPEC, [Answer("dana")])
    _, second_run, _ = run_answered(spec_dir / SPEC, [Answer("erin")])

    assert task_states(second_run)["deploy"] == "success"
    first, second = _approval_body(first_run.run_id), _approval_body(second_run.run_id)
    assert "### breast_cancer v1 → `production`" in first
    assert "**Champion comparison:** no live version to compare with (`roc_auc` 0." in first
    assert "### breast_cancer v2 → `production`" in second
    assert "Flag malignant tumours" in second  # the spec's description, as the model card
    assert "- **Owner / team:** alice / oncology" in second
    assert "- **Currently live:** v1" in second
    assert "- **Approvers:** dana, erin (nobody behind this version may approve)" in second
    assert "- **Triggered by:** the schedule (registered by alice)" in second or "- **Triggered by:**" in second
    assert "/airflow-bridge/models/breast_cancer/versions/2/report" in second  # the report in the Airflow UI
    assert re.search(r"\| accuracy \| 0\.\d{4} \| ≥ 0\.92 \| pass \|", second), second
    assert re.search(r"\| roc_auc \| 0\.\d{4} \| ≥ 0\.97 \| pass \|", second), second
    assert re.search(r"\| min_rows \| 569 \| ≥ 500 \| pass \|", second), second
    # the same seed trains the same forest: scored on the same held-out rows, it ties with v1
    champion = r"`roc_auc` (0\.\d{4}) vs live v1 \(production\) \1: improvement \+0\.0000 \(required \+0\.0000, pass\)"
    assert re.search(champion, second), second
    assert "sha256 `" in second and "breast_cancer_classifier / " in second  # artifact and producing run
