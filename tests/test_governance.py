"""Team policy: its own errors, the checks it adds to specs, and what it puts in the built DAGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from airflow_bridge.cli.main import app
from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.governance import load_policy
from tests.helpers import EXAMPLES

POLICY = {
    "apiVersion": "airflow-bridge/v1",
    "kind": "Policy",
    "compute_tiers": {"cpu-large": {"pool": "training_large", "queue": "cpu_large", "pool_slots": 2}},
    "teams": {
        "oncology": {
            "members": ["alice"],
            "approvers": ["alice", "dana"],
            "allowed_compute": ["local", "cpu-large"],
            "pool": "oncology",
            "max_active_runs": 2,
            "max_versions_per_day": 5,
            "allowed_estimators": ["sklearn.ensemble.RandomForestClassifier"],
        },
        "solo": {"members": ["sam"], "approvers": ["sam"]},
    },
}


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _spec(**changes: object) -> dict:
    spec = yaml.safe_load((EXAMPLES / "breast_cancer_classifier.yaml").read_text())
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return spec


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    _write(tmp_path, "_policy.yaml", POLICY)
    return tmp_path


def _issues(folder: Path, spec: dict) -> list[str]:
    from airflow_bridge.governance.loader import load_specs_governed

    path = _write(folder, "spec.yaml", spec)
    [result], _ = load_specs_governed([str(path)])
    return [f"{i.field}: {i.message}" + (f" ({i.hint})" if i.hint else "") for i in result.issues]


def test_the_example_policy_and_specs_are_valid() -> None:
    from airflow_bridge.governance.loader import load_specs_governed
    from airflow_bridge.spec.loader import discover_specs

    results, policies = load_specs_governed(discover_specs(EXAMPLES))
    assert all(p.ok for p in policies.values())
    assert [r.path for r in results if not r.ok] == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"team": "oncologie"}, "team: team 'oncologie' is not in the team policy (did you mean 'oncology'?)"),
        ({"owner": "mallory"}, "owner: 'mallory' is not a member of team 'oncology'"),
        (
            {"model__estimator": "sklearn.ensemble.ExtraTreesClassifier"},
            "model.estimator: team 'oncology' may not use 'sklearn.ensemble.ExtraTreesClassifier'",
        ),
        ({"training": {"compute": "gpu-huge"}}, "training.compute: unknown compute tier 'gpu-huge'"),
        (
            {"team": "solo", "owner": "sam"},
            "deployment.alias: alias 'production' needs approval but team 'solo' has no approver other than the "
            "author 'sam'",
        ),
    ],
)
def test_specs_are_checked_against_the_policy(folder: Path, changes: dict, expected: str) -> None:
    issues = _issues(folder, _spec(**changes))

    assert any(issue.startswith(expected) for issue in issues), issues


def test_policy_errors_have_positions_and_hints(tmp_path: Path) -> None:
    path = tmp_path / "_policy.yaml"
    path.write_text(
        "apiVersion: airflow-bridge/v1\nkind: Policy\nestimators:\n  os.system: classification\n"
        "teams:\n  growth:\n    approvers: [dana]\n    aproval_required_for: [production]\n"
    )

    issues = [i.format() for i in load_policy(str(path)).issues]

    assert (
        f"{path}:4:3: estimators: 'os.system' is not an estimator (only estimator classes may be allow-listed)"
        in issues
    )
    assert any(
        i.startswith(f"{path}:8:5: teams.growth.aproval_required_for: unknown key")
        and "did you mean 'approval_required_for'?" in i
        for i in issues
    ), issues


def test_validate_uses_the_nearest_policy_and_fails_closed_on_a_broken_one(folder: Path) -> None:
    spec = _write(folder, "spec.yaml", _spec(team="oncologie"))
    runner = CliRunner()

    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1 and "not in the team policy" in result.output

    (folder / "_policy.yaml").write_text("apiVersion: airflow-bridge/v1\nkind: Policy\nteams: [oops]\n")
    result = runner.invoke(app, ["validate", str(_write(folder, "spec.yaml", _spec()))])
    assert result.exit_code == 1
    assert "_policy.yaml:3:8: teams:" in result.output and "team policy" in result.output


def test_build_applies_approvals_pools_and_limits(folder: Path) -> None:
    from airflow_bridge.factory.dags import load_dag_specs

    _write(folder, "onc.yaml", _spec(training={"compute": "cpu-large"}))
    _write(
        folder,
        "endo.yaml",
        _spec(name="endo_model", team="solo", owner="sam", deployment={"alias": "staging"}, registry={"model": "endo"}),
    )

    dags = load_dag_specs(folder=str(folder))

    onc, endo = dags["breast_cancer_classifier"], dags["endo_model"]
    assert [t.task_id for t in onc.tasks] == ["train", "validate", "register", "approve", "deploy"]
    approve = onc.task_dict["approve"]
    assert approve.assigned_users == [{"id": "dana", "name": "dana"}]  # the author alice is left out
    assert approve.defaults == ["Reject"]  # a timeout rejects
    assert onc.task_dict["deploy"].enforce_policy
    binding = onc.task_dict["register"].policy  # register binds the folder's policy to the model
    assert binding.source.endswith("_policy.yaml") and "oncology" in binding.document["teams"]
    assert (onc.task_dict["train"].pool, onc.task_dict["train"].queue, onc.task_dict["train"].pool_slots) == (
        "training_large",
        "cpu_large",
        2,
    )
    assert onc.task_dict["register"].pool == "oncology"
    assert onc.max_active_runs == 3  # the team's 2, plus one so a run waiting for approval blocks no other
    assert onc.task_dict["register"].max_versions_per_day == 5
    # estimator parameters stay the estimator's: they must not turn into Airflow task Params
    assert onc.task_dict["train"].estimator_params == {"n_estimators": 100, "max_depth": 6}
    assert not dict(onc.task_dict["train"].params)
    assert [t.task_id for t in endo.tasks] == ["train", "validate", "register", "deploy"]  # staging: no approval


def test_an_invalid_policy_turns_every_spec_into_a_placeholder(folder: Path) -> None:
    from airflow_bridge.factory.dags import load_dag_specs

    _write(folder, "onc.yaml", _spec())
    (folder / "_policy.yaml").write_text("apiVersion: airflow-bridge/v1\nkind: Policy\nteamz: {}\n")

    dags = load_dag_specs(folder=str(folder))

    [dag] = dags.values()
    assert "invalid-spec" in dag.tags
    assert "team policy" in dag.doc_md and "teamz" in dag.doc_md


def test_version_quota_is_enforced_under_the_model_lock(tmp_path: Path) -> None:
    from airflow_bridge.registry import ArtifactRef, ModelRegistry, RunRef

    registry = ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}")
    ref = ArtifactRef("file:///x", "a" * 64, 1)
    for run in range(2):
        registry.register_version("m", ref, run=RunRef("d", f"r{run}", "register"), max_versions_per_day=2)

    with pytest.raises(PolicyViolationError, match="quota reached: model 'm' already has 2 versions"):
        registry.register_version("m", ref, run=RunRef("d", "r9", "register"), max_versions_per_day=2)
    # a retry of an already registered run is not a new version, so the quota does not apply
    assert registry.register_version("m", ref, run=RunRef("d", "r1", "register"), max_versions_per_day=2).version == 2
