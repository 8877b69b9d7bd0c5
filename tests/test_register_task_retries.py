"""PostgreSQL unreachable while the register task runs: the task fails with a retryable error naming the
host (never the password), nothing partial remains, and Airflow's retry succeeds once it is back."""

from __future__ import annotations

import json
import threading
from typing import Any

import pluggy
import pytest
import sqlalchemy as sa

from airflow_bridge.registry import ModelRegistry
from tests.helpers import task_states
from tests.pgproxy import PASSWORD, CuttableProxy
from tests.registry_workers import fake_artifact

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DAG_SOURCE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_bridge.operators import RegisterModelOperator

with DAG("register_through_flaky_network", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False):
    RegisterModelOperator(
        task_id="register", training={training!r}, model_name="churn", registry_conn_id="flaky_registry",
        retries=1, retry_delay=dt.timedelta(seconds=1),
    )
"""


class _Failures:
    """Records task failures as Airflow reports them to listeners (what the task log shows)."""

    hookimpl = pluggy.HookimplMarker("airflow")

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.first = threading.Event()

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.errors.append(f"{type(error).__name__}: {error}")
        self.first.set()


def test_register_task_retries_after_the_registry_comes_back(
    database: str,
    proxy: CuttableProxy,
    registry_env: dict,
    run_python_dag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.listener import get_listener_manager

    monkeypatch.setenv(
        "AIRFLOW_CONN_FLAKY_REGISTRY",
        json.dumps(
            {
                "conn_type": "model_registry",
                "host": "127.0.0.1",
                "port": proxy.port,
                "login": "postgres",
                "password": PASSWORD,
                "schema": database,
            }
        ),
    )
    artifact = fake_artifact("v1")
    training = {
        "model": "churn",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "task_kind": "classification",
        "params": {},
        "artifact": {"uri": artifact.uri, "sha256": artifact.sha256, "size": artifact.size},
        "data": {"uri": "file:///data/churn.csv", "sha256": "0" * 64, "rows": 10},
    }
    failures = _Failures()
    get_listener_manager().add_listener(failures)
    proxy.down()
    # Bring the network back only after the first attempt has failed.
    threading.Thread(target=lambda: failures.first.wait(300) and proxy.up(), daemon=True).start()
    try:
        _, dag_run = run_python_dag(DAG_SOURCE.format(training=training), "register_through_flaky_network")
    finally:
        get_listener_manager().pm.unregister(failures)

    assert task_states(dag_run) == {"register": "success"}
    [ti] = dag_run.get_task_instances()
    assert ti.try_number == 2
    [first_error] = failures.errors
    assert first_error.startswith("RegistryUnavailableError: model registry at 127.0.0.1 is unreachable")
    assert PASSWORD not in first_error
    registry = ModelRegistry(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
    assert [v.version for v in registry.list_versions("churn")] == [1]  # the failed try left nothing behind
    with registry.engine.connect() as conn:
        # the binding to no team policy, and the version: nothing of the failed try
        assert conn.execute(sa.text("SELECT action FROM ab_audit_events ORDER BY seq")).scalars().all() == [
            "policy_bound",
            "version_created",
        ]
    registry.dispose()
