"""The ``kserve`` deployment target: the team's serving tier + the registry artifact → an InferenceService.

Called by the deploy, promote and rollback actions only after their gate allowed the move; every refusal
here (no serving tier, a local artifact, a canary with nothing to keep serving, the cluster refusing the
object) goes through the gate, so it is audited and nothing moves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from airflow_bridge.exceptions import DeploymentError
from airflow_bridge.issues import did_you_mean
from airflow_bridge.kserve import KSERVE_TARGET, tiers
from airflow_bridge.kserve.service import PREFIX
from airflow_bridge.kserve.tiers import ServingTier
from airflow_bridge.targets import Move, Outcome, Refuser

if TYPE_CHECKING:
    from airflow_bridge.kserve.client import KServeClient
    from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger
    from airflow_bridge.spec.models import Experiment
    from airflow_bridge.spec.semantics import Finding, SpecContext


def endpoint_of(namespace: str, name: str) -> str:
    """Where the object is, until KServe reports its URL."""
    return f"kserve://{namespace}/{name}"


class KServeSettings(BaseModel):
    """The keys ``kserve`` owns under ``deployment:`` (and ``--serving``/``--canary`` on the command line)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    serving: str | None = Field(
        default=None,
        min_length=1,
        description="Serving tier of the team policy; may be omitted when the team may use exactly one.",
    )
    canary_traffic_percent: int | None = Field(
        default=None,
        ge=1,
        le=99,
        description="Send this share of traffic to the new version, the rest to the live one; promote it to "
        "100 % with airflow-bridge models promote.",
    )


@dataclass(frozen=True)
class KServeRollout:
    """What ``apply`` did to the cluster, as the other methods (and a deferral's XCom) get it back."""

    name: str
    namespace: str
    conn_id: str
    serving: str
    version: int
    canary_traffic_percent: int | None
    endpoint: str
    deadline: float
    """When the rollout counts as failed (epoch seconds): the tier's readiness timeout after ``apply``."""
    restore: dict[str, Any] | None
    """The object as it was before (None: ``apply`` created it, so restoring deletes it)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> KServeRollout:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


class KServeTarget:
    """Create or update the InferenceService of ``model@alias``; wait for it; restore it on failure."""

    name = KSERVE_TARGET
    settings = KServeSettings
    docs = "docs/kserve.md"
    policy_fields = tiers.POLICY_FIELDS
    team_fields = tiers.TEAM_FIELDS
    poll_interval: float = 10.0

    @staticmethod
    def policy_problems(policy: Any) -> Iterator[tuple[str, str | None]]:
        """The team policy's references to serving tiers it does not define."""
        return tiers.policy_problems(policy)

    def check_spec(self, spec: Experiment, settings: Any, context: SpecContext) -> Iterator[Finding]:
        """A serving tier the team may use, and artifacts KServe can download."""
        from airflow_bridge.spec.semantics import configured_artifact_root

        serving = cast("KServeSettings", settings).serving
        defined = list(tiers.serving_tiers(context.policy))
        allowed = tiers.allowed_serving(context.policy, spec.team)
        if serving is None:
            usable = [t for t in defined if allowed is None or t in allowed]
            if len(usable) != 1:
                yield (
                    ("deployment", "target"),
                    f"target 'kserve' needs a serving tier: team '{spec.team}' may use "
                    + (f"{len(usable)} ({', '.join(usable)})" if usable else "none"),
                    "add 'serving: <tier>'" + (f", e.g. serving: {usable[0]}" if usable else " once engineers add one"),
                )
        where = ("deployment", "serving")
        if serving is not None and serving not in defined:
            listed = ", ".join(defined) or "none (engineers add them under serving_tiers)"
            yield (
                where,
                f"unknown serving tier '{serving}'",
                did_you_mean(serving, defined) or f"serving tiers of the team policy: {listed}",
            )
        if allowed is not None and serving in defined and serving not in allowed:
            yield (
                where,
                f"team '{spec.team}' may not use serving tier '{serving}'",
                f"allowed: {', '.join(allowed) or 'none'}",
            )
        root = configured_artifact_root()
        if root is not None and urlsplit(root).scheme in ("", "file"):
            yield (
                ("deployment", "target"),
                f"target 'kserve' cannot serve artifacts from the local artifact root '{root}': KServe downloads the "
                "model from object storage",
                "set [airflow_bridge] artifact_root (or $AIRFLOW_BRIDGE_ARTIFACT_ROOT) to an s3:// prefix",
            )

    def apply(self, gate: Refuser, move: Move) -> dict[str, Any]:
        from airflow_bridge.kserve.service import build_inference_service, snapshot

        settings = cast("KServeSettings", move.settings)
        tier_name, tier = self._tier(gate, move, settings.serving)
        version, model, alias = move.version, move.record.name, move.alias
        uri = version.artifact.uri
        if urlsplit(uri).scheme in ("", "file"):
            gate.refuse(
                version,
                f"target 'kserve' cannot serve {model} v{version.version}: its artifact {uri} is a local file "
                "that KServe cannot download; set [airflow_bridge] artifact_root to an s3:// prefix and register "
                "a new version",
            )
        canary = settings.canary_traffic_percent
        if canary is not None:
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
        return KServeRollout(
            name=name,
            namespace=namespace,
            conn_id=tier.kubernetes_conn_id,
            serving=tier_name,
            version=version.version,
            canary_traffic_percent=canary,
            endpoint=endpoint_of(namespace, name),
            deadline=time.time() + tier.readiness_timeout_minutes * 60,
            restore=snapshot(existing) if existing is not None else None,
        ).to_json()

    def wait(self, rollout: Mapping[str, Any]) -> Outcome:
        done = KServeRollout.from_json(rollout)
        state = _client(done.conn_id).wait(
            done.name,
            done.namespace,
            done.version,
            timeout=max(0.0, done.deadline - time.time()),
            poll=self.poll_interval,
        )
        if state.state == "ready":
            return Outcome(True, state.url or done.endpoint)
        return Outcome(False, reason=f"InferenceService {done.namespace}/{done.name}: {state.reason}")

    def trigger(self, rollout: Mapping[str, Any]) -> InferenceServiceReadyTrigger:
        from airflow_bridge.kserve.trigger import InferenceServiceReadyTrigger

        done = KServeRollout.from_json(rollout)
        return InferenceServiceReadyTrigger(
            name=done.name,
            namespace=done.namespace,
            version=done.version,
            kubernetes_conn_id=done.conn_id,
            deadline=done.deadline,
            poll_interval=self.poll_interval,
        )

    def restore(self, rollout: Mapping[str, Any]) -> None:
        """Serve again what the object served before ``apply``; delete it if ``apply`` created it."""
        done = KServeRollout.from_json(rollout)
        client = _client(done.conn_id)
        if done.restore:
            client.apply(dict(done.restore))
        else:
            client.delete(done.name, done.namespace)

    @staticmethod
    def _tier(gate: Refuser, move: Move, serving: str | None) -> tuple[str, ServingTier]:
        model = move.record.name
        policy = move.governing.policy
        team = move.record.card.team
        usable = tiers.serving_tiers_for(policy, team) if policy is not None else []
        if serving is None and policy is not None:
            serving = tiers.default_serving_tier(policy, team)  # as validate assumes
        if serving is None:
            gate.refuse(
                move.version,
                f"target 'kserve' needs a serving tier (deployment.serving / --serving): team '{team}' may use "
                f"{', '.join(usable) or 'none'}",
            )
        if policy is None:
            gate.refuse(move.version, f"no team policy governs '{model}', so serving tier '{serving}' is not defined")
        defined = tiers.serving_tiers(policy)
        tier = defined.get(serving)
        if tier is None:
            gate.refuse(
                move.version,
                f"unknown serving tier '{serving}' in {move.governing.source}; defined: "
                f"{', '.join(sorted(defined)) or 'none'}",
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


target = KServeTarget()
