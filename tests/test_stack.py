"""A real Airflow stack (dev/stack: Celery, PostgreSQL, Redis), driven as users drive it: REST API v2.

Run with ``pytest -m stack tests/test_stack.py``. The session fixture starts the ``tests`` stack
(its own databases, port and dags folder, a copy of dag_specs/) unless it is already running, and
stops what it started. The tests run in file order: they share the stack.
"""

from __future__ import annotations

import html
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
COPIES = [f"diabetes_copy_{number:02d}" for number in range(24)]
"""Paused copies of an example that fill the sharded dags folder (never run)."""
SHARDS = 3


def _sharded_dags_folder() -> None:
    """A copy of dag_specs/ plus ``COPIES``, laid out in ``SHARDS`` loader files by ``airflow-bridge loaders``
    instead of the one loader: the dag-processor and the Celery worker parse shard files, as a large
    deployment does."""
    from tests.helpers import CLI, cli_env

    shutil.rmtree(DAGS, ignore_errors=True)
    shutil.copytree(REPO / "dag_specs", DAGS, ignore=shutil.ignore_patterns("__pycache__"))
    for single in ("airflow_bridge_dags.py", "airflow_bridge_spec_errors.py"):
        (DAGS / single).unlink()
    text = (DAGS / "diabetes_progression.yaml").read_text()
    for name in COPIES:
        (DAGS / f"{name}.yaml").write_text(text.replace("name: diabetes_progression", f"name: {name}"))
    done = subprocess.run(
        [str(CLI), "loaders", str(DAGS), "--shards", str(SHARDS)],
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "dev" / "stack"), *args], env=ENV, text=True, capture_output=True, check=False)


@pytest.fixture(scope="module")
def airflow() -> Iterator[Callable[..., Any]]:
    """A running stack; yields ``api(method, path, user=..., **kwargs) -> httpx.Response``."""
    import httpx

    reused = stack("status").returncode == 0
    if not reused:
        _sharded_dags_folder()
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


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300, every: float = 1) -> Any:
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
                or task_states(api, dag_id, run_id)["approve"]["state"] in {"awaiting_input", "deferred"}
            ),
            timeout=600,
        )
    return run_id


def trigger(api: Callable[..., Any], dag_id: str, user: str = "admin") -> str:
    """A manual run of an unpaused DAG, triggered by ``user``."""
    reply = api("POST", f"/dags/{dag_id}/dagRuns", user=user, json={"logical_date": None})
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


REGISTRY_URL = f"postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_bridge_{NAME}_registry"


def stack_registry() -> Any:
    """The stack's PostgreSQL registry, read with the stack's audit key (as its workers sign events)."""
    from airflow_bridge.registry.store import ModelRegistry

    return ModelRegistry(REGISTRY_URL, audit_key=(STATE / "audit_key").read_text().strip().encode())


def registered_versions(model: str) -> list[Any]:
    """The model's versions in the stack's PostgreSQL registry (empty when the model is new)."""
    registry = stack_registry()
    try:
        return list(registry.list_versions(model)) if model in {m.name for m in registry.list_models()} else []
    finally:
        registry.dispose()


def model_events(model: str) -> list[Any]:
    registry = stack_registry()
    try:
        return list(registry.audit_events(model=model))
    finally:
        registry.dispose()


def page(user: str, passwords: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    """A request to the Models page or API as ``user`` (bearer token from Airflow's /auth/token)."""
    import httpx

    token = httpx.post(f"{BASE}/auth/token", json={"username": user, "password": passwords[user]}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    return httpx.request(method, f"{BASE}/airflow-bridge{path}", headers=headers, timeout=120, **kwargs)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``airflow-bridge ARGS`` as a user of the stack runs it (their own shell: no stack settings)."""
    from tests.helpers import CLI, cli_env

    return subprocess.run(
        [str(CLI), *args], env={**cli_env(), **env}, capture_output=True, text=True, timeout=600, check=False
    )


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


def test_a_sharded_dags_folder_gives_every_dag_once_from_its_shard_file(airflow: Callable[..., Any]) -> None:
    wanted = EXAMPLES | set(COPIES)
    shown = wait_for("every sharded DAG", lambda: (d := dags(airflow)) and set(d) >= wanted and d, timeout=180)
    files = {dag_id: Path(shown[dag_id]["fileloc"]).name for dag_id in wanted}
    assert set(files.values()) == {f"airflow_bridge_dags_shard_{i:02d}_of_{SHARDS:02d}.py" for i in range(SHARDS)}
    assert airflow("GET", "/importErrors").json()["total_entries"] == 0


def test_a_broken_spec_is_a_placeholder_and_the_others_are_unaffected(airflow: Callable[..., Any]) -> None:
    broken = DAGS / "broken_experiment.yaml"
    text = (DAGS / "diabetes_progression.yaml").read_text()
    broken.write_text(text.replace("name: diabetes_progression", "name: broken_experiment") + "\nbogus_key: 1\n")
    try:
        placeholder = wait_for("the placeholder DAG", lambda: dags(airflow).get("broken_experiment"), timeout=180)
        assert "invalid-spec" in {tag["name"] for tag in placeholder["tags"]}
        details = airflow("GET", "/dags/broken_experiment/details").json()
        assert "bogus_key" in (details["doc_md"] or "") + (details["description"] or "")
        shown = dags(airflow)
        assert set(shown) >= EXAMPLES
        for dag_id in EXAMPLES:
            assert "invalid-spec" not in {tag["name"] for tag in shown[dag_id]["tags"]}
        # by design: one import error, naming the spec. It comes from the spec-errors loader, a file of its own
        # that the dag-processor may parse after the shard that made the placeholder: wait for it too.
        errors = wait_for(
            "the spec's import error", lambda: airflow("GET", "/importErrors").json()["import_errors"], timeout=180
        )
        assert len(errors) == 1 and Path(errors[0]["filename"]).name.startswith("airflow_bridge_spec_errors_shard_")
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


def test_approval_excludes_who_triggered_and_a_superseded_request_ends_at_once(airflow: Callable[..., Any]) -> None:
    dag_id = "breast_cancer_classifier"
    older = unpause(airflow, dag_id)  # @weekly: parked at its approval before the manual run starts
    assert older is not None
    run_id = trigger(airflow, dag_id, user="dana")  # dana, an approver, triggers: she is behind this version
    path = waiting_for_approval(airflow, dag_id, run_id)

    # The older request was superseded by this run's version: it ends now, without anyone answering it.
    assert finished(airflow, dag_id, older, timeout=180) == "failed"
    states = task_states(airflow, dag_id, older)
    assert states["approve"]["state"] == "failed" and states["deploy"]["state"] == "upstream_failed", states
    assert "was superseded by v" in task_log(airflow, dag_id, older, "approve", states["approve"]["try_number"])
    old_path = path.replace(run_id, older)
    assert airflow("GET", old_path).json()["chosen_options"] == ["Reject"]  # closed in Required Actions
    late = airflow("PATCH", old_path, user="erin", json={"chosen_options": ["Approve"]})
    assert late.status_code == 409, late.text

    detail = airflow("GET", path).json()
    assert [user["id"] for user in detail["assigned_users"]] == ["erin"], "dana triggered the run: not assigned"
    assert "**Triggered by:** dana" in detail["body"]
    assert f"{BASE}/airflow-bridge/models/breast_cancer/versions/" in detail["body"]  # the report, in this UI
    assert "comment" in detail["params"]
    for outsider in ("dana", "alice"):  # who triggered it, the author: refused by Airflow at the form
        refused = airflow("PATCH", path, user=outsider, json={"chosen_options": ["Approve"]})
        assert refused.status_code == 403, refused.text
    approved = airflow(
        "PATCH", path, user="erin", json={"chosen_options": ["Approve"], "params_input": {"comment": "recall holds"}}
    )
    assert approved.status_code == 200, approved.text
    assert finished(airflow, dag_id, run_id) == "success", task_states(airflow, dag_id, run_id)
    granted = [e for e in model_events("breast_cancer") if e.action == "approval_granted"][-1]
    assert (granted.actor, granted.after["comment"], granted.run.run_id) == ("erin", "recall holds", run_id)
    assert granted.reason == "erin chose Approve (Airflow UI): recall holds"


def test_a_rejection_is_visible_and_a_comment_too_long_changes_nothing(airflow: Callable[..., Any]) -> None:
    dag_id = "breast_cancer_classifier"
    unpause(airflow, dag_id)
    run_id = trigger(airflow, dag_id)
    path = waiting_for_approval(airflow, dag_id, run_id)
    live = stack_registry().alias_version("breast_cancer", "production").version
    version = max(v.version for v in registered_versions("breast_cancer"))

    # Airflow's REST API takes any comment; the approval refuses one over 2000 characters and moves nothing.
    long = airflow(
        "PATCH", path, user="erin", json={"chosen_options": ["Reject"], "params_input": {"comment": "x" * 10_000}}
    )
    assert long.status_code == 200, long.text
    assert finished(airflow, dag_id, run_id) == "failed"
    states = task_states(airflow, dag_id, run_id)
    assert states["approve"]["state"] == "failed" and states["deploy"]["state"] == "upstream_failed", states
    log = task_log(airflow, dag_id, run_id, "approve", states["approve"]["try_number"])
    assert "the comment is 10000 characters long; at most 2000" in log
    last = model_events("breast_cancer")[-1]
    assert (last.action, last.actor, last.version) == ("approval_refused", "erin", version)
    assert stack_registry().alias_version("breast_cancer", "production").version == live

    # The request is still open: erin rejects it from the CLI, through Airflow, as herself.
    passwords = json.loads((STATE / "airflow" / "simple_auth_manager_passwords.json").read_text())
    credentials = str(STATE / "cli-credentials.json")
    env = {"AIRFLOW_BRIDGE_REGISTRY_URL": REGISTRY_URL, "AIRFLOW_BRIDGE_CREDENTIALS": credentials}
    shared = cli("models", "reject", "breast_cancer", str(version), "--reason", "too few cases", **env)
    assert (
        shared.returncode == 1 and "is a shared registry" in shared.stderr and "airflow-bridge login" in shared.stderr
    )
    login = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "airflow-bridge"),
            "login",
            "--airflow-url",
            BASE,
            "-u",
            "erin",
            "--password-stdin",
        ],
        input=passwords["erin"] + "\n",
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert login.returncode == 0 and "as erin" in login.stdout, login.stdout + login.stderr
    claimed = cli("models", "reject", "breast_cancer", str(version), "--as", "dana", "--airflow-url", BASE, **env)
    assert claimed.returncode == 2 and "--as is only for the embedded registry" in claimed.stderr
    rejected = cli("models", "reject", "breast_cancer", str(version), "--reason", "too few malignant cases", **env)
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    last = model_events("breast_cancer")[-1]
    assert (last.action, last.actor, last.principal) == ("approval_rejected", "erin", "airflow:erin")
    assert last.after["comment"] == "too few malignant cases"


def test_models_page_writes_need_airflow_permission_and_the_team_and_emit_the_alias_event(
    airflow: Callable[..., Any],
) -> None:
    dag_id, scoring = "breast_cancer_classifier", "score_breast_cancer"
    passwords = json.loads((STATE / "airflow" / "simple_auth_manager_passwords.json").read_text())
    before = stack_registry().alias_version("breast_cancer", "production").version
    run_id = trigger(airflow, dag_id)  # one more approved version, so production has one to roll back to
    path = waiting_for_approval(airflow, dag_id, run_id)
    assert airflow("PATCH", path, user="dana", json={"chosen_options": ["Approve"]}).status_code == 200
    assert finished(airflow, dag_id, run_id) == "success"
    newer = stack_registry().alias_version("breast_cancer", "production").version
    assert newer != before
    reply = airflow("PATCH", f"/dags/{scoring}", json={"is_paused": False})
    assert reply.status_code == 200, reply.text
    wait_for(  # runs queued by the deploys' asset events finish first
        "the scoring DAG to settle",
        lambda: all(
            r["state"] in {"success", "failed"} for r in airflow("GET", f"/dags/{scoring}/dagRuns").json()["dag_runs"]
        ),
        timeout=300,
    )
    scored_before = airflow("GET", f"/dags/{scoring}/dagRuns").json()["total_entries"]

    form = {"alias": "production", "reason": "latency regression"}
    for user, why in (
        ("victor", "may not change model 'breast_cancer': Airflow does not let them change DAG"),  # viewer role
        ("olga", "is not a member or approver of team 'oncology'"),  # op role, no team
        ("bob", "is not a member or approver of team 'oncology'"),  # another team's member
        ("admin", "is not a member or approver of team 'oncology'"),  # Airflow admin is not the team
    ):
        refused = page(user, passwords, "POST", "/models/breast_cancer/rollback", data=form, follow_redirects=False)
        assert refused.status_code == 403, (user, refused.text[:500])
        assert why in html.unescape(refused.text), (user, refused.text[:2000])
    assert stack_registry().alias_version("breast_cancer", "production").version == newer

    moved = page("alice", passwords, "POST", "/models/breast_cancer/rollback", data=form, follow_redirects=False)
    assert moved.status_code == 303, moved.text[:2000]
    assert stack_registry().alias_version("breast_cancer", "production").version == before
    wait_for(
        "the scoring DAG to run on the rollback's asset event",
        lambda: airflow("GET", f"/dags/{scoring}/dagRuns").json()["total_entries"] > scored_before,
        timeout=180,
    )
    newest = airflow("GET", f"/dags/{scoring}/dagRuns", params={"order_by": "-run_after"}).json()["dag_runs"][0]
    assert finished(airflow, scoring, newest["dag_run_id"]) == "success"
    scored = airflow(
        "GET", f"/dags/{scoring}/dagRuns/{newest['dag_run_id']}/taskInstances/score/xcomEntries/return_value"
    )
    assert scored.json()["value"]["version"] == before, scored.text


def test_the_audit_chain_is_signed_anchored_and_explains_every_row(airflow: Callable[..., Any]) -> None:
    env = {"AIRFLOW_BRIDGE_AUDIT_KEY": (STATE / "audit_key").read_text().strip()}
    verified = cli(
        "audit",
        "verify",
        "--registry-url",
        REGISTRY_URL,
        "--anchors",
        f"file://{STATE / 'anchors'}",
        "--format",
        "json",
        **env,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["anchored"] > 0 and report["unsigned"] == 0 and report["unexplained"] == []


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
        )
    finally:
        spec.write_text(original)
    assert before != new
