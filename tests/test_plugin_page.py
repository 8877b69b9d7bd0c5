"""The Models page as a user sees it: paged, sorted and filtered tables, badges, charts, links, the artifact
download, the confirmation before a move and the refusals that change nothing (real JWTs, real SQLite)."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_bridge.actions import approval
from airflow_bridge.actions.deployment import move
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for
from tests.test_plugin import GATES, POLICY, badges, login, notices
from tests.test_plugin import client as client  # noqa: PLC0414 - the fixture
from tests.test_plugin import registry as registry  # noqa: PLC0414 - the fixture


def add_versions(registry: ModelRegistry, env: dict[str, Any], model: str, aucs: list[float], **card: str) -> None:
    """Register one version of ``model`` per value (its roc_auc and gate), each from its own DAG run."""
    store = ArtifactStore(f"file://{env['artifacts']}")
    for i, auc in enumerate(aucs):
        gate = {**GATES[0], "value": auc, "passed": auc >= 0.97}
        registry.register_version(
            model,
            store.put(f"{model} {i} {auc}".encode(), f"models/{model}", ".joblib"),
            estimator="sklearn.linear_model.LogisticRegression",
            metrics={"roc_auc": auc},
            validation={"gates": [gate]},
            run=RunRef(f"{model}_dag", f"manual__{uuid.uuid4().hex[:12]}", "register"),
            actor="alice",
            card=ModelCard(owner=card.get("owner", "alice"), team=card.get("team", "onc"), description=model),
            policy=binding_for(POLICY, "specs/_policy.yaml"),
        )


def version_order(page: str) -> list[str]:
    return re.findall(r'<strong id="(v\d+)">', page)


def model_names(page: str) -> list[str]:
    models = page.split("<h2>Pending approvals</h2>", 1)[0]
    return re.findall(r'<a href="/models/([a-z_]+)">', models)


def test_versions_are_paged_and_sorted_in_sql(client: TestClient, registry: ModelRegistry, registry_env: Any) -> None:
    add_versions(registry, registry_env, "cancer", [0.975, 0.99, 0.98, 0.995, 0.972])  # v3..v7
    login(client, "bob", role="viewer")
    first = client.get("/models/cancer", params={"per_page": 3}).text
    assert version_order(first) == ["v7", "v6", "v5"]  # newest first
    assert "Showing 1&ndash;3 of 7 versions (page 1 of 3)" in first
    assert 'href="?page=3&amp;per_page=3&amp;sort=version&amp;desc=1">Last' in first.replace("/models/cancer?", "?")
    last = client.get("/models/cancer", params={"per_page": 3, "page": 3}).text
    assert version_order(last) == ["v1"] and "Showing 7&ndash;7 of 7 versions (page 3 of 3)" in last
    assert version_order(client.get("/models/cancer", params={"per_page": 3, "page": 99}).text) == ["v1"]  # clamped
    best = client.get("/models/cancer", params={"sort": "metric:roc_auc", "desc": 1, "per_page": 3}).text
    assert version_order(best) == ["v6", "v2", "v1"]  # 0.995, then the fixture's two at 0.991 (newest first)
    worst = client.get("/models/cancer", params={"sort": "metric:roc_auc", "desc": 0, "per_page": 2}).text
    assert version_order(worst) == ["v7", "v3"]
    assert version_order(client.get("/models/cancer", params={"sort": "version", "desc": 0}).text)[:2] == ["v1", "v2"]
    assert version_order(client.get("/models/cancer", params={"sort": "nonsense"}).text)[0] == "v7"  # the default
    # a task's "Model version" link (#v2): the page that holds v2, whatever page or order was asked
    around = client.get("/models/cancer", params={"around": 2, "per_page": 3, "page": 1, "sort": "created"}).text
    assert version_order(around) == ["v4", "v3", "v2"] and "(page 2 of 3)" in around
    assert client.get("/models/cancer", params={"per_page": 0}).status_code == 422
    assert client.get("/models/cancer", params={"per_page": 10_000}).status_code == 422


def test_each_version_shows_its_status_badge(client: TestClient, registry: ModelRegistry, registry_env: Any) -> None:
    add_versions(registry, registry_env, "cancer", [0.98, 0.96])  # v3 approved below; v4 failed its gate
    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=False)
    approval.decide(registry, model="cancer", version=3, alias="production", responder="dana", approve=True)
    login(client, "bob", role="viewer")
    page = client.get("/models/cancer").text
    states = {v: state for v, (state, _) in badges(page).items()}
    assert states == {"v4": "failed", "v3": "approved", "v2": "rejected", "v1": "live"}
    assert '<span class="badge failed" title="registered (no approval asked)">failed gate</span>' in page
    assert "title='FAIL: needs ≥ 0.97'>0.9600</span>" in page
    move(registry, MoveRequest(model="cancer", version=3, alias="production", reason="better"), actor="erin")
    states = {v: s for v, (s, _) in badges(client.get("/models/cancer").text).items()}
    assert (states["v3"], states["v1"]) == ("live", "superseded")


def test_a_chart_of_each_gate_metric(client: TestClient, registry: ModelRegistry, registry_env: Any) -> None:
    add_versions(registry, registry_env, "cancer", [0.975, 0.99])
    login(client, "bob", role="viewer")
    page = client.get("/models/cancer").text
    [chart] = re.findall(r"<figure class='chart' data-metric='roc_auc'>.*?</figure>", page)
    assert "<polyline class='line' points=" in chart and chart.count("<circle") == 4
    assert "<title>gate bound 0.97</title>" in chart  # the gate's minimum, dashed
    assert "<title>v1: 0.9910</title>" in chart and "data-metric='roc_auc'" in page and "class='dot live'" in chart


def test_links_to_the_run_logs_report_lineage_and_artifact(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "bob", role="viewer")
    page = client.get("/models/cancer").text
    assert (
        '<a class="nowrap" href="/dags/cancer_dag/runs/run2" target="_top">run</a>' in page
    )  # the Airflow UI, whole window
    assert '<a class="nowrap" href="/dags/cancer_dag/runs/run2/tasks/register" target="_top">logs</a>' in page
    assert '<a class="nowrap" href="/models/cancer/versions/2/lineage">lineage</a>' in page
    assert '<a class="nowrap" href="/models/cancer/versions/2/artifact">artifact</a>' in page
    lineage = client.get("/models/cancer/versions/2/lineage")
    assert lineage.status_code == 200 and "cancer_dag / run2 / register" in html.unescape(lineage.text)
    download = client.get("/models/cancer/versions/2/artifact")
    assert download.status_code == 200 and download.content == b"model 2"
    assert download.headers["content-disposition"] == 'attachment; filename="cancer-v2.joblib"'
    assert download.headers["x-artifact-sha256"] == registry.get_version("cancer", 2).artifact.sha256


def test_a_tampered_artifact_is_never_sent(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "bob", role="viewer")
    ref = registry.get_version("cancer", 2).artifact
    Path(ref.uri.removeprefix("file://")).write_bytes(b"forged model")
    before = registry.chain_heads()
    refused = client.get("/models/cancer/versions/2/artifact")
    assert refused.status_code == 409
    assert "modified after registration" in html.unescape(refused.text) and b"forged" not in refused.content
    assert refused.headers["content-type"].startswith("text/html")
    assert registry.chain_heads() == before


@pytest.mark.parametrize(
    "path",
    [
        "/models/nope",
        "/models/nope/compare?v=1&v=2",
        "/models/nope/versions/1/artifact",
        "/models/nope/versions/1/lineage",
        "/models/nope/versions/1/report",
        "/models/cancer/versions/9/artifact",
        "/audit?model=nope",
    ],
)
def test_a_model_or_version_that_does_not_exist_is_a_404(
    client: TestClient, registry: ModelRegistry, path: str
) -> None:
    login(client, "bob", role="viewer")
    missing = client.get(path)
    assert missing.status_code == 404, missing.text
    assert "NotFoundError" in notices(missing.text)[0]


@pytest.mark.parametrize("path", ["/models/cancer", "/models/cancer/versions/1/artifact", "/models/?q=c", "/audit"])
def test_no_page_without_a_login_the_models_view_allows(client: TestClient, registry: ModelRegistry, path: str) -> None:
    assert client.get(path).status_code == 401
    client.cookies.set("_token", "forged")
    assert client.get(path).status_code == 403


def test_the_confirmation_names_what_goes_live_and_what_it_replaces(
    client: TestClient, registry: ModelRegistry
) -> None:
    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=True)
    login(client, "erin")
    before = registry.chain_heads()
    asked = client.get("/models/cancer/promote", params={"version": 2, "alias": "production"})
    assert asked.status_code == 200, asked.text
    assert "<p class='move' data-move>production: v1 → v2</p>" in asked.text
    assert "It replaces v1, which &#x27;production&#x27; serves now." in asked.text
    assert "v2 (approved by erin (not deployed)) goes live as <strong>production</strong>" in asked.text
    assert '<input type="hidden" name="expect" value="1">' in asked.text
    assert registry.chain_heads() == before and registry.alias_version("cancer", "production").version == 1  # type: ignore[union-attr]

    confirmed = client.post(
        "/models/cancer/promote",
        data={"version": "2", "alias": "production", "expect": "1", "reason": "better"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303  # post-redirect-get
    shown = client.get(confirmed.headers["location"])
    assert notices(shown.text)[0].startswith("Promoted: 'production' of cancer now serves v2 (was v1), by erin")
    again = client.get(confirmed.headers["location"])  # a reload is a GET: nothing moves twice
    assert again.status_code == 200 and len(registry.alias_history("cancer", "production")) == 2

    back = client.get("/models/cancer/rollback", params={"alias": "production"}).text
    assert "production: v2 → v1" in back and '<input type="hidden" name="to" value="1">' in back
    assert registry.alias_version("cancer", "production").version == 2  # type: ignore[union-attr]


def test_a_stale_confirmation_changes_nothing(client: TestClient, registry: ModelRegistry) -> None:
    approval.decide(registry, model="cancer", version=2, alias="production", responder="erin", approve=True)
    login(client, "erin")
    move(registry, MoveRequest(model="cancer", version=2, alias="production", reason="x"), actor="erin")
    heads = registry.chain_heads()
    # confirmed when production served v1 (now v2): refused, nothing moves
    stale = client.post("/models/cancer/promote", data={"version": "2", "alias": "production", "expect": "1"})
    assert stale.status_code in (403, 409) and notices(stale.text)[0].startswith("Refused:")
    old_rollback = client.post("/models/cancer/rollback", data={"alias": "production", "expect": "3", "to": "1"})
    assert old_rollback.status_code == 409
    assert "changed since you confirmed 'production: v3 → v1'" in notices(old_rollback.text)[0]
    assert registry.alias_version("cancer", "production").version == 2  # type: ignore[union-attr]
    assert registry.chain_heads()["cancer"][0] <= heads["cancer"][0] + 1, "at most the refusal was recorded"


def test_confirmation_pages_need_the_write_permission(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "victor", role="viewer")
    refused = client.get("/models/cancer/promote", params={"version": 2, "alias": "production"})
    assert refused.status_code == 403 and "Airflow does not let them change DAG" in html.unescape(refused.text)
    login(client, "erin")
    assert client.get("/models/cancer/promote", params={"version": 9, "alias": "production"}).status_code == 404
    assert client.get("/models/cancer/rollback", params={"alias": "staging"}).status_code == 404
    first = client.get("/models/cancer/rollback", params={"alias": "production"})
    assert first.status_code == 404 and "no earlier version to roll back to" in html.unescape(first.text)


def test_the_index_searches_filters_sorts_and_pages(
    client: TestClient, registry: ModelRegistry, registry_env: Any
) -> None:
    add_versions(registry, registry_env, "churn", [0.98, 0.99], team="growth", owner="carol")
    add_versions(registry, registry_env, "fraud_score", [0.98], team="risk", owner="dave")
    login(client, "bob", role="viewer")
    assert model_names(client.get("/models/").text) == ["cancer", "churn", "fraud_score"]
    assert model_names(client.get("/models/", params={"q": "FRAUD"}).text) == ["fraud_score"]
    assert model_names(client.get("/models/", params={"q": "carol"}).text) == ["churn"]  # the owner
    assert model_names(client.get("/models/", params={"team": "risk"}).text) == ["fraud_score"]
    assert model_names(client.get("/models/", params={"live": "1"}).text) == ["cancer"]
    assert model_names(client.get("/models/", params={"live": "0"}).text) == ["churn", "fraud_score"]
    assert model_names(client.get("/models/", params={"sort": "latest", "desc": 1}).text) == [
        "cancer",
        "churn",
        "fraud_score",
    ]
    assert model_names(client.get("/models/", params={"sort": "team"}).text) == ["churn", "cancer", "fraud_score"]
    paged = client.get("/models/", params={"per_page": 1, "page": 2}).text
    assert model_names(paged) == ["churn"] and "Showing 2&ndash;2 of 3 models" in paged
    assert "<span>1 model</span>" in client.get("/models/", params={"team": "risk"}).text
    none = client.get("/models/", params={"q": "100%_match"}).text
    assert model_names(none) == [] and "No models match." in none
    assert '<option value="growth">growth</option>' in client.get("/models/").text


def test_the_page_follows_airflows_colour_mode_with_no_outside_asset(
    client: TestClient, registry: ModelRegistry
) -> None:
    login(client, "bob", role="viewer")
    page = client.get("/models/cancer").text
    assert "localStorage.getItem('theme')" in page  # Airflow's UI keeps its colour mode there
    assert "window.parent.document.documentElement" in page and ":root.dark{" in page
    assert "oklch(0.469 0.084 257.657)" in page  # Airflow's brand.600
    assert not re.search(r"""(src|href)=["']https?://""", page) and "@import" not in page and "url(" not in page


def test_candidate_rows_share_the_versions_table() -> None:
    """The extension point for candidates (runs that were not registered): a typed row of kind 'candidate'."""
    from airflow_bridge.ml.gates import gates_of
    from airflow_bridge.plugin.tables import Link, Sort, VersionRow, versions_table

    gate = {**GATES[0], "value": 0.95, "passed": False}
    row = VersionRow(
        kind="candidate",
        key="c-7f3a",
        label="candidate 7f3a",
        created="2026-12-06 10:00",
        created_by="alice",
        estimator="LGBMClassifier",
        state="failed",
        status="failed gate(s) roc_auc (candidate, not registered)",
        metrics={"roc_auc": 0.95},
        gates=gates_of([gate]),
        links=[Link("run", "/dags/cancer_dag/runs/r7", top=True)],
    )
    table = versions_table([row], ["roc_auc"], Sort("version", True), lambda key, desc: f"?sort={key}")
    assert "<tr data-kind='candidate' data-state='failed'>" in table
    assert (
        '<span class="badge failed" title="failed gate(s) roc_auc (candidate, not registered)">failed gate</span>'
        in table
    )
    assert '<input type="checkbox" name="v" value="c-7f3a" aria-label="compare candidate 7f3a">' in table
    assert "title='FAIL: needs ≥ 0.97'>0.9500</span>" in table


def test_the_audit_trail_and_alias_moves_are_newest_first(client: TestClient, registry: ModelRegistry) -> None:
    login(client, "bob", role="viewer")
    shown = client.get("/audit", params={"model": "cancer", "per_page": 2})
    seqs = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", shown.text)]
    events = registry.audit_events(model="cancer")
    assert seqs == [events[-1].seq, events[-2].seq]
    assert f"Showing 1&ndash;2 of {len(events)} events" in shown.text
    page = client.get("/models/cancer").text
    recent = page.split("<h2>Audit trail</h2>", 1)[1]
    assert [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", recent)][:2] == [events[-1].seq, events[-2].seq]


def test_candidates_that_did_not_become_a_version_sit_beside_the_versions(
    client: TestClient, registry: ModelRegistry, registry_env: Any
) -> None:
    """A failed candidate shows in the same table shape, with its badge, report, run and compare with the live one."""
    import dataclasses
    from dataclasses import asdict

    from tests.test_candidates import _candidate

    store = ArtifactStore(f"file://{registry_env['artifacts']}")
    report = store.put(b"<html><body>report of the failed candidate</body></html>", "reports", ".html")
    failed = _candidate("manual__late", 0.3, model="cancer")
    failed = dataclasses.replace(failed, validation={**failed.validation, "report": {"html": asdict(report)}})
    registry.record_candidate(failed, keep_last=100, keep_days=None)
    registered = dataclasses.replace(_candidate("run2", 0.99, model="cancer"), run=RunRef("cancer_dag", "run2"))
    registry.record_candidate(registered, keep_last=100, keep_days=None)  # v2's own candidate: shown as v2 only
    login(client, "bob", role="viewer")

    page = client.get("/models/cancer").text

    section = page.split("<h3 id='candidates'>Candidates that did not become a version</h3>", 1)[1]
    section = section.split("</form>", 1)[0]
    assert "<tr data-kind='candidate' data-state='failed'>" in section
    assert registered.candidate_id not in page
    assert f'<input type="checkbox" name="v" value="{failed.candidate_id}"' in section  # comparable with versions
    assert (
        '<span class="badge failed" title="failed gate(s) r2 (candidate, not registered)">failed gate</span>' in section
    )
    assert f'href="/models/cancer/compare?v=production&amp;v={failed.candidate_id}">vs production</a>' in section
    assert f'href="/models/cancer/candidates/{failed.candidate_id}/report">report</a>' in section
    shown = client.get(f"/models/cancer/candidates/{failed.candidate_id}/report")
    assert shown.status_code == 200 and "report of the failed candidate" in shown.text
    compared = client.get("/models/cancer/compare", params={"v": ["production", failed.candidate_id]})
    assert compared.status_code == 200 and failed.candidate_id in compared.text
    assert client.get("/models/cancer/candidates/c-0000000000/report").status_code == 404
    Path(report.uri.removeprefix("file://")).write_bytes(b"<html>tampered</html>")
    assert client.get(f"/models/cancer/candidates/{failed.candidate_id}/report").status_code == 409


def test_a_model_whose_runs_all_failed_has_a_page_of_its_candidates(
    client: TestClient, registry: ModelRegistry, registry_env: Any
) -> None:
    """A scientist's first runs failed a gate: no version, yet the Models page lists the model and shows why."""
    from tests.test_candidates import _candidate

    first, second = _candidate("manual__1", 0.2, model="first_try"), _candidate("manual__2", 0.4, model="first_try")
    for tried in (first, second):
        registry.record_candidate(tried, keep_last=100, keep_days=None)
    add_versions(registry, registry_env, "cancer_v", [0.98])
    login(client, "bob", role="viewer")

    index = client.get("/models/").text
    waiting = index.split("<h2>No version yet</h2>", 1)[1].split("<h2>Pending approvals</h2>", 1)[0]
    assert '<a href="/models/first_try#candidates">first_try</a>' in waiting and "2 candidates" in waiting
    assert "cancer_v" not in waiting
    assert "No version yet" not in client.get("/models/", params={"q": "cancer"}).text
    assert "first_try" in client.get("/models/", params={"q": "FIRST"}).text.split("No version yet", 1)[1]
    assert "No version yet" not in client.get("/models/", params={"team": "onc"}).text  # they have no team

    page = client.get("/models/first_try")
    assert page.status_code == 200
    assert "No version of first_try yet: none of its 2 recorded runs registered one" in page.text
    section = page.text.split("<h3 id='candidates'>Candidates that did not become a version</h3>", 1)[1]
    for tried in (first, second):
        assert f'<input type="checkbox" name="v" value="{tried.candidate_id}"' in section
    assert section.count("failed gate</span>") == 2 and "the version above" not in section
    compared = client.get("/models/first_try/compare", params={"v": [first.candidate_id, second.candidate_id]})
    assert compared.status_code == 200 and second.candidate_id in compared.text
    assert client.get("/models/never_ran").status_code == 404
