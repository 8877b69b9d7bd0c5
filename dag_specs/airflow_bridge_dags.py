"""airflow-bridge loader: builds one Airflow DAG per spec file in this folder.

Point Airflow's dags folder here (or copy this file next to your specs). A spec that does not
validate shows up as a DAG tagged 'invalid-spec' with its errors; the others are unaffected.
"""

from airflow_bridge.factory import load_dag_specs

load_dag_specs(globals())
