"""MLflow side of ``registry_throughput.py``: one writer process (run with the MLflow-only venv).

Modes (same protocol as ``registry_worker_bridge.py``, whose stdlib-only helpers it reuses)::

    registry_worker_mlflow.py versions
    registry_worker_mlflow.py setup URL MODEL
    registry_worker_mlflow.py work URL MODEL --worker I --count K --tag T [--count-statements] [--profile OUT]

``setup`` constructs ``SqlAlchemyStore(URL)`` once (MLflow runs its migrations then) and creates
the registered model. ``work`` constructs the store (connects, checks the tables), reads the
registered model once as warm-up, prints ``READY``, waits for ``GO`` and calls
``SqlAlchemyStore.create_model_version(MODEL, source=..., run_id=None)`` K times. MLflow retries a
version-number collision itself (``CREATE_MODEL_VERSION_RETRIES``); the worker counts those retries
from MLflow's own log record, and a call that still fails counts as an error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from registry_worker_bridge import StatementCounter, _emit, artifact_for

_STORE_LOGGER = "mlflow.store.model_registry.sqlalchemy_store"


class _RetryCounter(logging.Handler):
    """Counts MLflow's 'Model Version creation error ... Retrying' records (and keeps them off stderr)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Model Version creation error" in record.getMessage():
            self.retries += 1


def cmd_versions() -> None:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "executable": sys.executable}
    for dist in ("mlflow", "mlflow-skinny", "sqlalchemy", "psycopg2-binary", "psycopg2", "alembic"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    _emit(out)


def cmd_setup(url: str, model: str) -> None:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    started = time.perf_counter()
    store = SqlAlchemyStore(url)  # creates the schema (MLflow's migrations) on first construction
    store.create_registered_model(model)
    store.engine.dispose()
    _emit({"setup_s": time.perf_counter() - started})


def cmd_work(args: argparse.Namespace) -> None:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    retry_counter = _RetryCounter()
    store_logger = logging.getLogger(_STORE_LOGGER)
    store_logger.setLevel(logging.INFO)
    store_logger.addHandler(retry_counter)
    store_logger.propagate = False

    store = SqlAlchemyStore(args.url)  # connects and checks the tables
    store.get_registered_model(args.model)  # warm-up read; not counted
    counter = StatementCounter(store.engine) if args.count_statements else None
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    _emit({"worker": args.worker, "pid": os.getpid()}, prefix="READY ")
    line = sys.stdin.readline().strip()
    if line != "GO":
        _emit({"worker": args.worker, "aborted": line or "EOF"}, prefix="RESULT ")
        return

    ok = errors = 0
    samples: list[str] = []
    versions: list[int] = []
    if profiler is not None:
        profiler.enable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for index in range(args.count):
        uri, _sha, _size = artifact_for(args.tag, args.worker, index)
        try:
            created = store.create_model_version(args.model, source=uri, run_id=None)
        except Exception as exc:
            errors += 1
            if len(samples) < 5:
                samples.append(f"{type(exc).__name__}: {exc}"[:500])
            continue
        ok += 1
        versions.append(int(created.version))
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    result: dict[str, Any] = {
        "worker": args.worker,
        "count": ok,
        "errors": errors,
        "error_samples": samples,
        "elapsed_s": elapsed,
        "cpu_s": cpu_s,
        "retries": retry_counter.retries,
        "returned_versions_distinct": len(set(versions)),
    }
    if counter is not None:
        result["statements"] = counter.report(ok + errors)
    store.engine.dispose()
    _emit(result, prefix="RESULT ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("versions")
    setup = sub.add_parser("setup")
    setup.add_argument("url")
    setup.add_argument("model")
    work = sub.add_parser("work")
    work.add_argument("url")
    work.add_argument("model")
    work.add_argument("--worker", type=int, required=True)
    work.add_argument("--count", type=int, required=True)
    work.add_argument("--tag", required=True)
    work.add_argument("--count-statements", action="store_true")
    work.add_argument("--profile", default="")
    args = parser.parse_args(argv)
    if args.mode == "versions":
        cmd_versions()
    elif args.mode == "setup":
        cmd_setup(args.url, args.model)
    else:
        cmd_work(args)


if __name__ == "__main__":
    main()
