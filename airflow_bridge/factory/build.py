"""``build_dag``: a pure function from a validated spec to an Airflow DAG (no I/O, no lookups)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG

from airflow_bridge.operators.deploy import DeployModelOperator
from airflow_bridge.operators.register import RegisterModelOperator
from airflow_bridge.operators.train import TrainModelOperator
from airflow_bridge.operators.validate import ValidateModelOperator
from airflow_bridge.spec.models import Experiment

BRIDGE_TAG = "airflow-bridge"
TASK_ORDER = ("train", "validate", "register", "deploy")


def build_dag(spec: Experiment, *, source: str | None = None, spec_sha256: str = "") -> DAG:
    """The DAG of one experiment: train → validate → register → deploy (when the spec deploys).

    ``source`` (the spec's path) and ``spec_sha256`` only annotate the DAG's docs and the registry.
    """
    training_data = spec.data.training
    with DAG(
        dag_id=spec.name,
        description=_first_line(spec.description) or f"airflow-bridge experiment {spec.name}",
        doc_md=dag_doc(spec, source),
        schedule=spec.schedule,
        start_date=dt.datetime.combine(spec.start_date, dt.time(), tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        tags=sorted({BRIDGE_TAG, f"team:{spec.team}", *spec.tags}),
        default_args=_default_args(spec),
        is_paused_upon_creation=True,
    ) as dag:
        train = TrainModelOperator(
            task_id="train",
            model_name=spec.registered_model,
            data_uri=training_data.uri,
            data_format=training_data.format,
            data_conn_id=training_data.conn_id,
            target=training_data.target,
            features=training_data.features,
            estimator=spec.model.estimator,
            params=spec.model.params,
            task_kind=spec.task_kind,
            test_size=spec.data.split.test_size,
            seed=spec.data.split.seed,
            stratify=spec.data.split.stratify,
            checks=spec.data.checks.model_dump(),
            doc_md="Reads the training data, checks it, splits it and fits the estimator.",
        )
        champion = spec.validation.champion
        validate = ValidateModelOperator(
            task_id="validate",
            training=train.output,
            thresholds={k: v.model_dump() for k, v in spec.validation.thresholds.items()},
            checks=spec.data.checks.model_dump(),
            champion_metric=champion.metric if champion else None,
            min_improvement=champion.min_improvement if champion else 0.0,
            champion_alias=spec.deployment.alias if spec.deployment else "production",
            registry_conn_id=spec.registry.conn_id,
            retries=0,
            doc_md="Computes metrics on the held-out split and applies every gate; failures are final.",
        )
        register = RegisterModelOperator(
            task_id="register",
            training=train.output,
            validation=validate.output,
            model_name=spec.registered_model,
            registry_conn_id=spec.registry.conn_id,
            description=spec.description,
            owner=spec.owner,
            team=spec.team,
            spec_sha256=spec_sha256,
            doc_md="Records a new immutable version in the model registry.",
        )
        train >> validate >> register
        if spec.deployment is not None:
            deploy = DeployModelOperator(
                task_id="deploy",
                registration=register.output,
                alias=spec.deployment.alias,
                target=spec.deployment.target,
                registry_conn_id=spec.registry.conn_id,
                doc_md=f"Points alias '{spec.deployment.alias}' at the new version.",
            )
            register >> deploy
    return dag


def _default_args(spec: Experiment) -> dict[str, Any]:
    return {
        "owner": spec.owner,
        "retries": spec.training.retries,
        "retry_delay": dt.timedelta(seconds=30),
        "execution_timeout": dt.timedelta(minutes=spec.training.timeout_minutes),
    }


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def dag_doc(spec: Experiment, source: str | None) -> str:
    """The DAG's Markdown docs: the spec's description, then what the pipeline does."""
    rows = [
        ("Model", f"`{spec.registered_model}` ({spec.task_kind})"),
        ("Estimator", f"`{spec.model.estimator}`"),
        ("Training data", f"`{spec.data.training.uri}` → target `{spec.data.training.target}`"),
        (
            "Gates",
            ", ".join(f"{m} {_bounds(t.min, t.max)}" for m, t in spec.validation.thresholds.items()) or "none",
        ),
        (
            "Deployment",
            f"{spec.deployment.target} alias `{spec.deployment.alias}`" if spec.deployment else "none",
        ),
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
