"""Deployment targets as plug-ins: a third-party package adds one without touching airflow-bridge.

The packages under ``tests/fixtures/targets`` are installed for real (``pip install --target``) and found
through their ``airflow_bridge.targets`` entry points. The ``toy`` target then goes through the same gate
as ``local``: the team policy, approvals, the checksum, the audit trail and the compare-and-set move.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import ChecksumMismatchError, PolicyViolationError
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.records import binding_for
from airflow_bridge.spec.targets import installed_targets
from tests.helpers import EXAMPLES

FIXTURES = Path(__file__).parent / "fixtures" / "targets"
POLICY = Policy.model_validate(
    {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "defaults": {"approval_required_for": ["production"]},
        "teams": {"onc": {"approvers": ["dana"]}},
    }
)


def _install(into: Path, *packages: str) -> Path:
    """``pip install`` the fixture packages into ``into``: a site directory of their own."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
            *("--target", str(into), *(str(FIXTURES / p) for p in packages)),
        ],
        check=True,
        capture_output=True,
    )
    return into


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One site directory with ``toy`` alone, one with ``toy``, a second claim on it and a broken target."""
    root = tmp_path_factory.mktemp("targets")
    return {
        "toy": _install(root / "toy", "toy_target"),
        "clash": _install(root / "clash", "toy_target", "toy_clash", "broken_target"),
    }


def _use(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site_dir))
    importlib.invalidate_caches()
    installed_targets.cache_clear()


@pytest.fixture(autouse=True)
def _forget_targets() -> Iterator[None]:
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("toy_target", "toy_clash", "broken_target")]:
        del sys.modules[name]
    installed_targets.cache_clear()


@pytest.fixture
def toy(site: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _use(site["toy"], monkeypatch)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return _registered(ModelRegistry("sqlite://"), tmp_path)


def _registered(registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """``registry`` with versions 1 and 2 of model ``m`` of team ``onc`` (production needs dana's approval)."""
    store = ArtifactStore(f"file://{tmp_path}/artifacts")
    for number in (1, 2):
        registry.register_version(
            "m",
            store.put(f"model {number}".encode(), "models/m", ".joblib"),
            run=RunRef("d", f"r{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="onc"),
            policy=binding_for(POLICY, "onc/_policy.yaml"),
        )
    return registry


def _served(folder: Path) -> dict[str, Any] | None:
    path = folder / "m@production.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_a_third_party_target_deploys_through_the_same_gate_as_local(
    toy: None, registry: ModelRegistry, tmp_path: Path
) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    to_toy = MoveRequest("m", "production", 1, target="toy", settings={"folder": str(folder)})

    with pytest.raises(PolicyViolationError, match=r"v1 has no recorded approval for .production."):  # as for local
        deployment.move(registry, to_toy, actor="bob")
    assert _served(folder) is None and registry.alias_version("m", "production") is None
    assert registry.audit_events(model="m")[-1].action == AuditAction.MOVE_REFUSED

    approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=True)
    result = deployment.move(registry, to_toy, actor="bob")
    assert (result.target, result.endpoint) == ("toy", f"file://{folder}/m@production.json")
    assert _served(folder) == {"model": "m", "version": 1, "sha256": registry.get_version("m", 1).artifact.sha256}
    assert registry.alias_version("m", "production").version == 1  # type: ignore[union-attr]
    assert registry.verify_audit().ok

    approval.decide(registry, model="m", version=2, alias="production", responder="dana", approve=True)
    deployment.move(
        registry, MoveRequest("m", "production", 2, target="toy", settings={"folder": str(folder)}), actor="bob"
    )
    assert _served(folder)["version"] == 2  # type: ignore[index]
    with pytest.raises(PolicyViolationError, match=r"is served by target 'toy'.*use target 'toy'"):
        deployment.move(registry, MoveRequest("m", "production", action="rolled_back"), actor="bob")  # local
    back = deployment.move(
        registry,
        MoveRequest("m", "production", action="rolled_back", target="toy", settings={"folder": str(folder)}),
        actor="bob",
    )
    assert (back.version, _served(folder)["version"]) == (1, 1)  # type: ignore[index]


def test_the_gate_checks_a_plugin_targets_settings_and_the_checksum_before_it_applies(
    toy: None, registry: ModelRegistry, tmp_path: Path
) -> None:
    approval.decide(registry, model="m", version=1, alias="production", responder="dana", approve=True)
    with pytest.raises(PolicyViolationError, match=r"bad settings for target 'toy': .*foldr: 'foldr' is not a setting"):
        deployment.move(
            registry, MoveRequest("m", "production", 1, target="toy", settings={"foldr": "/x"}), actor="bob"
        )
    with pytest.raises(PolicyViolationError, match="target 'toy': folder /nowhere does not exist"):
        deployment.move(
            registry, MoveRequest("m", "production", 1, target="toy", settings={"folder": "/nowhere"}), actor="bob"
        )
    Path(registry.get_version("m", 1).artifact.uri.removeprefix("file://")).write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError):
        deployment.move(
            registry, MoveRequest("m", "production", 1, target="toy", settings={"folder": str(tmp_path)}), actor="bob"
        )
    assert not list(tmp_path.glob("*.json"))  # refused before the target applied anything
    refused = [e for e in registry.audit_events(model="m") if e.action == AuditAction.MOVE_REFUSED]
    assert len(refused) == 3 and registry.alias_version("m", "production") is None


def _spec(tmp_path: Path, deployment_section: dict[str, Any]) -> Path:
    spec = yaml.safe_load((EXAMPLES / "breast_cancer_classifier.yaml").read_text())
    spec["deployment"] = deployment_section
    spec["data"]["training"]["uri"] = "breast_cancer.csv"
    path = tmp_path / "specs" / "spec.yaml"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "data" / "breast_cancer.csv", path.parent)
    path.write_text(yaml.safe_dump(spec))
    return path


def _issues(path: Path) -> list[str]:
    from airflow_bridge.spec.loader import load_spec

    return [f"{i.field}: {i.message}" + (f" ({i.hint})" if i.hint else "") for i in load_spec(path).issues]


def test_specs_and_the_factory_know_a_plugin_targets_settings(toy: None, tmp_path: Path) -> None:
    from airflow_bridge.factory.build import build_dag
    from airflow_bridge.governance.policy import OPEN_POLICY
    from airflow_bridge.spec.loader import load_spec

    good = _spec(tmp_path, {"target": "toy", "alias": "staging", "folder": str(tmp_path)})
    assert _issues(good) == []
    deploy: Any = build_dag(load_spec(good).spec, policy=OPEN_POLICY).get_task("deploy")  # type: ignore[arg-type]
    assert (deploy.target, deploy.target_settings) == ("toy", {"folder": str(tmp_path)})
    assert _issues(_spec(tmp_path, {"target": "toy", "foldr": "/x"})) == [
        "deployment.folder: target 'toy': Field required",
        "deployment.foldr: 'foldr' is not a setting of target 'toy' (did you mean 'folder'?)",
    ]
    assert _issues(_spec(tmp_path, {"target": "toy", "folder": "relative"})) == [
        "deployment.folder: folder 'relative' is not absolute (write the full path)"
    ]
    assert _issues(_spec(tmp_path, {"target": "toyy", "folder": "/x"})) == [
        "deployment.target: unknown deployment target 'toyy'; available: kserve, local, toy (did you mean 'toy'?)"
    ]


def test_two_claims_on_one_name_and_a_target_that_fails_to_import_cost_only_their_specs(
    site: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_bridge.factory.dags import load_dag_specs

    _use(site["clash"], monkeypatch)
    installed = installed_targets()
    assert sorted(installed.usable) == ["kserve", "local"]  # the others still work
    assert installed.broken["toy"] == (
        "deployment target 'toy' is claimed by 2 installed packages (toy_clash:target from toy-clash; "
        "toy_target:target from toy-target): uninstall all but one"
    )
    assert installed.broken["broken"].startswith(
        "deployment target 'broken' (broken_target:target) could not be loaded: ModuleNotFoundError: "
        "No module named 'sagemaker_sdk_that_is_not_installed'"
    )
    [issue] = _issues(_spec(tmp_path, {"target": "broken"}))
    assert issue.startswith("deployment.target: deployment target 'broken' (broken_target:target) could not be loaded")
    assert issue.endswith("; usable targets: kserve, local")

    dags = load_dag_specs(folder=str(tmp_path / "specs"))  # the spec naming it gets a placeholder DAG
    [dag] = dags.values()
    assert "invalid-spec" in dag.tags and "No module named 'sagemaker_sdk_that_is_not_installed'" in str(dag.doc_md)


def test_the_command_line_lists_installed_targets_and_validates_specs_naming_them(
    site: dict[str, Path], tmp_path: Path
) -> None:
    import os

    cli = [sys.executable, "-m", "airflow_bridge.cli.main"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site["toy"]), str(Path(__file__).parents[1])])}
    listed = subprocess.run([*cli, "targets", "--format", "json"], env=env, capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["usable"]["toy"]["settings"] == ["folder"]
    spec = _spec(tmp_path, {"target": "toy", "alias": "staging", "folder": str(tmp_path)})
    checked = subprocess.run(
        [*cli, "validate", "--no-data", str(spec)], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    env["PYTHONPATH"] = os.pathsep.join([str(site["clash"]), str(Path(__file__).parents[1])])
    broken = subprocess.run([*cli, "targets"], env=env, capture_output=True, text=True, check=False)
    assert broken.returncode == 1 and "✗ broken:" in broken.stdout and "✓ local" in broken.stdout


def test_the_deploy_and_rollback_operators_move_a_plugin_target(
    toy: None, tmp_path: Path, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from airflow_bridge.operators.deploy import DeployModelOperator
    from airflow_bridge.operators.rollback import RollbackModelOperator

    url = f"sqlite:///{tmp_path}/registry.db"
    _registered(ModelRegistry(url), tmp_path)
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__REGISTRY_URL", url)
    context: Any = {"ti": SimpleNamespace(dag_id="d", run_id="r", task_id="deploy"), "dag_run": None}
    settings = {"target": "toy", "target_settings": {"folder": str(tmp_path)}, "alias": "staging"}
    for number in (1, 2):
        registration = {"model": "m", "version": number}
        moved = DeployModelOperator(task_id="deploy", registration=registration, **settings).execute(context)
        assert (moved["version"], moved["target"], moved["actor"]) == (number, "toy", "airflow")
    back = RollbackModelOperator(task_id="rollback", model_name="m", **settings).execute(context)
    assert (back["version"], back["previous_version"]) == (1, 2)
    assert json.loads((tmp_path / "m@staging.json").read_text())["version"] == 1
    with pytest.raises(TypeError, match=r"serving moved into target_settings, e.g. target_settings=\{'serving': 'x'\}"):
        DeployModelOperator(task_id="old", registration={}, target="kserve", serving="x")
    with pytest.raises(PolicyViolationError, match=r"unknown deployment target 'toyy'.*did you mean 'toy'"):
        DeployModelOperator(task_id="typo", registration={}, target="toyy")


def test_the_models_page_refuses_a_move_on_a_target_whose_settings_it_does_not_have(
    toy: None, registry_env: dict[str, Any], airflow_db: Path, tmp_path: Path
) -> None:
    """The page moves an alias with the target that serves it; toy needs a folder the page cannot know."""
    from fastapi.testclient import TestClient

    from airflow_bridge.plugin.app import create_app
    from tests.test_plugin import login, notices

    registry = _registered(ModelRegistry(registry_env["url"]), tmp_path)
    served = tmp_path / "served"
    served.mkdir()
    first = MoveRequest("m", "staging", 1, target="toy", settings={"folder": str(served)})
    deployment.move(registry, first, actor="dana")
    client = TestClient(create_app())
    login(client, "dana")

    refused = client.post("/models/m/promote", data={"version": "2", "alias": "staging"})
    assert refused.status_code == 403
    [shown] = notices(refused.text)
    assert "bad settings for target 'toy': folder: target 'toy': Field required; nothing moved" in shown
    assert registry.alias_version("m", "staging").version == 1  # type: ignore[union-attr]
    assert json.loads((served / "m@staging.json").read_text())["version"] == 1


def test_kserve_owns_its_keys_of_the_team_policy() -> None:
    """The policy core names no target: serving tiers come from the kserve package, validated by its model."""
    from pydantic import ValidationError

    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.kserve.tiers import ServingTier, default_serving_tier

    core = [*(Path(__file__).parents[1] / "airflow_bridge" / "governance").glob("*.py")]
    code = "\n".join(line for f in core for line in f.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "serving_tiers" not in code and "allowed_serving" not in code
    doc = {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Policy",
        "serving_tiers": {"cpu": {"namespace": "ml", "image": "registry.example/sklearn:1"}},
        "teams": {"growth": {"allowed_serving": ["cpu"]}},
    }
    policy = Policy.model_validate(doc)
    assert isinstance(policy.serving_tiers["cpu"], ServingTier)  # type: ignore[attr-defined]
    assert default_serving_tier(policy, "growth") == "cpu"
    with pytest.raises(ValidationError, match="team 'growth' allows unknown serving tier 'gpu'"):
        Policy.model_validate({**doc, "teams": {"growth": {"allowed_serving": ["gpu"]}}})
    with pytest.raises(ValidationError, match="servng_tiers"):
        Policy.model_validate({**doc, "servng_tiers": {}})
