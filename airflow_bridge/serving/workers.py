"""``serve --workers N``: N server processes on one listening socket, under a small supervisor.

Design: the supervisor (the ``serve`` process) binds the socket once and starts N worker processes
(``multiprocessing``'s *spawn*: a fresh interpreter each, nothing inherited but the socket and the
settings). Each worker opens the registry, verifies the artifact's checksum and loads the model
itself (once), follows the alias on its own thread, batches its own requests and runs uvicorn on the
shared socket; the kernel hands each new connection to one worker. So an alias move reaches every
worker within ``--refresh-seconds``, each swapping its model when the new version passes verification
(requests already read finish on the version they started with) and keeping the old one, degraded on
``/health``, when it does not.

A worker that dies (killed, out of memory) is replaced by a new one within a second; the requests it
held lose their connection (a dead process cannot answer), the other workers keep serving.
``SIGTERM``/``SIGINT`` stop every worker gracefully: uvicorn lets in-flight requests finish.

Metrics: ``prometheus_client``'s multiprocess mode, in a temporary folder the supervisor owns
(``PROMETHEUS_MULTIPROC_DIR``), so any worker answers ``/metrics`` for all (:mod:`.metrics`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from airflow_bridge.serving.batching import BatchSettings
from airflow_bridge.serving.limits import ServeLimits

log = logging.getLogger("airflow_bridge.serve")
RESTART_PAUSE = 1.0
"""Seconds between a worker's death and its replacement (a worker failing at start-up does not spin)."""


def default_workers() -> int:
    """Half the CPUs this process may run on, at least 1.

    Each worker runs an event loop and a prediction thread, and every worker pays the model's fixed
    cost per ``predict`` call: fewer, fuller batches do as well as more processes, and better once the
    CPUs are busy (2 shared cores, 50 clients: docs/benchmarks.md).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


@dataclass(frozen=True)
class ServeConfig:
    """Everything a worker needs to serve (pickled to each worker; the token never goes on a command line)."""

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


def run_server(config: ServeConfig, holder: Any = None, sockets: list[socket.socket] | None = None) -> None:
    """Serve in this process (one worker, or ``serve --workers 1``) until stopped."""
    import uvicorn

    from airflow_bridge.serving.app import ModelHolder, create_app
    from airflow_bridge.serving.limits import guarded_protocol

    configure_logging(config.access_log)
    if holder is None:
        from airflow_bridge.resolution import audit_key, registry_for_url

        holder = ModelHolder(
            registry_for_url(config.registry_url, audit_key()), config.model, config.alias, config.refresh_seconds
        )
        holder.load_initial()
    app = create_app(holder, config.limits, config.token, config.batching)
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
    server.run(sockets=sockets)


def _worker(config: ServeConfig, listener: socket.socket) -> None:
    """A worker process's entry: load the model, serve on the supervisor's socket."""
    try:
        run_server(config, sockets=[listener])
    except Exception as exc:  # a start-up failure: the supervisor logs the exit and retries
        print(f"worker {os.getpid()}: cannot serve {config.model}@{config.alias}: {exc}", file=sys.stderr)
        sys.exit(3)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def supervise(config: ServeConfig, workers: int) -> int:
    """Run ``workers`` worker processes on one socket until SIGTERM/SIGINT; replace any that dies."""
    import multiprocessing

    from airflow_bridge.serving.metrics import MULTIPROC_ENV

    if workers < 1:
        raise ValueError("workers must be at least 1")
    configure_logging(config.access_log)
    folder = tempfile.mkdtemp(prefix="airflow-bridge-serve-metrics-")
    os.environ[MULTIPROC_ENV] = folder  # read by each spawned worker's prometheus_client
    listener = bind(config.host, config.port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> Any:
        process = context.Process(target=_worker, args=(config, listener), name="airflow-bridge-serve-worker")
        process.start()
        return process

    running = [start() for _ in range(workers)]
    log.info("supervisor %d: %d workers on http://%s:%d", os.getpid(), workers, config.host, config.port)
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                log.error(
                    "worker %d exited (code %s); its open requests are lost, starting another",
                    process.pid,
                    process.exitcode,
                )
                _forget(process.pid)
                time.sleep(RESTART_PAUSE)
                running[index] = start()
    finally:
        for process in running:
            if process.is_alive():
                process.terminate()  # uvicorn: stop accepting, let in-flight requests finish
        deadline = time.monotonic() + 30
        for process in running:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)
    return 0


def _forget(pid: int | None) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if pid is None:
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except Exception:  # metrics housekeeping must never stop the supervisor
        log.warning("could not clear the metrics of worker %d", pid, exc_info=True)
