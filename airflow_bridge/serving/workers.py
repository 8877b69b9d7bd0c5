"""How ``serve`` runs: one front process terminates HTTP; ``--workers N`` (N ≥ 2) adds N predictor processes.

The front (the ``serve`` process) runs uvicorn with the application of :mod:`.app`: the limits, the
token, the batching, the alias refresh and ``/metrics`` are all in it. With ``--workers 1`` it also
predicts (in-process, no inter-process trip: the lowest latency for one client). With ``--workers N``
(N ≥ 2) it never predicts: each batch goes to one of N predictor processes (:mod:`.predictors`), so a
predictor killed mid-batch (``SIGKILL``, out of memory) costs only that batch's requests, which get a
503 naming why, while the front keeps every connection and the other predictors keep serving; the dead
predictor is replaced within about a second. A predictor that overruns ``--predict-timeout`` on a batch is
killed and replaced the same way (that batch gets 504); the front cannot stop its own predict, so with
``--workers 1`` there is no timeout. ``SIGTERM``/``SIGINT`` stop the front gracefully (uvicorn
lets in-flight requests finish), then the predictors.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from airflow_bridge.serving.batching import BatchSettings
from airflow_bridge.serving.limits import ServeLimits

log = logging.getLogger("airflow_bridge.serve")


def default_workers() -> int:
    """One predictor process per CPU this process may run on, at least 2.

    The front only reads, batches and writes, so the CPUs are the predictors'; at least 2 so that a
    predictor's death never leaves the server without one, and the default isolates it. Measured on 2
    shared cores (docs/benchmarks.md): 2 predictors answer ~35 % more than ``--workers 1`` at 50 clients,
    and the trip to a predictor costs one client well under a millisecond of a ~30 ms call.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs to run (the token never goes on a command line)."""

    registry_url: str
    model: str
    alias: str
    host: str
    port: int
    refresh_seconds: float
    limits: ServeLimits
    batching: BatchSettings
    token: str | None = None
    access_log: bool = True
    predict_timeout: float = 60.0
    """Seconds a batch may take in a predictor process before it is stopped (its requests get 504)."""


def configure_logging(access: bool) -> None:
    """The server's own log lines (alias moves, refusals) and, if ``access``, one JSON line per request."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    # Levels, not ``disabled``: uvicorn's logging dictConfig re-enables every logger it does not name.
    quiet = logging.INFO if access else logging.WARNING
    for name, level in (("airflow_bridge.serve", logging.INFO), ("airflow_bridge.serve.access", quiet)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        logger.handlers[:] = [handler]


def run_server(config: ServeConfig, holder: Any = None, predictors: int = 1) -> None:
    """Serve until stopped: in this process alone (``predictors`` 1), or with that many predictor processes."""
    import uvicorn

    from airflow_bridge.serving.app import ModelHolder, create_app
    from airflow_bridge.serving.limits import guarded_protocol
    from airflow_bridge.serving.predictors import PredictorPool
    from airflow_bridge.serving.runtime import settle, use_python_strings

    if predictors < 1:
        raise ValueError("at least 1 worker is needed")
    configure_logging(config.access_log)
    use_python_strings()
    if holder is None:
        from airflow_bridge.resolution import audit_key, registry_for_url

        holder = ModelHolder(
            registry_for_url(config.registry_url, audit_key()), config.model, config.alias, config.refresh_seconds
        )
        holder.load_initial()
    holder.freeze_heap = True  # this process serves: its long-lived heap leaves the collector's work (.runtime)
    settle()
    pool = None
    if predictors > 1:
        version = holder.current.version.version
        pool = PredictorPool(config.registry_url, config.model, predictors, version, timeout=config.predict_timeout)
        pool.start()
        log.info("%d predictor processes: %s", predictors, " ".join(str(pid) for pid in pool.pids()))
    try:
        app = create_app(holder, config.limits, config.token, config.batching, pool=pool)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                log_level="info",
                access_log=False,  # ours (metrics.Observed) names the model version
                http=guarded_protocol(config.limits),
                limit_concurrency=config.limits.max_connections,
                timeout_keep_alive=config.limits.keep_alive,
            )
        )
        # uvicorn re-raises the signal that stopped it once it is done: caught here, so the predictors are
        # stopped too and ``serve`` exits 0 after a graceful stop.
        stopped = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.run()
        finally:
            for sig, handler in stopped.items():
                signal.signal(sig, handler)
    finally:
        if pool is not None:
            pool.close()
