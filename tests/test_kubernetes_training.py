"""Kubernetes compute tiers and ``KubernetesTrainOperator`` without a cluster.

Real where it runs: pods built by the operator's own ``build_pod_request_obj`` (only the hook's in-cluster
probe, which needs an API client, is patched) and validated against the official Kubernetes OpenAPI schema;
the pod's entrypoint run as a subprocess with the pod's command, args and env (secretKeyRefs resolved from a
fake Secret, as the kubelet would), against a local S3 server with authentication; the DAG run with
``dag.test()`` where only the pod launch is replaced by that subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from tests.helpers import EXAMPLES, cli, task_states, write_loader
from tests.s3server import S3Server, s3_server

BUCKET = "bridge-ml"
SECRET_PASSWORD = "do-not-leak-this-password-9f3a"


def example_policy() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "_policy.yaml").read_text())


def kubernetes_tiers() -> list[str]:
    tiers = example_policy()["compute_tiers"]
    return sorted(name for name, tier in tiers.items() if tier.get("kind") == "kubernetes")


@pytest.fixture
def no_cluster() -> Iterator[None]:
    """The one thing needing a cluster while a pod is built: the hook's in-cluster probe (an API client)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    with mock.patch.object(KubernetesHook, "is_in_cluster", new_callable=mock.PropertyMock, return_value=False):
        yield


def built_pod(op: Any, context: Any = None) -> dict[str, Any]:
    """The pod ``op`` would submit, as the JSON the API server receives."""
    from kubernetes.client import ApiClient

    result: dict[str, Any] = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(context))
    return result


def validate_pod(pod: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def request(**changes: Any) -> Any:
    from airflow_bridge.actions.training import TrainingRequest

    values: dict[str, Any] = {
        "model": "breast_cancer",
        "data_uri": f"s3://{BUCKET}/data/breast_cancer.csv",
        "data_conn_id": "s3_artifacts",
        "target": "malignant",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 20, "max_depth": 4},
        "checks": {"min_rows": 500},
        **changes,
    }
    return TrainingRequest(**values)


# -- pods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier_name", kubernetes_tiers())
def test_every_kubernetes_tier_builds_a_schema_valid_pod_exactly_as_the_policy_says(
    tier_name: str, no_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.kubernetes.contract import COMMAND, REQUEST_ENV, request_from_json
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator

    # the worker's own copy of the connection holds a password: none of it may reach the pod spec
    connection = json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLEKEY", "password": SECRET_PASSWORD})
    monkeypatch.setenv("AIRFLOW_CONN_S3_ARTIFACTS", connection)
    written = example_policy()["compute_tiers"][tier_name]
    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    assert policy is not None
    op = KubernetesTrainOperator(task_id="train", compute_tier=policy.compute_tiers[tier_name], request=request())
    pod = built_pod(op)
    validate_pod(pod)

    spec = pod["spec"]
    [container] = [c for c in spec["containers"] if c["name"] == op.base_container_name]
    assert container["image"] == written["image"]
    assert container["command"] == COMMAND
    assert container["args"] == ["--artifact-root", written["artifact_root"], "--artifact-conn-id", "s3_artifacts"]
    assert container["resources"] == {
        section: {name: str(value) for name, value in values.items()}
        for section, values in written["resources"].items()
    }
    assert spec["nodeSelector"] == written["node_selector"]
    assert spec.get("tolerations", []) == [
        {"key": t["key"], "operator": t["operator"], "effect": t["effect"]} for t in written.get("tolerations", [])
    ]
    assert pod["metadata"]["namespace"] == written["namespace"]
    assert spec["serviceAccountName"] == written["service_account"]
    assert spec["activeDeadlineSeconds"] == written["active_deadline_seconds"]
    assert spec["restartPolicy"] == "Never"
    env = {e["name"]: e for e in container["env"]}
    for ref in written["secrets"]:
        name = f"AIRFLOW_CONN_{ref['connection'].upper()}"
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": ref["secret"], "key": ref["key"]}}}
    assert request_from_json(env[REQUEST_ENV]["value"]) == request()
    assert {e["name"] for e in container["env"] if "value" in e} == {REQUEST_ENV}  # nothing else as a value
    assert any(c["name"] == "airflow-xcom-sidecar" for c in spec["containers"])  # the XCom sidecar is there
    text = json.dumps(pod)
    assert SECRET_PASSWORD not in text and "AKIAEXAMPLEKEY" not in text


def test_the_schema_check_is_strict(no_cluster: None) -> None:
    import kubernetes_validate

    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator

    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    assert policy is not None
    pod = built_pod(
        KubernetesTrainOperator(task_id="t", compute_tier=policy.compute_tiers["cpu-pod"], request=request())
    )
    pod["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pod(pod)


def test_lineage_is_that_of_local_training() -> None:
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator

    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    assert policy is not None
    op = KubernetesTrainOperator(task_id="t", compute_tier=policy.compute_tiers["cpu-pod"], request=request())
    parts = op.lineage_parts("start")
    assert [(d.namespace, d.name) for d in parts.inputs] == [("s3://bridge-ml", "data/breast_cancer.csv")]
    assert not parts.outputs


# -- the policy -----------------------------------------------------------------------------------

POD_TIER = {
    "kind": "kubernetes",
    "image": "runtime:1",
    "artifact_root": "s3://b/a",
    "artifact_conn_id": "s3",
    "secrets": [{"connection": "s3", "secret": "s3-secret"}],
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"image": None}, "a kubernetes tier needs an 'image'"),
        ({"artifact_root": "file:///srv/artifacts"}, "artifact_root 'file:///srv/artifacts' is not in object storage"),
        ({"artifact_root": None}, "a kubernetes tier needs an 'artifact_root' in object storage"),
        ({"artifact_conn_id": "other"}, "artifact_conn_id 'other' does not reach the pod"),
        ({"resources": {"requests": {"memory": "16GB"}}}, "'16GB' is not a Kubernetes quantity"),
        ({"resources": {"requests": {"cpu": "8"}, "limits": {"cpu": "4"}}}, "requests.cpu (8) is above limits.cpu"),
        ({"resources": {"limits": {"nvidia.com/gpu": "0.5"}}}, "limits.nvidia.com/gpu must be a whole number"),
        ({"resources": {"requests": {"nvidia.com/gpu": 1}}}, "nvidia.com/gpu needs a limit"),
        (
            {"memory": "32Gi", "resources": {"limits": {"memory": "16Gi"}}},
            "the memory request (32Gi) is above its limit",
        ),
        ({"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}, "operator Exists takes no value"),
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "operator Equal needs a key"),
        ({"tolerations": [{"key": "gpu", "toleration_seconds": 5}]}, "toleration_seconds applies only to"),
        ({"secrets": [{"connection": "s3", "secret": "Not_A_Name"}]}, "'Not_A_Name' is not a Kubernetes Secret name"),
        ({"kind": "local"}, "only apply to kind: kubernetes"),
    ],
)
def test_policy_load_refuses_incomplete_kubernetes_tiers(
    changes: dict[str, Any], expected: str, tmp_path: Path
) -> None:
    from airflow_bridge.governance.loader import load_policy

    tier = {k: v for k, v in {**POD_TIER, **changes}.items() if v is not None}
    path = tmp_path / "_policy.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "airflow-bridge/v1", "kind": "Policy", "compute_tiers": {"t": tier}}))
    loaded = load_policy(str(path))
    assert not loaded.ok
    [issue] = loaded.issues
    assert expected in issue.message, issue.format()
    assert issue.field.startswith("compute_tiers.t") and issue.line >= 3


def test_existing_local_tiers_keep_their_meaning() -> None:
    from airflow_bridge.governance.policy import Policy

    policy = Policy.model_validate(
        {
            "apiVersion": "airflow-bridge/v1",
            "kind": "Policy",
            "compute_tiers": {"big": {"pool": "p", "queue": "q", "cpu": "8", "memory": "32Gi", "gpu": 1}},
        }
    )
    tier = policy.compute_tiers["big"]
    assert tier.kind == "local" and not tier.is_kubernetes
    assert tier.requests() == {"cpu": "8", "memory": "32Gi"} and tier.limits() == {"nvidia.com/gpu": "1"}


def test_the_policy_document_bound_to_models_validates_again() -> None:
    """The register task binds the policy's JSON document (every default spelled out) to the model."""
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.governance.policy import Policy

    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    assert policy is not None
    assert Policy.model_validate(policy.document()) == policy


# -- validation: allowed tiers and quotas ---------------------------------------------------------


def _spec_on(folder: Path, source: str, **training: Any) -> Path:
    data = yaml.safe_load((EXAMPLES / source).read_text())
    data["training"] = training
    path = folder / source
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("source", "tier", "field", "expected"),
    [
        ("penguin_species.yaml", "gpu-small", "training.compute",
         "compute tier 'gpu-small' asks for gpu 1 (limits.nvidia.com/gpu), above the quota of team 'ecology' "
         "(compute_quota.gpu: 0 per training run) (choose a tier within the quota (local, cpu-pod), "
         "or ask engineers to raise compute_quota in the team policy)"),
        ("penguin_species.yaml", "cpu-large", "training.compute",
         "compute tier 'cpu-large' asks for cpu 8 (requests.cpu), above the quota of team 'ecology' "
         "(compute_quota.cpu: 4 per training run)"),
        ("diabetes_progression.yaml", "gpu-small", "training.compute",
         "team 'endocrinology' may not use compute tier 'gpu-small' (allowed: local, cpu-pod)"),
        ("diabetes_progression.yaml", "cpu-pod", "data.training.uri",
         "compute tier 'cpu-pod' trains in a Kubernetes pod, which cannot read 'data/diabetes.csv' from the "
         "Airflow worker (put the data in object storage (s3://...) with a conn_id, or use compute: local)"),
    ],
)  # fmt: skip
def test_validate_refuses_tiers_a_team_may_not_use_or_over_quota(
    source: str, tier: str, field: str, expected: str, spec_dir: Path
) -> None:
    import re

    path = _spec_on(spec_dir, source, compute=tier)
    done = cli("validate", path)
    assert done.returncode == 1, done.stdout
    shown = " ".join(line.strip() for line in done.stdout.splitlines())  # rich may wrap long lines
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: {re.escape(field)}: {re.escape(expected)}", shown), shown


def test_switching_a_spec_to_a_pod_tier_and_back_is_one_line(spec_dir: Path) -> None:
    from airflow_bridge.factory.build import build_dag
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator
    from airflow_bridge.operators.train import TrainModelOperator
    from airflow_bridge.spec.loader import load_spec

    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    local = load_spec(EXAMPLES / "breast_cancer_classifier.yaml").spec
    assert local is not None
    pod = local.model_copy(update={"training": local.training.model_copy(update={"compute": "cpu-pod"})})
    assert type(build_dag(local, policy=policy).get_task("train")) is TrainModelOperator
    task = build_dag(pod, policy=policy).get_task("train")
    assert type(task) is KubernetesTrainOperator
    assert task.retries == pod.training.retries and task.do_xcom_push and task.get_logs


def test_specs_on_local_compute_never_import_the_kubernetes_provider() -> None:
    code = (
        "import sys\n"
        "from airflow_bridge.factory.build import build_dag\n"
        "from airflow_bridge.governance.loader import load_policy\n"
        "from airflow_bridge.spec.loader import load_spec\n"
        f"spec = load_spec({str(EXAMPLES / 'breast_cancer_classifier.yaml')!r}).spec\n"
        f"build_dag(spec, policy=load_policy({str(EXAMPLES / '_policy.yaml')!r}).policy)\n"
        "heavy = ('kubernetes', 'airflow.providers.cncf.kubernetes.operators', 'airflow_bridge.operators.kubernetes')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"


# -- the pod entrypoint, for real, against S3 -----------------------------------------------------


def run_container(pod: dict[str, Any], secrets: dict[tuple[str, str], str], workdir: Path) -> tuple[int, Path, Path]:
    """Run the training container of ``pod`` as the kubelet would: its command, args and env (secretKeyRefs
    resolved from ``secrets``); the XCom and termination-log paths are redirected into ``workdir``."""
    from airflow_bridge.kubernetes.contract import TERMINATION_LOG_ENV, XCOM_PATH_ENV

    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[(ref["name"], ref["key"])]
    workdir.mkdir(parents=True, exist_ok=True)
    xcom, termination = workdir / "xcom" / "return.json", workdir / "termination-log"
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",  # the image's airflow-bridge
            "HOME": str(workdir),
            "AIRFLOW_HOME": str(workdir / "airflow"),
            XCOM_PATH_ENV: str(xcom),
            TERMINATION_LOG_ENV: str(termination),
        }
    )
    command = [shutil.which(container["command"][0], path=env["PATH"]), *container["command"][1:]]
    done = subprocess.run(
        [*command, *container["args"]], env=env, cwd=workdir, capture_output=True, text=True, timeout=600, check=False
    )
    print(done.stdout, done.stderr)
    return done.returncode, xcom, termination


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A local S3 with the training data; the worker's ``s3_artifacts`` connection reaches it."""
    with s3_server() as server:
        server.create_bucket(BUCKET)
        data = (EXAMPLES / "data" / "breast_cancer.csv").read_bytes()
        server.client().put_object(Bucket=BUCKET, Key="data/breast_cancer.csv", Body=data)  # type: ignore[attr-defined]
        monkeypatch.setenv("AIRFLOW_CONN_S3_ARTIFACTS", server.connection())
        yield server


def pod_policy(folder: Path) -> Path:
    """The example policy with its pod tiers writing to the test bucket, and the bucket as a data root."""
    policy = example_policy()
    policy["data_roots"] = [f"s3://{BUCKET}/data/"]
    for tier in policy["compute_tiers"].values():
        if tier.get("kind") == "kubernetes":
            tier["artifact_root"] = f"s3://{BUCKET}/artifacts"
    path = folder / "_policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def test_user_errors_in_the_pod_fail_without_retry_and_lost_pods_retry(
    s3: S3Server, no_cluster: None, tmp_path: Path
) -> None:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from kubernetes.client import CoreV1Api
    from kubernetes.client import models as k8s

    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.kubernetes.contract import USER_ERROR_EXIT
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator

    policy = load_policy(str(pod_policy(tmp_path))).policy
    assert policy is not None
    bad = request(checks={"min_rows": 100_000})
    op = KubernetesTrainOperator(task_id="train", compute_tier=policy.compute_tiers["cpu-pod"], request=bad)
    code, xcom, termination = run_container(
        built_pod(op), {("airflow-bridge-s3", "connection"): s3.connection()}, tmp_path / "pod"
    )
    assert code == USER_ERROR_EXIT and not xcom.exists()
    message = termination.read_text()
    assert message.startswith("DataChecksFailedError: data checks failed") and "min_rows" in message

    def finished(exit_code: int, message: str | None, reason: str | None = None) -> k8s.V1Pod:
        state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, message=message))
        status = k8s.V1ContainerStatus(name="base", state=state, image="i", image_id="", ready=False, restart_count=0)
        pod = op.build_pod_request_obj()  # the pod as submitted, as the API returns it once it ended
        pod.status = k8s.V1PodStatus(phase="Failed", reason=reason, container_statuses=[status])
        return pod

    # the provider's own cleanup runs; only the Kubernetes API it reads, labels and deletes the pod with is fake
    api = mock.create_autospec(CoreV1Api, instance=True)
    with mock.patch.object(KubernetesTrainOperator, "client", new=api):
        user = finished(USER_ERROR_EXIT, message)
        api.read_namespaced_pod.return_value = user
        with pytest.raises(AirflowFailException, match="DataChecksFailedError: data checks failed"):
            op.cleanup(user, user)
        for lost in (finished(137, None, "Evicted"), finished(1, "ConnectionError: S3 unreachable")):
            api.read_namespaced_pod.return_value = lost
            with pytest.raises(AirflowException) as raised:
                op.cleanup(lost, lost)
            assert not isinstance(raised.value, AirflowFailException)  # retried
        assert api.delete_namespaced_pod.call_count == 3  # every pod is deleted, whatever the outcome


def test_spec_on_a_pod_tier_trains_in_the_pod_entrypoint_and_runs_downstream_in_dag_test(
    s3: S3Server, no_cluster: None, spec_dir: Path, registry_env: dict[str, Any], airflow_db: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator
    from airflow_bridge.registry import ModelRegistry

    folder = spec_dir.parent / "pod_specs"
    folder.mkdir()
    pod_policy(folder)
    spec = yaml.safe_load((EXAMPLES / "breast_cancer_classifier.yaml").read_text())
    spec["name"] = "breast_cancer_on_pods"
    spec["data"]["training"] = {
        "uri": f"s3://{BUCKET}/data/breast_cancer.csv",
        "conn_id": "s3_artifacts",
        "target": "malignant",
    }
    spec["model"]["params"] = {"n_estimators": 30, "max_depth": 4}
    spec["training"] = {"compute": "cpu-pod", "retries": 2}
    spec["deployment"] = {"target": "local", "alias": "staging"}
    path = folder / "breast_cancer_on_pods.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert cli("validate", path).returncode == 0

    launched: list[dict[str, Any]] = []

    def launch(self: KubernetesTrainOperator, context: Any) -> Any:
        """Stands in for the cluster: submit = run the built pod's container; the sidecar = read its file."""
        pod = built_pod(self, context)
        validate_pod(pod)
        launched.append(pod)
        code, xcom, termination = run_container(
            pod, {("airflow-bridge-s3", "connection"): s3.connection()}, folder / "pod"
        )
        assert code == 0, termination.read_text() if termination.exists() else code
        return json.loads(xcom.read_text())

    with mock.patch.object(KubernetesTrainOperator, "execute_sync", launch):
        bag = DagBag(dag_folder=str(write_loader([path])))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags["breast_cancer_on_pods"]
        assert type(dag.get_task("train")) is KubernetesTrainOperator and dag.get_task("train").retries == 2
        dag_run = dag.test()

    assert task_states(dag_run) == dict.fromkeys(["train", "validate", "register", "deploy"], "success")
    assert len(launched) == 1 and launched[0]["metadata"]["labels"]["airflow-bridge/model"] == "breast_cancer"
    version = ModelRegistry(registry_env["url"]).get_version("breast_cancer", 1)
    assert version.artifact.uri.startswith(f"s3://{BUCKET}/artifacts/models/breast_cancer/")
    assert version.artifact.conn_id == "s3_artifacts"
    stored = s3.client().get_object(Bucket=BUCKET, Key=version.artifact.uri.split(f"{BUCKET}/", 1)[1])  # type: ignore[attr-defined]
    import hashlib

    assert hashlib.sha256(stored["Body"].read()).hexdigest() == version.artifact.sha256
    assert "roc_auc" in version.metrics
