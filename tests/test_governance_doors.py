"""The governance holes as users found them, through the doors they used: the CLI, `validate`, the dags
folder, a newcomer's first spec, and anchors in an S3 bucket with Object Lock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.governance.loader import load_policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.records import binding_for
from tests.helpers import EXAMPLES, POSTGRES_URL, cli, write_loader
from tests.registry_workers import registry_database


def _home_registry(home: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")


def _oncology_model(registry: ModelRegistry, store: ArtifactStore, versions: int = 1) -> None:
    """breast_cancer registered by the oncology team under the example policy."""
    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    assert policy is not None
    for number in range(1, versions + 1):
        registry.register_version(
            "breast_cancer",
            store.put(f"model {number}".encode(), "models/breast_cancer", ".joblib"),
            card=ModelCard(owner="alice", team="oncology"),
            policy=binding_for(policy, "dag_specs/_policy.yaml"),
            actor="alice",
            run=RunRef("breast_cancer_classifier", f"run{number}", "register"),
        )


@pytest.fixture
def other_team(tmp_path: Path) -> Path:
    """Another team's folder: its own policy (production needs no approval) and a spec naming breast_cancer."""
    folder = tmp_path / "growth"
    folder.mkdir()
    shutil.copytree(EXAMPLES / "data", folder / "data")
    (folder / "_policy.yaml").write_text(
        "apiVersion: airflow-bridge/v1\nkind: Policy\n"
        "teams:\n  growth: {members: [mallory], approvers: [gus], approval_required_for: []}\n"
    )
    spec = (EXAMPLES / "breast_cancer_classifier.yaml").read_text()
    spec = spec.replace("name: breast_cancer_classifier", "name: growth_cancer")
    spec = spec.replace("owner: alice", "owner: mallory").replace("team: oncology", "team: growth")
    (folder / "growth_cancer.yaml").write_text(spec)
    return folder


# -- another team -------------------------------------------------------------------------------


def test_validate_and_the_dags_folder_refuse_another_teams_model(
    tmp_path: Path, other_team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    _oncology_model(_home_registry(home), ArtifactStore(f"file://{home / 'artifacts'}"))

    checked = cli("validate", other_team, "--home", home, "--no-data")
    assert checked.returncode == 1, checked.stdout
    assert "growth_cancer.yaml:" in checked.stdout
    assert "model 'breast_cancer' belongs to team 'oncology' in the registry" in checked.stdout
    assert "airflow-bridge models transfer breast_cancer" in checked.stdout
    assert cli("validate", other_team, "--home", home, "--no-data", "--no-registry").returncode == 0

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_BRIDGE_HOME", str(home))
    bag = DagBag(dag_folder=str(write_loader([other_team / "growth_cancer.yaml"])))
    dag = bag.dags["growth_cancer"]
    assert "invalid-spec" in dag.tags
    assert "belongs to team 'oncology'" in (dag.doc_md or "")


def test_a_local_run_of_another_teams_spec_never_reaches_the_model(tmp_path: Path, other_team: Path) -> None:
    home = tmp_path / "home"
    registry = _home_registry(home)
    _oncology_model(registry, ArtifactStore(f"file://{home / 'artifacts'}"))
    ran = cli("run", other_team / "growth_cancer.yaml", "--home", home)
    assert ran.returncode == 1
    assert "belongs to team 'oncology'" in ran.stdout + ran.stderr
    assert registry.get_model("breast_cancer").latest_version == 1
    assert registry.get_model("breast_cancer").card.team == "oncology"


# -- a newcomer with no policy ------------------------------------------------------------------


def test_a_newcomer_without_a_policy_never_reaches_production_silently(tmp_path: Path) -> None:
    project = tmp_path / "project"  # outside any repository: no _policy.yaml in reach
    project.mkdir()
    started = cli("init", "churn", "--dir", project / "specs", "--owner", "nina", cwd=project)
    assert started.returncode == 0, started.stderr
    assert "_policy.yaml (the team policy: members, approvers)" in started.stdout
    assert "has no approver yet, so nothing can be deployed to production" in started.stderr
    spec = project / "specs" / "churn.yaml"
    assert "alias: staging" in spec.read_text()
    policy = (project / "specs" / "_policy.yaml").read_text()
    assert "my-team:" in policy and "members: [nina]" in policy

    (project / "specs" / "_policy.yaml").unlink()  # no policy at all, and the spec asks for production
    spec.write_text(spec.read_text().replace("alias: staging", "alias: production"))
    (project / "specs" / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "breast_cancer.csv", project / "specs" / "data" / "churn.csv")
    spec.write_text(spec.read_text().replace("target: label", "target: malignant"))
    checked = cli("validate", spec, "--no-data", "--no-registry")
    assert checked.returncode == 0, checked.stdout
    assert "warning:" in checked.stdout and "no team policy (_policy.yaml) is in reach" in checked.stdout

    home = project / "home"
    ran = cli("run", spec, "--home", home, "--approve-as", "dana")
    assert ran.returncode == 1, ran.stdout
    assert "no team policy governs 'churn'" in ran.stdout + ran.stderr
    assert _home_registry(home).alias_version("churn", "production") is None

    staged = spec.read_text().replace("alias: production", "alias: staging")
    spec.write_text(staged)
    ignored = cli("run", spec, "--home", home, "--approve-as", "dana")
    assert ignored.returncode == 2 and "needs no approval" in ignored.stderr, "--approve-as is never ignored"


# -- who acts on the CLI ------------------------------------------------------------------------


def test_a_claimed_name_is_recorded_with_the_os_user_who_claimed_it(tmp_path: Path) -> None:
    import os
    import pwd

    home = tmp_path / "home"
    registry = _home_registry(home)
    _oncology_model(registry, ArtifactStore(f"file://{home / 'artifacts'}"))
    done = cli("models", "approve", "breast_cancer", "1", "--as", "dana", "--reason", "fine", "--home", home)
    assert done.returncode == 0, done.stderr
    me = pwd.getpwuid(os.getuid()).pw_name
    event = registry.audit_events(model="breast_cancer")[-1]
    assert (event.actor, event.principal) == ("dana", f"os:{me}")
    history = cli("models", "history", "breast_cancer", "--home", home, "--format", "json")
    assert json.loads(history.stdout)[-1]["principal"] == f"os:{me}"
    if me != "dana":
        shown = cli("models", "history", "breast_cancer", "--home", home)
        assert f"dana (os:{me})" in shown.stdout


@pytest.mark.postgres
def test_a_shared_registry_takes_changes_only_through_airflow(tmp_path: Path) -> None:
    with registry_database("postgresql", tmp_path) as url:
        registry = ModelRegistry(url)
        _oncology_model(registry, ArtifactStore(f"file://{tmp_path / 'artifacts'}"))
        before = registry.chain_heads()
        for change in (
            ["models", "approve", "breast_cancer", "1", "--as", "dana"],
            ["models", "promote", "breast_cancer", "1"],
            ["models", "rollback", "breast_cancer"],
        ):
            refused = cli(*change, "--registry-url", url)
            assert refused.returncode == 1, refused.stdout
            assert "is a shared registry" in refused.stderr and "airflow-bridge login" in refused.stderr
        claimed = cli(
            *["models", "approve", "breast_cancer", "1", "--as", "dana"],
            "--registry-url",
            url,
            "--airflow-url",
            "http://127.0.0.1:9",
        )
        assert claimed.returncode == 2 and "--as is only for the embedded registry" in claimed.stderr
        assert registry.chain_heads() == before, "nothing was written"
        registry.dispose()
    assert POSTGRES_URL  # the shared server the registry tests use


# -- anchors in S3 with Object Lock ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    from tests.s3server import s3_server

    with s3_server() as server:
        yield server


@pytest.mark.postgres
def test_anchors_in_an_object_locked_bucket_catch_a_rewritten_chain(
    tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    bucket = f"anchors-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    connection = s3.connection()
    monkeypatch.setenv("AIRFLOW_CONN_ANCHORS_S3", connection)
    with registry_database("postgresql", tmp_path) as url:
        registry = ModelRegistry(url)
        store = ArtifactStore(f"file://{tmp_path / 'artifacts'}")
        _oncology_model(registry, store, versions=2)
        approval.decide(registry, model="breast_cancer", version=1, alias="production", responder="dana", approve=True)
        deployment.move(registry, MoveRequest(model="breast_cancer", version=1, alias="production"), actor="alice")
        target = f"s3://{bucket}/registry"
        env = {"AIRFLOW_CONN_ANCHORS_S3": connection}
        anchored = _cli_env(env, "audit", "anchor", "--to", target, "--conn-id", "anchors_s3", "--registry-url", url)
        assert anchored.returncode == 0 and "anchored seq" in anchored.stdout, anchored.stderr
        verified = _cli_env(
            env, "audit", "verify", "--anchors", target, "--conn-id", "anchors_s3", "--registry-url", url
        )
        assert verified.returncode == 0 and "anchored up to seq" in verified.stdout, verified.stdout + verified.stderr

        # Someone with database access rewrites an approval's reason and re-hashes every later event.
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            from airflow_bridge.registry import audit

            stream = audit.audit_events.c.stream == "breast_cancer"
            query = sa.select(audit.audit_events).where(stream).order_by(audit.audit_events.c.stream_seq)
            rows = [dict(r._mapping) for r in conn.execute(query)]
            prev = audit.genesis("breast_cancer")
            for row in rows:
                if row["action"] == "approval_granted":
                    row["reason"] = "approved after the review board"
                row["prev_hash"] = prev
                row["hash"] = audit.event_hash(prev, audit.hashed_fields(row))
                conn.execute(
                    audit.audit_events.update()
                    .where(audit.audit_events.c.id == row["id"])
                    .values(reason=row["reason"], prev_hash=row["prev_hash"], hash=row["hash"])
                )
                prev = row["hash"]
            conn.execute(audit.models.update().where(audit.models.c.name == "breast_cancer").values(chain_hash=prev))
        engine.dispose()
        assert registry.verify_audit().ok, "the rewritten chain is self-consistent"
        caught = _cli_env(env, "audit", "verify", "--anchors", target, "--conn-id", "anchors_s3", "--registry-url", url)
        assert caught.returncode == 1
        assert "was anchored with" in caught.stdout and "history up to the anchor was rewritten" in caught.stdout
        registry.dispose()


def _cli_env(env: dict[str, str], *args: str) -> Any:
    import subprocess

    from tests.helpers import CLI, cli_env

    return subprocess.run(
        [str(CLI), *args],
        env={**cli_env(), **env, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
