"""The ``kserve`` deployment target: the team's serving tier + the registry artifact → an InferenceService.

Called by the deploy, promote and rollback actions only after their gate allowed the move; every refusal
here (no serving tier, a local artifact, a canary with nothing to keep serving, the cluster refusing the
object) goes through the gate, so it is audited and nothing moves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_bridge.exceptions import DeploymentError
from airflow_bridge.kserve.service import PREFIX
from airflow_bridge.targets import Move, Outcome, Refuser

if TYPE_CHECKING:
    from airflow_bridge.governance.policy import ServingTier
    from airflow_bridge.kserve.client import KServeClient
    from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger


def endpoint_of(namespace: str, name: str) -> str:
    """Where the object is, until KServe reports its URL."""
    return f"kserve://{namespace}/{name}"


class KServeTarget:
    """Create or update the InferenceService of ``model@alias``; wait for it; restore it on failure."""

    poll_interval: float = 10.0

    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        from airflow_bridge.kserve.service import build_inference_service, snapshot

        tier_name, tier = self._tier(gate, move)
        version, model, alias = move.version, move.record.name, move.alias
        uri = version.artifact.uri
        if urlsplit(uri).scheme in ("", "file"):
            gate.refuse(
                version,
                f"target 'kserve' cannot serve {model} v{version.version}: its artifact {uri} is a local file "
                "that KServe cannot download; set [airflow_bridge] artifact_root to an s3:// prefix and register "
                "a new version",
            )
        canary = move.canary_traffic_percent
        if canary is not None:
            if not 1 <= canary <= 99:
                gate.refuse(version, f"canary_traffic_percent must be 1..99, not {canary}")
            if move.live is None:
                gate.refuse(
                    version,
                    f"a canary of {model} v{version.version} needs a previous version on '{alias}' to keep serving "
                    f"the other {100 - canary}% of the traffic, and '{alias}' points at none: deploy without a "
                    "canary first",
                )
            if move.live.version == version.version:
                gate.refuse(
                    version,
                    f"'{alias}' already serves v{version.version}: a canary needs a new version "
                    f"(to send v{version.version} all traffic, promote it without a canary)",
                )
        body = build_inference_service(
            model=model,
            version=version.version,
            alias=alias,
            storage_uri=uri,
            sha256=version.artifact.sha256,
            tier=tier,
            tier_name=tier_name,
            registry=move.registry,
            canary_traffic_percent=canary,
        )
        name, namespace = body["metadata"]["name"], tier.namespace
        client = _client(tier.kubernetes_conn_id)
        try:
            existing = client.get(name, namespace)
            owner = ((existing or {}).get("metadata", {}).get("annotations") or {}).get(f"{PREFIX}/model")
            if existing is not None and (owner != model or _alias_of(existing) != alias):
                gate.refuse(
                    version,
                    f"InferenceService {namespace}/{name} exists but is not airflow-bridge's for {model}@{alias}; "
                    "rename or remove it",
                )
            if canary is not None and existing is None:
                gate.refuse(
                    version,
                    f"InferenceService {namespace}/{name} does not exist, so KServe has no previous revision to keep "
                    f"serving the other {100 - canary}% of the traffic: deploy without a canary first",
                )
            client.apply(body, exists=existing is not None)
        except DeploymentError as exc:
            gate.refuse(version, str(exc), error=exc)
        return {
            "name": name,
            "namespace": namespace,
            "conn_id": tier.kubernetes_conn_id,
            "serving": tier_name,
            "version": version.version,
            "canary_traffic_percent": canary,
            "endpoint": endpoint_of(namespace, name),
            "deadline": time.time() + tier.readiness_timeout_minutes * 60,
            "restore": snapshot(existing) if existing is not None else None,
        }

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        state = _client(rollout["conn_id"]).wait(
            rollout["name"],
            rollout["namespace"],
            int(rollout["version"]),
            timeout=max(0.0, float(rollout["deadline"]) - time.time()),
            poll=self.poll_interval,
        )
        if state.state == "ready":
            return Outcome(True, state.url or str(rollout["endpoint"]))
        return Outcome(False, reason=f"InferenceService {rollout['namespace']}/{rollout['name']}: {state.reason}")

    def trigger(self, rollout: Mapping[str, Any]) -> InferenceServiceReadyTrigger:
        from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger

        return InferenceServiceReadyTrigger(
            name=rollout["name"],
            namespace=rollout["namespace"],
            version=int(rollout["version"]),
            kubernetes_conn_id=rollout["conn_id"],
            deadline=float(rollout["deadline"]),
            poll_interval=self.poll_interval,
        )

    def restore(self, rollout: Mapping[str, Any]) -> None:
        """Serve again what the object served before ``apply``; delete it if ``apply`` created it."""
        client = _client(rollout["conn_id"])
        if rollout.get("restore"):
            client.apply(dict(rollout["restore"]))
        else:
            client.delete(rollout["name"], rollout["namespace"])

    @staticmethod
    def _tier(gate: Refuser, move: Move) -> tuple[str, ServingTier]:
        model, serving = move.record.name, move.serving
        policy = move.governing.policy
        team = move.record.card.team
        usable = policy.serving_tiers_for(team) if policy is not None else []
        if serving is None and policy is not None:
            serving = policy.default_serving_tier(team)  # as validate and the DAG factory assume
        if serving is None:
            gate.refuse(
                move.version,
                f"target 'kserve' needs a serving tier (deployment.serving / --serving): team '{team}' may use "
                f"{', '.join(usable) or 'none'}",
            )
        if policy is None:
            gate.refuse(move.version, f"no team policy governs '{model}', so serving tier '{serving}' is not defined")
        tier = policy.serving_tiers.get(serving)
        if tier is None:
            gate.refuse(
                move.version,
                f"unknown serving tier '{serving}' in {move.governing.source}; defined: "
                f"{', '.join(sorted(policy.serving_tiers)) or 'none'}",
            )
        if serving not in usable:
            gate.refuse(move.version, f"team '{team}' may not use serving tier '{serving}' ({move.governing.source})")
        return serving, tier


def _alias_of(obj: Mapping[str, Any]) -> str | None:
    annotations: Mapping[str, Any] = obj.get("metadata", {}).get("annotations") or {}
    return annotations.get(f"{PREFIX}/alias")


def _client(conn_id: str) -> KServeClient:
    from airflow_bridge.kserve.client import KServeClient

    return KServeClient(conn_id)
