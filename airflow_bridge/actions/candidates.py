"""Candidates: every model a run trains and validates is recorded with its gates, passed or not.

The validate task records its candidate before a failed gate stops the run, so a candidate that failed
a gate, or was rejected at approval, stays comparable beside the others (``airflow-bridge models
candidates``, ``models compare MODEL c-… 3``, the Models page). Only a candidate that passed becomes a
version; its fate is then the version's (live, pending, rejected, superseded...). Candidates that never
became a version are pruned under the team policy's ``candidate_retention``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.report.fate import Fate

if TYPE_CHECKING:
    from airflow_bridge.actions.results import TrainingResult, ValidationReport
    from airflow_bridge.governance.policy import CandidateRetention
    from airflow_bridge.registry.records import Candidate, RunRef
    from airflow_bridge.registry.store import ModelRegistry


def candidate_id(model: str, run: RunRef | None) -> str:
    """``c-`` and 10 hex digits of the model and its Airflow run (the same for every task and try of one
    run, so lineage events and a retried validate name the same candidate); random outside Airflow."""
    seed = f"{model}\n{run.dag_id}\n{run.run_id}" if run is not None and run.dag_id and run.run_id else uuid.uuid4().hex
    return "c-" + hashlib.sha256(seed.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class RecordedCandidate:
    """What recording a candidate did: its id and how many old candidates the retention pruned."""

    candidate_id: str
    pruned: int


def record_candidate(
    training: TrainingResult,
    report: ValidationReport,
    registry: ModelRegistry,
    *,
    run: RunRef | None,
    actor: str,
    spec_sha256: str = "",
    retention: CandidateRetention | None = None,
) -> RecordedCandidate:
    """Record the candidate ``training`` produced with ``report``'s metrics and gates (passed or not)."""
    from airflow_bridge.actions.registration import validation_record
    from airflow_bridge.governance.policy import CandidateRetention
    from airflow_bridge.registry.records import Candidate, RunRef

    kept = retention or CandidateRetention()
    found = Candidate(
        candidate_id=candidate_id(training.model, run),
        model=training.model,
        run=run or RunRef(),
        spec_sha256=spec_sha256,
        estimator=training.estimator,
        task_kind=training.task_kind,
        params=dict(training.params),
        metrics=dict(report.metrics),
        validation=validation_record(report),
        data=training.data.for_registry(),
        artifact_sha256=training.artifact.sha256,
        artifact_uri=training.artifact.uri,
        passed=report.passed,
        recorded_by=actor,
        created_at=dt.datetime.now(dt.UTC),
        search=_search_record(training),
    )
    pruned = registry.record_candidate(found, keep_last=kept.keep_last, keep_days=kept.keep_days)
    return RecordedCandidate(found.candidate_id, pruned)


def _search_record(training: TrainingResult) -> dict[str, Any] | None:
    """The search's summary (trials, best) as the candidate keeps it, when the candidate came from a search."""
    return training.search.to_xcom() if training.search is not None else None


def candidate_fates(registry: ModelRegistry, model: str, found: Sequence[Candidate]) -> dict[str, Fate]:
    """Each candidate's fate: its version's (live, pending, rejected by X, superseded...) once registered;
    else failed gate(s) X, or passed and not registered."""
    from airflow_bridge.report.fate import model_fates

    try:
        versions = model_fates(registry, model) if any(c.version is not None for c in found) else {}
    except NotFoundError:
        versions = {}
    fates: dict[str, Fate] = {}
    for candidate in found:
        if candidate.version is not None:
            fate = versions.get(candidate.version) or Fate("registered", "registered")
            fates[candidate.candidate_id] = Fate(fate.state, f"v{candidate.version}: {fate.text}")
        else:
            fates[candidate.candidate_id] = unregistered_fate(candidate)
    return fates


def unregistered_fate(candidate: Candidate) -> Fate:
    """The fate of a candidate that never became a version: the gates it failed, or passed and not registered."""
    from airflow_bridge.ml.gates import gates_of
    from airflow_bridge.report.fate import candidate_fate

    if candidate.passed:
        return Fate("unregistered", "passed every gate, not registered")
    failing = [g.name for g in gates_of(candidate.validation.get("gates")) if not g.passed]
    champion = candidate.validation.get("champion") or {}
    if champion and not champion.get("passed", True):
        failing.append("champion")
    return candidate_fate(False, failing)
