"""airflow-bridge side of ``registry_throughput.py``: one writer process (run with the project's venv).

Modes (one JSON line on stdout each, except ``work`` which speaks the READY/GO protocol)::

    registry_worker_bridge.py versions
    registry_worker_bridge.py setup URL MODEL [MODEL ...]
    registry_worker_bridge.py work URL MODEL --worker I --count K --tag T [--count-statements] [--profile OUT]
    registry_worker_bridge.py verify URL

``setup`` runs the registry's migrations; the models are created by their first registration
(``register_version`` creates a model on first use and writes no event of its own), so setup
writes no audit event. ``verify`` recomputes every audit stream (``ModelRegistry.verify_audit``:
each model's chain and the global one) and prints ``audit_ok``, ``audit_checked`` (events checked,
all streams), ``audit_problem`` and ``audit_heads`` (stream -> position of its head; ``""`` is the
global stream).

``work``: connect and warm up (one read, which also runs the per-process migration check), print
``READY``, wait for ``GO`` on stdin, then call ``register_version`` K times and print
``RESULT {json}`` with the count, the errors and the elapsed time. ``--count-statements`` adds a
SQLAlchemy ``before_cursor_execute`` listener (and begin/commit/pool checkout listeners) and
reports statements per registration; it costs time, so timed runs leave it off.

"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def _emit(payload: dict[str, Any], prefix: str = "") -> None:
    sys.stdout.write(prefix + json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def artifact_for(tag: str, worker: int, index: int) -> tuple[str, str, int]:
    """The artifact of registration ``index`` of ``worker``: its URI, sha256 (of the URI) and size."""
    uri = f"s3://bench-artifacts/{tag}/w{worker:02d}/{index:05d}/model.pkl"
    return uri, hashlib.sha256(uri.encode()).hexdigest(), 1024 + index


def statement_kind(statement: str) -> str:
    """A short label of a SQL statement: its verb, FOR UPDATE / ON CONFLICT / RETURNING, and first table."""
    text = " ".join(statement.split())
    upper = text.upper()
    verb = upper.split(" ", 1)[0]
    found = _TABLE.search(text)
    table = found.group(1) if found else "-"
    extras = [
        label for needle, label in (("FOR UPDATE", "for update"), ("ON CONFLICT", "on conflict")) if needle in upper
    ]
    if " RETURNING " in upper:
        extras.append("returning")
    return " ".join([verb, table, *(f"[{e}]" for e in extras)])


class StatementCounter:
    """Counts what the engine sends: SQL statements, transactions, commits, rollbacks, pool checkouts."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.kinds: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.pre_ping = bool(getattr(engine.pool, "_pre_ping", False))
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "begin", lambda _c: self.events.update(["begin"]))
        event.listen(engine, "commit", lambda _c: self.events.update(["commit"]))
        event.listen(engine, "rollback", lambda _c: self.events.update(["rollback"]))
        event.listen(engine.pool, "checkout", lambda *_a: self.events.update(["checkout"]))

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.kinds[statement_kind(statement)] += 1

    def reset(self) -> None:
        self.kinds.clear()
        self.events.clear()

    def report(self, operations: int) -> dict[str, Any]:
        statements = sum(self.kinds.values())
        per = max(operations, 1)
        pings = self.events["checkout"] if self.pre_ping else 0
        # psycopg2 sends BEGIN as its own round trip before a transaction's first statement.
        round_trips = statements + self.events["begin"] + self.events["commit"] + self.events["rollback"] + pings
        return {
            "operations": operations,
            "sql_statements": statements,
            "sql_statements_per_op": statements / per,
            "transactions": self.events["begin"],
            "commits": self.events["commit"],
            "rollbacks": self.events["rollback"],
            "pool_checkouts": self.events["checkout"],
            "pool_pre_ping": self.pre_ping,
            "round_trips_per_op_estimate": round_trips / per,
            "by_kind_per_op": {k: v / per for k, v in sorted(self.kinds.items())},
        }


def run_timed(
    args: argparse.Namespace, register_one: Callable[[int, str, str, int], int], counter: Any = None
) -> dict[str, Any] | None:
    """The worker protocol both systems share: print READY, wait for GO, make ``args.count`` timed
    registrations with ``register_one(index, uri, sha256, size) -> version``, and return the RESULT
    fields (None when the controller aborted instead of sending GO)."""
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    _emit({"worker": args.worker, "pid": os.getpid()}, prefix="READY ")
    line = sys.stdin.readline().strip()
    if line != "GO":
        _emit({"worker": args.worker, "aborted": line or "EOF"}, prefix="RESULT ")
        return None
    ok = errors = 0
    samples: list[str] = []
    versions: list[int] = []
    if profiler is not None:
        profiler.enable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for index in range(args.count):
        try:
            versions.append(register_one(index, *artifact_for(args.tag, args.worker, index)))
        except Exception as exc:
            errors += 1
            if len(samples) < 5:
                samples.append(f"{type(exc).__name__}: {exc}"[:500])
            continue
        ok += 1
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
        "returned_versions_distinct": len(set(versions)),
    }
    if counter is not None:
        result["statements"] = counter.report(ok + errors)
    return result


def cmd_versions() -> None:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "executable": sys.executable}
    for dist in ("airflow-bridge", "sqlalchemy", "psycopg2", "psycopg2-binary", "alembic", "apache-airflow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    _emit(out)


def cmd_setup(url: str, models: list[str]) -> None:
    from airflow_bridge.registry import ModelRegistry

    started = time.perf_counter()
    reg = ModelRegistry(url)
    reg.list_models()  # runs the migrations once; each model is created by its first registration
    reg.dispose()
    _emit({"setup_s": time.perf_counter() - started, "models": models})


def cmd_verify(url: str) -> None:
    from airflow_bridge.registry import ModelRegistry

    reg = ModelRegistry(url)
    report = reg.verify_audit()
    heads = {stream: position for stream, (position, _hash) in reg.chain_heads().items()}
    reg.dispose()
    _emit(
        {"audit_ok": report.ok, "audit_checked": report.checked, "audit_problem": report.problem, "audit_heads": heads}
    )


def cmd_work(args: argparse.Namespace) -> None:
    from airflow_bridge.registry import ArtifactRef, ModelRegistry, RunRef

    reg = ModelRegistry(args.url)
    reg.list_models()  # warm-up: connect, migration check, one read; not counted
    counter = StatementCounter(reg.engine) if args.count_statements else None

    def register_one(index: int, uri: str, sha: str, size: int) -> int:
        created = reg.register_version(
            args.model,
            ArtifactRef(uri, sha, size),
            run=RunRef("bench_dag", f"{args.tag}__w{args.worker:02d}__{index:05d}", "register"),
            actor="bench",
            metrics={"accuracy": 0.9 + (index % 100) / 1000, "f1": 0.8},
            params={"n_estimators": 100 + index % 7, "max_depth": 8},
        )
        return int(created.version)

    result = run_timed(args, register_one, counter)
    if result is None:
        return
    reg.dispose()
    _emit(result, prefix="RESULT ")


def add_work_parser(sub: Any) -> None:
    """The ``work`` mode's arguments, the same for both systems' workers."""
    work = sub.add_parser("work")
    work.add_argument("url")
    work.add_argument("model")
    work.add_argument("--worker", type=int, required=True)
    work.add_argument("--count", type=int, required=True)
    work.add_argument("--tag", required=True)
    work.add_argument("--count-statements", action="store_true")
    work.add_argument("--profile", default="")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("versions")
    setup = sub.add_parser("setup")
    setup.add_argument("url")
    setup.add_argument("models", nargs="+")
    verify = sub.add_parser("verify")
    verify.add_argument("url")
    add_work_parser(sub)
    args = parser.parse_args(argv)
    if args.mode == "versions":
        cmd_versions()
    elif args.mode == "setup":
        cmd_setup(args.url, args.models)
    elif args.mode == "verify":
        cmd_verify(args.url)
    else:
        cmd_work(args)


if __name__ == "__main__":
    main()
