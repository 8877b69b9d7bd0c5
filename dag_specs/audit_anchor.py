"""Anchor the model registry's audit chain every hour (docs/governance.md#anchors).

Set ``[airflow_bridge] audit_anchor_uri`` (an S3 bucket with Object Lock, or a folder of write-once files)
and, for S3, ``audit_anchor_conn_id``. Deployments anchor after every alias move; this covers the rest.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_bridge.operators.anchor import AnchorAuditOperator

with DAG(
    dag_id="audit_anchor",
    description="Anchor the model registry's audit chain in write-once storage.",
    schedule="@hourly",
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["airflow-bridge", "governance"],
    default_args={"owner": "platform", "retries": 2, "retry_delay": dt.timedelta(minutes=5)},
):
    AnchorAuditOperator(task_id="anchor")
