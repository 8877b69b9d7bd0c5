"""``build_dag``: a pure function from a validated spec (and team policy) to an Airflow DAG.

No I/O, no Connection or Variable lookups: everything the DAG needs comes from its arguments, so
the dag-processor and every worker build the same DAG cheaply, and a native DAG importer can
reuse this function later.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG

from airflow_bridge.actions.names import TaskId
from airflow_bridge.governance.loader import needs_approval
from airflow_bridge.governance.policy import OPEN_POLICY, ComputeTier, Policy
from airflow_bridge.operators.approve import ModelApprovalOperator
from airflow_bridge.operators.deploy import DeployModelOperator
from airflow_bridge.operators.links import alias_asset, model_asset
from airflow_bridge.operators.register import RegisterModelOperator
from airflow_bridge.operators.train import TrainModelOperator
from airflow_bridge.operators.validate import ValidateModelOperator
from airflow_bridge.spec.models import Experiment

if TYPE_CHECKING:
    from airflow_bridge.actions.training import TrainingRequest
    from airflow_bridge.actions.validation import ValidationRules
    from airflow_bridge.registry.records import PolicyBinding

BRIDGE_TAG = "airflow-bridge"


def build_dag(
    spec: Experiment,
    *,
    policy: Policy | None = None,
    source: str | None = None,
    spec_sha256: str = "",
    policy_source: str | None = None,
) -> DAG:
    """The DAG of one experiment: train → validate → register → [approve] → deploy.

    ``approve`` is inserted when the spec or the team policy requires approval for the alias.
    ``source`` (the spec's path) and ``spec_sha256`` annotate the DAG's docs and the registry.
    ``register`` binds ``policy`` (read from ``policy_source``) to the model: from then on it governs
    every move of the model's aliases, wherever the move comes from.
    """
    binding = _binding(policy, policy_source)
    policy = policy or OPEN_POLICY
    team = policy.team(spec.team)
    tier = policy.compute_tiers.get(spec.training.compute)
    registry_conn = spec.registry.conn_id
    with DAG(
        dag_id=spec.name,
        description=_first_line(spec.description) or f"airflow-bridge experiment {spec.name}",
        doc_md=dag_doc(spec, source, policy),
        schedule=spec.schedule,
        start_date=dt.datetime.combine(spec.start_date, dt.time(), tzinfo=dt.UTC),
        catchup=False,
        # +1: a run parked at its approval holds no worker; the next run may start and supersede it
        max_active_runs=(team.max_active_runs if team else 1) + (1 if _gated(spec, policy) else 0),
        max_active_tasks=team.max_active_tasks if team else 4,
        tags=sorted({BRIDGE_TAG, f"team:{spec.team}", *spec.tags}),
        default_args=_default_args(spec, team.pool if team else None),
        is_paused_upon_creation=True,
    ) as dag:
        lineage = lineage_context(spec, spec_sha256)
        placement: dict[str, Any] = {}
        if tier is not None:
            placement = {k: v for k, v in {"pool": tier.pool, "queue": tier.queue}.items() if v}
            placement["pool_slots"] = tier.pool_slots
        train: Any
        if tier is not None and tier.is_kubernetes:
            train = _kubernetes_train(spec, policy, tier, lineage, placement)
        else:
            train = TrainModelOperator.from_request(
                training_request(spec, policy),
                task_id=TaskId.TRAIN,
                doc_md=_train_doc(spec),
                lineage_context=lineage,
                **placement,
            )
        validate = ValidateModelOperator.from_rules(
            validation_rules(spec, policy),
            task_id=TaskId.VALIDATE,
            training=train.output,
            registry_conn_id=registry_conn,
            retries=0,
            doc_md="Computes metrics on the held-out split and applies every gate; failures are final.",
            lineage_context=lineage,
            candidate_retention=policy.candidate_retention_for(spec.team),
        )
        register = RegisterModelOperator(
            task_id=TaskId.REGISTER,
            training=train.output,
            validation=validate.output,
            model_name=spec.registered_model,
            registry_conn_id=registry_conn,
            description=spec.description,
            owner=spec.owner,
            team=spec.team,
            spec_sha256=spec_sha256,
            max_versions_per_day=team.max_versions_per_day if team else None,
            policy=binding,
            outlets=[model_asset(spec.registered_model, registry_conn)],
            doc_md="Records a new immutable version in the model registry.",
            lineage_context=lineage,
        )
        train >> validate >> register
        if spec.deployment is not None:
            upstream: Any = register
            approval = needs_approval(spec, policy)
            if approval:
                upstream = ModelApprovalOperator(
                    task_id=TaskId.APPROVE,
                    registration=register.output,
                    alias=spec.deployment.alias,
                    approvers=policy.approvers_for(spec.team, spec.owner),
                    author=spec.owner,
                    registry_conn_id=registry_conn,
                    response_timeout=dt.timedelta(hours=policy.approval_timeout_hours(spec.team)),
                    retries=0,
                    doc_md="Waits for an approver's decision in Required Actions; no approval fails it.",
                    lineage_context=lineage,
                )
                register >> upstream
            deploy = DeployModelOperator(
                task_id=TaskId.DEPLOY,
                registration=register.output,
                alias=spec.deployment.alias,
                target=spec.deployment.target,
                target_settings=spec.deployment.settings,
                registry_conn_id=registry_conn,
                outlets=[alias_asset(spec.registered_model, spec.deployment.alias, registry_conn)],
                doc_md=f"Points alias '{spec.deployment.alias}' at the new version.",
                lineage_context=lineage,
            )
            upstream >> deploy
    return dag


def _train_doc(spec: Experiment) -> str:
    """The train task's documentation: what it does, and the search when the spec has one."""
    search = spec.model.search
    if search is None:
        return "Reads the training data, checks it, splits it and fits the estimator."
    budget = " or ".join(
        f"{n} {unit}" for n, unit in ((search.budget.trials, "trials"), (search.budget.minutes, "minutes")) if n
    )
    return (
        f"Reads the training data, checks it and splits it; searches {', '.join(search.space)} ({budget}, "
        f"{search.metric} on {search.folds} folds of the training rows), then fits the estimator with the best trial's."
    )


def training_request(spec: Experiment, policy: Policy) -> TrainingRequest:
    """What the train task of ``spec`` trains, wherever it runs (a worker or a pod)."""
    from airflow_bridge.actions.training import TrainingRequest

    data = spec.data.training
    return TrainingRequest(
        model=spec.registered_model,
        data_uri=data.uri,
        target=data.target,
        estimator=spec.model.estimator,
        params=dict(spec.model.params),
        task_kind=spec.task_kind,
        features=data.features,
        data_format=data.format,
        data_conn_id=data.conn_id,
        test_size=spec.data.split.test_size,
        seed=spec.data.split.seed,
        stratify=spec.data.split.stratify,
        checks=spec.data.checks.model_dump(),
        allowed_estimators=dict(policy.estimators) or None,
        column_roles=dict(spec.data.columns),
        delimiter=data.delimiter,
        encoding=data.encoding,
        groups=list(spec.data.groups),
        cross_validation_folds=cv.folds if (cv := spec.validation.cross_validation) else None,
        decimal=data.decimal,
        missing_values=list(data.missing_values),
        search=search.model_dump(mode="json", exclude_none=True) if (search := spec.model.search) else None,
        # only with a search: a request without one stays readable by training images that predate the cap
        max_search_trials=getattr(policy.team(spec.team), "max_search_trials", None) if spec.model.search else None,
    )


def validation_rules(spec: Experiment, policy: Policy) -> ValidationRules:
    """The gates of ``spec``'s validate task: thresholds, data checks, champion, baseline, cross-validation
    gating, and the warnings the team's policy makes fail."""
    from airflow_bridge.actions.validation import ValidationRules

    champion, baseline = spec.validation.champion, spec.validation.baseline
    cv = spec.validation.cross_validation
    return ValidationRules(
        thresholds={k: v.model_dump() for k, v in spec.validation.thresholds.items()},
        checks=spec.data.checks.model_dump(),
        champion_metric=champion.metric if champion else None,
        min_improvement=champion.min_improvement if champion else 0.0,
        champion_alias=spec.deployment.alias if spec.deployment else "production",
        fail_on_warnings=tuple(policy.warnings_failing_for(spec.team)),
        baseline_metric=baseline.metric if baseline else None,
        baseline_min_improvement=baseline.min_improvement if baseline else 0.0,
        gate_on=cv.gate_on if cv else "holdout",
    )


def _kubernetes_train(
    spec: Experiment, policy: Policy, tier: ComputeTier, lineage: dict[str, str], placement: dict[str, Any]
) -> Any:
    """The train task on a Kubernetes tier: the same train action and XCom, in a pod of the tier.

    Imported here, not at the top: the cncf.kubernetes provider costs parse time only for specs that use it.
    """
    from airflow_bridge.operators.kubernetes_train import KubernetesTrainOperator

    return KubernetesTrainOperator(
        task_id=TaskId.TRAIN,
        compute_tier=tier,
        request=training_request(spec, policy),
        doc_md=f"Trains in a Kubernetes pod of compute tier '{spec.training.compute}' ({tier.image}).",
        lineage_context=lineage,
        **placement,
    )


def _binding(policy: Policy | None, source: str | None) -> PolicyBinding:
    """The policy the register task binds to the model (the open policy when the folder has none)."""
    from airflow_bridge.actions.registration import UNGOVERNED_SOURCE
    from airflow_bridge.registry.records import binding_for

    if policy is None or policy is OPEN_POLICY or source is None:
        policy, source = OPEN_POLICY, UNGOVERNED_SOURCE
    key = (id(policy), source)
    cached = _BINDINGS.get(key)
    if cached is None or cached[0] is not policy:  # one dump and hash per policy, not per spec
        cached = _BINDINGS[key] = (policy, binding_for(policy, source))
    return cached[1]


_BINDINGS: dict[tuple[int, str], tuple[Policy, PolicyBinding]] = {}


def _gated(spec: Experiment, policy: Policy) -> bool:
    """Whether the DAG gets an ``approve`` task."""
    return spec.deployment is not None and needs_approval(spec, policy)


def lineage_context(spec: Experiment, spec_sha256: str) -> dict[str, str]:
    """What the operators put in OpenLineage job and run facets: who owns the experiment and what it is."""
    return {
        "experiment": spec.name,
        "model": spec.registered_model,
        "owner": spec.owner,
        "team": spec.team,
        "description": spec.description.strip(),
        "spec_sha256": spec_sha256,
    }


def _default_args(spec: Experiment, pool: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": spec.owner,
        "retries": spec.training.retries,
        "retry_delay": dt.timedelta(seconds=30),
        "execution_timeout": dt.timedelta(minutes=spec.training.timeout_minutes),
    }
    if pool:
        args["pool"] = pool
    return args


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def dag_doc(spec: Experiment, source: str | None, policy: Policy) -> str:
    """The DAG's Markdown docs: the spec's description, then what the pipeline does."""
    named = [f"{m} {_bounds(t.min, t.max)}" for m, t in spec.validation.thresholds.items()]
    if spec.validation.baseline:
        named.append(f"{spec.validation.baseline.metric} ≥ dummy baseline + {spec.validation.baseline.min_improvement}")
    named += [f"no {code} warning" for code in policy.warnings_failing_for(spec.team)]
    gates = ", ".join(named) or "none"
    deployment = "none"
    if spec.deployment:
        deployment = f"{spec.deployment.target} alias `{spec.deployment.alias}`"
        if needs_approval(spec, policy):
            deployment += f" after approval by {', '.join(policy.approvers_for(spec.team, spec.owner))}"
    rows = [
        ("Model", f"`{spec.registered_model}` ({spec.task_kind})"),
        ("Estimator", f"`{spec.model.estimator}`"),
        ("Training data", f"`{spec.data.training.uri}` → target `{spec.data.training.target}`"),
        ("Gates", gates),
        ("Deployment", deployment),
        ("Owner / team", f"{spec.owner} / {spec.team}"),
    ]
    if source:
        rows.append(("Spec file", f"`{source}`"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    description = spec.description.strip() or "_No description in the spec._"
    return f"{description}\n\n| | |\n|---|---|\n{table}\n\n_Generated by airflow-bridge from the spec file._\n"


def _bounds(low: float | None, high: float | None) -> str:
    parts = [f"≥ {low}" if low is not None else "", f"≤ {high}" if high is not None else ""]
    return " and ".join(p for p in parts if p)
