"""Artifacts and training data in S3, against moto's S3 server on 127.0.0.1 with authentication on.

What a user sees: content-addressed, write-once artifacts under an ``s3://`` root read back through the
connection recorded with them; training and validation end to end on a real CSV in a bucket, inside and
outside an Airflow task; and for every mistake (missing object, refused credentials, unknown connection,
missing bucket, an artifact deleted or overwritten after registration) one clear error naming the URI
and the connection, with nothing overwritten and nothing unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.actions.training import TrainingRequest, train
from airflow_bridge.actions.validation import ValidationRules, validate
from airflow_bridge.artifacts import ArtifactRef, ArtifactStore, load_model, read_verified
from airflow_bridge.exceptions import BridgeError, ChecksumMismatchError, DataError, StorageError
from airflow_bridge.ml.data import read_bytes
from airflow_bridge.registry import ModelRegistry
from tests.helpers import EXAMPLES, REPO
from tests.s3server import S3Server, s3_server

DATA = EXAMPLES / "data" / "breast_cancer.csv"
ESTIMATOR = "sklearn.linear_model.LogisticRegression"


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket and the connections of this test: ``conn_id`` (the real keys) and ``bad_conn_id``."""

    name: str
    conn_id: str
    bad_conn_id: str
    server: S3Server

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def body(self, key: str) -> bytes:
        return bytes(self.server.client().get_object(Bucket=self.name, Key=key)["Body"].read())  # type: ignore[attr-defined]

    def object_keys(self) -> list[str]:
        listed = self.server.client().list_objects_v2(Bucket=self.name)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture
def bucket(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new bucket per test, and connection ids never used before in this process.

    Airflow caches one filesystem per connection id and process, so ids are unique per test: a later
    test (or another module's server) never gets a filesystem set up for other credentials.
    """
    token = uuid.uuid4().hex[:10]
    found = Bucket(f"bridge-{token}", f"s3_{token}", f"s3_bad_{token}", server)
    server.create_bucket(found.name)
    monkeypatch.setenv(f"AIRFLOW_CONN_{found.conn_id.upper()}", server.connection())
    monkeypatch.setenv(f"AIRFLOW_CONN_{found.bad_conn_id.upper()}", server.connection(secret_key="not-the-secret-key"))
    return found


def _upload_data(bucket: Bucket, key: str = "data/breast_cancer.csv") -> str:
    bucket.server.client().put_object(Bucket=bucket.name, Key=key, Body=DATA.read_bytes())  # type: ignore[attr-defined]
    return bucket.uri(key)


def _request(data_uri: str, conn_id: str | None) -> TrainingRequest:
    return TrainingRequest(
        model="breast_cancer",
        data_uri=data_uri,
        data_conn_id=conn_id,
        target="malignant",
        estimator=ESTIMATOR,
        params={"max_iter": 2000},
    )


# -- artifacts ------------------------------------------------------------------------------------


def test_an_artifact_is_stored_once_under_its_checksum_and_read_back_with_its_connection(bucket: Bucket) -> None:
    client = bucket.server.client()
    client.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})  # type: ignore[attr-defined]
    store = ArtifactStore(bucket.uri("ml/artifacts"), conn_id=bucket.conn_id)
    data = b"model bytes " * 1000
    digest = hashlib.sha256(data).hexdigest()

    ref = store.put(data, "models/churn", ".joblib")
    again = store.put(data, "models/churn", ".joblib")  # a retried task

    assert (
        ref
        == again
        == ArtifactRef(bucket.uri(f"ml/artifacts/models/churn/{digest}.joblib"), digest, len(data), bucket.conn_id)
    )
    versions = client.list_object_versions(Bucket=bucket.name)["Versions"]  # type: ignore[attr-defined]
    assert [v["Key"] for v in versions] == [f"ml/artifacts/models/churn/{digest}.joblib"]  # one upload only
    assert bucket.body(f"ml/artifacts/models/churn/{digest}.joblib") == data
    assert read_verified(ref) == data
    assert ArtifactStore(bucket.uri("elsewhere")).read_verified(ref) == data  # the recorded connection is used


@pytest.mark.parametrize("other", [b"tampered!", b"x" * 9000], ids=["other-size", "same-size"])
def test_other_bytes_under_an_artifacts_name_are_refused_and_kept(bucket: Bucket, other: bytes) -> None:
    store = ArtifactStore(bucket.uri("artifacts"), conn_id=bucket.conn_id)
    data = b"y" * 9000
    key = f"artifacts/models/m/{hashlib.sha256(data).hexdigest()}.joblib"
    bucket.server.client().put_object(Bucket=bucket.name, Key=key, Body=other)  # type: ignore[attr-defined]

    with pytest.raises(StorageError) as info:
        store.put(data, "models/m", ".joblib")

    message = str(info.value)
    assert f"{bucket.uri(key)} already exists with other bytes ({len(other)} bytes" in message
    assert f"connection '{bucket.conn_id}'" in message and "it was not overwritten" in message
    assert "delete it and retry" in message
    assert bucket.body(key) == other  # kept as evidence

    bucket.server.client().delete_object(Bucket=bucket.name, Key=key)  # type: ignore[attr-defined]
    assert read_verified(store.put(data, "models/m", ".joblib")) == data  # what the message said to do works


def test_an_artifact_deleted_after_registration_is_reported_missing(bucket: Bucket, tmp_path: Path) -> None:
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    ref = ArtifactStore(bucket.uri("artifacts"), conn_id=bucket.conn_id).put(b"model", "models/m", ".joblib")
    registry.register_version("m", ref, actor="alice")
    bucket.server.client().delete_object(Bucket=bucket.name, Key=ref.uri.split("/", 3)[3])  # type: ignore[attr-defined]

    stored = registry.get_version("m", 1).artifact
    assert stored == ref
    with pytest.raises(ChecksumMismatchError, match=f"{ref.uri} is missing; it was deleted after registration") as info:
        read_verified(stored)
    assert f"connection '{bucket.conn_id}'" in str(info.value)


def test_bad_credentials_name_the_uri_and_the_connection(bucket: Bucket) -> None:
    good = ArtifactStore(bucket.uri("artifacts"), conn_id=bucket.conn_id).put(b"model", "models/m", ".joblib")
    bad = ArtifactStore(bucket.uri("artifacts"), conn_id=bucket.bad_conn_id)
    data_uri = _upload_data(bucket)

    for attempt in (
        lambda: bad.put(b"other model", "models/m", ".joblib"),
        lambda: read_verified(ArtifactRef(good.uri, good.sha256, good.size, bucket.bad_conn_id)),
        lambda: read_bytes(data_uri, bucket.bad_conn_id),
    ):
        with pytest.raises(StorageError) as info:
            attempt()
        message = str(info.value)
        assert f"the credentials of connection '{bucket.bad_conn_id}' were refused" in message
        assert "s3://" + bucket.name in message and "check the access key and secret" in message
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no botocore trace
    assert bucket.object_keys() == sorted([good.uri.split("/", 3)[3], "data/breast_cancer.csv"])  # nothing written


def test_an_unknown_connection_is_named_without_trying_aws(bucket: Bucket) -> None:
    started = time.monotonic()
    for attempt in (
        lambda: ArtifactStore(bucket.uri("artifacts"), conn_id="no_such_conn").put(b"m", "models/m", ".joblib"),
        lambda: read_verified(ArtifactRef(bucket.uri("artifacts/x.joblib"), "0" * 64, 1, "no_such_conn")),
        lambda: read_bytes(bucket.uri("data.csv"), "no_such_conn"),
    ):
        with pytest.raises(StorageError, match=r"connection 'no_such_conn' for s3://\S+ is not defined") as info:
            attempt()
        assert "AIRFLOW_CONN_NO_SUCH_CONN" in str(info.value)
    assert time.monotonic() - started < 10  # refused up front, not after timing out on real AWS endpoints


def test_a_missing_bucket_is_named_and_not_created(bucket: Bucket) -> None:
    missing = f"{bucket.name}-gone"
    store = ArtifactStore(f"s3://{missing}/artifacts", conn_id=bucket.conn_id)

    for attempt in (
        lambda: store.put(b"model", "models/m", ".joblib"),
        lambda: read_verified(ArtifactRef(f"s3://{missing}/a.joblib", "0" * 64, 1, bucket.conn_id)),
        lambda: read_bytes(f"s3://{missing}/data.csv", bucket.conn_id),
    ):
        with pytest.raises(StorageError, match=f"bucket '{missing}' of s3://{missing}/.* does not exist") as info:
            attempt()
        assert f"connection '{bucket.conn_id}'" in str(info.value)
    names = [b["Name"] for b in bucket.server.client().list_buckets()["Buckets"]]  # type: ignore[attr-defined]
    assert missing not in names


def test_an_unreachable_store_is_a_retryable_connection_error(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a ``BridgeError``: Airflow retries the task (and a training pod exits as an infrastructure failure)."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn_id = f"{bucket.conn_id}_down"
    down = json.loads(bucket.server.connection())
    down["extra"]["endpoint_url"] = f"http://127.0.0.1:{port}"
    down["extra"]["config_kwargs"] = {"retries": {"max_attempts": 1}}  # botocore's own retries: not here
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(down))

    with pytest.raises(ConnectionError) as info:
        read_bytes(bucket.uri("data.csv"), conn_id)

    assert not isinstance(info.value, BridgeError)
    message = str(info.value)
    assert f"cannot reach the object store for {bucket.uri('data.csv')} (connection '{conn_id}')" in message
    assert "check endpoint_url" in message


# -- data -----------------------------------------------------------------------------------------


def test_missing_data_and_a_prefix_are_data_errors(bucket: Bucket) -> None:
    _upload_data(bucket)

    with pytest.raises(
        DataError, match=f"data not found: s3://{bucket.name}/data/typo.csv \\(connection '{bucket.conn_id}'\\)"
    ):
        read_bytes(bucket.uri("data/typo.csv"), bucket.conn_id)
    with pytest.raises(DataError, match=f"s3://{bucket.name}/data is a folder"):
        read_bytes(bucket.uri("data"), bucket.conn_id)
    with pytest.raises(DataError, match="data not found"):
        train(_request(bucket.uri("data/typo.csv"), bucket.conn_id), ArtifactStore(bucket.uri("a"), bucket.conn_id))
    assert bucket.object_keys() == ["data/breast_cancer.csv"]  # no model from missing data


def test_train_and_validate_from_s3_data_to_s3_artifacts(bucket: Bucket, tmp_path: Path) -> None:
    store = ArtifactStore(bucket.uri("ml/artifacts"), conn_id=bucket.conn_id)
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")

    result = train(_request(_upload_data(bucket), bucket.conn_id), store)

    assert result.data.uri == bucket.uri("data/breast_cancer.csv")
    assert result.data.sha256 == hashlib.sha256(DATA.read_bytes()).hexdigest()
    for ref in (result.artifact, result.holdout):
        assert ref is not None and ref.uri.startswith(bucket.uri("ml/artifacts/")) and ref.conn_id == bucket.conn_id
        assert hashlib.sha256(bucket.body(ref.uri.split("/", 3)[3])).hexdigest() == ref.sha256

    report = validate(result, ValidationRules(thresholds={"roc_auc": {"min": 0.9}}), registry, artifacts=store)

    assert report.passed and report.metrics["roc_auc"] > 0.9
    assert report.report is not None
    assert any(
        key.startswith("ml/artifacts/reports/breast_cancer/") and key.endswith(".html") for key in bucket.object_keys()
    )
    registry.register_version("breast_cancer", result.artifact, actor="alice")
    live = load_model(read_verified(registry.get_version("breast_cancer", 1).artifact))
    assert hasattr(live, "predict_proba")


class _Marker:
    """Unpickling this creates ``path``: proof that bytes were (or were not) unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_a_model_overwritten_in_the_bucket_is_refused_before_unpickling(bucket: Bucket, tmp_path: Path) -> None:
    store = ArtifactStore(bucket.uri("artifacts"), conn_id=bucket.conn_id)
    result = train(_request(_upload_data(bucket), bucket.conn_id), store)
    marker = tmp_path / "unpickled"
    bucket.server.client().put_object(  # type: ignore[attr-defined]
        Bucket=bucket.name, Key=result.artifact.uri.split("/", 3)[3], Body=pickle.dumps(_Marker(marker))
    )

    with pytest.raises(ChecksumMismatchError, match=f"artifact {result.artifact.uri} was modified after registration"):
        validate(result, ValidationRules(), None, artifacts=store)

    assert not marker.exists()


def test_training_in_a_plain_process_with_the_connection_in_its_environment(bucket: Bucket) -> None:
    """As a Kubernetes pod runs it: no Airflow task, only ``AIRFLOW_CONN_<ID>`` in the environment."""
    data_uri = _upload_data(bucket)
    script = textwrap.dedent(
        f"""
        import dataclasses, json
        from airflow_bridge.actions.training import TrainingRequest, train
        from airflow_bridge.artifacts import ArtifactStore
        request = TrainingRequest(model="bc", data_uri={data_uri!r}, data_conn_id={bucket.conn_id!r},
                                  target="malignant", estimator={ESTIMATOR!r}, params={{"max_iter": 2000}})
        result = train(request, ArtifactStore({bucket.uri("pod")!r}, conn_id={bucket.conn_id!r}))
        print(json.dumps(dataclasses.asdict(result.artifact)))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env[f"AIRFLOW_CONN_{bucket.conn_id.upper()}"] = bucket.server.connection()

    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr[-3000:]
    ref = ArtifactRef(**json.loads(done.stdout.strip().splitlines()[-1]))
    assert ref.uri.startswith(bucket.uri("pod/models/bc/")) and ref.conn_id == bucket.conn_id
    assert hasattr(load_model(read_verified(ref)), "predict")


PIPELINE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_bridge.operators import RegisterModelOperator, TrainModelOperator, ValidateModelOperator

with DAG("s3_pipeline", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
    train = TrainModelOperator(
        task_id="train", model_name="breast_cancer", data_uri={data_uri!r}, data_conn_id={conn_id!r},
        target="malignant", estimator={estimator!r}, estimator_params={{"max_iter": 2000}},
    )
    validate = ValidateModelOperator(
        task_id="validate", training=train.output, thresholds={{"roc_auc": {{"min": 0.9}}}}
    )
    RegisterModelOperator(task_id="register", training=train.output, validation=validate.output)
"""


@pytest.mark.slow
def test_a_dag_trains_validates_and_registers_through_s3(
    bucket: Bucket, registry_env: dict[str, Any], run_python_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside Airflow tasks, with the artifact root and its connection from ``[airflow_bridge]`` config."""
    from tests.helpers import task_states

    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT", bucket.uri("dag-artifacts"))
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_CONN_ID", bucket.conn_id)
    source = PIPELINE.format(data_uri=_upload_data(bucket), conn_id=bucket.conn_id, estimator=ESTIMATOR)

    _, dag_run = run_python_dag(source, "s3_pipeline")

    assert set(task_states(dag_run).values()) == {"success"}
    version = ModelRegistry(registry_env["url"]).get_version("breast_cancer", 1)
    assert version.artifact.uri.startswith(bucket.uri("dag-artifacts/models/breast_cancer/"))
    assert version.artifact.conn_id == bucket.conn_id
    assert version.metrics["roc_auc"] > 0.9
    assert hasattr(load_model(read_verified(version.artifact)), "predict")


@pytest.mark.slow
def test_a_dag_task_with_an_unknown_connection_fails_fast_and_writes_nothing(
    bucket: Bucket,
    registry_env: dict[str, Any],
    run_python_dag: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from tests.helpers import task_states

    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT", bucket.uri("dag-artifacts"))
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_CONN_ID", bucket.conn_id)
    source = PIPELINE.format(data_uri=_upload_data(bucket), conn_id="no_such_conn", estimator=ESTIMATOR)
    started = time.monotonic()

    _, dag_run = run_python_dag(source, "s3_pipeline")

    assert task_states(dag_run)["train"] == "failed"
    shown = "".join(capfd.readouterr())
    assert f"StorageError: connection 'no_such_conn' for {bucket.uri('data/breast_cancer.csv')} is not defined" in shown
    assert time.monotonic() - started < 60  # no waiting on real AWS endpoints
    assert bucket.object_keys() == ["data/breast_cancer.csv"]


RUN_SPEC = """\
apiVersion: airflow-bridge/v1
kind: Experiment
name: s3_cancer
owner: alice
team: oncology
data:
  training: {{uri: {data_uri}, conn_id: {conn_id}, target: malignant}}
model:
  estimator: {estimator}
  params: {{max_iter: 2000}}
validation:
  thresholds: {{roc_auc: {{min: 0.9}}}}
registry: {{model: s3_cancer}}
deployment: {{target: local, alias: staging}}
"""


@pytest.mark.slow
def test_airflow_bridge_run_reads_s3_data_and_writes_s3_artifacts(bucket: Bucket, tmp_path: Path) -> None:
    """``airflow-bridge run`` in its own process: the connection and the artifact root from the environment."""
    from tests.helpers import CLI, cli_env

    (tmp_path / "_policy.yaml").write_text(
        f"apiVersion: airflow-bridge/v1\nkind: Policy\ndata_roots: [s3://{bucket.name}/]\n"
    )
    spec = tmp_path / "s3_cancer.yaml"
    spec.write_text(RUN_SPEC.format(data_uri=_upload_data(bucket), conn_id=bucket.conn_id, estimator=ESTIMATOR))
    env = {
        **cli_env(),
        f"AIRFLOW_CONN_{bucket.conn_id.upper()}": bucket.server.connection(),
        "AIRFLOW_BRIDGE_ARTIFACT_ROOT": bucket.uri("run-artifacts"),
        "AIRFLOW_BRIDGE_ARTIFACT_CONN_ID": bucket.conn_id,
    }
    home = tmp_path / "home"

    done = subprocess.run(
        [str(CLI), "run", str(spec), "--home", str(home)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered: s3_cancer v1" in done.stdout
    version = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}").get_version("s3_cancer", 1)
    assert version.artifact.uri.startswith(bucket.uri("run-artifacts/models/s3_cancer/"))
    assert version.artifact.conn_id == bucket.conn_id
    assert version.data["uri"] == bucket.uri("data/breast_cancer.csv")
    assert hasattr(load_model(read_verified(version.artifact)), "predict")
