"""The kserve deployment target: InferenceService objects, governance of every move, the readiness trigger.

No cluster exists here: the Kubernetes API is a fake behind the provider's ``KubernetesHook`` methods
(sync) and the ``kubernetes_asyncio`` client (the trigger), and every object it receives is validated
against KServe's official CRD schema (tests/fixtures/standards/kserve-crd). Artifacts live on an S3 server on
127.0.0.1 (moto); the registry, the approvals and the policy rules are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from airflow_bridge.actions import approval, deployment
from airflow_bridge.actions.moves import MoveRequest
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import DeploymentError, PolicyViolationError
from airflow_bridge.governance.policy import Policy
from airflow_bridge.kserve.service import build_inference_service, merge_patch, readiness, service_name, snapshot
from airflow_bridge.kserve.tiers import serving_tiers
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.records import binding_for
from tests.helpers import standard
from tests.s3server import S3Server, s3_server

FIXTURES = Path(__file__).parent / "fixtures" / "kserve"
NAME = service_name("churn", "production")
NAMESPACE = "ml-serving"
IMAGE = "registry.example.com/airflow-bridge-kserve:0.1.0"
POLICY_DOC: dict[str, Any] = {
    "apiVersion": "airflow-bridge/v1",
    "kind": "Policy",
    "serving_tiers": {
        "cpu-small": {
            "namespace": NAMESPACE,
            "kubernetes_conn_id": "kserve_cluster",
            "service_account": "kserve-s3",
            "image": IMAGE,
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "2Gi"},
            "min_replicas": 1,
            "max_replicas": 2,
        },
        "gpu": {"namespace": "ml-gpu", "image": IMAGE},
    },
    "teams": {"growth": {"members": ["alice"], "approvers": ["dana"], "allowed_serving": ["cpu-small"]}},
}
POLICY = Policy.model_validate(POLICY_DOC)


def recorded(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


# -- the CRD schema and a fake cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def crd() -> Any:
    import jsonschema

    doc = yaml.safe_load((standard("kserve-crd") / "serving.kserve.io_inferenceservices.yaml").read_text())
    [served] = [v for v in doc["spec"]["versions"] if v["name"] == "v1beta1" and v["served"]]
    schema = served["schema"]["openAPIV3Schema"]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def assert_valid(crd: Any, obj: dict[str, Any]) -> None:
    errors = sorted(crd.iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    assert obj["apiVersion"] == "serving.kserve.io/v1beta1" and obj["kind"] == "InferenceService"


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies ``application/merge-patch+json``."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class FakeCluster:
    """InferenceServices in memory behind ``KubernetesHook``; every stored object must validate against the CRD.

    ``outcome`` is the status KServe reports for each new generation: 'ready', 'failed' or 'not_ready'.
    """

    def __init__(self, crd: Any) -> None:
        self.crd = crd
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.outcome = "ready"
        self.refuse: tuple[int, str] | None = None

    def get(self, *, group: str, version: str, plural: str, name: str, namespace: str | None = None) -> Any:
        from kubernetes.client.exceptions import ApiException

        self.calls.append("get")
        found = self.objects.get((namespace or "default", name))
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        return self._with_status(found)

    def create(self, *, group: str, version: str, plural: str, body: Any, namespace: str | None = None) -> Any:
        self.calls.append("create")
        self._maybe_refuse()
        obj = copy.deepcopy(body)
        obj["metadata"]["generation"] = 1
        self._store(namespace or "default", obj)
        return obj

    def patch(self, *, group: str, version: str, namespace: str, plural: str, name: str, body: Any) -> Any:
        self.calls.append("patch")
        self._maybe_refuse()
        current = self.objects[(namespace, name)]
        obj = _merge(current, body)
        obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self._store(namespace, obj)
        return obj

    def delete(self, *, group: str, version: str, plural: str, name: str, namespace: str | None = None) -> Any:
        self.calls.append("delete")
        self.objects.pop((namespace or "default", name), None)

    def spec(self, name: str = NAME) -> dict[str, Any]:
        return self.objects[(NAMESPACE, name)]

    def _store(self, namespace: str, obj: dict[str, Any]) -> None:
        obj.pop("status", None)
        assert_valid(self.crd, obj)
        self.objects[(namespace, obj["metadata"]["name"])] = obj

    def _maybe_refuse(self) -> None:
        from kubernetes.client.exceptions import ApiException

        if self.refuse is not None:
            status, message = self.refuse
            error = ApiException(status=status, reason="Unprocessable Entity")
            error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message})
            raise error

    def _with_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(obj)
        status = recorded(self.outcome)["status"]
        status["observedGeneration"] = obj["metadata"]["generation"]
        shown["status"] = status
        return shown


@pytest.fixture
def cluster(crd: Any, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from airflow_bridge.kserve.target import KServeTarget

    fake = FakeCluster(crd)
    monkeypatch.setattr(KubernetesHook, "get_custom_object", lambda self, **kw: fake.get(**kw))
    monkeypatch.setattr(KubernetesHook, "create_custom_object", lambda self, **kw: fake.create(**kw))
    monkeypatch.setattr(KubernetesHook, "delete_custom_object", lambda self, **kw: fake.delete(**kw))
    client = SimpleNamespace(patch_namespaced_custom_object=fake.patch)
    monkeypatch.setattr(KubernetesHook, "custom_object_client", property(lambda self: client))
    monkeypatch.setattr(KServeTarget, "poll_interval", 0.0)
    return fake


# -- the registry, S3 artifacts and approvals -----------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture
def store(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    token = uuid.uuid4().hex[:10]
    s3.create_bucket(f"models-{token}")
    monkeypatch.setenv(f"AIRFLOW_CONN_S3_{token.upper()}", s3.connection())
    return ArtifactStore(f"s3://models-{token}", f"s3_{token}")


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")


def _register(registry: ModelRegistry, store: ArtifactStore, count: int) -> None:
    for number in range(1, count + 1):
        registry.register_version(
            "churn",
            store.put(f"churn model {number}".encode(), "models/churn", ".joblib"),
            run=RunRef("churn", f"r{number}", "register"),
            actor="alice",
            card=ModelCard(owner="alice", team="growth"),
            policy=binding_for(POLICY, "dag_specs/_policy.yaml"),
        )


def _approve(registry: ModelRegistry, version: int) -> None:
    approval.decide(registry, model="churn", version=version, alias="production", responder="dana", approve=True)


def _deploy(registry: ModelRegistry, version: int, **settings: Any) -> Any:
    settings.setdefault("serving", "cpu-small")
    settings = {key: value for key, value in settings.items() if value is not None}
    request = MoveRequest("churn", "production", version, target="kserve", settings=settings)
    return deployment.move(registry, request, actor="bob")


def _live(registry: ModelRegistry) -> int | None:
    found = registry.alias_version("churn", "production")
    return found.version if found else None


def _refusals(registry: ModelRegistry) -> list[str]:
    return [e.reason for e in registry.audit_events(model="churn") if e.action == AuditAction.MOVE_REFUSED]


# -- the objects ----------------------------------------------------------------------------------


def test_names_are_stable_dns_labels_that_keep_pairs_apart() -> None:
    import re

    assert service_name("churn", "production") == NAME and NAME.startswith("churn-production-")
    assert service_name("a_b", "c") != service_name("a", "b_c")
    longest = service_name("m" * 63, "a" * 63)
    for name in (NAME, longest, service_name("x_", "y")):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 45


def test_objects_for_create_canary_promote_and_rollback_follow_policy_and_registry(crd: Any) -> None:
    tier = serving_tiers(POLICY)["cpu-small"]
    common: dict[str, Any] = {"model": "churn", "alias": "production", "tier": tier, "tier_name": "cpu-small"}
    common["registry"] = "sqlite:///registry.db"
    first = build_inference_service(version=1, storage_uri="s3://b/models/churn/1.joblib", sha256="a" * 64, **common)
    canary = build_inference_service(
        version=2, storage_uri="s3://b/models/churn/2.joblib", sha256="b" * 64, canary_traffic_percent=10, **common
    )
    promoted = build_inference_service(version=2, storage_uri="s3://b/models/churn/2.joblib", sha256="b" * 64, **common)
    for obj in (first, canary, promoted):
        assert_valid(crd, obj)
        predictor = obj["spec"]["predictor"]
        assert obj["metadata"]["namespace"] == NAMESPACE and obj["metadata"]["name"] == NAME
        assert predictor["serviceAccountName"] == "kserve-s3"
        assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 2)
        assert predictor["sklearn"]["image"] == IMAGE
        assert predictor["sklearn"]["resources"] == {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "2Gi"},
        }
        assert obj["metadata"]["annotations"]["airflow-bridge/registry"] == "sqlite:///registry.db"
    assert first["spec"]["predictor"]["sklearn"]["storageUri"] == "s3://b/models/churn/1.joblib"
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert canary["metadata"]["labels"]["airflow-bridge/version"] == "2"


def test_the_serving_tier_sets_kserves_batcher_and_container_concurrency(crd: Any) -> None:
    batched = {"batcher": {"max_batch_size": 64, "max_latency_ms": 20}, "container_concurrency": 8}
    doc = copy.deepcopy(POLICY_DOC)
    doc["serving_tiers"]["cpu-small"].update(batched)
    common: dict[str, Any] = {"model": "churn", "alias": "production", "tier_name": "cpu-small", "version": 1}
    common.update(registry="sqlite:///registry.db", storage_uri="s3://b/models/churn/1.joblib", sha256="a" * 64)
    obj = build_inference_service(tier=serving_tiers(Policy.model_validate(doc))["cpu-small"], **common)
    assert_valid(crd, obj)
    predictor = obj["spec"]["predictor"]
    assert predictor["batcher"] == {"maxBatchSize": 64, "maxLatency": 20}
    assert predictor["containerConcurrency"] == 8

    plain = build_inference_service(tier=serving_tiers(POLICY)["cpu-small"], **common)
    assert "batcher" not in plain["spec"]["predictor"] and "containerConcurrency" not in plain["spec"]["predictor"]
    patch = merge_patch(plain)["spec"]["predictor"]  # a tier that drops them removes them from the live object
    assert patch["batcher"] is None and patch["containerConcurrency"] is None
    assert snapshot(obj)["spec"]["predictor"]["batcher"] == {"maxBatchSize": 64, "maxLatency": 20}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batcher": {"max_batch_size": 0}}, "max_batch_size"),
        ({"batcher": {"max_latency_ms": -5}}, "max_latency_ms"),
        ({"batcher": {"max_wait": 5}}, "max_wait"),
        ({"container_concurrency": -1}, "container_concurrency"),
    ],
)
def test_bad_batcher_settings_are_refused(setting: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    doc = copy.deepcopy(POLICY_DOC)
    doc["serving_tiers"]["cpu-small"].update(setting)
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(doc)


def test_deploy_applies_only_after_approval_and_records_the_url(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    with pytest.raises(PolicyViolationError, match="no recorded approval for 'production'"):
        _deploy(registry, 1)
    assert cluster.calls == [] and _live(registry) is None
    assert "no recorded approval" in _refusals(registry)[-1]

    _approve(registry, 1)
    result = _deploy(registry, 1)
    version = registry.get_version("churn", 1)
    obj = cluster.spec()
    assert obj["spec"]["predictor"]["sklearn"]["storageUri"] == version.artifact.uri
    assert obj["metadata"]["annotations"]["airflow-bridge/version"] == "1"
    assert obj["metadata"]["annotations"]["airflow-bridge/artifact-sha256"] == version.artifact.sha256
    assert cluster.calls[:2] == ["get", "create"]
    url = recorded("ready")["status"]["url"]
    assert (result.version, result.target, result.endpoint, result.approval.approver) == (1, "kserve", url, "dana")
    assert _live(registry) == 1
    [row] = registry.deployments("churn")
    assert (row.target, row.endpoint) == ("kserve", url)


def test_canary_then_promote_then_rollback(registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster) -> None:
    _register(registry, store, 2)
    for number in (1, 2):
        _approve(registry, number)
    _deploy(registry, 1)
    v1, v2 = (registry.get_version("churn", n).artifact.uri for n in (1, 2))

    canary = _deploy(registry, 2, canary_traffic_percent=10)
    predictor = cluster.spec()["spec"]["predictor"]
    assert (predictor["canaryTrafficPercent"], predictor["sklearn"]["storageUri"]) == (10, v2)
    assert (canary.version, canary.previous_version, _live(registry)) == (2, 1, 2)  # the alias moves at canary time
    moved = [e for e in registry.audit_events(model="churn") if e.action == AuditAction.DEPLOYED][-1]
    assert "canary: 10% of the traffic" in moved.reason

    promoted = deployment.move(
        registry,
        MoveRequest(
            model="churn",
            version=2,
            alias="production",
            action="promoted",
            target="kserve",
            settings={"serving": "cpu-small"},
        ),
        actor="bob",
    )
    assert "canaryTrafficPercent" not in cluster.spec()["spec"]["predictor"]
    assert (promoted.version, promoted.action) == (2, "promoted")
    event = registry.audit_events(model="churn")[-1]
    assert (event.action, event.after) == (
        "promoted",
        {"version": 2, "target": "kserve", "canary_traffic_percent": 100},
    )

    back = deployment.move(
        registry,
        MoveRequest(
            model="churn", alias="production", action="rolled_back", target="kserve", settings={"serving": "cpu-small"}
        ),
        actor="bob",
    )
    predictor = cluster.spec()["spec"]["predictor"]
    assert (predictor["sklearn"]["storageUri"], "canaryTrafficPercent" in predictor) == (v1, False)
    assert (back.version, back.previous_version, back.endpoint, _live(registry)) == (
        1,
        2,
        recorded("ready")["status"]["url"],
        1,
    )


def test_an_alias_served_by_kserve_does_not_move_with_target_local(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 2)
    _approve(registry, 1)
    _approve(registry, 2)
    _deploy(registry, 1)
    _deploy(registry, 2)
    applied = list(cluster.calls)
    with pytest.raises(PolicyViolationError, match="is served by target 'kserve'"):
        deployment.move(
            registry, MoveRequest(model="churn", version=1, alias="production", action="promoted"), actor="bob"
        )
    with pytest.raises(PolicyViolationError, match="use target 'kserve' with its settings"):
        deployment.move(registry, MoveRequest(model="churn", alias="production", action="rolled_back"), actor="bob")
    assert cluster.calls == applied and _live(registry) == 2


def test_a_canary_needs_something_to_keep_serving(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    with pytest.raises(PolicyViolationError, match=r"needs a previous version on 'production'.*points at none"):
        _deploy(registry, 1, canary_traffic_percent=10)
    assert cluster.calls == [] and _live(registry) is None
    assert "deploy without a canary first" in _refusals(registry)[-1]


def test_failed_readiness_restores_the_service_and_keeps_the_alias(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 2)
    _approve(registry, 1)
    _approve(registry, 2)
    _deploy(registry, 1)
    v1 = registry.get_version("churn", 1).artifact.uri
    cluster.outcome = "failed"
    with pytest.raises(DeploymentError, match=r"No module named 'skrub'.*still points at v1"):
        _deploy(registry, 2)
    assert _live(registry) == 1
    assert cluster.spec()["spec"]["predictor"]["sklearn"]["storageUri"] == v1
    assert cluster.spec()["metadata"]["annotations"]["airflow-bridge/version"] == "1"
    assert "ModelLoadFailed" in _refusals(registry)[-1]


def test_a_failed_first_deployment_removes_the_object(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    cluster.outcome = "failed"
    with pytest.raises(DeploymentError, match="still points at no version"):
        _deploy(registry, 1)
    assert cluster.objects == {} and cluster.calls[-1] == "delete" and _live(registry) is None


def test_the_cluster_refusing_the_object_is_audited_and_moves_nothing(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    cluster.refuse = (422, 'admission webhook "inferenceservice.kserve-webhook-server.validator" denied the request')
    with pytest.raises(DeploymentError, match=f"refused to create InferenceService {NAMESPACE}/{NAME}: 422"):
        _deploy(registry, 1)
    assert _live(registry) is None and cluster.objects == {}
    assert "admission webhook" in _refusals(registry)[-1]


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ("gpu-huge", "unknown serving tier 'gpu-huge'"),
        ("gpu", "team 'growth' may not use serving tier 'gpu'"),
    ],
)
def test_serving_tiers_come_from_the_governing_policy(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster, serving: str | None, message: str
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    with pytest.raises(PolicyViolationError, match=message):
        _deploy(registry, 1, serving=serving)
    assert cluster.calls == [] and message in _refusals(registry)[-1]


def test_without_a_serving_tier_the_teams_only_tier_is_used_and_several_are_refused(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    _deploy(registry, 1, serving=None)  # team growth may use cpu-small only
    [applied] = cluster.objects.values()
    assert applied["metadata"]["namespace"] == NAMESPACE


def test_a_local_artifact_cannot_be_served_by_kserve(
    registry: ModelRegistry, tmp_path: Path, cluster: FakeCluster
) -> None:
    _register(registry, ArtifactStore(f"file://{tmp_path / 'artifacts'}"), 1)
    _approve(registry, 1)
    with pytest.raises(PolicyViolationError, match=r"is a local file that KServe cannot download"):
        _deploy(registry, 1)
    assert cluster.calls == [] and _live(registry) is None


# -- the readiness trigger against recorded responses -----------------------------------------------


def _run_trigger(monkeypatch: pytest.MonkeyPatch, responses: list[str], *, deadline: float | None = None) -> list[Any]:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
    from kubernetes_asyncio.client import CustomObjectsApi

    from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger

    answers = [recorded(name) for name in responses]
    asked: list[dict[str, Any]] = []

    @contextlib.asynccontextmanager
    async def get_conn(self: Any) -> AsyncIterator[Any]:
        yield SimpleNamespace()

    async def get_object(self: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(AsyncKubernetesHook, "get_conn", get_conn)
    monkeypatch.setattr(CustomObjectsApi, "__init__", lambda self, api_client=None: None)
    monkeypatch.setattr(CustomObjectsApi, "get_namespaced_custom_object", get_object)
    trigger = InferenceServiceReadyTrigger(
        name=NAME,
        namespace=NAMESPACE,
        version=2,
        kubernetes_conn_id="kserve_cluster",
        deadline=time.time() + 60 if deadline is None else deadline,
        poll_interval=0.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_bridge.kserve.trigger.InferenceServiceReadyTrigger"
    revived = InferenceServiceReadyTrigger(**kwargs)

    async def collect() -> list[Any]:
        return [event.payload async for event in revived.run()]

    events = asyncio.run(collect())
    assert asked and asked[0]["name"] == NAME and asked[0]["namespace"] == NAMESPACE
    return events


def test_trigger_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run_trigger(monkeypatch, ["ready"]) == [
        {"status": "success", "url": recorded("ready")["status"]["url"], "name": NAME}
    ]


def test_trigger_not_ready_then_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    [event] = _run_trigger(monkeypatch, ["not_ready", "not_ready", "ready"])
    assert event["status"] == "success"


def test_trigger_failed_reports_kserves_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    [event] = _run_trigger(monkeypatch, ["not_ready", "failed"])
    assert event["status"] == "failed"
    assert "ModelLoadFailed" in event["reason"] and "No module named 'skrub'" in event["reason"]


def test_trigger_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    [event] = _run_trigger(monkeypatch, ["not_ready"], deadline=time.time() - 1)
    assert event["status"] == "timeout" and "waiting for containers" in event["reason"]


def test_a_stale_ready_status_is_not_readiness() -> None:
    stale = recorded("ready")
    stale["metadata"]["generation"] = 3  # the new spec is not reconciled yet: Ready belongs to the old one
    assert readiness(stale, 2).state == "pending"
    assert readiness(recorded("ready"), 3).state == "pending"  # the object still serves v2
    assert readiness(recorded("ready"), 2).state == "ready"


# -- the operator defers, and resumes in execute_complete ------------------------------------------------


@pytest.fixture
def context(airflow_db: Path, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__REGISTRY_URL", str(registry.url))
    ti = SimpleNamespace(dag_id="churn", run_id="manual__1", task_id="deploy")
    return {"ti": ti, "dag_run": SimpleNamespace(triggering_user_name="bob")}


def _operator(**kwargs: Any) -> Any:
    from airflow_bridge.operators.deploy import DeployModelOperator

    return DeployModelOperator(
        task_id="deploy",
        registration={"model": "churn", "version": 1},
        target="kserve",
        target_settings={"serving": "cpu-small"},
        **kwargs,
    )


def test_operator_defers_and_moves_the_alias_when_ready(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster, context: dict[str, Any]
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger

    _register(registry, store, 1)
    operator = _operator()
    with pytest.raises(Exception, match="no recorded approval") as refused:
        operator.execute(context)
    assert type(refused.value).__name__ == "AirflowFailException" and cluster.calls == []

    _approve(registry, 1)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert isinstance(deferred.value.trigger, InferenceServiceReadyTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert (NAMESPACE, NAME) in cluster.objects and _live(registry) is None  # applied; alias waits for Ready

    url = recorded("ready")["status"]["url"]
    event = {"status": "success", "url": url, "name": NAME}
    saved = deferred.value.kwargs or {}
    assert set(saved) == {"pending", "state"} and set(saved["state"]) == {"registration"}
    # a task deferred by the release before (it saved 'registration' beside 'pending') completes after the upgrade
    before_upgrade = {"pending": saved["pending"], "registration": saved["state"]["registration"]}
    result = _operator().execute_complete(context, event, **before_upgrade)
    assert (result["version"], result["endpoint"], result["target"]) == (1, url, "kserve")
    assert _live(registry) == 1


def test_operator_failed_readiness_fails_the_task_and_leaves_no_trace(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster, context: dict[str, Any]
) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    _register(registry, store, 1)
    _approve(registry, 1)
    with pytest.raises(TaskDeferred) as deferred:
        _operator().execute(context)
    event = {"status": "failed", "reason": "ModelLoadFailed: No module named 'skrub'"}
    with pytest.raises(Exception, match="did not become ready: ModelLoadFailed") as failed:
        _operator().execute_complete(context, event, **(deferred.value.kwargs or {}))
    assert type(failed.value).__name__ == "AirflowFailException"
    assert _live(registry) is None and cluster.objects == {}


# -- specs and policies -------------------------------------------------------------------------------


def _spec_issues(tmp_path: Path, deployment_section: dict[str, Any]) -> list[str]:
    from airflow_bridge.governance.loader import load_specs_governed
    from tests.helpers import EXAMPLES

    spec = yaml.safe_load((EXAMPLES / "breast_cancer_classifier.yaml").read_text())
    spec.update({"team": "growth", "owner": "alice", "deployment": deployment_section})
    spec["data"]["training"]["uri"] = str(EXAMPLES / "data" / "breast_cancer.csv")
    (tmp_path / "_policy.yaml").write_text(yaml.safe_dump({**POLICY_DOC, "data_roots": [str(EXAMPLES)]}))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    [result], _ = load_specs_governed([str(tmp_path / "spec.yaml")])
    return [f"{i.field}: {i.message}" + (f" ({i.hint})" if i.hint else "") for i in result.issues]


def test_specs_name_a_serving_tier_the_team_may_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_BRIDGE_ARTIFACT_ROOT", "s3://models")
    assert _spec_issues(tmp_path, {"target": "kserve", "serving": "cpu-small", "canary_traffic_percent": 10}) == []
    [unknown] = _spec_issues(tmp_path, {"target": "kserve", "serving": "cpu-smal"})
    assert "unknown serving tier 'cpu-smal'" in unknown and "cpu-small" in unknown
    [forbidden] = _spec_issues(tmp_path, {"target": "kserve", "serving": "gpu"})
    assert "team 'growth' may not use serving tier 'gpu'" in forbidden
    # one line switches a spec to KServe: without 'serving', the team's only serving tier is used
    assert _spec_issues(tmp_path, {"target": "kserve"}) == []
    [local] = _spec_issues(tmp_path, {"target": "local", "canary_traffic_percent": 10})
    assert local == (
        "deployment.canary_traffic_percent: 'canary_traffic_percent' is a setting of target 'kserve', not 'local' "
        "(use target 'kserve' or remove 'canary_traffic_percent')"
    )
    assert any(
        "less than or equal to 99" in i
        for i in _spec_issues(tmp_path, {"target": "kserve", "serving": "cpu-small", "canary_traffic_percent": 100})
    )


def test_specs_for_kserve_refuse_a_local_artifact_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_BRIDGE_ARTIFACT_ROOT", f"file://{tmp_path}/artifacts")
    [issue] = _spec_issues(tmp_path, {"target": "kserve", "serving": "cpu-small"})
    assert "cannot serve artifacts from the local artifact root" in issue and "s3://" in issue


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"teams": {"growth": {"allowed_serving": ["tpu"]}}}, "allows unknown serving tier 'tpu'"),
        (
            {"serving_tiers": {"x": {"namespace": "ns", "image": "i", "min_replicas": 3, "max_replicas": 2}}},
            "min_replicas",
        ),
        ({"serving_tiers": {"x": {"namespace": "Not_A_Namespace", "image": "i"}}}, "pattern"),
        (
            {"serving_tiers": {"x": {"namespace": "ns", "image": "i", "limits": {"memory": "2 GB"}}}},
            "not a Kubernetes quantity",
        ),
    ],
)
def test_bad_serving_tiers_are_refused(change: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Policy.model_validate({**POLICY_DOC, **change})


def test_the_factory_passes_the_serving_settings_to_the_deploy_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_bridge.factory.build import build_dag
    from airflow_bridge.spec.models import Experiment
    from tests.helpers import EXAMPLES

    spec = yaml.safe_load((EXAMPLES / "breast_cancer_classifier.yaml").read_text())
    spec.update({"team": "growth", "owner": "alice"})
    spec["deployment"] = {"target": "kserve", "serving": "cpu-small", "canary_traffic_percent": 10}
    dag = build_dag(Experiment.model_validate(spec), policy=POLICY)
    deploy: Any = dag.get_task("deploy")
    assert (deploy.target, deploy.target_settings) == ("kserve", {"serving": "cpu-small", "canary_traffic_percent": 10})
    spec["deployment"] = {"target": "kserve"}  # one line: the target uses the team's only serving tier when it applies
    deploy = build_dag(Experiment.model_validate(spec), policy=POLICY).get_task("deploy")
    assert (deploy.target, deploy.target_settings) == ("kserve", {})
    spec["deployment"] = {"target": "local"}
    deploy = build_dag(Experiment.model_validate(spec), policy=POLICY).get_task("deploy")
    assert (deploy.target, deploy.target_settings) == ("local", {})


def test_the_models_page_moves_a_kserve_alias_on_kserve(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster, context: dict[str, Any]
) -> None:
    """The page has no target field: it moves an alias with the target that serves it (here the team's tier)."""
    from fastapi.testclient import TestClient

    from airflow_bridge.plugin.app import create_app
    from tests.test_plugin import login

    _register(registry, store, 2)
    for number in (1, 2):
        _approve(registry, number)
    _deploy(registry, 1)
    client = TestClient(create_app())
    login(client, "dana")
    moved = client.post("/models/churn/promote", data={"version": "2", "alias": "production", "reason": "r"})
    assert moved.status_code == 200, moved.text
    assert cluster.spec()["spec"]["predictor"]["sklearn"]["storageUri"] == registry.get_version("churn", 2).artifact.uri
    assert (_live(registry), registry.deployments("churn")[-1].target) == (2, "kserve")
    back = client.post("/models/churn/rollback", data={"alias": "production", "reason": "r"})
    assert back.status_code == 200, back.text
    assert cluster.spec()["spec"]["predictor"]["sklearn"]["storageUri"] == registry.get_version("churn", 1).artifact.uri


def test_the_cli_moves_a_kserve_alias_through_the_same_actions(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    from typer.testing import CliRunner

    from airflow_bridge.cli.main import app

    _register(registry, store, 2)
    _approve(registry, 1)

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "--registry-url", str(registry.url)], env={"COLUMNS": "200"})
        return result.exit_code, result.output

    kserve = ("--target", "kserve", "--serving", "cpu-small", "--as", "bob")
    assert cli("models", "promote", "churn", "1", *kserve)[0] == 0
    code, output = cli("models", "promote", "churn", "2", "--canary", "10", *kserve)
    assert code != 0 and "no recorded approval" in output
    assert cluster.spec()["metadata"]["annotations"]["airflow-bridge/version"] == "1"
    _approve(registry, 2)
    assert cli("models", "promote", "churn", "2", "--canary", "10", *kserve)[0] == 0
    assert cluster.spec()["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert cli("models", "promote", "churn", "2", *kserve)[0] == 0
    assert "canaryTrafficPercent" not in cluster.spec()["spec"]["predictor"]
    assert cli("models", "rollback", "churn", *kserve)[0] == 0
    assert cluster.spec()["metadata"]["annotations"]["airflow-bridge/version"] == "1" and _live(registry) == 1


def test_an_object_that_is_not_ours_is_left_alone(
    registry: ModelRegistry, store: ArtifactStore, cluster: FakeCluster
) -> None:
    _register(registry, store, 1)
    _approve(registry, 1)
    foreign = recorded("ready")
    foreign["metadata"]["annotations"] = {"owner": "someone else"}
    foreign.pop("status")
    cluster.objects[(NAMESPACE, NAME)] = foreign
    with pytest.raises(PolicyViolationError, match="exists but is not airflow-bridge's for churn@production"):
        _deploy(registry, 1)
    assert cluster.objects[(NAMESPACE, NAME)] is foreign and _live(registry) is None
