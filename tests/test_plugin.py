"""The Models page plugin: discovered by Airflow, behind Airflow's auth manager, writes policy-checked.

Users log in with a real JWT from Airflow's configured (simple) auth manager, sent as the UI's cookie.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_bridge.actions import approval
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for

POLICY = Policy.model_validate(
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "defaults": {"approval_required_for": ["production"]},
        "teams": {"onc": {"members": ["alice", "bob"], "approvers": ["dana", "erin"]}},
    }
)
GATES = [{"name": "roc_auc", "kind": "metric", "value": 0.991, "min": 0.97, "max": None, "passed": True}]


@pytest.fixture
def registry(registry_env: dict[str, Any], tmp_path: Path) -> ModelRegistry:
    """Two versions of 'cancer' by alice (team onc), v1 live in production, an approval of v2 pending."""
    registry = ModelRegistry(registry_env["url"])
    store = ArtifactStore(f"file://{registry_env['artifacts']}")
    for number in (1, 2):
        page = f"<html><body>report of v{number}: <!--fate:self-->candidate<!--/fate--></body></html>"
        report = store.put(page.encode(), "reports", ".html")
        registry.register_version(
            "cancer",
            store.put(f"model {number}".encode(), "models/cancer", ".joblib"),
            estimator="sklearn.ensemble.RandomForestClassifier",
            metrics={"roc_auc": 0.991},
            validation={"gates": GATES, "report": {"html": asdict(report), "pngs": {}}},
            run=RunRef("cancer_dag", f"run{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="onc", description="Flags malignant tumours."),
            policy=binding_for(POLICY, "specs/_policy.yaml"),
        )
    approval.decide(registry, model="cancer", version=1, alias="production", responder="dana", approve=True)
    from airflow_bridge.actions.deployment import move

    move(registry, MoveRequest(model="cancer", version=1, alias="production", reason="first release"), actor="dana")
    approval.request_approval(
        registry,
        model="cancer",
        version=2,
        alias="production",
        requested_by="alice",
        approvers=["dana", "erin"],
        run=RunRef("cancer_dag", "run2", "approve"),
    )
    return registry


@pytest.fixture
def client(airflow_db: Path) -> TestClient:
    from airflow_bridge.plugin.app import create_app

    return TestClient(create_app())


def login(client: TestClient, username: str, role: str = "admin") -> None:
    """What Airflow's login does: a JWT signed by the auth manager, in the UI's ``_token`` cookie."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()
    manager.init()
    client.cookies.set(COOKIE_NAME_JWT_TOKEN, manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))


def test_airflow_discovers_the_plugin() -> None:
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not [e for e in errors if "airflow_bridge" in e], errors
    ours = next(p for p in plugins if p.name == "airflow_bridge")
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "airflow-bridge models"] == ["/airflow-bridge"]
    views, _ = plugins_manager._get_ui_plugins()
    assert [(v["href"], v["destination"]) for v in views if v["name"] == "Models"] == [
        ("/airflow-bridge/models/", "nav")
    ]
    assert {type(link).__name__ for link in ours.operator_extra_links} == {
        "ModelVersionLink",
        "ModelReportLink",
        "ServingEndpointLink",
    }


def test_without_login_there_is_no_page(client: TestClient, registry: ModelRegistry) -> None:
    assert client.get("/models/").status_code == 401
    assert client.get("/models/cancer/versions/1/report").status_code == 401
    browser = client.get("/models/", headers={"accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    assert "login" in browser.headers["location"]
    refused = client.post("/models/cancer/promote", data={"version": "2", "alias": "production", "reason": "x"})
    assert refused.status_code == 401
    assert registry.alias_version("cancer", "production").version == 1  # type: ignore[union-attr]
    client.cookies.set("_token", "not-a-jwt")
    assert client.get("/models/").status_code == 403


def test_the_page_shows_models_versions_aliases_approvals_and_the_audit_verdict(
    client: TestClient, registry: ModelRegistry
) -> None:
    login(client, "bob", role="viewer")
    index = client.get("/models/")
    assert index.status_code == 200, index.text
    assert 'href="/models/cancer"' in index.text
    assert "Verify the hash chains" in client.get("/audit").text  # on demand: it reads every event
    assert "Audit trail intact" in client.get("/audit", params={"verify": 1}).text
    assert "production → v1" in index.text
    assert "answer in Required Actions" in index.text and "/required_actions" in index.text

    page = client.get("/models/cancer").text
    assert "Flags malignant tumours." in page
    assert "v2" in page and "v1" in page
    assert "title='PASS: needs ≥ 0.97'>0.9910</span>" in page  # the gate metric column
    assert 'href="/models/cancer/versions/2/report"' in page
    assert badges(page) == {
        "v2": ("pending", "pending approval for production"),
        "v1": ("live", "live as production, approved by dana"),
    }
    assert "first release" in page  # why the alias moved, and by whom
    assert "<td>dana</td>" in page
    assert "cancer_dag / run2" in page  # the pending approval's run

    report = client.get("/models/cancer/versions/2/report")
    assert report.status_code == 200 and "report of v2" in report.text
    assert "<!--fate:self-->pending approval for production<!--/fate-->" in report.text  # the fate as of now
    live = client.get("/models/cancer/versions/1/report").text
    assert "<!--fate:self-->live as production, approved by dana<!--/fate-->" in live
    missing = client.get("/models/nope")
    assert missing.status_code == 404
    assert "nope" in notices(missing.text)[0]


def test_a_tampered_report_is_refused(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "bob")
    ref = registry.get_version("cancer", 1).validation["report"]["html"]
    Path(ref["uri"].removeprefix("file://")).write_bytes(b"<html>forged</html>")
    shown = client.get("/models/cancer/versions/1/report")
    assert shown.status_code == 409
    assert "modified after registration" in shown.text and "forged" not in shown.text


def test_promote_without_approval_is_refused_and_nothing_moves(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "bob")
    refused = client.post("/models/cancer/promote", data={"version": "2", "alias": "production", "reason": "go"})
    assert refused.status_code == 403
    [shown] = notices(refused.text)
    assert shown.startswith("Refused: promotion of cancer v2 to 'production' refused: v2 has no recorded approval")
    assert "it needs one by dana or erin" in shown and shown.endswith("nothing moved")
    assert registry.alias_version("cancer", "production").version == 1  # type: ignore[union-attr]
    last = registry.audit_events(model="cancer")[-1]
    assert (last.action, last.actor) == ("move_refused", "bob")


def test_only_the_models_team_moves_its_aliases_from_the_page(client: TestClient, registry: ModelRegistry) -> None:
    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=True)
    login(client, "mallory")  # logged in to Airflow, allowed by the auth manager, not in team onc
    refused = client.post("/models/cancer/promote", data={"version": "2", "alias": "production"})
    assert refused.status_code == 403
    [shown] = notices(refused.text)
    assert shown.startswith("Refused: promotion of cancer v2 to 'production' refused: 'mallory' is not a member or")
    assert "moved here by alice, bob, dana, erin; nothing moved" in shown
    assert registry.alias_version("cancer", "production").version == 1  # type: ignore[union-attr]
    last = registry.audit_events(model="cancer")[-1]
    assert (last.action, last.actor, last.alias) == ("move_refused", "mallory", "production")


def test_an_allowed_promote_moves_the_alias_as_the_logged_in_user(client: TestClient, registry: ModelRegistry) -> None:
    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=True)
    login(client, "erin")
    moved = client.post("/models/cancer/promote", data={"version": "2", "alias": "production", "reason": "better auc"})
    assert moved.status_code == 200, moved.text
    assert [r.status_code for r in moved.history] == [303], "a redirect: reloading never posts the form again"
    [shown] = notices(moved.text)
    assert shown.startswith("Promoted: 'production' of cancer now serves v2 (was v1), by erin at")
    assert registry.alias_version("cancer", "production").version == 2  # type: ignore[union-attr]
    last = registry.audit_events(model="cancer")[-1]
    assert (last.action, last.actor, last.reason) == ("promoted", "erin", "better auc")

    back = client.post("/models/cancer/rollback", data={"alias": "production", "reason": "latency"})
    assert back.status_code == 200, back.text
    assert registry.alias_version("cancer", "production").version == 1  # type: ignore[union-attr]
    assert registry.audit_events(model="cancer")[-1].actor == "erin"
    forged = client.post(
        "/models/cancer/rollback", data={"alias": "production"}, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403


def badges(page: str) -> dict[str, tuple[str, str]]:
    """Each version row's status badge and fate text, as the versions table shows them."""
    import html
    import re

    row = r'<strong id="(v\d+)">.*?<span class="badge ([a-z_]+)"[^>]*>[^<]*</span>'
    found = re.findall(row + r"<br><span class='muted small'>([^<]*)<", page)
    return {v: (state, html.unescape(text)) for v, state, text in found}


def notices(page: str) -> list[str]:
    """The outcome messages the page shows the user."""
    import html
    import re

    return [html.unescape(m) for m in re.findall(r'role="status">([^<]*)<', page)]


# -- who may change what: Airflow's roles, then the team --------------------------------------------


@pytest.mark.parametrize(
    ("user", "role", "status", "says"),
    [
        ("victor", "viewer", 403, "may not change model 'cancer': Airflow does not let them change DAG 'cancer_dag'"),
        ("bob", "viewer", 403, "Airflow does not let them change DAG"),  # a team member, but read-only in Airflow
        ("olga", "op", 403, "'olga' is not a member or approver of team 'onc'"),
        ("mallory", "user", 403, "'mallory' is not a member or approver of team 'onc'"),
        ("root", "admin", 403, "'root' is not a member or approver of team 'onc'"),  # Airflow admin ≠ the team
        ("bob", "user", 303, ""),
        ("alice", "op", 303, ""),
    ],
)
def test_models_page_writes_need_the_dag_permission_and_the_team(
    client: TestClient, registry: ModelRegistry, user: str, role: str, status: int, says: str
) -> None:
    import html

    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=True)
    from airflow_bridge.actions.deployment import move

    move(registry, MoveRequest(model="cancer", version=2, alias="production", action="promoted"), actor="erin")
    before = registry.chain_heads()
    login(client, user, role)
    reply = client.post(
        "/models/cancer/rollback", data={"alias": "production", "reason": "latency"}, follow_redirects=False
    )
    assert reply.status_code == status, reply.text
    assert says in html.unescape(reply.text)
    live = registry.alias_version("cancer", "production").version  # type: ignore[union-attr]
    if status == 303:
        assert live == 1 and registry.audit_events(model="cancer")[-1].principal == f"airflow:{user}"
    else:
        assert live == 2
        assert registry.chain_heads()["cancer"][0] <= before["cancer"][0] + 1, "at most the refusal was recorded"


def test_the_api_acts_as_the_token_s_user_and_refuses_what_the_page_refuses(
    client: TestClient, registry: ModelRegistry
) -> None:
    login(client, "victor", "viewer")
    assert client.post("/api/models/cancer/versions/2/approve", json={"alias": "production"}).status_code == 403
    login(client, "alice", "user")
    refused = client.post("/api/models/cancer/versions/2/approve", json={"alias": "production"})
    assert refused.status_code == 403 and "'alice' authored this model" in refused.json()["detail"]
    login(client, "erin", "user")
    long = client.post("/api/models/cancer/versions/2/reject", json={"alias": "production", "comment": "x" * 10_000})
    assert long.status_code == 422 and "10000 characters long" in long.json()["detail"]
    assert [e.action for e in registry.audit_events(model="cancer")][-1] == "approval_refused"  # alice's, not erin's
    granted = client.post("/api/models/cancer/versions/2/approve", json={"alias": "production", "comment": "fine"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["approver"] == "erin"
    event = registry.audit_events(model="cancer")[-1]
    assert (event.action, event.actor, event.principal, event.after["comment"]) == (
        "approval_granted",
        "erin",
        "airflow:erin",
        "fine",
    )
    moved = client.post("/api/models/cancer/promote", json={"version": 2, "alias": "production", "reason": "ok"})
    assert moved.status_code == 200 and moved.json()["version"] == 2, moved.text
    assert client.get("/api/whoami").json()["user"] == "erin"


def test_the_page_compares_versions_as_the_cli_does(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "victor", role="viewer")
    page = client.get("/models/cancer").text
    assert 'action="/models/cancer/compare" data-compare>' in page  # the versions table is the compare form
    assert '<input type="checkbox" name="v" value="2" aria-label="compare v2">' in page
    assert (
        '<a class="nowrap" href="/models/cancer/compare?v=production&amp;v=2">vs production</a>' in page
    )  # v2 against the live v1
    shown = client.get("/models/cancer/compare", params={"v": ["production", "2"]})
    assert shown.status_code == 200, shown.text
    assert "<th>v1 (production)</th><th>v2</th>" in shown.text
    assert "<td>roc_auc</td><td>0.9910</td><td>0.9910 (+0.0000)</td>" in shown.text
    assert "<td>gate roc_auc</td><td>pass</td><td>pass</td>" in shown.text
    one = client.get("/models/cancer/compare", params={"v": ["1"]})
    assert one.status_code == 422 and "name two or more versions or candidates of &#x27;cancer&#x27;" in one.text
    client.cookies.clear()
    assert client.get("/models/cancer/compare", params={"v": ["1", "2"]}).status_code == 401
