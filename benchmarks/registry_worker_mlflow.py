"""MLflow side of ``registry_throughput.py``: one writer process (run with the MLflow-only venv).

Modes (same protocol as ``registry_worker_bridge.py``, whose stdlib-only helpers it reuses)::

    registry_worker_mlflow.py versions
    registry_worker_mlflow.py setup URL MODEL [MODEL ...]
    registry_worker_mlflow.py work URL MODEL --worker I --count K --tag T [--count-statements] [--profile OUT]

``setup`` constructs ``SqlAlchemyStore(URL)`` once (MLflow runs its migrations then) and creates
each registered model (``create_registered_model``). ``work`` constructs the store (connects,
checks the tables), reads the registered model once as warm-up, prints ``READY``, waits for ``GO``
and calls ``SqlAlchemyStore.create_model_version(MODEL, source=..., run_id=None)`` K times. MLflow retries a
version-number collision itself (``CREATE_MODEL_VERSION_RETRIES``); the worker counts those retries
from MLflow's own log record, and a call that still fails counts as an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from registry_worker_bridge import StatementCounter, _emit, add_work_parser, run_timed

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


def cmd_setup(url: str, models: list[str]) -> None:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    started = time.perf_counter()
    store = SqlAlchemyStore(url)  # creates the schema (MLflow's migrations) on first construction
    for model in models:
        store.create_registered_model(model)
    store.engine.dispose()
    _emit({"setup_s": time.perf_counter() - started, "models": models})


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

    def register_one(index: int, uri: str, sha: str, size: int) -> int:
        return int(store.create_model_version(args.model, source=uri, run_id=None).version)

    result = run_timed(args, register_one, counter)
    if result is None:
        return
    result["retries"] = retry_counter.retries
    store.engine.dispose()
    _emit(result, prefix="RESULT ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("versions")
    setup = sub.add_parser("setup")
    setup.add_argument("url")
    setup.add_argument("models", nargs="+")
    add_work_parser(sub)
    args = parser.parse_args(argv)
    if args.mode == "versions":
        cmd_versions()
    elif args.mode == "setup":
        cmd_setup(args.url, args.models)
    else:
        cmd_work(args)


if __name__ == "__main__":
    main()
