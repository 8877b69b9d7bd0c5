"""Typed results of the actions, with one XCom form each.

Operators return ``result.to_xcom()`` (plain JSON, readable in the Airflow UI) and read upstream
results with ``Type.from_xcom(value)``, which also accepts the object itself and says clearly what
is wrong with anything else (engineers wire these by hand in their own DAGs).

The payloads a task hands to another (and a deferred task to itself) carry ``xcom_version``
(:data:`XCOM_VERSION`); their shapes are documented in docs/operators.md. A payload without it was
written by a release before versioning and has the same keys, so a run queued before an upgrade still
completes; a payload from a newer release than this worker's is refused with what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.exceptions import BridgeError
from airflow_bridge.ml.gates import ChampionComparison, GateResult, champion_of, gates_of

XCOM_VERSION = 1
"""The shape of the payloads tasks exchange (docs/operators.md, "XCom shapes")."""
VERSION_KEY = "xcom_version"

_T = TypeVar("_T", bound="_XComForm")


class _XComForm:
    """``to_xcom``/``from_xcom`` for frozen dataclasses whose fields are JSON values, refs or results."""

    versioned: ClassVar[bool] = False
    """Whether the payload is one a task hands on (it carries ``xcom_version``)."""

    def to_xcom(self) -> dict[str, Any]:
        found = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {VERSION_KEY: XCOM_VERSION, **found} if self.versioned else found

    @classmethod
    def from_xcom(cls: type[_T], value: Any, what: str | None = None) -> _T:
        if isinstance(value, cls):
            return value
        label = what or cls.__name__
        if not isinstance(value, Mapping):
            raise BridgeError(
                f"{label} must be the XCom of the upstream airflow-bridge task (a {cls.__name__}), "
                f"got {type(value).__name__}"
            )
        found = dict(value)
        written = found.pop(VERSION_KEY, 0)
        if not isinstance(written, int) or written > XCOM_VERSION:
            raise BridgeError(
                f"{label} was written by a newer airflow-bridge (XCom shape {written}; this worker reads up to "
                f"{XCOM_VERSION}): upgrade airflow-bridge on every worker and scheduler, then clear the task"
            )
        try:
            return cls._parse(found)
        except (KeyError, TypeError, ValueError) as exc:
            raise BridgeError(f"{label} is not a {cls.__name__} XCom ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _parse(cls: type[_T], value: dict[str, Any]) -> _T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in value.items() if k in names})


def _plain(value: Any) -> Any:
    """``value`` as JSON: typed results through their own JSON form, containers element by element."""
    if isinstance(value, _XComForm):
        return {k: v for k, v in value.to_xcom().items() if k != VERSION_KEY}
    if isinstance(value, GateResult | ChampionComparison):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def artifact_from(value: Mapping[str, Any] | ArtifactRef) -> ArtifactRef:
    if isinstance(value, ArtifactRef):
        return value
    return ArtifactRef(str(value["uri"]), str(value["sha256"]), int(value["size"]), value.get("conn_id"))


@dataclass(frozen=True)
class DataSummary(_XComForm):
    """The training table as read: where, its fingerprint, profile and how it was split.

    Only ``uri`` is required, so an engineer's own training step can hand a short summary to
    ``RegisterModelOperator``; ``TrainModelOperator`` fills every field.
    """

    uri: str
    format: str = ""
    sha256: str = ""
    size: int = 0
    rows: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    null_fraction: dict[str, float] = field(default_factory=dict)
    used_columns: list[str] = field(default_factory=list)
    target: str = ""
    features: list[str] = field(default_factory=list)
    train_rows: int = 0
    test_rows: int = 0
    test_size: float | None = None
    seed: int | None = None
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each column's role (numeric, categorical, datetime, text, ignore, target) and why."""
    missing_target_rows: int = 0
    """Rows dropped because their target was missing."""
    environment: dict[str, Any] = field(default_factory=dict)
    """Where the model was fitted: python, platform, package versions, thread pools
    (``airflow_bridge.ml.environment``); what can still make a rerun of the same spec and data differ."""
    groups: list[str] = field(default_factory=list)
    """The spec's ``data.groups``: columns the report breaks the held-out metrics down by."""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """A small profile of each used column (quantiles or top values, ``airflow_bridge.report.drift``): what a
    later version's report compares its data with to show drift, without the old data."""
    duplicates_across_split: int = 0
    """Held-out rows identical (features and target) to some training row: scored on seen answers."""

    def for_registry(self) -> dict[str, Any]:
        """What the registry keeps about the data (null fractions stay in the report)."""
        return {k: v for k, v in self.to_xcom().items() if k != "null_fraction"}


@dataclass(frozen=True)
class SearchTrial:
    """One trial of a hyperparameter search: the parameters it drew and how it ended."""

    number: int
    params: dict[str, Any]
    value: float | None
    """The mean of the metric over the folds (None: the trial failed or was pruned)."""
    state: str
    """COMPLETE, PRUNED (stopped early: worse than the median) or FAIL (it raised; see ``error``)."""
    duration_seconds: float | None = None
    error: str = ""


@dataclass(frozen=True)
class SearchSummary(_XComForm):
    """A hyperparameter search (``model.search``): every trial, the best one, and how it was run."""

    metric: str
    direction: str
    """maximize or minimize (from the metric: errors such as mae are minimised)."""
    folds: int
    sampler: str
    pruner: str
    seed: int
    budget: dict[str, Any]
    """``{trials, minutes}`` as the spec set them (None: no limit of that kind)."""
    stopped_by: str
    """What ended the search: ``trials`` (reproducible) or ``minutes`` (depends on the machine's speed)."""
    space: dict[str, Any]
    trials: list[SearchTrial]
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    """The searched parameters of the best trial; merged over the spec's fixed params, they are the candidate's."""
    importance: dict[str, float] = field(default_factory=dict)
    """Each searched parameter's share of the metric's variance over the trials (Optuna's fANOVA, seeded)."""
    library: str = ""

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> SearchSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in value.items() if k in names}
        return cls(
            **found | {"trials": [t if isinstance(t, SearchTrial) else SearchTrial(**t) for t in value["trials"]]}
        )

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.state == state)


@dataclass(frozen=True)
class TrainingResult(_XComForm):
    """A fitted model: its artifact and held-out split (content-addressed), parameters and data."""

    versioned = True

    model: str
    estimator: str
    task_kind: str
    artifact: ArtifactRef
    data: DataSummary
    params: dict[str, Any] = field(default_factory=dict)
    effective_params: dict[str, Any] = field(default_factory=dict)
    holdout: ArtifactRef | None = None
    """The held-out split validate scores on (None when an engineer's own step trained the model)."""
    checks: list[GateResult] = field(default_factory=list)
    """The data checks, all passed (a failed check stops training)."""
    baseline: dict[str, Any] | None = None
    """The dummy baseline (most frequent class / mean, fitted on the training rows) scored on the held-out
    rows: ``{strategy, fitted_on, metrics}`` (``airflow_bridge.ml.uncertainty.baseline``)."""
    cross_validation: dict[str, Any] | None = None
    """k-fold cross-validation on the training rows when the spec asks: ``{method, folds, metrics: {name:
    {mean, std, bound}}}``."""
    search: SearchSummary | None = None
    """The hyperparameter search when the spec asks for one (``model.search``); ``params`` hold its best trial's."""

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> TrainingResult:
        return cls(
            model=str(value["model"]),
            estimator=str(value["estimator"]),
            task_kind=str(value["task_kind"]),
            artifact=artifact_from(value["artifact"]),
            data=DataSummary.from_xcom(value["data"], "training data"),
            params=dict(value.get("params") or {}),
            effective_params=dict(value.get("effective_params") or {}),
            holdout=artifact_from(value["holdout"]) if value.get("holdout") else None,
            checks=gates_of(value.get("checks")),
            baseline=dict(value["baseline"]) if value.get("baseline") else None,
            cross_validation=dict(value["cross_validation"]) if value.get("cross_validation") else None,
            search=SearchSummary.from_xcom(value["search"], "search") if value.get("search") else None,
        )


@dataclass(frozen=True)
class ValidationReport(_XComForm):
    """Metrics on the held-out split, every gate with its value and bounds, and the champion comparison."""

    versioned = True
    model: str
    metrics: dict[str, Any]
    gates: list[GateResult]
    champion: ChampionComparison | None = None
    passed: bool = False
    report: dict[str, Any] | None = None
    """The model report's artifacts and key figures (``airflow_bridge.report.store_report``), if one was made."""
    warnings: list[dict[str, Any]] = field(default_factory=list)
    """Leakage and sanity warnings (``airflow_bridge.ml.sanity``): ``{code, message, column, failing}``."""
    baseline: dict[str, Any] | None = None
    """The dummy baseline's metrics on the same held-out rows (from the training result)."""
    uncertainty: dict[str, Any] | None = None
    """Bootstrap intervals of the held-out metrics, or the cross-validation summary when the spec asks for it."""
    candidate_id: str | None = None
    """The candidate this report was recorded as (``airflow_bridge.actions.candidates``), when it was."""

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> ValidationReport:
        names = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in value.items() if k in names}
        return cls(**found | {"gates": gates_of(value["gates"]), "champion": champion_of(value.get("champion"))})

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    @property
    def champion_failed(self) -> bool:
        return self.champion is not None and not self.champion.passed

    def failure_message(self) -> str:
        """Why the model may not move forward: every failed gate, and the champion line."""
        from airflow_bridge.ml.gates import format_gate_table

        failed = self.failed_gates
        reasons = [f"{len(failed)} of {len(self.gates)} gate(s) failed"] if failed else []
        if self.champion is not None and self.champion_failed:
            reasons.append(f"it does not beat the live v{self.champion.champion_version} by enough")
        lines = [f"Validation failed for {self.model}: {'; '.join(reasons)}:", format_gate_table(self.gates)]
        if self.champion is not None and self.champion_failed:
            lines.append(f"  FAIL  {self.champion.line()}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Registration(_XComForm):
    """A registered version: what downstream approval and deployment act on."""

    versioned = True

    model: str
    version: int
    artifact: ArtifactRef
    estimator: str = ""
    task_kind: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> Registration:
        artifact = value.get("artifact")
        return cls(
            model=str(value["model"]),
            version=int(value["version"]),
            artifact=artifact_from(artifact) if artifact else ArtifactRef("", "", 0),
            estimator=str(value.get("estimator") or ""),
            task_kind=str(value.get("task_kind") or ""),
            metrics=dict(value.get("metrics") or {}),
        )


@dataclass(frozen=True)
class ApprovalDecision(_XComForm):
    """An answer to an approval request as recorded in the audit trail."""

    model: str
    version: int
    alias: str
    decision: str
    """granted, rejected, refused, timed_out or superseded"""
    approver: str | None
    reason: str = ""
    seq: int | None = None

    @property
    def granted(self) -> bool:
        return self.decision == "granted"


@dataclass(frozen=True)
class DeploymentResult(_XComForm):
    """An alias moved (deployed, promoted or rolled back), and the approval that allowed it."""

    versioned = True

    model: str
    version: int
    alias: str
    target: str
    endpoint: str
    previous_version: int | None
    action: str
    actor: str
    approval: ApprovalDecision | None = None
    policy_override: bool = False

    @classmethod
    def _parse(cls, value: dict[str, Any]) -> DeploymentResult:
        approval = value.get("approval")
        fields = {k: v for k, v in value.items() if k != "approval"}
        return cls(**fields, approval=ApprovalDecision.from_xcom(approval) if approval else None)
