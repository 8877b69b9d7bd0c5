"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine); check what they promise."""

from __future__ import annotations

import json
import re

import yaml

from airflow_bridge.hooks.registry import connection_to_url
from tests.helpers import REPO

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_airflow_service_shares_one_configuration() -> None:
    services = _compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dag_specs"
        assert "./dag_specs:/opt/airflow/dag_specs" in services[name]["volumes"]
        assert env["AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT"].startswith("s3://airflow-bridge/")
        assert env["AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_CONN_ID"] == "s3_artifacts"
        assert services[name]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-worker"]["command"].endswith("cpu_large")  # the example policy's tier queue


def test_registry_connection_is_valid_and_keeps_the_password_in_the_connection() -> None:
    env = _compose()["services"]["airflow-worker"]["environment"]
    conn = json.loads(env["AIRFLOW_CONN_MODEL_REGISTRY_DEFAULT"])
    url = connection_to_url(
        conn_id="model_registry_default",
        host=conn["host"],
        port=conn["port"],
        schema=conn["schema"],
        login=conn["login"],
        password=conn["password"],
        extra={},
    )
    assert url == "postgresql+psycopg2://registry_writer:registry@postgres:5432/model_registry"
    init_sql = (REPO / "dev" / "compose" / "init-db.sql").read_text()
    assert "CREATE DATABASE model_registry OWNER registry_writer" in init_sql


def test_artifact_connection_reaches_the_compose_object_store_with_its_credentials() -> None:
    services = _compose()["services"]
    conn = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_S3_ARTIFACTS"])
    minio = services["minio"]["environment"]
    assert conn["conn_type"] == "aws"
    assert conn["extra"]["endpoint_url"] == "http://minio:9000"
    assert (conn["login"], conn["password"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    bucket = services["airflow-worker"]["environment"]["AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT"].split("/")[2]
    assert f"local/{bucket}" in services["minio-init"]["command"][-1]


def test_example_policy_users_exist_in_the_auth_manager() -> None:
    env = _compose()["services"]["airflow-apiserver"]["environment"]
    users = {entry.split(":")[0] for entry in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")}
    policy = yaml.safe_load((REPO / "dag_specs" / "_policy.yaml").read_text())
    named = {u for team in policy["teams"].values() for u in team.get("members", []) + team.get("approvers", [])}
    assert named <= users


def test_image_matches_the_pinned_airflow() -> None:
    base = re.search(r"FROM apache/airflow:([\d.]+)", (REPO / "Dockerfile").read_text())
    pinned = re.search(r"^apache-airflow==([\d.]+)$", (REPO / "dev" / "constraints.txt").read_text(), re.MULTILINE)
    assert base and pinned and base.group(1) == pinned.group(1)
