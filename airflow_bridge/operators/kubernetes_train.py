"""``KubernetesTrainOperator``: the train action in a Kubernetes pod, built from a compute tier.

This module imports the cncf.kubernetes provider (its operator is the base class); the DAG factory
imports it only for specs on a Kubernetes tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from airflow_bridge.governance.compute import ComputeTier
from airflow_bridge.lineage.mixin import OpenLineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context
    from kubernetes.client import models as k8s

    from airflow_bridge.actions.training import TrainingRequest
    from airflow_bridge.lineage.builders import LineageParts

MODEL_LABEL = "airflow-bridge/model"


class KubernetesTrainOperator(OpenLineageMixin, KubernetesPodOperator):
    """Run ``airflow-bridge pod train`` for ``request`` in a pod shaped by ``compute_tier``.

    The pod runs the same train action as ``TrainModelOperator`` and returns the same ``TrainingResult``
    XCom (through the XCom sidecar), so validate/register/approve/deploy take it unchanged. The tier
    gives image, resources and GPUs, node selector, tolerations, namespace, service account, deadline,
    the cluster connection, the artifact root (object storage) and the connections the pod receives as
    Kubernetes Secret references. Any KubernetesPodOperator argument passed here overrides the tier's.

    Failures: a user error in the pod (bad data, failed data checks, bad parameters; exit code 3) fails
    the task without retry, with the pod's message; a deleted, evicted or crashed pod fails it
    retryably. Pod logs stream into the task log. OpenLineage: as ``TrainModelOperator``.
    """

    template_fields: Sequence[str] = ()  # spec values are data, never Jinja
    ui_color = "#dceefc"

    def __init__(
        self,
        *,
        compute_tier: ComputeTier | Mapping[str, Any],
        request: TrainingRequest,
        artifact_root: str | None = None,
        artifact_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_bridge.kubernetes.contract import REQUEST_ENV, request_to_json
        from airflow_bridge.kubernetes.pods import pod_arguments

        tier = compute_tier if isinstance(compute_tier, ComputeTier) else ComputeTier.model_validate(compute_tier)
        pod = pod_arguments(tier, artifact_root=artifact_root, artifact_conn_id=artifact_conn_id)
        labels = {MODEL_LABEL: request.model, **(kwargs.pop("labels", None) or {})}
        env = {REQUEST_ENV: request_to_json(request), **dict(kwargs.pop("env_vars", None) or {})}
        defaults: dict[str, Any] = {"get_logs": True, "do_xcom_push": True, "on_finish_action": "delete_pod"}
        super().__init__(**{**defaults, **pod, "labels": labels, "env_vars": env, **kwargs})
        self.compute_tier = tier
        self.training_request = request
        self.lineage_context = dict(lineage_context or {})

    # -- what TrainModelOperator.lineage_parts reads ------------------------------------------------
    def request(self) -> TrainingRequest:
        return self.training_request

    @property
    def data_uri(self) -> str:
        return self.training_request.data_uri

    @property
    def test_size(self) -> float:
        return self.training_request.test_size

    @property
    def seed(self) -> int:
        return self.training_request.seed

    # -- execution ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any] | None:
        value = super().execute(context)
        if self.deferrable and value is None:
            return None  # deferred: trigger_reentry returns the result
        return self._typed(value)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        return self._typed(super().trigger_reentry(context, event))

    def _typed(self, value: Any) -> dict[str, Any]:
        """The pod's XCom checked as a ``TrainingResult`` (the form downstream tasks take)."""
        from airflow.sdk.exceptions import AirflowException

        from airflow_bridge.actions.results import TrainingResult
        from airflow_bridge.kubernetes.contract import XCOM_PATH

        if value is None:
            raise AirflowException(f"the training pod wrote no result to {XCOM_PATH}")
        result = TrainingResult.from_xcom(value, "the training pod's result")
        self._remember(result=result)
        return result.to_xcom()

    def cleanup(
        self,
        pod: k8s.V1Pod,
        remote_pod: k8s.V1Pod,
        xcom_result: dict[Any, Any] | None = None,
        context: Context | None = None,
    ) -> None:
        """A pod that exited with the user-error code fails the task without retry, with its message."""
        from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            failure = user_error(remote_pod, self.base_container_name)
            if failure is not None:
                raise AirflowFailException(failure) from exc
            raise

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the training data; writes the model artifact and held-out split (as TrainModelOperator)."""
        from airflow_bridge.operators.train import TrainModelOperator

        return TrainModelOperator.lineage_parts(self, stage)  # type: ignore[arg-type]


def user_error(remote_pod: k8s.V1Pod | None, container: str) -> str | None:
    """The termination message of ``container`` when it exited with the user-error code, else None."""
    from airflow_bridge.kubernetes.contract import USER_ERROR_EXIT

    statuses = (remote_pod.status.container_statuses if remote_pod and remote_pod.status else None) or []
    for status in statuses:
        terminated = status.state.terminated if status.name == container and status.state else None
        if terminated is not None and terminated.exit_code == USER_ERROR_EXIT:
            return terminated.message or f"the training pod reported a user error (exit code {USER_ERROR_EXIT})"
    return None
