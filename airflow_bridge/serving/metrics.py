"""``/metrics`` in Prometheus' text format (``prometheus_client``) and one structured access log line per request.

Metrics (every one labelled with the model; requests and batches also with the version that answered):

- ``airflow_bridge_serve_requests_total{route, status, version}`` and ``..._errors_total`` (status ≥ 400);
- ``airflow_bridge_serve_request_duration_seconds{route, version}``: latency histogram, first byte in to
  last byte out of the application (reading the body included);
- ``airflow_bridge_serve_batch_rows`` and ``..._batch_requests``: histograms of each ``predict`` call's
  rows and requests (the micro-batcher's work; 1 and 1 when batching is off);
- ``airflow_bridge_serve_predict_duration_seconds``: the model's own time per ``predict`` call, measured
  where it ran (a predictor process or the front): the rest of a request's latency is the server's;
- ``airflow_bridge_serve_model_version{alias}``: the version being served; ``..._healthy`` 1 or 0
  (degraded: the alias moved to a version that was refused, or the registry cannot be read);
- ``airflow_bridge_serve_alias_refreshes_total{alias, outcome}``: unchanged, moved, refused, failed.

- ``airflow_bridge_serve_predictor_version{pid}``: with ``serve --workers N``, the version each predictor
  process was last told to serve (one series per live predictor; a dead one's is dropped).

Only the front process answers HTTP, so it records every metric itself: one process, one registry.

The access log (logger ``airflow_bridge.serve.access``) is one JSON object per request: time, method,
route, status, milliseconds, model, alias, version, rows, the rows of its predict call and that call's
milliseconds (``predict_ms``), the front's pid.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from airflow_bridge.serving.limits import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
access_log = logging.getLogger("airflow_bridge.serve.access")
_ROUTES = (
    (re.compile(r"^/v1/models/[^/]+:predict$"), "/v1/models/{name}:predict"),
    (re.compile(r"^/v2/models/[^/]+/infer$"), "/v2/models/{name}/infer"),
)
KNOWN_PATHS = frozenset({"/predict", "/health", "/metadata", "/metrics", "/docs", "/openapi.json"})


def route_of(path: str) -> str:
    """The route a path belongs to (a bounded label: any other path is ``other``)."""
    if path in KNOWN_PATHS:
        return path
    for pattern, route in _ROUTES:
        if pattern.match(path):
            return route
    return "other"


class ServeMetrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, model: str, alias: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.model = model
        self.alias = alias
        self.registry = CollectorRegistry()
        own = self.registry
        prefix = "airflow_bridge_serve_"
        self.requests = Counter(
            prefix + "requests", "HTTP requests answered", ["model", "version", "route", "status"], registry=own
        )
        self.errors = Counter(
            prefix + "errors",
            "HTTP requests answered with status >= 400",
            ["model", "version", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            prefix + "request_duration_seconds",
            "Seconds from a request's arrival to its answer's last byte",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.batch_rows = Histogram(
            prefix + "batch_rows", "Rows per predict call", ["model", "version"], buckets=BATCH_BUCKETS, registry=own
        )
        self.predict_seconds = Histogram(
            prefix + "predict_duration_seconds",
            "Seconds the model took per predict call (where it ran: a predictor process or the front)",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.batch_requests = Histogram(
            prefix + "batch_requests",
            "Requests answered per predict call",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self.version = Gauge(
            prefix + "model_version",
            "Version of the model being served",
            ["model", "alias"],
            registry=own,
        )
        self.healthy = Gauge(
            prefix + "healthy",
            "1 when serving the alias' version, 0 when degraded (see /health)",
            ["model", "alias"],
            registry=own,
        )
        self.refreshes = Counter(
            prefix + "alias_refreshes",
            "Alias re-reads by outcome: unchanged, moved, refused (checksum or audit), failed",
            ["model", "alias", "outcome"],
            registry=own,
        )
        self.predictor_version = Gauge(
            prefix + "predictor_version",
            "Version each predictor process (serve --workers N) was last told to serve",
            ["model", "pid"],
            registry=own,
        )

    def served(self, version: int, healthy: bool) -> None:
        self.version.labels(self.model, self.alias).set(version)
        self.healthy.labels(self.model, self.alias).set(1 if healthy else 0)

    def predictors(self, versions: dict[int, int]) -> None:
        """The live predictor processes: pid → version (series of dead ones are dropped)."""
        self.predictor_version.clear()
        for pid, version in versions.items():
            self.predictor_version.labels(self.model, str(pid)).set(version)

    def refreshed(self, outcome: str) -> None:
        self.refreshes.labels(self.model, self.alias, outcome).inc()

    def batch(self, version: int, rows: int, requests: int, seconds: float) -> None:
        self.batch_rows.labels(self.model, str(version)).observe(rows)
        self.batch_requests.labels(self.model, str(version)).observe(requests)
        self.predict_seconds.labels(self.model, str(version)).observe(seconds)

    def answered(self, version: int | None, route: str, status: int, seconds: float) -> None:
        shown = "" if version is None else str(version)
        self.requests.labels(self.model, shown, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(self.model, shown, route, str(status)).inc()
        self.latency.labels(self.model, shown, route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Observed:
    """ASGI middleware (outermost): counts and times every request, then writes its access log line.

    A handler names what answered in ``scope["state"]`` (``version``, ``rows``, ``batch_rows``); other
    requests are logged with the version being served.
    """

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, serving: Callable[[], int | None]) -> None:
        self.app = app
        self.metrics = metrics
        self.serving = serving
        self.pid = os.getpid()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - start
            route = route_of(scope.get("path", ""))
            version = state.get("version")
            if version is None:
                version = self.serving()
            self.metrics.answered(version, route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                entry: dict[str, Any] = {
                    "time": round(time.time(), 3),
                    "method": scope.get("method"),
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "model": self.metrics.model,
                    "alias": self.metrics.alias,
                    "version": version,
                    "pid": self.pid,
                    "client": client[0] if client else None,
                }
                for key in ("rows", "batch_rows", "predict_ms"):
                    if key in state:
                        entry[key] = state[key]
                access_log.info(json.dumps(entry))
