"""A Kubernetes compute tier turned into KubernetesPodOperator arguments (resources, placement, Secret refs).

The kubernetes client and the provider are imported inside :func:`pod_arguments`, so importing this module
stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow_bridge.governance.compute import ComputeTier
from airflow_bridge.kubernetes.contract import COMMAND


def pod_arguments(
    tier: ComputeTier, *, artifact_root: str | None = None, artifact_conn_id: str | None = None
) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for ``tier``: everything the pod spec takes from the policy.

    Connections reach the pod only as ``AIRFLOW_CONN_<ID>`` variables read from Kubernetes Secrets
    (``valueFrom.secretKeyRef``); no value is copied into the pod spec. ``artifact_root`` and
    ``artifact_conn_id`` override the tier's.
    """
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    if not tier.is_kubernetes:
        raise ValueError("pod_arguments needs a tier of kind: kubernetes")
    root = artifact_root or tier.artifact_root
    conn_id = artifact_conn_id if artifact_root else tier.artifact_conn_id
    arguments = ["--artifact-root", str(root)]
    if conn_id:
        arguments += ["--artifact-conn-id", conn_id]
    requests, limits = tier.requests(), tier.limits()
    kwargs: dict[str, Any] = {
        "image": tier.image,
        "cmds": list(COMMAND),
        "arguments": arguments,
        "secrets": [Secret("env", ref.env_name, ref.secret, ref.key) for ref in tier.secrets],
        "container_resources": (
            k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None) if requests or limits else None
        ),
        "node_selector": dict(tier.node_selector) or None,
        "tolerations": [
            k8s.V1Toleration(
                key=t.key,
                operator=t.operator,
                value=t.value,
                effect=t.effect,
                toleration_seconds=t.toleration_seconds,
            )
            for t in tier.tolerations
        ]
        or None,
        "namespace": tier.namespace,
        "service_account_name": tier.service_account,
        "active_deadline_seconds": tier.active_deadline_seconds,
        "image_pull_policy": tier.image_pull_policy,
    }
    if tier.kubernetes_conn_id:
        kwargs["kubernetes_conn_id"] = tier.kubernetes_conn_id
    return kwargs
