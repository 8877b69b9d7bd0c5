"""Baseline of ``local_run.py``: the work of ``airflow-bridge run`` as five plain PythonOperators.

Run as a fresh process (``python _local_run_baseline.py``) with ``AIRFLOW_HOME`` pointing at an
already-migrated SQLite metadata DB and this file in the dags folder (``dag.test()`` syncs the
bundle, so the DAG must be findable there). ``BASELINE_SPEC`` names the example spec; the DAG reads
its CSV, fits the same scikit-learn ``Pipeline`` the product fits (``infer_roles`` on the same
columns → ``build_model_pipeline``: the spec's column roles, then ``skrub.tabular_pipeline``), scores
it on the same held-out split, writes the model file and a result file. No registry, no lineage
transport, no progress events: a bare ``dag.test()`` of the same work. Airflow's log goes to
``$BASELINE_WORK/airflow.log``, as ``run`` sends it to the run folder.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

SPEC = Path(os.environ.get("BASELINE_SPEC", "dag_specs/diabetes_progression.yaml")).resolve()
WORK = Path(os.environ.get("BASELINE_WORK", "/tmp/airflow-bridge-baseline"))
_spec: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
DAG_ID = f"baseline_{_spec['name']}"
_REGRESSORS = {"Ridge", "Lasso", "LinearRegression", "RandomForestRegressor", "HistGradientBoostingRegressor"}


def _settings() -> dict[str, Any]:
    data = _spec["data"]
    estimator = _spec["model"]["estimator"]
    return {
        "csv": str((SPEC.parent / data["training"]["uri"]).resolve()),
        "target": data["training"]["target"],
        "columns": dict(data.get("columns") or {}),
        "test_size": data["split"]["test_size"],
        "seed": data["split"]["seed"],
        "estimator": estimator,
        "params": dict(_spec["model"].get("params") or {}),
        "regression": estimator.rpartition(".")[2] in _REGRESSORS,
        "metrics": sorted(_spec["validation"]["thresholds"]),
        "work": str(WORK),
    }


def read_data(s: dict[str, Any]) -> None:
    """Read the CSV, drop rows without a target, infer the column roles, split with the seed."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from airflow_bridge.ml.columns import infer_roles

    frame = pd.read_csv(s["csv"])
    frame = frame[frame[s["target"]].notna()].reset_index(drop=True)
    roles = infer_roles(frame, s["target"], None, s["columns"])
    y = frame[s["target"]]
    train, test = train_test_split(
        frame, test_size=s["test_size"], random_state=s["seed"], stratify=None if s["regression"] else y
    )
    pd.to_pickle({"roles": roles, "train": train, "test": test}, Path(s["work"]) / "data.pkl")


def fit(s: dict[str, Any]) -> None:
    """Fit the product's pipeline (same roles step, same skrub tail, same estimator and parameters)."""
    import importlib

    import joblib
    import pandas as pd

    from airflow_bridge.ml.columns import feature_columns
    from airflow_bridge.ml.estimator import build_model_pipeline

    data = pd.read_pickle(Path(s["work"]) / "data.pkl")
    module, _, name = s["estimator"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    params = dict(s["params"])
    if "random_state" in cls().get_params():
        params.setdefault("random_state", s["seed"])
    pipeline = build_model_pipeline(cls(**params), data["roles"])
    features = feature_columns(data["roles"])
    pipeline.fit(data["train"][features], data["train"][s["target"]])
    joblib.dump(pipeline, Path(s["work"]) / "model.tmp.joblib")


def score(s: dict[str, Any]) -> dict[str, float]:
    """The spec's metrics on the held-out split."""
    import joblib
    import pandas as pd
    from sklearn import metrics

    from airflow_bridge.ml.columns import feature_columns

    data = pd.read_pickle(Path(s["work"]) / "data.pkl")
    model = joblib.load(Path(s["work"]) / "model.tmp.joblib")
    x, y = data["test"][feature_columns(data["roles"])], data["test"][s["target"]]
    predicted = model.predict(x)
    found: dict[str, float] = {}
    for name in s["metrics"]:
        if name == "roc_auc":
            found[name] = float(metrics.roc_auc_score(y, model.predict_proba(x)[:, 1]))
        elif name == "mae":
            found[name] = float(metrics.mean_absolute_error(y, predicted))
        else:
            found[name] = float(getattr(metrics, f"{name}_score")(y, predicted))
    return found


def save_model(s: dict[str, Any]) -> str:
    """Write the model file, content-addressed like the product's artifact store."""
    import hashlib
    import shutil

    source = Path(s["work"]) / "model.tmp.joblib"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = Path(s["work"]) / "models" / f"{digest}.joblib"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return str(target)


def write_result(s: dict[str, Any], metrics: dict[str, float], model: str) -> None:
    """The result file: metrics and where the model is."""
    import json

    result = {"dag_id": DAG_ID, "metrics": metrics, "model": model, "spec": str(SPEC)}
    (Path(s["work"]) / "result.json").write_text(json.dumps(result, indent=2))


with DAG(dag_id=DAG_ID, schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC), catchup=False) as dag:
    settings = _settings()
    t_read = PythonOperator(task_id="read_data", python_callable=read_data, op_args=[settings])
    t_fit = PythonOperator(task_id="fit", python_callable=fit, op_args=[settings])
    t_score = PythonOperator(task_id="score", python_callable=score, op_args=[settings])
    t_save = PythonOperator(task_id="save_model", python_callable=save_model, op_args=[settings])
    t_result = PythonOperator(
        task_id="write_result",
        python_callable=write_result,
        op_args=[settings, t_score.output, t_save.output],
    )
    t_read >> t_fit >> t_score >> t_save >> t_result


def main() -> int:
    """Run the DAG once with ``dag.test()``; exit 0 when every task succeeded."""
    WORK.mkdir(parents=True, exist_ok=True)
    log = open(WORK / "airflow.log", "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    run = dag.test()
    state = str(getattr(run.state, "value", run.state))
    return 0 if state == "success" and (WORK / "result.json").is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
