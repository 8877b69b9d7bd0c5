"""The DAG factory: specs become DAGs (``build_dag``) and a dags folder loads them (``load_dag_specs``)."""

from __future__ import annotations

from airflow_bridge.factory.build import build_dag
from airflow_bridge.factory.dags import InvalidSpecsError, load_dag_specs, report_invalid_specs

__all__ = ["InvalidSpecsError", "build_dag", "load_dag_specs", "report_invalid_specs"]
