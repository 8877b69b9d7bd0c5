"""InferenceService objects for a model alias, and what their status says (pure functions, no clients).

One InferenceService serves one ``model@alias``; its name is derived from both, so every deploy,
promotion and rollback of that alias updates the same object. Each version is served by KServe's
sklearn predictor with ``storageUri`` = the registered artifact and the serving tier's image; the tier's
``batcher`` and ``container_concurrency`` become the predictor's ``batcher`` and ``containerConcurrency``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_bridge.kserve import GROUP, KIND, VERSION

if TYPE_CHECKING:
    from airflow_bridge.kserve.tiers import ServingTier

NAME_MAX = 45
"""KServe names the predictor's Knative service ``<name>-predictor`` and its revisions ``<name>-predictor-00001``;
those must stay DNS labels (63 characters), so the InferenceService name is kept shorter than 63."""
PREFIX = "airflow-bridge"
MANAGED_BY = {"app.kubernetes.io/managed-by": PREFIX}
_PREDICTOR_KEYS = (
    "minReplicas",
    "maxReplicas",
    "serviceAccountName",
    "canaryTrafficPercent",
    "batcher",
    "containerConcurrency",
)
_SKLEARN_KEYS = ("storageUri", "image", "resources")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
"""``status.modelStatus.transitionStatus`` values that mean the version will not come up."""
FAILED_REASONS = ("RevisionFailed", "ContainerMissing", "ModelLoadFailed", "InvalidSpec")
"""Condition reasons that mean the rollout failed (rather than is still in progress)."""


def service_name(model: str, alias: str) -> str:
    """A stable DNS-1123 label for ``model@alias``: readable prefix + a hash of the exact pair.

    Model and alias names may hold ``_`` (not allowed in a DNS label); the hash keeps ``a_b@c`` and
    ``a@b_c`` apart although both read ``a-b-c``.
    """
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", f"{model}-{alias}".lower())).strip("-")
    digest = hashlib.sha256(f"{model}@{alias}".encode()).hexdigest()[:8]
    return f"{slug[: NAME_MAX - 9].rstrip('-')}-{digest}"


def build_inference_service(
    *,
    model: str,
    version: int,
    alias: str,
    storage_uri: str,
    sha256: str,
    tier: ServingTier,
    tier_name: str,
    registry: str,
    canary_traffic_percent: int | None = None,
) -> dict[str, Any]:
    """The InferenceService that serves ``model`` v``version`` under ``alias`` on ``tier``.

    ``canary_traffic_percent`` sends that share to this version; KServe keeps the previously rolled-out
    revision for the rest. Without it the version takes all traffic.
    """
    resources = {k: dict(v) for k, v in (("requests", tier.requests), ("limits", tier.limits)) if v}
    sklearn: dict[str, Any] = {"storageUri": storage_uri, "image": tier.image, "resources": resources}
    predictor: dict[str, Any] = {
        "minReplicas": tier.min_replicas,
        "maxReplicas": tier.max_replicas,
        "sklearn": sklearn,
    }
    if tier.service_account:
        predictor["serviceAccountName"] = tier.service_account
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    if tier.batcher is not None:
        predictor["batcher"] = {"maxBatchSize": tier.batcher.max_batch_size, "maxLatency": tier.batcher.max_latency_ms}
    if tier.container_concurrency is not None:
        predictor["containerConcurrency"] = tier.container_concurrency
    labels = dict(MANAGED_BY)
    for key, value in (("model", model), ("alias", alias), ("version", str(version))):
        if _LABEL_VALUE.match(value):
            labels[f"{PREFIX}/{key}"] = value
    annotations = {
        f"{PREFIX}/model": model,
        f"{PREFIX}/version": str(version),
        f"{PREFIX}/alias": alias,
        f"{PREFIX}/registry": registry,
        f"{PREFIX}/serving-tier": tier_name,
        f"{PREFIX}/artifact-sha256": sha256,
        f"{PREFIX}/canary-traffic-percent": str(canary_traffic_percent or 100),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": service_name(model, alias),
            "namespace": tier.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def merge_patch(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that makes a live object serve what ``obj`` says.

    Every key airflow-bridge manages is present, ``None`` (deleted) when ``obj`` lacks it: a promotion
    removes ``canaryTrafficPercent``, a tier without a service account removes the old one.
    """
    predictor = dict(obj.get("spec", {}).get("predictor", {}))
    sklearn = dict(predictor.get("sklearn") or {})
    metadata = obj.get("metadata", {})
    return {
        "metadata": {
            "labels": dict(metadata.get("labels") or {}),
            "annotations": dict(metadata.get("annotations") or {}),
        },
        "spec": {
            "predictor": {
                **{key: predictor.get(key) for key in _PREDICTOR_KEYS},
                "sklearn": {key: sklearn.get(key) for key in _SKLEARN_KEYS},
            }
        },
    }


def snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    """What a live object serves, in the shape of ``build_inference_service`` (to restore it later)."""
    metadata = obj.get("metadata", {})
    predictor = obj.get("spec", {}).get("predictor", {})
    sklearn = predictor.get("sklearn") or {}
    ours = {k: v for k, v in (metadata.get("annotations") or {}).items() if k.startswith(f"{PREFIX}/")}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "labels": {k: v for k, v in (metadata.get("labels") or {}).items() if PREFIX in k},
            "annotations": ours,
        },
        "spec": {
            "predictor": {
                **{k: predictor[k] for k in _PREDICTOR_KEYS if k in predictor},
                "sklearn": {k: sklearn[k] for k in _SKLEARN_KEYS if k in sklearn},
            }
        },
    }


@dataclass(frozen=True)
class Readiness:
    """What an InferenceService's status says about the version airflow-bridge applied."""

    state: Literal["ready", "pending", "failed"]
    reason: str = ""
    url: str | None = None


def readiness(obj: dict[str, Any] | None, version: int | None = None) -> Readiness:
    """Ready, still rolling out, or failed (with KServe's reason) — for the spec last applied.

    A status older than the spec (``observedGeneration`` behind ``generation``) or an object that
    serves another version is still pending: the Ready condition it shows belongs to the old version.
    """
    if obj is None:
        return Readiness("failed", "the InferenceService does not exist (deleted while rolling out?)")
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    served = (metadata.get("annotations") or {}).get(f"{PREFIX}/version")
    if version is not None and served is not None and served != str(version):
        return Readiness("pending", f"the InferenceService now names v{served}, not v{version}")
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Readiness("pending", f"the controller has not reconciled generation {generation} yet")
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if model_status.get("transitionStatus") in FAILED_TRANSITIONS:
        why = failure.get("reason") or model_status["transitionStatus"]
        return Readiness("failed", f"{why}: {failure.get('message') or 'the model did not load'}")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    for condition in conditions.values():
        if condition.get("status") == "False" and condition.get("reason") in FAILED_REASONS:
            return Readiness(
                "failed", f"{condition['type']} {condition['reason']}: {condition.get('message') or 'no message'}"
            )
    predictor = conditions.get("PredictorReady")
    ready = conditions.get("Ready", {}).get("status") == "True" and (
        predictor is None or predictor.get("status") == "True"
    )
    if ready:
        return Readiness("ready", "", status.get("url"))
    waiting = conditions.get("Ready") or predictor or {}
    return Readiness("pending", waiting.get("message") or waiting.get("reason") or "no Ready condition yet")
