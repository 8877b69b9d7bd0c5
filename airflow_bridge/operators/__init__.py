"""Public operators: the same building blocks the DAG factory uses, for engineers' own DAGs."""

from __future__ import annotations

from airflow_bridge.operators.deploy import DeployModelOperator
from airflow_bridge.operators.register import RegisterModelOperator
from airflow_bridge.operators.train import TrainModelOperator
from airflow_bridge.operators.validate import ValidateModelOperator

__all__ = ["DeployModelOperator", "RegisterModelOperator", "TrainModelOperator", "ValidateModelOperator"]
