"""The ``kserve`` target's part of the team policy: its serving tiers, and which teams may use them.

The target owns these keys of ``_policy.yaml`` (``serving_tiers`` at the top, ``allowed_serving`` in a
team); the policy model gets them from the installed targets (``policy_fields``, ``team_fields``), so
the policy core knows nothing of KServe. Pure data and lookups: imported at DAG-parse time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from airflow_bridge.spec.models import bridge_error

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class KServeBatcher(BaseModel):
    """KServe's batcher (the model agent sidecar): concurrent v1 requests gathered into one predict call.

    It counts *instances*: send one row per instance (``{"instances": [[row]]}``, docs/kserve.md), since
    it splits the answer back one prediction per instance.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_batch_size: int = Field(default=32, ge=1, le=10_000, description="Instances in one predict call.")
    max_latency_ms: int = Field(
        default=50, ge=1, le=60_000, description="Longest the first request of a batch waits for others (ms)."
    )


LATER_KEYS = ("batcher", "container_concurrency")
"""A serving tier's keys added after policies were first bound (left out of the document while unset)."""


class ServingTier(BaseModel):
    """Where and how a model is served by KServe (``deployment: {target: kserve, serving: <tier>}``).

    ``image`` replaces the stock sklearn server's image: airflow-bridge models are scikit-learn
    Pipelines with skrub preprocessing, which the stock image cannot unpickle (docs/kserve.md).
    KServe reads the s3 artifact with the credentials of ``service_account`` (an annotated secret).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    description: str = ""
    namespace: str = Field(pattern=DNS_LABEL, description="Kubernetes namespace of the InferenceServices.")
    kubernetes_conn_id: str = Field(
        default="kubernetes_default", description="Airflow connection of the cluster (cncf.kubernetes provider)."
    )
    service_account: str | None = Field(
        default=None, description="Service account whose annotated secret holds the s3 credentials of the artifacts."
    )
    image: str = Field(
        min_length=1, description="KServe sklearn server image with airflow-bridge (and skrub) installed."
    )
    requests: dict[str, str] = Field(default_factory=dict, description="Resource requests, e.g. {cpu: '1'}.")
    limits: dict[str, str] = Field(default_factory=dict, description="Resource limits, e.g. {memory: 2Gi}.")
    min_replicas: int = Field(default=1, ge=0, description="0 lets KServe scale to zero (serverless mode).")
    max_replicas: int = Field(default=1, ge=1)
    readiness_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    batcher: KServeBatcher | None = Field(
        default=None,
        description="KServe's batcher for the predictor ({max_batch_size, max_latency_ms}); none: no batching.",
    )
    container_concurrency: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Requests one predictor container handles at once (Knative's hard limit; 0: unlimited).",
    )

    @model_serializer(mode="wrap")
    def _without_unset_additions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Keys added after the first release are left out while unset, so a policy that sets none of them
        keeps the document and sha256 the registry bound (as ``Policy.document`` does for its own)."""
        found: dict[str, Any] = handler(self)
        for key in LATER_KEYS:
            if found.get(key) is None:
                found.pop(key, None)
        return found

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str]) -> dict[str, str]:
        for name, amount in value.items():
            if not re.match(QUANTITY, amount):
                raise bridge_error(f"'{amount}' ({name}) is not a Kubernetes quantity", "for example '500m' or '2Gi'")
        return value

    @model_validator(mode="after")
    def _replicas(self) -> ServingTier:
        if self.min_replicas > self.max_replicas:
            raise bridge_error(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        return self


POLICY_FIELDS: dict[str, Any] = {
    "serving_tiers": (dict[str, ServingTier], Field(default_factory=dict, description="KServe serving tiers."))
}
TEAM_FIELDS: dict[str, Any] = {
    "allowed_serving": (
        list[str] | None,
        Field(default=None, description="Serving tiers allowed; all when omitted."),
    )
}


def serving_tiers(policy: Any) -> dict[str, ServingTier]:
    """The policy's serving tiers (none for a policy model built without the kserve target)."""
    return dict(getattr(policy, "serving_tiers", None) or {})


def allowed_serving(policy: Any, team: str) -> list[str] | None:
    """The tiers ``team`` is restricted to (None: every tier)."""
    rules = policy.teams.get(team) if policy is not None else None
    return getattr(rules, "allowed_serving", None)


def serving_tiers_for(policy: Any, team: str) -> list[str]:
    """The serving tiers ``team`` may deploy to."""
    allowed = allowed_serving(policy, team)
    return [name for name in serving_tiers(policy) if allowed is None or name in allowed]


def default_serving_tier(policy: Any, team: str) -> str | None:
    """The tier a kserve deployment without ``serving`` uses: the team's only one (None: none or several)."""
    usable = serving_tiers_for(policy, team)
    return usable[0] if len(usable) == 1 else None


def policy_problems(policy: Any) -> Iterator[tuple[str, str | None]]:
    """A team allowing a serving tier the policy does not define."""
    tiers = serving_tiers(policy)
    for team_name, team in policy.teams.items():
        for serving in getattr(team, "allowed_serving", None) or []:
            if serving not in tiers:
                defined = ", ".join(sorted(tiers)) or "none"
                yield f"team '{team_name}' allows unknown serving tier '{serving}'", f"defined serving tiers: {defined}"
