"""The deferrable wait for an InferenceService to become ready (runs on the triggerer, no worker slot held).

Like the cncf.kubernetes provider's own triggers it talks to the cluster through ``AsyncKubernetesHook``.
Events: ``{"status": "success", "url": ...}``, ``{"status": "failed", "reason": ...}`` (KServe's reason),
or ``{"status": "timeout", "reason": ...}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_bridge.kserve import GROUP, PLURAL, VERSION
from airflow_bridge.kserve.service import readiness


class InferenceServiceReadyTrigger(BaseTrigger):
    """Poll ``namespace/name`` until it serves ``version`` ready, fails, or ``deadline`` (epoch seconds) passes.

    The deadline is absolute, so a triggerer restart does not extend the wait.
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        version: int,
        kubernetes_conn_id: str,
        deadline: float,
        poll_interval: float = 10.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.version = version
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "namespace": self.namespace,
                "version": self.version,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        hook = AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)
        where = f"InferenceService {self.namespace}/{self.name}"
        while True:
            try:
                state = readiness(await self._fetch(hook), self.version)
            except Exception as exc:  # reported as an event, not raised: the task decides
                status = getattr(exc, "status", None)
                transient = not isinstance(status, int) or status >= 500 or status in (408, 429)
                if not transient or time.time() >= self.deadline:
                    yield TriggerEvent({"status": "failed", "reason": f"reading {where} failed: {exc}"})
                    return
                self.log.warning("Reading %s failed (%s); retrying", where, exc)
                await asyncio.sleep(self.poll_interval)
                continue
            if state.state == "ready":
                yield TriggerEvent({"status": "success", "url": state.url, "name": self.name})
                return
            if state.state == "failed":
                yield TriggerEvent({"status": "failed", "reason": f"{where} failed: {state.reason}"})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "reason": f"{where} not ready in time: {state.reason}"})
                return
            self.log.info("%s v%d not ready yet: %s", where, self.version, state.reason)
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time())))

    async def _fetch(self, hook: Any) -> dict[str, Any] | None:
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        async with hook.get_conn() as api:
            try:
                found: dict[str, Any] = await client.CustomObjectsApi(api).get_namespaced_custom_object(
                    group=GROUP, version=VERSION, namespace=self.namespace, plural=PLURAL, name=self.name
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return found
