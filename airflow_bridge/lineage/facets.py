"""airflow-bridge's custom OpenLineage facets (attrs classes on ``openlineage.client.facet_v2``).

Each facet's JSON Schema is committed in ``airflow_bridge/lineage/schemas/<FacetName>.json`` with
``$id`` ``https://airflow-bridge.dev/spec/facets/1-0-0/<FacetName>.json``; ``_schemaURL`` points at
``<$id>#/$defs/<FacetName>`` and ``_producer`` at this package's release. Keys carry the
``airflowBridge_`` prefix (see ``KEYS``). Imports OpenLineage: import this module lazily.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.facet_v2 import DatasetFacet, JobFacet, RunFacet

from airflow_bridge import __version__

PRODUCER = f"https://github.com/airflow-bridge/airflow-bridge/tree/v{__version__}"
SCHEMA_BASE = "https://airflow-bridge.dev/spec/facets/1-0-0"
PREFIX = "airflowBridge_"


def schema_url(facet: str) -> str:
    return f"{SCHEMA_BASE}/{facet}.json#/$defs/{facet}"


@attr.define
class BridgeRunFacet(RunFacet):
    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()


@attr.define
class BridgeJobFacet(JobFacet):
    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()


@attr.define
class BridgeDatasetFacet(DatasetFacet):
    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()


@attr.define
class HyperparametersRunFacet(BridgeRunFacet):
    """The estimator and its parameters: as written in the spec and as the estimator applied them."""

    estimator: str
    taskKind: str
    params: dict[str, Any]
    effectiveParams: dict[str, Any] | None = attr.field(default=None)
    split: dict[str, Any] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("HyperparametersRunFacet")


@attr.define
class MetricsRunFacet(BridgeRunFacet):
    """Metrics of the model on the held-out split of its training data."""

    metrics: dict[str, float]
    evaluatedOn: str = attr.field(default="holdout")

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MetricsRunFacet")


@attr.define
class GatesRunFacet(BridgeRunFacet):
    """Every gate (metric thresholds and data checks): its value, bounds and whether it passed."""

    passed: bool
    gates: list[dict[str, Any]]

    @staticmethod
    def _get_schema() -> str:
        return schema_url("GatesRunFacet")


@attr.define
class ChampionRunFacet(BridgeRunFacet):
    """The candidate against the version live behind ``alias``, on the same held-out rows."""

    metric: str
    passed: bool
    minImprovement: float
    alias: str | None = attr.field(default=None)
    candidate: float | None = attr.field(default=None)
    champion: float | None = attr.field(default=None)
    championVersion: int | None = attr.field(default=None)
    improvement: float | None = attr.field(default=None)
    note: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ChampionRunFacet")


@attr.define
class ApprovalRunFacet(BridgeRunFacet):
    """A deployment approval: the decision, who made it, and who was allowed to."""

    decision: str  # requested | granted | rejected | refused | timed_out
    model: str
    version: int
    alias: str
    approver: str | None = attr.field(default=None)
    approvers: list[str] | None = attr.field(default=None)
    author: str | None = attr.field(default=None)
    reason: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ApprovalRunFacet")


@attr.define
class ProvenanceRunFacet(BridgeRunFacet):
    """What produced the run: the spec's content hash, the git commit (with where it came from) and the
    candidate the run trains."""

    specSha256: str | None = attr.field(default=None)
    gitCommit: str | None = attr.field(default=None)
    gitCommitSource: str | None = attr.field(default=None)
    airflowBridgeVersion: str = attr.field(default=__version__)
    candidateId: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ProvenanceRunFacet")


@attr.define
class ArtifactRunFacet(BridgeRunFacet):
    """The model artifact the run wrote or verified: location, sha256 and size in bytes."""

    uri: str
    sha256: str
    size: int

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ArtifactRunFacet")


@attr.define
class DeploymentRunFacet(BridgeRunFacet):
    """An alias move: deployment or rollback of ``model`` v``version`` behind ``alias``."""

    action: str  # deployed | rolled_back
    model: str
    version: int
    alias: str
    target: str
    endpoint: str | None = attr.field(default=None)
    previousVersion: int | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("DeploymentRunFacet")


@attr.define
class ExperimentJobFacet(BridgeJobFacet):
    """The experiment spec behind the job: name, model, owner, team and description."""

    experiment: str | None = attr.field(default=None)
    model: str | None = attr.field(default=None)
    owner: str | None = attr.field(default=None)
    team: str | None = attr.field(default=None)
    description: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ExperimentJobFacet")


@attr.define
class ModelVersionDatasetFacet(BridgeDatasetFacet):
    """A registered model version: what it is and the artifact it is made of."""

    model: str
    version: int
    estimator: str | None = attr.field(default=None)
    taskKind: str | None = attr.field(default=None)
    artifactUri: str | None = attr.field(default=None)
    artifactSha256: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ModelVersionDatasetFacet")


KEYS: dict[type, str] = {
    HyperparametersRunFacet: f"{PREFIX}hyperparameters",
    MetricsRunFacet: f"{PREFIX}metrics",
    GatesRunFacet: f"{PREFIX}gates",
    ChampionRunFacet: f"{PREFIX}champion",
    ApprovalRunFacet: f"{PREFIX}approval",
    ProvenanceRunFacet: f"{PREFIX}provenance",
    ArtifactRunFacet: f"{PREFIX}artifact",
    DeploymentRunFacet: f"{PREFIX}deployment",
    ExperimentJobFacet: f"{PREFIX}experiment",
    ModelVersionDatasetFacet: f"{PREFIX}modelVersion",
}


def keyed(*facets: Any) -> dict[str, Any]:
    """``{key: facet}`` for the custom facets given (None entries are skipped)."""
    return {KEYS[type(f)]: f for f in facets if f is not None}
