"""airflow-bridge: lists this folder's invalid specs under Airflow's Import Errors (Home page, DAG list).

It builds no DAG, so its import error loses nothing: the loader (airflow_bridge_dags.py) still builds
every valid spec's DAG and a placeholder DAG for each invalid one. When every spec is valid, it is silent.
"""

from airflow_bridge.factory import report_invalid_specs

report_invalid_specs(globals())
