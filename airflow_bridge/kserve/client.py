"""A small InferenceService client on the cncf.kubernetes provider's ``KubernetesHook``.

Credentials and cluster settings come from the Airflow connection the serving tier names. The
cluster refusing an object (4xx: invalid, forbidden, no such namespace) is a ``DeploymentError``
naming the object; other API failures (5xx, timeouts) pass through unchanged, so Airflow retries.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_bridge.exceptions import DeploymentError
from airflow_bridge.kserve import GROUP, PLURAL, VERSION
from airflow_bridge.kserve.service import Readiness, merge_patch, readiness

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

_RETRYABLE = (408, 409, 429)
"""Client-side statuses that are not refusals: a timeout, a concurrent update, throttling."""


class KServeClient:
    """Get, create-or-update, delete and wait for InferenceServices through one Kubernetes connection."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    @cached_property
    def hook(self) -> KubernetesHook:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.conn_id)

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            found: dict[str, Any] = self.hook.get_custom_object(
                group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._refused(exc, "read", namespace, name) from None
        return found

    def apply(self, body: dict[str, Any], *, exists: bool | None = None) -> dict[str, Any]:
        """Create the object, or merge-patch the existing one to what ``body`` says (``exists``: already known)."""
        from kubernetes.client.exceptions import ApiException

        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        if exists is None:
            exists = self.get(name, namespace) is not None
        try:
            if not exists:
                created: dict[str, Any] = self.hook.create_custom_object(
                    group=GROUP, version=VERSION, plural=PLURAL, body=body, namespace=namespace
                )
                return created
            patched: dict[str, Any] = self.hook.custom_object_client.patch_namespaced_custom_object(
                group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, name=name, body=merge_patch(body)
            )
            return patched
        except ApiException as exc:
            raise self._refused(exc, "update" if exists else "create", namespace, name) from None

    def delete(self, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.hook.delete_custom_object(group=GROUP, version=VERSION, plural=PLURAL, name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise self._refused(exc, "delete", namespace, name) from None

    def wait(self, name: str, namespace: str, version: int, *, timeout: float, poll: float = 10.0) -> Readiness:
        """Poll until ready or failed; a timeout is a failure (what the trigger does, holding the caller)."""
        deadline = time.monotonic() + timeout
        while True:
            state = readiness(self.get(name, namespace), version)
            if state.state != "pending":
                return state
            if time.monotonic() >= deadline:
                return Readiness("failed", f"not ready after {timeout:.0f}s: {state.reason}")
            time.sleep(poll)

    def _refused(self, exc: Any, verb: str, namespace: str, name: str) -> Exception:
        status = getattr(exc, "status", None)
        if not isinstance(status, int) or status >= 500 or status in _RETRYABLE:
            return exc  # infrastructure: retryable, not a refusal
        return DeploymentError(
            f"the cluster ({self.conn_id}) refused to {verb} InferenceService {namespace}/{name}: "
            f"{status} {getattr(exc, 'reason', '')}: {_message(exc)}"
        )


def _message(exc: Any) -> str:
    """The Status message of an API error body, else its raw body."""
    import json

    body = getattr(exc, "body", None) or ""
    try:
        return str(json.loads(body).get("message") or body)
    except (ValueError, AttributeError):
        return str(body)[:500]
