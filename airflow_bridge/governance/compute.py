"""Compute tiers and per-team compute quotas of the team policy, and the spec checks they imply.

A tier is ``local`` (the task runs on an Airflow worker, optionally in a pool/queue) or ``kubernetes``
(training runs in a pod built from the tier: image, resources, GPUs, node selector, tolerations,
namespace, service account, deadline). Pods get credentials only as Kubernetes Secret references,
and write artifacts to the tier's object-store ``artifact_root`` (a pod cannot reach a worker's disk).
Everything here is checked when the policy loads; nothing imports the kubernetes client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_bridge.governance.quantity import parse_quantity
from airflow_bridge.spec.models import bridge_error, check_conn_id

if TYPE_CHECKING:
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.spec.models import Experiment
    from airflow_bridge.spec.semantics import Finding

GPU_RESOURCE = "nvidia.com/gpu"
"""The resource the ``gpu`` shorthand asks for (any ``<vendor>/gpu`` resource counts towards a GPU quota)."""
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "adl")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_QUALIFIED_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_KUBERNETES_ONLY = (
    "image",
    "image_pull_policy",
    "resources",
    "node_selector",
    "tolerations",
    "namespace",
    "service_account",
    "kubernetes_conn_id",
    "active_deadline_seconds",
    "secrets",
    "artifact_root",
    "artifact_conn_id",
)

Quantity = str | int | float


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _quantity(value: Quantity, where: str) -> Decimal:
    try:
        return parse_quantity(value)
    except ValueError as exc:
        raise bridge_error(
            f"{where}: {exc}", "CPU in cores or millicores, memory with Mi/Gi, GPUs as integers"
        ) from None


class Resources(_Section):
    """Container requests and limits, as in a pod spec (``cpu``, ``memory``, ``nvidia.com/gpu``...)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {cpu: '4', memory: 16Gi}")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {memory: 16Gi, nvidia.com/gpu: 1}")

    @model_validator(mode="after")
    def _well_formed(self) -> Resources:
        for section in ("requests", "limits"):
            for name, value in getattr(self, section).items():
                if not _QUALIFIED_NAME.match(name):
                    raise bridge_error(f"'{name}' is not a resource name", "for example cpu, memory, nvidia.com/gpu")
                _quantity(value, f"{section}.{name}")
        for name, request in self.requests.items():
            if name in self.limits and _quantity(request, name) > _quantity(self.limits[name], name):
                raise bridge_error(
                    f"requests.{name} ({request}) is above limits.{name} ({self.limits[name]})",
                    "a container cannot request more than its limit",
                )
        return self


class Toleration(_Section):
    """A pod toleration (lets training pods onto tainted nodes, e.g. GPU nodes)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0, description="Only with effect NoExecute.")

    @model_validator(mode="after")
    def _well_formed(self) -> Toleration:
        if self.key is not None and not _QUALIFIED_NAME.match(self.key):
            raise bridge_error(f"toleration key '{self.key}' is not a valid taint key", "e.g. nvidia.com/gpu")
        if self.operator == "Exists" and self.value:
            raise bridge_error("a toleration with operator Exists takes no value", "remove 'value' or use Equal")
        if self.operator == "Equal" and not self.key:
            raise bridge_error("a toleration with operator Equal needs a key", "add 'key', or use operator Exists")
        if self.value and not _LABEL_VALUE.match(self.value):
            raise bridge_error(f"toleration value '{self.value}' is not a valid taint value")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise bridge_error("toleration_seconds applies only to effect NoExecute", "set effect: NoExecute")
        return self


class SecretRef(_Section):
    """An Airflow connection a pod receives from a Kubernetes Secret (never a value in the policy)."""

    connection: str = Field(description="The Airflow conn_id the pod sees (as AIRFLOW_CONN_<ID>).")
    secret: str = Field(description="Name of the Kubernetes Secret in the tier's namespace.")
    key: str = Field(default="connection", description="Key in the Secret holding the connection URI or JSON.")

    _check_connection = field_validator("connection")(check_conn_id)

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise bridge_error(f"'{value}' is not a Kubernetes Secret name", "lower-case letters, digits, '-' and '.'")
        return value

    @field_validator("key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not _SECRET_KEY.match(value):
            raise bridge_error(f"'{value}' is not a Secret key", "letters, digits, '-', '_' and '.'")
        return value

    @property
    def env_name(self) -> str:
        """The variable Airflow reads the connection from."""
        return f"AIRFLOW_CONN_{self.connection.upper()}"


class ComputeTier(_Section):
    """Where training runs: an Airflow worker (``local``: pool/queue), or a Kubernetes pod (``kubernetes``)."""

    description: str = ""
    kind: Literal["local", "kubernetes"] = Field(default="local", description="Worker ('local') or a pod.")
    pool: str | None = Field(default=None, description="Airflow pool limiting concurrent training on this tier.")
    pool_slots: int = Field(default=1, ge=1)
    queue: str | None = Field(default=None, description="Celery queue of workers that have this tier's resources.")
    cpu: str | None = Field(default=None, description="Shorthand for resources.requests.cpu, e.g. '4'.")
    memory: str | None = Field(default=None, description="Shorthand for resources.requests.memory, e.g. '16Gi'.")
    gpu: int = Field(default=0, ge=0, description=f"Shorthand for resources.limits['{GPU_RESOURCE}'].")
    image: str | None = Field(default=None, description="Container image with airflow-bridge installed.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: Resources = Resources()
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    namespace: str | None = Field(default=None, description="Namespace of the pods (the connection's by default).")
    service_account: str | None = None
    kubernetes_conn_id: str | None = Field(default=None, description="Airflow connection to the cluster.")
    active_deadline_seconds: int | None = Field(default=None, ge=1, description="Kubernetes stops the pod after.")
    secrets: list[SecretRef] = Field(default_factory=list, description="Connections mounted from Secrets.")
    artifact_root: str | None = Field(default=None, description="Object-store root the pod writes artifacts to.")
    artifact_conn_id: str | None = Field(default=None, description="Connection for artifact_root (in 'secrets').")

    _conn_ids = field_validator("kubernetes_conn_id", "artifact_conn_id")(check_conn_id)

    @model_validator(mode="after")
    def _complete(self) -> ComputeTier:
        for name in ("cpu", "memory"):
            if getattr(self, name) is not None:
                _quantity(getattr(self, name), name)
        if self.kind == "local":
            fields = type(self).model_fields  # compared by value: a policy document lists every default
            given = [
                n for n in _KUBERNETES_ONLY if getattr(self, n) != fields[n].get_default(call_default_factory=True)
            ]
            if given:
                raise bridge_error(
                    f"{', '.join(given)} only apply to kind: kubernetes", "add 'kind: kubernetes' or remove them"
                )
            return self
        if not self.image:
            raise bridge_error("a kubernetes tier needs an 'image'", "an image with airflow-bridge installed")
        for name, value in (("namespace", self.namespace), ("service_account", self.service_account)):
            if value is not None and not (_DNS_LABEL if name == "namespace" else _DNS_SUBDOMAIN).match(value):
                raise bridge_error(
                    f"{name} '{value}' is not a valid Kubernetes name", "lower-case letters, digits, '-'"
                )
        for key, value in self.node_selector.items():
            if not _QUALIFIED_NAME.match(key) or not _LABEL_VALUE.match(value):
                raise bridge_error(f"node_selector '{key}: {value}' is not a valid label", "e.g. pool: gpu")
        for section, shorthand in (("requests", "cpu"), ("requests", "memory"), ("limits", GPU_RESOURCE)):
            if shorthand in getattr(self.resources, section) and (
                self.gpu if shorthand == GPU_RESOURCE else getattr(self, shorthand)
            ):
                raise bridge_error(
                    f"both the shorthand and resources.{section}['{shorthand}'] are set", "keep one of them"
                )
        requests, limits = self.requests(), self.limits()
        for name, value in requests.items():
            if name in limits and parse_quantity(value) > parse_quantity(limits[name]):
                raise bridge_error(f"the {name} request ({value}) is above its limit ({limits[name]})")
        for name in {*requests, *limits}:
            if "/" not in name or name.startswith("kubernetes.io/"):
                continue  # devices (nvidia.com/gpu) are whole, limited, and requested as limited
            if name not in limits:
                raise bridge_error(f"{name} needs a limit", f"Kubernetes schedules devices by limit: limits.{name}")
            if parse_quantity(limits[name]) % 1:
                raise bridge_error(f"limits.{name} must be a whole number", "devices are not divisible")
            if name in requests and parse_quantity(requests[name]) != parse_quantity(limits[name]):
                raise bridge_error(f"requests.{name} must equal limits.{name}", "set only the limit")
        self._check_storage()
        env = [ref.env_name for ref in self.secrets]
        if len(env) != len(set(env)):
            raise bridge_error("two secrets give the same connection", "list each connection once")
        return self

    def _check_storage(self) -> None:
        root = self.artifact_root
        if not root:
            raise bridge_error(
                "a kubernetes tier needs an 'artifact_root' in object storage",
                "pods cannot write to an Airflow worker's disk: e.g. artifact_root: s3://bucket/airflow-bridge",
            )
        scheme = urlsplit(root).scheme
        if scheme not in OBJECT_STORE_SCHEMES:
            raise bridge_error(
                f"artifact_root '{root}' is not in object storage",
                f"pods cannot write to an Airflow worker's disk; use one of {', '.join(OBJECT_STORE_SCHEMES)}://",
            )
        if self.artifact_conn_id and self.artifact_conn_id not in self.secret_connections:
            raise bridge_error(
                f"artifact_conn_id '{self.artifact_conn_id}' does not reach the pod",
                f"add it to secrets: [{{connection: {self.artifact_conn_id}, secret: <Secret name>, key: <key>}}]",
            )

    @property
    def is_kubernetes(self) -> bool:
        return self.kind == "kubernetes"

    @property
    def secret_connections(self) -> set[str]:
        return {ref.connection for ref in self.secrets}

    def requests(self) -> dict[str, str]:
        """Container requests: ``resources.requests`` with the ``cpu``/``memory`` shorthands."""
        merged = {name: str(value) for name, value in self.resources.requests.items()}
        for name in ("cpu", "memory"):
            if getattr(self, name) is not None:
                merged[name] = str(getattr(self, name))
        return merged

    def limits(self) -> dict[str, str]:
        """Container limits: ``resources.limits`` with the ``gpu`` shorthand."""
        merged = {name: str(value) for name, value in self.resources.limits.items()}
        if self.gpu:
            merged[GPU_RESOURCE] = str(self.gpu)
        return merged

    def peak(self) -> dict[str, Decimal]:
        """The most one training run may use, per quota dimension (cpu, memory, gpu): the larger of request/limit."""
        peak: dict[str, Decimal] = {}
        for values in (self.requests(), self.limits()):
            for name, value in values.items():
                dimension = "gpu" if name.endswith("/gpu") else name
                if dimension in ("cpu", "memory", "gpu"):
                    peak[dimension] = max(peak.get(dimension, Decimal(0)), parse_quantity(value))
        return peak


class ComputeQuota(_Section):
    """The most one training run of a team may ask for; a spec on a larger tier fails validation."""

    cpu: Quantity | None = Field(default=None, description="CPUs per training run, e.g. '16' or '500m'.")
    memory: Quantity | None = Field(default=None, description="Memory per training run, e.g. '64Gi'.")
    gpu: int | None = Field(default=None, ge=0, description="GPUs per training run.")

    @model_validator(mode="after")
    def _quantities(self) -> ComputeQuota:
        for name in ("cpu", "memory"):
            if getattr(self, name) is not None:
                _quantity(getattr(self, name), f"compute_quota.{name}")
        return self

    def bounds(self) -> dict[str, tuple[Decimal, str]]:
        """Each set bound: (value, as written)."""
        return {
            name: (parse_quantity(value), str(value))
            for name, value in (("cpu", self.cpu), ("memory", self.memory), ("gpu", self.gpu))
            if value is not None
        }


def compute_findings(spec: Experiment, policy: Policy) -> Iterator[Finding]:
    """Spec problems with its compute tier: over the team's quota, or data a pod cannot reach."""
    tier = policy.compute_tiers.get(spec.training.compute)
    if tier is None:
        return
    where = ("training", "compute")
    team = policy.team(spec.team)
    if team is not None and team.compute_quota is not None:
        bounds = team.compute_quota.bounds()
        peak = tier.peak()
        allowed = team.allowed_compute
        fits = [
            name
            for name, other in [("local", None), *policy.compute_tiers.items()]
            if (allowed is None or name in allowed)
            and (other is None or all(other.peak().get(d, Decimal(0)) <= b for d, (b, _) in bounds.items()))
        ]
        for dimension, (bound, written) in bounds.items():
            if peak.get(dimension, Decimal(0)) > bound:
                yield (
                    where,
                    f"compute tier '{spec.training.compute}' asks for {dimension} {_shown(dimension, tier)}, above the "
                    f"quota of team '{spec.team}' (compute_quota.{dimension}: {written} per training run)",
                    f"choose a tier within the quota ({', '.join(fits)}), "
                    "or ask engineers to raise compute_quota in the team policy",
                )
    if not tier.is_kubernetes:
        return
    data = spec.data.training
    if urlsplit(data.uri).scheme not in OBJECT_STORE_SCHEMES:
        yield (
            ("data", "training", "uri"),
            f"compute tier '{spec.training.compute}' trains in a Kubernetes pod, which cannot read '{data.uri}' "
            "from the Airflow worker",
            "put the data in object storage (s3://...) with a conn_id, or use compute: local",
        )
    if data.conn_id and data.conn_id not in tier.secret_connections:
        yield (
            ("data", "training", "conn_id"),
            f"connection '{data.conn_id}' does not reach pods of compute tier '{spec.training.compute}'",
            "engineers add it to the tier's secrets in the team policy"
            + (f" (it has: {', '.join(sorted(tier.secret_connections))})" if tier.secrets else ""),
        )


def _shown(dimension: str, tier: ComputeTier) -> str:
    """The tier's largest request or limit of ``dimension``, as the policy writes it."""
    written = [
        (parse_quantity(value), f"{value} ({section}.{name})")
        for section, values in (("requests", tier.requests()), ("limits", tier.limits()))
        for name, value in values.items()
        if (name.endswith("/gpu") if dimension == "gpu" else name == dimension)
    ]
    return max(written)[1] if written else "0"
