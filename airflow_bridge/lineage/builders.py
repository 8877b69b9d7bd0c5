"""Build OpenLineage datasets and facets from what the operators already produce (their XComs).

Imports OpenLineage: only the operators' ``get_openlineage_facets_*`` methods import this module.
Values are cleaned for JSON: NaN and infinities become null, numpy scalars plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    JobFacet,
    RunFacet,
    dataset_version_dataset,
    documentation_job,
    input_statistics_input_dataset,
    job_type_job,
    ownership_job,
    schema_dataset,
)

from airflow_bridge.lineage import facets as bf
from airflow_bridge.lineage.naming import DatasetId, model_dataset_name, storage_dataset
from airflow_bridge.lineage.provenance import git_commit
from airflow_bridge.ml.gates import ChampionComparison, GateResult, gates_of

if TYPE_CHECKING:
    from airflow_bridge.actions.results import Registration, TrainingResult
    from airflow_bridge.artifacts import ArtifactRef

PRODUCER = bf.PRODUCER


@dataclass
class LineageParts:
    """What one operator contributes to an event (the mixin adds provenance and job facets)."""

    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)
    run_facets: dict[str, RunFacet] = field(default_factory=dict)


def clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats → None, numpy scalars → Python numbers, tuples → lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [clean(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    return clean(item()) if callable(item) else str(value)


# -- datasets ---------------------------------------------------------------------------------------


def _version(version: str) -> dataset_version_dataset.DatasetVersionDatasetFacet:
    return dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER)


def _schema(
    columns: Mapping[str, Any], only: Sequence[str] | None = None, roles: Mapping[str, Any] | None = None
) -> schema_dataset.SchemaDatasetFacet:
    """Column names and types; with ``roles``, each field's description says how the model uses it and why."""
    names = list(only) if only else list(columns)
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=n, type=str(columns.get(n, "")) or None, description=_role_text((roles or {}).get(n))
        )
        for n in names
    ]
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def _role_text(role: Any) -> str | None:
    if not isinstance(role, Mapping) or not role.get("role"):
        return None
    return f"{role['role']}: {role.get('reason') or ''}".rstrip(": ")


def data_input(data: Mapping[str, Any]) -> InputDataset:
    """The training table: schema (from the data profile), version (its sha256), rows and bytes read."""
    ident = storage_dataset(str(data["uri"]))
    facets: dict[str, DatasetFacet] = {}
    if data.get("columns"):
        facets["schema"] = _schema(data["columns"], roles=data.get("roles"))
    if data.get("sha256"):
        facets["version"] = _version(str(data["sha256"]))
    input_facets: dict[str, Any] = {}
    rows, size = data.get("rows") or None, data.get("size") or None  # 0: not known (a short summary)
    if rows is not None or size is not None:
        input_facets["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
            rowCount=clean(rows), size=clean(size), producer=PRODUCER
        )
    return InputDataset(ident.namespace, ident.name, facets=facets, inputFacets=input_facets)


@overload
def file_dataset(
    ref: ArtifactRef, *, output: Literal[True], columns: Mapping[str, Any] | None = ..., only: Sequence[str] = ...
) -> OutputDataset: ...
@overload
def file_dataset(
    ref: ArtifactRef, *, output: Literal[False], columns: Mapping[str, Any] | None = ..., only: Sequence[str] = ...
) -> InputDataset: ...
def file_dataset(
    ref: ArtifactRef, *, output: bool, columns: Mapping[str, Any] | None = None, only: Sequence[str] = ()
) -> InputDataset | OutputDataset:
    """A content-addressed artifact (model or held-out split), versioned by its sha256."""
    ident = storage_dataset(ref.uri)
    facets: dict[str, DatasetFacet] = {"version": _version(ref.sha256)}
    if columns:
        facets["schema"] = _schema(columns, only)
    cls = OutputDataset if output else InputDataset
    return cls(ident.namespace, ident.name, facets=facets)


@overload
def model_dataset(
    namespace: str, model: str, version: int | None, *, output: Literal[True], about: Registration | None = ...
) -> OutputDataset: ...
@overload
def model_dataset(
    namespace: str, model: str, version: int | None, *, output: Literal[False], about: Registration | None = ...
) -> InputDataset: ...
def model_dataset(
    namespace: str, model: str, version: int | None, *, output: bool, about: Registration | None = None
) -> InputDataset | OutputDataset:
    """``model/<name>`` in the registry's namespace; the version number is the dataset version."""
    facets: dict[str, DatasetFacet] = {}
    if version is not None:
        facets["version"] = _version(str(version))
        artifact = about.artifact if about is not None and about.artifact.uri else None
        facets[bf.KEYS[bf.ModelVersionDatasetFacet]] = bf.ModelVersionDatasetFacet(
            model=model,
            version=int(version),
            estimator=(about.estimator if about else None) or None,
            taskKind=(about.task_kind if about else None) or None,
            artifactUri=artifact.uri if artifact else None,
            artifactSha256=artifact.sha256 if artifact else None,
        )
    cls = OutputDataset if output else InputDataset
    return cls(namespace, model_dataset_name(model), facets=facets)


def served_dataset(ident: DatasetId, version: int | None) -> OutputDataset:
    """The alias (or endpoint) a deployment points at the version."""
    facets: dict[str, DatasetFacet] = {"version": _version(str(version))} if version is not None else {}
    return OutputDataset(ident.namespace, ident.name, facets=facets)


def training_datasets(training: TrainingResult, *, holdout: bool) -> list[InputDataset]:
    """What the train task produced, as inputs of validate/register: data, model artifact, held-out split."""
    data = training.data
    found: list[InputDataset] = [data_input(data.to_xcom()), file_dataset(training.artifact, output=False)]
    if holdout and training.holdout is not None:
        used = [*data.features, data.target]
        found.append(file_dataset(training.holdout, output=False, columns=data.columns, only=used))
    return found


# -- run facets -------------------------------------------------------------------------------------


def hyperparameters(
    estimator: str,
    task_kind: str,
    params: Mapping[str, Any],
    *,
    effective_params: Mapping[str, Any] | None = None,
    test_size: float | None = None,
    seed: int | None = None,
) -> bf.HyperparametersRunFacet:
    split = {"testSize": test_size, "seed": seed}
    return bf.HyperparametersRunFacet(
        estimator=estimator,
        taskKind=task_kind,
        params=clean(dict(params)),
        effectiveParams=clean(dict(effective_params)) if effective_params is not None else None,
        split=clean({k: v for k, v in split.items() if v is not None}) or None,
    )


def trained_hyperparameters(training: TrainingResult) -> bf.HyperparametersRunFacet:
    return hyperparameters(
        training.estimator,
        training.task_kind,
        training.params,
        effective_params=training.effective_params,
        test_size=training.data.test_size,
        seed=training.data.seed,
    )


def metrics(values: Mapping[str, Any]) -> bf.MetricsRunFacet:
    return bf.MetricsRunFacet(metrics={k: v for k, v in clean(values).items() if isinstance(v, int | float)})


def gates(results: Sequence[GateResult | Mapping[str, Any]]) -> bf.GatesRunFacet:
    typed = gates_of(results)
    rows = [{k: v for k, v in clean(g.to_json()).items() if v is not None} for g in typed]
    return bf.GatesRunFacet(passed=all(g.passed for g in typed), gates=rows)


def champion(result: ChampionComparison | Mapping[str, Any]) -> bf.ChampionRunFacet:
    c = ChampionComparison.from_json(result)
    return bf.ChampionRunFacet(
        metric=c.metric,
        passed=c.passed,
        minImprovement=c.min_improvement,
        alias=c.alias,
        candidate=clean(c.candidate),
        champion=clean(c.champion),
        championVersion=c.champion_version,
        improvement=clean(c.improvement),
        note=c.note,
    )


def artifact(ref: ArtifactRef) -> bf.ArtifactRunFacet:
    return bf.ArtifactRunFacet(uri=ref.uri, sha256=ref.sha256, size=ref.size)


def provenance(spec_sha256: str | None, task_instance: Any = None, model: str | None = None) -> bf.ProvenanceRunFacet:
    """The spec, the commit and, once the run is known (COMPLETE and FAIL events), the candidate of ``model``
    this run trains (``airflow-bridge models candidates``)."""
    from airflow_bridge.actions.candidates import candidate_id
    from airflow_bridge.registry.records import RunRef

    commit = git_commit(task_instance)
    run = RunRef(getattr(task_instance, "dag_id", None), getattr(task_instance, "run_id", None))
    return bf.ProvenanceRunFacet(
        specSha256=spec_sha256 or None,
        gitCommit=commit.sha if commit else None,
        gitCommitSource=commit.source if commit else None,
        candidateId=candidate_id(model, run) if model and run.dag_id and run.run_id else None,
    )


# -- job facets -------------------------------------------------------------------------------------


def job_facets(context: Mapping[str, Any], task_owner: str | None) -> dict[str, JobFacet]:
    """Ownership (owner + team), documentation (the spec's description), job type and the experiment.

    The provider replaces ``ownership``, ``documentation`` and ``jobType`` with the task's owner and docs
    when it builds the event; ``airflowBridge_experiment`` keeps owner, team and description regardless.
    """
    owner = context.get("owner") or (task_owner if task_owner and task_owner != "airflow" else None)
    team = context.get("team")
    found: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="AIRFLOW", jobType="TASK", producer=PRODUCER
        )
    }
    owners = [ownership_job.Owner(name=f"user:{owner}", type="OWNER")] if owner else []
    if team:
        owners.append(ownership_job.Owner(name=f"team:{team}", type="TEAM"))
    if owners:
        found["ownership"] = ownership_job.OwnershipJobFacet(owners=owners, producer=PRODUCER)
    description = str(context.get("description") or "").strip()
    if description:
        found["documentation"] = documentation_job.DocumentationJobFacet(
            description=description, contentType="text/markdown", producer=PRODUCER
        )
    if any(context.get(k) for k in ("experiment", "model", "owner", "team", "description")):
        found[bf.KEYS[bf.ExperimentJobFacet]] = bf.ExperimentJobFacet(
            experiment=context.get("experiment") or None,
            model=context.get("model") or None,
            owner=owner,
            team=team or None,
            description=description or None,
        )
    return found
