"""Outcomes at a glance: an approval that does not grant fails the run at ``approve`` with ``not deployed: ...``.

Real ``dag.test()`` runs; answers go through Airflow's HITL handler, the timeout through the scheduler's own
sweep of awaiting-input tasks (which ``dag.test()`` does not run by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from airflow_bridge.actions.candidates import candidate_fates
from airflow_bridge.cli.respond import Answer, Outcome, answer
from airflow_bridge.registry import ModelRegistry
from tests.helpers import task_states, write_loader

DAG_ID = "breast_cancer_classifier"  # owner alice, team oncology: approvers dana and erin, 72 h timeout
SPEC = f"{DAG_ID}.yaml"
MODEL = "breast_cancer"


class _Failures:
    """An Airflow listener keeping each failed task's error, as the task log and the UI show it."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    @pluggy.HookimplMarker("airflow")
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.errors[task_instance.task_id] = str(error)


@pytest.fixture
def failures() -> Iterator[_Failures]:
    from airflow.sdk.listener import get_listener_manager

    recorder = _Failures()
    manager = get_listener_manager()
    manager.add_listener(recorder)
    yield recorder
    manager.pm.unregister(recorder)


def _run(run_answered: Any, spec_dir: Path, when_waiting: Callable[[Outcome], None]) -> Any:
    """Run the spec's DAG; ``when_waiting`` acts once its approval request is open."""
    _, dag_run, _ = run_answered(spec_dir / SPEC, on_waiting=when_waiting, dag_id=DAG_ID)
    return dag_run


def _state(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def _approvals(registry: ModelRegistry) -> list[str]:
    return [e.action for e in registry.audit_events(model=MODEL) if e.action.startswith("approval")]


@pytest.mark.slow
def test_rejection_fails_the_run_at_approve_saying_who_rejected(
    spec_dir: Path, registry_env: dict, run_answered: Any, failures: _Failures
) -> None:
    def reject(outcome: Outcome) -> None:
        assert outcome.run_id and outcome.task_id
        assert answer(DAG_ID, outcome.run_id, outcome.task_id, Answer("erin", approve=False))[0]

    dag_run = _run(run_answered, spec_dir, reject)

    assert _state(dag_run) == "failed"
    states = task_states(dag_run)
    assert (states["validate"], states["approve"], states["deploy"]) == ("success", "failed", "upstream_failed")
    assert failures.errors["approve"].startswith("not deployed: rejected by erin: erin chose Reject")
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version(MODEL, "production") is None
    assert _approvals(registry) == ["approval_requested", "approval_rejected"]
    (candidate,) = registry.list_candidates(MODEL)  # the rejected candidate, beside the others, saying by whom
    fate = candidate_fates(registry, MODEL, [candidate])[candidate.candidate_id]
    assert (candidate.version, fate.state) == (1, "rejected")
    assert fate.text.startswith("v1: rejected by erin")


@pytest.mark.slow
def test_timeout_fails_the_run_at_approve_saying_how_long_it_waited(
    spec_dir: Path, registry_env: dict, run_answered: Any, failures: _Failures
) -> None:
    policy = spec_dir / "_policy.yaml"  # nobody answers within 0.0005 h (1.8 s): the wait's own deadline
    policy.write_text(policy.read_text().replace("approval_timeout_hours: 72 ", "approval_timeout_hours: 0.0005 "))
    dag_run = _run(run_answered, spec_dir, lambda outcome: None)

    assert _state(dag_run) == "failed"
    assert task_states(dag_run)["approve"] == "failed"
    assert failures.errors["approve"] == "not deployed: the approval timed out after 0.0005 h without an answer"
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version(MODEL, "production") is None
    assert _approvals(registry) == ["approval_requested", "approval_timed_out"]


@pytest.mark.slow
def test_a_superseded_request_ends_its_run_even_when_approved_later(
    spec_dir: Path, registry_env: dict, run_answered: Any, failures: _Failures
) -> None:
    from airflow_bridge.actions.approval import close_superseded

    def newer_run_then_approve(outcome: Outcome) -> None:
        # what the next run's request_approval does when it asks for v2
        registry = ModelRegistry(registry_env["url"])
        assert close_superseded(registry, model=MODEL, alias="production", newer=2, actor="alice") == [1]
        assert outcome.run_id and outcome.task_id
        assert answer(DAG_ID, outcome.run_id, outcome.task_id, Answer("dana"))[0]

    dag_run = _run(run_answered, spec_dir, newer_run_then_approve)

    assert _state(dag_run) == "failed"
    assert task_states(dag_run)["deploy"] == "upstream_failed"
    expected = "not deployed: the approval request of breast_cancer v1 for 'production' was superseded by v2"
    assert failures.errors["approve"] == expected
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version(MODEL, "production") is None
    assert _approvals(registry) == ["approval_requested", "approval_superseded"]


def test_a_dag_with_approval_has_one_more_run_slot_for_the_run_parked_at_approval(spec_dir: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(write_loader([spec_dir / SPEC, spec_dir / "diabetes_progression.yaml"])))

    assert bag.dags[DAG_ID].max_active_runs == 2  # team policy: 1, plus the parked run
    assert bag.dags["diabetes_progression"].max_active_runs == 1  # no approval, the team's value
