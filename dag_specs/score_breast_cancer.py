"""Batch scoring with the live model: runs whenever the production alias of breast_cancer moves.

An engineer's DAG scheduled on the alias asset that the ``deploy`` task of the breast_cancer
pipeline updates, or a move on the Models page (docs/ui.md). It reads the version the alias points at from
the registry, checked against the audit chain, loads its artifact only if the checksum still matches, and
writes one prediction per row of the CSV.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_bridge.operators.links import alias_asset

MODEL, ALIAS = "breast_cancer", "production"
PRODUCTION = alias_asset(MODEL, ALIAS)
INPUT = Path(__file__).parent / "data" / "breast_cancer.csv"

with DAG(
    dag_id="score_breast_cancer",
    description="Score data/breast_cancer.csv with the live production version of breast_cancer.",
    schedule=[PRODUCTION],
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["airflow-bridge", "scoring"],
):

    @task
    def score(input_csv: str = str(INPUT)) -> dict[str, object]:
        """Predict every row with the version the alias points at now; returns where the scores are."""
        import pandas as pd

        from airflow_bridge.artifacts import load_model, read_verified
        from airflow_bridge.resolution import local_home, open_registry

        registry = open_registry(in_airflow=True)
        if registry.alias_version(MODEL, ALIAS) is None:
            raise ValueError(f"alias '{ALIAS}' of '{MODEL}' points at no version yet")
        live = registry.trusted_version(MODEL, ALIAS)  # the alias and version rows are what the audit chain says
        model = load_model(read_verified(live.artifact))
        rows = pd.read_csv(input_csv).drop(columns=["malignant"], errors="ignore")
        out = local_home(in_airflow=True) / "scores" / f"{MODEL}-v{live.version}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        rows.assign(prediction=model.predict(rows)).to_csv(out, index=False)
        return {"model": MODEL, "version": live.version, "rows": len(rows), "scores": str(out)}

    score()
