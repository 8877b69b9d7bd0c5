"""A real Airflow stack (dev/stack: Celery, PostgreSQL, Redis), driven as users drive it: REST API v2.

Run with ``pytest -m stack tests/test_stack.py``. The session fixture starts the ``tests`` stack
(its own databases, port and dags folder, a copy of dag_specs/) unless it is already running, and
stops what it started. The tests run in file order: they share the stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parent.parent
NAME = "tests"
PORT = 28180
STATE = REPO / ".stack" / NAME
DAGS = REPO / ".stack" / f"{NAME}-dags"
BASE = f"http://127.0.0.1:{PORT}"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AB_STACK_"))},
    "AB_STACK_NAME": NAME,
    "AB_STACK_PORT": str(PORT),
    "AB_STACK_DAGS_FOLDER": str(DAGS),
}
EXAMPLES = {"breast_cancer_classifier", "diabetes_progression", "penguin_species"}


def stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "dev" / "stack"), *args], env=ENV, text=True, capture_output=True, check=False)


@pytest.fixture(scope="module")
def airflow() -> Iterator[Callable[..., Any]]:
    """A running stack; yields ``api(method, path, user=..., **kwargs) -> httpx.Response``."""
    import httpx

    reused = stack("status").returncode == 0
    if not reused:
        shutil.rmtree(DAGS, ignore_errors=True)
        shutil.copytree(REPO / "dag_specs", DAGS, ignore=shutil.ignore_patterns("__pycache__"))
    started = time.monotonic()
    result = stack("start") if reused else stack("start", "--fresh")
    if result.returncode != 0 and not reused:
        stack("stop")  # nothing may be left running, even when the start failed
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\nstack ready in {time.monotonic() - started:.0f}s")
    passwords = json.loads((STATE / "airflow" / "simple_auth_manager_passwords.json").read_text())
    tokens: dict[str, str] = {}

    def api(method: str, path: str, user: str = "admin", **kwargs: Any) -> httpx.Response:
        if user not in tokens:
            reply = httpx.post(f"{BASE}/auth/token", json={"username": user, "password": passwords[user]})
            assert reply.status_code == 201, reply.text
            tokens[user] = reply.json()["access_token"]
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        return httpx.request(method, f"{BASE}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    try:
        yield api
    finally:
        if not reused:
            stopped = stack("stop")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300, every: float = 3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def dags(api: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    reply = api("GET", "/dags", params={"limit": 100})
    assert reply.status_code == 200, reply.text
    return {dag["dag_id"]: dag for dag in reply.json()["dags"]}


def unpause(api: Callable[..., Any], dag_id: str) -> str | None:
    """Unpause ``dag_id``; the id of the run Airflow starts for its latest interval (catchup is off), if any.

    When the DAG has an approval, wait until that run is parked at it (or finished): a run triggered
    next is then the newer one, which supersedes the parked request, instead of racing it to the approval.
    """
    reply = api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    assert reply.status_code == 200, reply.text
    if reply.json()["timetable_summary"] is None:
        return None

    def scheduled() -> str | None:
        runs = api("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": ["scheduled"]}).json()["dag_runs"]
        return runs[0]["dag_run_id"] if runs else None

    run_id = str(wait_for(f"the scheduled run that unpausing {dag_id} starts", scheduled, timeout=120, every=1))
    tasks = {task["task_id"] for task in api("GET", f"/dags/{dag_id}/tasks").json()["tasks"]}
    if "approve" in tasks:
        wait_for(
            f"{dag_id} run {run_id} to park at its approval or finish",
            lambda: (
                run_state(api, dag_id, run_id) in {"success", "failed"}
                or task_states(api, dag_id, run_id)["approve"]["state"] == "awaiting_input"
            ),
            timeout=600,
        )
    return run_id


def trigger(api: Callable[..., Any], dag_id: str) -> str:
    """A manual run of an unpaused DAG."""
    reply = api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["dag_run_id"])


def run_state(api: Callable[..., Any], dag_id: str, run_id: str) -> str:
    return str(api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"])


def finished(api: Callable[..., Any], dag_id: str, run_id: str, timeout: float = 600) -> str:
    return str(
        wait_for(
            f"{dag_id} run {run_id} to finish",
            lambda: (s := run_state(api, dag_id, run_id)) in {"success", "failed"} and s,
            timeout,
        )
    )


def task_states(api: Callable[..., Any], dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    reply = api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti for ti in reply.json()["task_instances"]}


def task_log(api: Callable[..., Any], dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    reply = api("GET", path)
    assert reply.status_code == 200, reply.text
    return "\n".join(str(line.get("event", "")) for line in reply.json()["content"])


def waiting_for_approval(api: Callable[..., Any], dag_id: str, run_id: str) -> str:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
    wait_for(
        f"{dag_id} to wait for approval",
        lambda: api("GET", path).status_code == 200 and run_state(api, dag_id, run_id) == "running",
        timeout=600,
    )
    return path


def registered_versions(model: str) -> list[Any]:
    """The model's versions in the stack's PostgreSQL registry (empty when the model is new)."""
    from airflow_bridge.registry.store import ModelRegistry

    registry = ModelRegistry(f"postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_bridge_{NAME}_registry")
    try:
        return list(registry.list_versions(model)) if model in {m.name for m in registry.list_models()} else []
    finally:
        registry.dispose()


def test_example_dags_show_docs_owner_and_tags(airflow: Callable[..., Any]) -> None:
    shown = wait_for("the example DAGs", lambda: (d := dags(airflow)) and set(d) >= EXAMPLES and d, timeout=180)
    for dag_id in EXAMPLES:
        dag = shown[dag_id]
        assert dag["description"], dag_id
        assert dag["owners"] and dag["owners"] != ["airflow"], dag_id
        assert {"airflow-bridge", "example"} <= {tag["name"] for tag in dag["tags"]}, dag_id
        details = airflow("GET", f"/dags/{dag_id}/details").json()
        assert details["doc_md"], dag_id
    assert shown["breast_cancer_classifier"]["owners"] == ["alice"]
    assert airflow("GET", "/importErrors").json()["total_entries"] == 0


def test_a_broken_spec_is_a_placeholder_and_the_others_are_unaffected(airflow: Callable[..., Any]) -> None:
    broken = DAGS / "broken_experiment.yaml"
    text = (DAGS / "diabetes_progression.yaml").read_text()
    broken.write_text(text.replace("name: diabetes_progression", "name: broken_experiment") + "\nbogus_key: 1\n")
    try:
        placeholder = wait_for(
            "the placeholder DAG", lambda: dags(airflow).get("broken_experiment"), timeout=180, every=5
        )
        assert "invalid-spec" in {tag["name"] for tag in placeholder["tags"]}
        details = airflow("GET", "/dags/broken_experiment/details").json()
        assert "bogus_key" in (details["doc_md"] or "") + (details["description"] or "")
        shown = dags(airflow)
        assert set(shown) >= EXAMPLES
        for dag_id in EXAMPLES:
            assert "invalid-spec" not in {tag["name"] for tag in shown[dag_id]["tags"]}
        errors = airflow("GET", "/importErrors").json()["import_errors"]  # by design: one, naming the spec
        assert [Path(e["filename"]).name for e in errors] == ["airflow_bridge_spec_errors.py"]
        assert "broken_experiment.yaml" in errors[0]["stack_trace"]
    finally:
        broken.unlink()


def test_diabetes_run_on_the_celery_worker_registers_a_version_on_postgresql(airflow: Callable[..., Any]) -> None:
    unpause(airflow, "diabetes_progression")
    run_id = trigger(airflow, "diabetes_progression")
    assert finished(airflow, "diabetes_progression", run_id) == "success", task_states(
        airflow, "diabetes_progression", run_id
    )
    tis = task_states(airflow, "diabetes_progression", run_id)
    assert {ti["executor"] or "CeleryExecutor" for ti in tis.values()} == {"CeleryExecutor"}
    assert all(ti["hostname"] for ti in tis.values())  # ran on the worker
    ours = [v for v in registered_versions("diabetes_progression") if v.run and v.run.run_id == run_id]
    assert len(ours) == 1, f"no version registered by {run_id} in the PostgreSQL registry"
    assert ours[0].artifact.sha256


def test_approval_author_refused_approver_deploys(airflow: Callable[..., Any]) -> None:
    dag_id = "breast_cancer_classifier"
    older = unpause(airflow, dag_id)  # @weekly: parked at its approval before the manual run starts
    assert older is not None
    run_id = trigger(airflow, dag_id)
    path = waiting_for_approval(airflow, dag_id, run_id)
    refused = airflow("PATCH", path, user="alice", json={"chosen_options": ["Approve"]})
    assert refused.status_code == 403, refused.text
    approved = airflow("PATCH", path, user="dana", json={"chosen_options": ["Approve"]})
    assert approved.status_code == 200, approved.text
    assert approved.json()["responded_by"]["id"] == "dana"
    assert finished(airflow, dag_id, run_id) == "success", task_states(airflow, dag_id, run_id)
    assert task_states(airflow, dag_id, run_id)["deploy"]["state"] == "success"

    # The older run's request was superseded by the manual run's version: answering it moves nothing.
    late = airflow(
        "PATCH", waiting_for_approval(airflow, dag_id, older), user="dana", json={"chosen_options": ["Approve"]}
    )
    assert late.status_code == 200, late.text
    assert finished(airflow, dag_id, older) == "failed"
    states = task_states(airflow, dag_id, older)
    assert states["approve"]["state"] == "failed" and states["deploy"]["state"] == "upstream_failed", states
    assert "was superseded by v" in task_log(airflow, dag_id, older, "approve", states["approve"]["try_number"])


def test_a_rejection_is_visible(airflow: Callable[..., Any]) -> None:
    dag_id = "breast_cancer_classifier"
    unpause(airflow, dag_id)
    run_id = trigger(airflow, dag_id)
    path = waiting_for_approval(airflow, dag_id, run_id)
    rejected = airflow("PATCH", path, user="erin", json={"chosen_options": ["Reject"]})
    assert rejected.status_code == 200, rejected.text
    assert finished(airflow, dag_id, run_id) == "failed"
    tis = task_states(airflow, dag_id, run_id)
    assert tis["approve"]["state"] == "failed"
    assert tis["deploy"]["state"] in {"upstream_failed", "skipped"}
    assert airflow("GET", path).json()["chosen_options"] == ["Reject"]


def test_openlineage_events_arrive_and_validate(airflow: Callable[..., Any], ol_registry: Any) -> None:
    from airflow_bridge.lineage.validation import event_errors

    events_file = STATE / "lineage" / "events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    jobs = {event["job"]["name"] for event in events}
    assert any(job.startswith("diabetes_progression.") for job in jobs), sorted(jobs)[:20]
    ours = [e for e in events if e["job"]["name"].split(".")[0] in EXAMPLES]
    assert ours
    for event in ours:
        assert event_errors(event, ol_registry) == [], event["job"]["name"]


def test_editing_a_spec_changes_the_dag_after_reparse(airflow: Callable[..., Any]) -> None:
    spec = DAGS / "penguin_species.yaml"
    original = spec.read_text()
    before = dags(airflow)["penguin_species"]["description"]
    new = "Edited by the stack test."
    assert "description: |\n" in original
    spec.write_text(original.replace("description: |\n", f"description: |\n  {new}\n", 1))
    try:
        wait_for(
            "the edited description",
            lambda: dags(airflow)["penguin_species"]["description"].startswith(new),
            timeout=180,
            every=5,
        )
    finally:
        spec.write_text(original)
    assert before != new
