"""The engineer's view: the public operators in a hand-written Python DAG, run with ``dag.test()``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from airflow_bridge.registry import ModelRegistry
from tests.helpers import EXAMPLES, task_states

pytestmark = pytest.mark.slow

PIPELINE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_bridge.operators import (
    DeployModelOperator, RegisterModelOperator, TrainModelOperator, ValidateModelOperator,
)

with DAG("engineer_pipeline", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    train = TrainModelOperator(
        task_id="train", model_name="progression", data_uri="{data}", target="progression",
        estimator="sklearn.linear_model.Ridge", estimator_params={{"alpha": {alpha}}},
    )
    validate = ValidateModelOperator(task_id="validate", training=train.output, thresholds={{"r2": {{"min": 0.3}}}})
    register = RegisterModelOperator(task_id="register", training=train.output, validation=validate.output)
    DeployModelOperator(task_id="deploy", registration=register.output, alias="staging")
"""

SINGLE_TASK = """
import datetime as dt
from airflow.sdk import DAG
from airflow_bridge.operators.deploy import DeployModelOperator
from airflow_bridge.operators.rollback import RollbackModelOperator

with DAG("{dag_id}", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    {task}
"""


def _pipeline(alpha: float) -> str:
    return PIPELINE.format(data=EXAMPLES / "data" / "diabetes.csv", alpha=alpha)


def test_operators_wired_by_hand_train_to_deploy(registry_env: dict, run_python_dag) -> None:
    _, dag_run = run_python_dag(_pipeline(0.5), "engineer_pipeline")

    assert set(task_states(dag_run).values()) == {"success"}
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version("progression", "staging").version == 1
    assert registry.get_version("progression", 1).metrics["r2"] > 0.3


def test_deploy_refuses_a_tampered_artifact_and_moves_nothing(registry_env: dict, run_python_dag) -> None:
    run_python_dag(_pipeline(0.5), "engineer_pipeline")
    run_python_dag(_pipeline(2.0), "engineer_pipeline")
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version("progression", "staging").version == 2
    artifact = Path(urlsplit(registry.get_version("progression", 1).artifact.uri).path)
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    task = 'DeployModelOperator(task_id="deploy", registration={"model": "progression", "version": 1}, alias="staging")'

    _, dag_run = run_python_dag(SINGLE_TASK.format(dag_id="redeploy_old", task=task), "redeploy_old")

    assert task_states(dag_run) == {"deploy": "failed"}
    assert registry.alias_version("progression", "staging").version == 2
    assert [d.version for d in registry.deployments("progression")] == [1, 2]


def test_rollback_operator_moves_the_alias_back_through_compare_and_set(registry_env: dict, run_python_dag) -> None:
    run_python_dag(_pipeline(0.5), "engineer_pipeline")
    run_python_dag(_pipeline(2.0), "engineer_pipeline")
    task = 'RollbackModelOperator(task_id="rollback", model_name="progression", alias="staging", reason="drift")'

    _, dag_run = run_python_dag(SINGLE_TASK.format(dag_id="rollback_progression", task=task), "rollback_progression")

    assert task_states(dag_run) == {"rollback": "success"}
    registry = ModelRegistry(registry_env["url"])
    assert registry.alias_version("progression", "staging").version == 1
    event = registry.audit_events(model="progression")[-1]
    assert (event.action, event.reason, event.before, event.after) == (
        "rolled_back",
        "drift",
        {"version": 2},
        {"version": 1},
    )
    assert event.run.dag_id == "rollback_progression"


def _deploy_v1(alias: str, *, enforce: bool = True) -> str:
    opt_out = "" if enforce else ", enforce_policy=False"
    return (
        'DeployModelOperator(task_id="deploy", registration={"model": "progression", "version": 1}, '
        f'alias="{alias}"{opt_out})'
    )


def test_deploy_to_a_protected_alias_is_policy_checked_in_an_engineers_dag(
    registry_env: dict, run_python_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_python_dag(_pipeline(0.5), "engineer_pipeline")  # v1, live on staging; no policy bound
    registry = ModelRegistry(registry_env["url"])

    # no policy in reach: production fails closed, and the refusal is audited
    _, dag_run = run_python_dag(SINGLE_TASK.format(dag_id="to_prod", task=_deploy_v1("production")), "to_prod")
    assert task_states(dag_run) == {"deploy": "failed"}
    assert registry.alias_version("progression", "production") is None
    refused = registry.audit_events(model="progression")[-1]
    assert refused.action == "move_refused" and "no team policy governs 'progression'" in refused.reason

    # a configured policy that forbids opting out (the default): still refused
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: airflow-bridge/v1\nkind: Policy\nteams: {ml: {approvers: [dana]}}\n")
    monkeypatch.setenv("AIRFLOW_BRIDGE_POLICY", str(policy))
    task = _deploy_v1("production", enforce=False)
    _, dag_run = run_python_dag(SINGLE_TASK.format(dag_id="opt_out", task=task), "opt_out")
    assert task_states(dag_run) == {"deploy": "failed"}
    assert "forbids turning enforcement off" in registry.audit_events(model="progression")[-1].reason

    # a policy that allows it: the move happens and the opt-out is in the audit trail
    policy.write_text("apiVersion: airflow-bridge/v1\nkind: Policy\ndefaults: {allow_enforcement_opt_out: true}\n")
    _, dag_run = run_python_dag(SINGLE_TASK.format(dag_id="opt_out", task=task), "opt_out")
    assert task_states(dag_run) == {"deploy": "success"}
    assert registry.alias_version("progression", "production").version == 1
    actions = [e.action for e in registry.audit_events(model="progression")]
    assert actions[-2:] == ["policy_override", "deployed"]
