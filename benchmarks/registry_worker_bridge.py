"""airflow-bridge side of ``registry_throughput.py``: one writer process (run with the project's venv).

Modes (one JSON line on stdout each, except ``work`` which speaks the READY/GO protocol)::

    registry_worker_bridge.py versions
    registry_worker_bridge.py setup URL MODEL
    registry_worker_bridge.py work URL MODEL --worker I --count K --tag T [--count-statements] [--profile OUT]
    registry_worker_bridge.py verify URL

``work``: connect and warm up (one read, which also runs the per-process migration check), print
``READY``, wait for ``GO`` on stdin, then call ``register_version`` K times and print
``RESULT {json}`` with the count, the errors and the elapsed time. ``--count-statements`` adds a
SQLAlchemy ``before_cursor_execute`` listener (and begin/commit/pool checkout listeners) and
reports statements per registration; it costs time, so timed runs leave it off.

``--variant lean`` does NOT call ``register_version``: it is a what-if prototype (PostgreSQL only)
of the same registration with fewer round trips, writing the same rows (version, checksum,
``latest_version``, a ``version_created`` audit event chained with the registry's own
``audit.event_hash``, the audit head), so ``verify`` and the 1..N checks apply unchanged. It exists
to measure the suggestions in the benchmark's report; it is not the product's code path.
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


# -- what-if prototype: the registration in 3 statements + COMMIT (PostgreSQL) ---------------------

_LEAN_ALLOCATE = """
UPDATE ab_models SET latest_version = latest_version + 1
WHERE name = :name AND deleted_at IS NULL
RETURNING id, latest_version"""
_LEAN_CREATE_MODEL = """
INSERT INTO ab_models (name, latest_version, description, owner, team, intended_use, limitations, created_at)
VALUES (:name, 0, '', '', '', '', '', :now)
ON CONFLICT (name) DO NOTHING"""
_LEAN_HEAD = "SELECT seq, hash FROM ab_audit_head WHERE id = 1 FOR UPDATE"
_LEAN_WRITE = """
WITH v AS (
    INSERT INTO ab_model_versions (model_id, version, artifact_uri, artifact_sha256, artifact_size, estimator,
        task_kind, params, metrics, validation, data, spec_sha256, dag_id, run_id, task_id, created_by, created_at)
    VALUES (:model_id, :version, :uri, :sha256, :size, '', '', CAST(:params AS json), CAST(:metrics AS json),
        CAST('{}' AS json), CAST('{}' AS json), '', :dag_id, :run_id, :task_id, :actor, :now)
    ON CONFLICT ON CONSTRAINT uq_ab_model_versions_run DO NOTHING
    RETURNING id
), e AS (
    INSERT INTO ab_audit_events (seq, created_at, actor, action, model, version, alias, reason, dag_id, run_id,
        task_id, before, after, prev_hash, hash)
    SELECT :seq, :now, :actor, 'version_created', :name, :version, NULL, '', :dag_id, :run_id, :task_id,
        CAST('null' AS json), CAST(:after AS json), :prev_hash, :hash
    FROM v
    RETURNING seq
)
UPDATE ab_audit_head SET seq = :seq, hash = :hash
WHERE id = 1 AND EXISTS (SELECT 1 FROM e)
RETURNING (SELECT id FROM v)"""


class LeanRegistrar:
    """What-if prototype of ``register_version`` (see the module docstring); PostgreSQL only."""

    def __init__(self, reg: Any) -> None:
        import sqlalchemy as sa

        self.reg = reg
        self.allocate = sa.text(_LEAN_ALLOCATE)
        self.create_model = sa.text(_LEAN_CREATE_MODEL)
        self.head = sa.text(_LEAN_HEAD)
        self.write = sa.text(_LEAN_WRITE)

    def register(
        self,
        model: str,
        artifact: Any,
        *,
        run: Any,
        actor: str,
        metrics: dict[str, Any],
        params: dict[str, Any],
    ) -> Any:
        from airflow_bridge.registry import audit
        from airflow_bridge.registry.aliases import utcnow
        from airflow_bridge.registry.records import ModelVersion

        with self.reg.transaction(f"register a version of '{model}'") as conn:
            now = utcnow()
            row = conn.execute(self.allocate, {"name": model}).first()
            if row is None:  # first version of a new model (or a deleted model: then it stays None)
                conn.execute(self.create_model, {"name": model, "now": now})
                row = conn.execute(self.allocate, {"name": model}).first()
                if row is None:
                    raise RuntimeError(f"model '{model}' was deleted; it takes no changes")
            model_id, number = int(row.id), int(row.latest_version)
            head = conn.execute(self.head).one()
            after = {"artifact_uri": artifact.uri, "sha256": artifact.sha256, "size": artifact.size, "metrics": metrics}
            event = {
                "seq": head.seq + 1,
                "created_at": now,
                "actor": actor,
                "action": "version_created",
                "model": model,
                "version": number,
                "alias": None,
                "reason": "",
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "before": None,
                "after": after,
            }
            digest = audit.event_hash(head.hash, audit.hashed_fields(event))
            written = conn.execute(
                self.write,
                {
                    "model_id": model_id,
                    "version": number,
                    "uri": artifact.uri,
                    "sha256": artifact.sha256,
                    "size": artifact.size,
                    "params": json.dumps(params),
                    "metrics": json.dumps(metrics),
                    "dag_id": run.dag_id,
                    "run_id": run.run_id,
                    "task_id": run.task_id,
                    "actor": actor,
                    "now": now,
                    "seq": event["seq"],
                    "name": model,
                    "after": json.dumps(after),
                    "prev_hash": head.hash,
                    "hash": digest,
                },
            ).first()
            if written is None:
                # The same (dag_id, run_id, task_id) already registered a version: the product would roll
                # back here and return that version; the benchmark never retries a run, so it is an error.
                raise RuntimeError(f"run {run} already registered a version of '{model}'")
            return ModelVersion(
                model=model,
                version=number,
                artifact=artifact,
                estimator="",
                task_kind="",
                params=params,
                metrics=metrics,
                validation={},
                data={},
                spec_sha256="",
                run=run,
                created_by=actor,
                created_at=now,
            )


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


def cmd_setup(url: str) -> None:
    from airflow_bridge.registry import ModelRegistry

    started = time.perf_counter()
    reg = ModelRegistry(url)
    reg.list_models()  # runs the migrations once
    reg.dispose()
    _emit({"setup_s": time.perf_counter() - started})


def cmd_verify(url: str) -> None:
    from airflow_bridge.registry import ModelRegistry

    reg = ModelRegistry(url)
    report = reg.verify_audit()
    reg.dispose()
    _emit({"audit_ok": report.ok, "audit_checked": report.checked, "audit_problem": report.problem})


def cmd_work(args: argparse.Namespace) -> None:
    from airflow_bridge.registry import ArtifactRef, ModelRegistry, RunRef

    reg = ModelRegistry(args.url)
    reg.list_models()  # warm-up: connect, migration check, one read; not counted
    register = reg.register_version if args.variant == "api" else LeanRegistrar(reg).register
    counter = StatementCounter(reg.engine) if args.count_statements else None

    def register_one(index: int, uri: str, sha: str, size: int) -> int:
        created = register(
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("versions")
    setup = sub.add_parser("setup")
    setup.add_argument("url")
    setup.add_argument("model")
    verify = sub.add_parser("verify")
    verify.add_argument("url")
    work = sub.add_parser("work")
    work.add_argument("url")
    work.add_argument("model")
    work.add_argument("--worker", type=int, required=True)
    work.add_argument("--count", type=int, required=True)
    work.add_argument("--tag", required=True)
    work.add_argument("--count-statements", action="store_true")
    work.add_argument("--profile", default="")
    work.add_argument("--variant", choices=("api", "lean"), default="api", help="lean: what-if prototype")
    args = parser.parse_args(argv)
    if args.mode == "versions":
        cmd_versions()
    elif args.mode == "setup":
        cmd_setup(args.url)
    elif args.mode == "verify":
        cmd_verify(args.url)
    else:
        cmd_work(args)


if __name__ == "__main__":
    main()
