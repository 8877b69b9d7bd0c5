"""Registration throughput of the model registry with concurrent writer processes, next to MLflow's.

Both systems write to their own, freshly created PostgreSQL database; each round runs airflow-bridge
and then MLflow (``ModelRegistry.register_version`` vs. MLflow's
``SqlAlchemyStore.create_model_version``), each with ``--writers`` worker processes doing
``--per-writer`` registrations. With ``--models N`` (default 1) writer i registers versions of model
``bench_model_{i % N}`` (N = 1: all of ``bench_model``, as before); ``setup`` creates every model.
``--configs 8x1,8x8`` (writers x models) runs each configuration in every round instead. Every
worker is a fresh interpreter of its own system's venv (``registry_worker_bridge.py`` /
``registry_worker_mlflow.py``): it connects, does one warm-up read, prints READY and waits; the
clock starts when all writers are ready and GO is sent to all of them, and stops when the last
writer reports. After each run the database is checked per model: versions exactly 1..n (n = the
model's writers x per-writer; no duplicates, none missing), and for airflow-bridge also a checksum
per version, n ``version_created`` events in the model's audit stream, its chain head at n, and the
whole trail verified (``ModelRegistry.verify_audit``: every stream, exactly setup's events + the
registrations checked).

Usage (project venv; the MLflow venv is made from ``benchmarks/requirements-mlflow.txt``)::

    python3 -m venv benchmarks/.venv-mlflow
    benchmarks/.venv-mlflow/bin/pip install -r benchmarks/requirements-mlflow.txt
    .venv/bin/python benchmarks/registry_throughput.py [--rounds 3] [--writers 8] [--models 1] [--per-writer 1000]
    # one model and eight models, alternating in every round (targets: >= 2x and >= 5x MLflow):
    .venv/bin/python benchmarks/registry_throughput.py --configs 8x1,8x8
    # instrumented runs: statements per registration (SQLAlchemy listener), cProfile of writer 0,
    # a 1-writer run, strace round trips, and pgbench's hot-row ceiling:
    .venv/bin/python benchmarks/registry_throughput.py --profile-only --systems bridge,mlflow
    # what-if variants (never pass/fail), see WHAT_IF:
    .venv/bin/python benchmarks/registry_throughput.py --systems bridge_async,mlflow_async \
        --out benchmarks/results/registry_throughput_whatif.json

Results: a table on stdout and ``benchmarks/results/registry_throughput.json``; ``--profile``
writes ``registry_throughput_profile.json`` and ``registry_profile_<system>.txt``. The machine is
shared: before each run the controller waits (up to ``--idle-max-wait``) for idle CPUs and records
the load, and rounds alternate the systems so that slow drifts hit both.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _benchlib
import psycopg2

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
BRIDGE_WORKER = BENCH_DIR / "registry_worker_bridge.py"
MLFLOW_WORKER = BENCH_DIR / "registry_worker_mlflow.py"
DEFAULT_MLFLOW_PYTHON = BENCH_DIR / ".venv-mlflow" / "bin" / "python"
MODEL = "bench_model"
TARGET_RATIO = 2.0  # all writers on one model: every registration takes the same model's lock
TARGET_RATIO_SPREAD = 5.0  # each writer on a model of its own (models >= writers): no shared lock
# libpq reads PGOPTIONS: the what-if "*_async" variants commit without waiting for the WAL flush
ASYNC_ENV = (("PGOPTIONS", "-c synchronous_commit=off"),)
WHAT_IF = {
    "bridge_async": "the product's register_version with PGOPTIONS='-c synchronous_commit=off' (commits do not"
    " wait for the WAL flush: a crash can lose the last acknowledged registrations)",
    "mlflow_async": "MLflow with synchronous_commit=off",
    "bridge_analyzed": "the product's register_version while the controller runs ANALYZE every 2 s (as autovacuum"
    " would on a server that has it on; this one has autovacuum=off, so fresh tables have no statistics)",
    "mlflow_analyzed": "MLflow while the controller runs ANALYZE every 2 s",
}


@contextlib.contextmanager
def analyzing(args: argparse.Namespace, database: str, every_s: float) -> Iterator[None]:
    """Run ANALYZE on ``database`` every ``every_s`` seconds while the block runs (0: never)."""
    if every_s <= 0:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        with pg_connect(args, database) as conn, conn.cursor() as cur:
            while not stop.wait(every_s):
                cur.execute("ANALYZE")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


@dataclass(frozen=True)
class System:
    key: str
    label: str
    python: str
    worker: Path
    env: tuple[tuple[str, str], ...] = ()
    what_if: bool = False
    analyze_every_s: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    """``writers`` processes over ``models`` models: writer i registers versions of ``model_of(i)``."""

    writers: int
    models: int = 1

    @property
    def label(self) -> str:
        return f"{self.writers}x{self.models}"

    def model_of(self, writer: int) -> str:
        return MODEL if self.models == 1 else f"{MODEL}_{writer % self.models}"

    def model_names(self) -> list[str]:
        return [self.model_of(index) for index in range(self.models)]

    def expected(self, per_writer: int) -> dict[str, int]:
        """Versions each model must end with: its writers x ``per_writer``."""
        writers = collections.Counter(self.model_of(index) for index in range(self.writers))
        return {name: writers[name] * per_writer for name in self.model_names()}

    @property
    def target(self) -> float | None:
        """The bridge/MLflow ratio to reach (None: reported only, e.g. 8 writers over 2 models)."""
        if self.models == 1:
            return TARGET_RATIO
        return TARGET_RATIO_SPREAD if self.models >= self.writers else None


def parse_configs(text: str) -> list[RunConfig]:
    """``"8x1,8x8"`` -> [RunConfig(8, 1), RunConfig(8, 8)]; 1 <= models <= writers."""
    configs: list[RunConfig] = []
    for part in (p.strip() for p in text.split(",")):
        found = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", part)
        if not found:
            raise ValueError(f"bad configuration {part!r}: expected WRITERSxMODELS, e.g. 8x8")
        config = RunConfig(int(found.group(1)), int(found.group(2)))
        if config.writers < 1 or not 1 <= config.models <= config.writers:
            raise ValueError(f"bad configuration {part!r}: needs 1 <= models <= writers")
        if config not in configs:
            configs.append(config)
    return configs


@dataclass
class RunResult:
    system: str
    round: int
    database: str
    writers: int
    per_writer: int
    models: int = 1
    versions: int = 0
    errors: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    versions_per_s: float = 0.0
    ready_s: float = 0.0
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    idle_wait: dict[str, Any] = field(default_factory=dict)
    machine_busy_during_run: float = 0.0
    client_cpu_ms_per_version: float = 0.0
    machine_cpu_ms_per_version: float = 0.0
    worker_results: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# PostgreSQL


def pg_url(args: argparse.Namespace, database: str) -> str:
    return f"postgresql+psycopg2://{args.pg_user}@{args.pg_host}:{args.pg_port}/{database}"


@contextlib.contextmanager
def pg_connect(args: argparse.Namespace, database: str) -> Iterator[Any]:
    conn = psycopg2.connect(host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname=database)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def pg_query(args: argparse.Namespace, database: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with pg_connect(args, database) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def recreate_database(args: argparse.Namespace, database: str) -> None:
    with pg_connect(args, args.pg_admin_db) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{database}"')


def drop_database(args: argparse.Namespace, database: str) -> None:
    with pg_connect(args, args.pg_admin_db) as conn, conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def server_counters(args: argparse.Namespace, database: str) -> dict[str, int]:
    """pg_stat_database of ``database`` plus the cluster's WAL counters (pg_stat_wal)."""
    db = pg_query(
        args,
        args.pg_admin_db,
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched, deadlocks"
        " FROM pg_stat_database WHERE datname = %s",
        (database,),
    )
    wal = pg_query(args, args.pg_admin_db, "SELECT wal_records, wal_bytes, wal_sync FROM pg_stat_wal")
    names = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched", "deadlocks")
    out = dict(zip(names, (int(v) for v in db[0]), strict=True)) if db else {}
    if wal:
        out.update(wal_records=int(wal[0][0]), wal_bytes=int(wal[0][1]), wal_sync=int(wal[0][2]))
    return out


def table_counters(args: argparse.Namespace, database: str, versions: int) -> dict[str, dict[str, float]]:
    """pg_stat_user_tables of the run's (fresh) database, per registered version: where the scans went."""
    rows = pg_query(
        args,
        database,
        "SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_tup_ins, n_tup_upd, n_tup_hot_upd"
        " FROM pg_stat_user_tables ORDER BY relname",
    )
    names = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins", "n_tup_upd", "n_tup_hot_upd")
    per = max(versions, 1)
    out: dict[str, dict[str, float]] = {}
    for relname, *values in rows:
        counts = dict(zip(names, (int(v or 0) for v in values), strict=True))
        if max(counts.values()) >= 0.5 * per:  # tables the registration touches, not the idle schema
            out[relname] = {k: round(v / per, 3) for k, v in counts.items()}
    return out


def counters_delta(before: dict[str, int], after: dict[str, int], versions: int) -> dict[str, Any]:
    """Per-version server work; pg_stat_wal is cluster-wide, so other activity on the server adds to it."""
    per = max(versions, 1)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    return {"total": delta, "per_version": {k: round(v / per, 3) for k, v in delta.items()}}


def postgres_info(args: argparse.Namespace) -> dict[str, Any]:
    settings = (
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "shared_buffers",
        "max_connections",
        "default_transaction_isolation",
        "autovacuum",
    )
    info: dict[str, Any] = {"version": pg_query(args, args.pg_admin_db, "SELECT version()")[0][0]}
    for name in settings:
        info[name] = pg_query(args, args.pg_admin_db, f"SHOW {name}")[0][0]
    return info


# --------------------------------------------------------------------------------------------
# the machine is shared: wait for it to be idle before a run, and record how busy it was


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def busy_fraction(before: tuple[float, float], after: tuple[float, float]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def wait_for_idle(max_busy: float, settle_s: float, max_wait_s: float) -> dict[str, Any]:
    """Wait until the CPUs were at most ``max_busy`` busy for ``settle_s`` seconds (or give up)."""
    started = time.perf_counter()
    quiet_since: float | None = None
    last = cpu_times()
    busy = 1.0
    while time.perf_counter() - started < max_wait_s:
        time.sleep(0.5)
        now = cpu_times()
        busy = busy_fraction(last, now)
        last = now
        if busy <= max_busy:
            quiet_since = quiet_since or time.perf_counter()
            if time.perf_counter() - quiet_since >= settle_s:
                return {"waited_s": round(time.perf_counter() - started, 1), "idle": True, "busy_last": round(busy, 3)}
        else:
            quiet_since = None
    return {"waited_s": round(time.perf_counter() - started, 1), "idle": False, "busy_last": round(busy, 3)}


# --------------------------------------------------------------------------------------------
# workers


def run_json(python: str, script: Path, *argv: str, timeout: float = 600) -> dict[str, Any]:
    """Run a worker's one-shot mode and return its JSON line."""
    proc = subprocess.run(
        [python, str(script), *argv], capture_output=True, text=True, timeout=timeout, cwd=BENCH_DIR, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} {argv[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def _pump(index: int, stream: Any, events: queue.Queue[tuple[int, float, str | None]]) -> None:
    for line in stream:
        events.put((index, time.perf_counter(), line.rstrip("\n")))
    events.put((index, time.perf_counter(), None))


def run_writers(
    system: System,
    url: str,
    *,
    writers: int,
    per_writer: int,
    tag: str,
    ready_timeout: float,
    run_timeout: float,
    models: int = 1,
    count_statements: bool = False,
    profile_path: Path | None = None,
    wrap_first: list[str] | None = None,
) -> tuple[float, float, float, list[dict[str, Any]]]:
    """Start the writers (writer i on model ``RunConfig(writers, models).model_of(i)``), wait until all
    are READY, send GO to all, and time until the last RESULT.

    Returns (seconds until all were ready, timed seconds, how busy the CPUs were while timed, the
    writers' RESULT payloads).
    """
    events: queue.Queue[tuple[int, float, str | None]] = queue.Queue()
    procs: list[subprocess.Popen[str]] = []
    logs: list[collections.deque[str]] = []
    config = RunConfig(writers, models)
    started = time.perf_counter()
    try:
        for index in range(writers):
            argv = [system.python, str(system.worker), "work", url, config.model_of(index)]
            argv += ["--worker", str(index), "--count", str(per_writer), "--tag", tag]
            if count_statements:
                argv.append("--count-statements")
            if profile_path is not None and index == 0:
                argv += ["--profile", str(profile_path)]
            if wrap_first and index == 0:
                argv = [*wrap_first, *argv]
            log: collections.deque[str] = collections.deque(maxlen=60)
            logs.append(log)
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **dict(system.env)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=BENCH_DIR,
                bufsize=1,
            )
            procs.append(proc)
            threading.Thread(target=_pump, args=(index, proc.stdout, events), daemon=True).start()
            threading.Thread(target=log.extend, args=(proc.stderr,), daemon=True).start()

        def wait_for(prefix: str, deadline: float) -> tuple[float, dict[int, dict[str, Any]]]:
            seen: dict[int, dict[str, Any]] = {}
            last = time.perf_counter()
            while len(seen) < writers:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError(f"{system.label}: only {len(seen)}/{writers} writers sent {prefix}")
                try:
                    index, when, line = events.get(timeout=remaining)
                except queue.Empty:
                    continue
                if line is None:
                    if index not in seen:
                        time.sleep(0.2)
                        raise RuntimeError(f"{system.label} writer {index} exited early:\n{''.join(logs[index])}")
                    continue
                if line.startswith(prefix + " "):
                    seen[index] = json.loads(line[len(prefix) + 1 :])
                    last = when
            return last, seen

        wait_for("READY", time.perf_counter() + ready_timeout)
        ready_s = time.perf_counter() - started
        time.sleep(0.5)  # let the machine settle: every writer is idle, blocked on stdin
        cpu_start = cpu_times()
        t0 = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        t_end, results = wait_for("RESULT", t0 + run_timeout)
        busy = busy_fraction(cpu_start, cpu_times())
        for proc in procs:
            proc.wait(timeout=60)
        return ready_s, t_end - t0, busy, [results[i] for i in range(writers)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------------
# verification


def check_versions(found: list[int], expected: int) -> dict[str, Any]:
    distinct = set(found)
    return {
        "rows": len(found),
        "expected": expected,
        "duplicates": len(found) - len(distinct),
        "missing": len(set(range(1, expected + 1)) - distinct),
        "unexpected": len(distinct - set(range(1, expected + 1))),
        "exact_1_to_n": sorted(found) == list(range(1, expected + 1)),
    }


def versions_by_model(rows: list[tuple[Any, ...]], names: list[str]) -> tuple[dict[str, list[int]], int]:
    """(model -> version numbers) for ``names`` from (model, version, ...) rows, and the rows of other models."""
    found: dict[str, list[int]] = {name: [] for name in names}
    stray = 0
    for row in rows:
        if row[0] in found:
            found[row[0]].append(int(row[1]))
        else:
            stray += 1
    return found, stray


def combine_checks(per_model: dict[str, dict[str, Any]], stray_rows: int) -> dict[str, Any]:
    """Totals over the models (the table's duplicates/missing), each model's checks under ``per_model``."""
    out: dict[str, Any] = {
        key: sum(int(c[key]) for c in per_model.values())
        for key in ("rows", "expected", "duplicates", "missing", "unexpected")
    }
    out["rows_of_other_models"] = stray_rows
    out["exact_1_to_n"] = all(c["exact_1_to_n"] for c in per_model.values()) and stray_rows == 0
    out["models"] = len(per_model)
    out["models_ok"] = sum(1 for c in per_model.values() if c["ok"])
    out["per_model"] = per_model
    return out


def audit_event_count(args: argparse.Namespace, database: str) -> int:
    return int(pg_query(args, database, "SELECT count(*) FROM ab_audit_events")[0][0])


def verify_bridge(
    args: argparse.Namespace, system: System, database: str, expected: dict[str, int], setup_events: int
) -> dict[str, Any]:
    """Per model: versions 1..n, checksums, latest_version n, n ``version_created`` events, and the
    model's audit stream holding exactly those n events (positions 1..n, head at n); then the whole
    trail recomputed by ``verify_audit``, which must check exactly ``setup_events`` + all n events."""
    names = list(expected)
    rows = pg_query(
        args,
        database,
        "SELECT m.name, v.version, v.artifact_uri, v.artifact_sha256 FROM ab_model_versions v"
        " JOIN ab_models m ON m.id = v.model_id",
    )
    found, stray = versions_by_model(rows, names)
    latest = {str(r[0]): int(r[1]) for r in pg_query(args, database, "SELECT name, latest_version FROM ab_models")}
    created = {
        str(r[0]): (int(r[1]), int(r[2]))
        for r in pg_query(
            args,
            database,
            "SELECT model, count(*), count(DISTINCT version) FROM ab_audit_events"
            " WHERE action = 'version_created' GROUP BY model",
        )
    }
    streams = {
        str(r[0]): (int(r[1]), int(r[2]), int(r[3]))
        for r in pg_query(
            args,
            database,
            "SELECT stream, count(*), count(DISTINCT stream_seq), coalesce(max(stream_seq), 0)"
            " FROM ab_audit_events GROUP BY stream",
        )
    }
    verified = run_json(system.python, system.worker, "verify", pg_url(args, database))
    heads: dict[str, int] = {str(k): int(v) for k, v in verified.pop("audit_heads", {}).items()}
    per_model: dict[str, dict[str, Any]] = {}
    for name in names:
        n = expected[name]
        checks = check_versions(found[name], n)
        events, event_versions = created.get(name, (0, 0))
        stream_events, stream_positions, stream_last = streams.get(name, (0, 0, 0))
        checks.update(
            latest_version=latest.get(name, 0),
            audit_version_events=events,
            audit_distinct_versions=event_versions,
            stream_events=stream_events,
            stream_distinct_positions=stream_positions,
            stream_last_position=stream_last,
            chain_head=heads.get(name, 0),
        )
        checks["ok"] = checks["exact_1_to_n"] and all(
            value == n
            for value in (
                checks["latest_version"],
                events,
                event_versions,
                stream_events,
                stream_positions,
                stream_last,
                checks["chain_head"],
            )
        )
        per_model[name] = checks
    out = combine_checks(per_model, stray)
    out["checksum_mismatches"] = sum(1 for r in rows if hashlib.sha256(r[2].encode()).hexdigest() != r[3])
    out["models_not_expected"] = sorted(set(latest) - set(names))
    out["setup_events"] = setup_events
    out["audit_events_expected"] = setup_events + sum(expected.values())
    out["audit_events"] = sum(count for count, _, _ in streams.values())
    out.update(verified)  # audit_ok, audit_checked, audit_problem
    out["ok"] = (
        out["models_ok"] == len(names)
        and out["exact_1_to_n"]
        and out["checksum_mismatches"] == 0
        and not out["models_not_expected"]
        and out["audit_events"] == out["audit_events_expected"]
        and bool(out["audit_ok"])
        and out["audit_checked"] == out["audit_events_expected"]
    )
    return out


def verify_mlflow(args: argparse.Namespace, database: str, expected: dict[str, int]) -> dict[str, Any]:
    """Per registered model: versions exactly 1..n; no other registered model."""
    names = list(expected)
    found, stray = versions_by_model(pg_query(args, database, "SELECT name, version FROM model_versions"), names)
    per_model: dict[str, dict[str, Any]] = {}
    for name in names:
        checks = check_versions(found[name], expected[name])
        checks["ok"] = checks["exact_1_to_n"]
        per_model[name] = checks
    registered = {str(r[0]) for r in pg_query(args, database, "SELECT name FROM registered_models")}
    out = combine_checks(per_model, stray)
    out["models_not_registered"] = sorted(set(names) - registered)
    out["models_not_expected"] = sorted(registered - set(names))
    out["ok"] = (
        out["models_ok"] == len(names)
        and out["exact_1_to_n"]
        and not out["models_not_registered"]
        and not out["models_not_expected"]
    )
    return out


# --------------------------------------------------------------------------------------------
# one run


def run_system(
    args: argparse.Namespace,
    system: System,
    round_no: int,
    *,
    per_writer: int | None = None,
    writers: int | None = None,
    models: int | None = None,
    **extra: Any,
) -> RunResult:
    per_writer = per_writer or args.per_writer
    writers = writers or args.writers
    config = RunConfig(writers, min(models or args.models, writers))
    database = f"{args.db_prefix}_{system.key}_w{config.writers}m{config.models}_r{round_no}"
    recreate_database(args, database)
    url = pg_url(args, database)
    run_json(system.python, system.worker, "setup", url, *config.model_names())
    is_bridge = system.worker == BRIDGE_WORKER
    setup_events = audit_event_count(args, database) if is_bridge else 0
    tag = f"r{round_no}-{system.key}-{config.label}-{os.getpid()}"
    result = RunResult(system.key, round_no, database, writers, per_writer, config.models)
    result.idle_wait = wait_for_idle(args.idle_max_busy, args.idle_settle, args.idle_max_wait)
    result.loadavg_before = os.getloadavg()
    before = server_counters(args, database)
    with analyzing(args, database, system.analyze_every_s):
        ready_s, elapsed, busy, workers = run_writers(
            system,
            url,
            writers=writers,
            per_writer=per_writer,
            tag=tag,
            ready_timeout=args.ready_timeout,
            run_timeout=args.run_timeout,
            models=config.models,
            **extra,
        )
    result.machine_busy_during_run = round(busy, 3)
    time.sleep(0.6)  # backends flush their statistics on exit
    result.ready_s = ready_s
    result.elapsed_s = elapsed
    result.worker_results = workers
    result.versions = sum(int(w["count"]) for w in workers)
    result.errors = sum(int(w["errors"]) for w in workers)
    result.retries = sum(int(w.get("retries", 0)) for w in workers)
    result.error_samples = [s for w in workers for s in w.get("error_samples", [])][:5]
    result.versions_per_s = result.versions / elapsed if elapsed > 0 else 0.0
    result.client_cpu_ms_per_version = round(
        1000 * sum(float(w.get("cpu_s", 0.0)) for w in workers) / max(result.versions, 1), 3
    )
    result.machine_cpu_ms_per_version = round(
        1000 * result.machine_busy_during_run * len(os.sched_getaffinity(0)) * elapsed / max(result.versions, 1), 3
    )
    result.server = counters_delta(before, server_counters(args, database), result.versions)
    result.server["tables_per_version"] = table_counters(args, database, result.versions)
    expected = config.expected(per_writer)
    if is_bridge:
        result.checks = verify_bridge(args, system, database, expected, setup_events)
    else:
        result.checks = verify_mlflow(args, database, expected)
    if not args.keep_databases:
        drop_database(args, database)
    return result


# --------------------------------------------------------------------------------------------
# profiling (instrumented runs; their rates are not the benchmark's figures)


def strace_round_trips(args: argparse.Namespace, system: System) -> dict[str, Any]:
    """sendto/recvfrom syscalls per registration of one solo writer (difference of two run lengths)."""
    counts: dict[int, dict[str, int]] = {}
    for n in (args.strace_ops, 2 * args.strace_ops):
        with tempfile.NamedTemporaryFile(suffix=".strace") as out:
            wrap = ["strace", "-f", "-c", "-e", "trace=sendto,recvfrom,poll", "-o", out.name]
            database = f"{args.db_prefix}_{system.key}_strace"
            recreate_database(args, database)
            url = pg_url(args, database)
            run_json(system.python, system.worker, "setup", url, MODEL)
            try:
                run_writers(
                    system,
                    url,
                    writers=1,
                    per_writer=n,
                    tag=f"strace{n}",
                    ready_timeout=args.ready_timeout,
                    run_timeout=args.run_timeout,
                    wrap_first=wrap,
                )
            finally:
                drop_database(args, database)
            text = Path(out.name).read_text(encoding="utf-8")
        calls: dict[str, int] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1] in ("sendto", "recvfrom", "poll"):
                calls[parts[-1]] = int(parts[3])
        counts[n] = calls
    low, high = counts[args.strace_ops], counts[2 * args.strace_ops]
    return {
        "solo_writer_ops": [args.strace_ops, 2 * args.strace_ops],
        "raw": {str(k): v for k, v in counts.items()},
        "per_registration": {k: (high.get(k, 0) - low.get(k, 0)) / args.strace_ops for k in high},
    }


_HOT_ROW = "SELECT n FROM hot WHERE id = 1 FOR UPDATE;\nUPDATE hot SET n = n + 1 WHERE id = 1;\nCOMMIT;\n"
_PGBENCH_SCRIPTS = {
    "hot_row_sync": "BEGIN;\n" + _HOT_ROW,
    "hot_row_async": "BEGIN;\nSET LOCAL synchronous_commit = off;\n" + _HOT_ROW,
    "independent_rows_sync": "\\set k random(1, 1000000000)\nBEGIN;\n"
    "INSERT INTO cold VALUES (:k) ON CONFLICT DO NOTHING;\nCOMMIT;\n",
}


def pgbench_ceiling(args: argparse.Namespace, seconds: int = 10) -> dict[str, Any]:
    """What PostgreSQL itself does here with a C client: one hot row locked per transaction (as every
    registration of one model does, in both systems) vs. independent rows, synchronous commit on/off."""
    found = shutil.which("pgbench") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if not found:
        return {"skipped": "pgbench not found"}
    database = f"{args.db_prefix}_pgbench"
    recreate_database(args, database)
    out: dict[str, Any] = {"clients": args.writers, "seconds": seconds}
    try:
        with pg_connect(args, database) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE hot (id int PRIMARY KEY, n int); INSERT INTO hot VALUES (1, 0);")
            cur.execute("CREATE TABLE cold (k bigint PRIMARY KEY)")
        for name, script in _PGBENCH_SCRIPTS.items():
            with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as handle:
                handle.write(script)
                handle.flush()
                proc = subprocess.run(
                    [
                        *(str(found), "-h", args.pg_host, "-p", str(args.pg_port), "-U", args.pg_user, "-n"),
                        *("-c", str(args.writers), "-j", "2", "-T", str(seconds), "-f", handle.name, database),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            tps = re.search(r"^tps = ([0-9.]+)", proc.stdout, re.MULTILINE)
            out[name] = round(float(tps.group(1)), 1) if tps else proc.stderr[-500:]
    finally:
        drop_database(args, database)
    return out


def profile_systems(args: argparse.Namespace, systems: list[System]) -> dict[str, Any]:
    import pstats

    out: dict[str, Any] = {}
    for system in systems:
        prof = RESULTS_DIR / f"registry_profile_{system.key}.pstats"
        run = run_system(args, system, 800, count_statements=True, profile_path=prof)
        merged: dict[str, float] = {}
        for worker in run.worker_results:
            for kind, per in worker["statements"]["by_kind_per_op"].items():
                merged[kind] = merged.get(kind, 0.0) + per * worker["statements"]["operations"]
        ops = max(sum(w["statements"]["operations"] for w in run.worker_results), 1)
        stats_io = RESULTS_DIR / f"registry_profile_{system.key}.txt"
        with stats_io.open("w", encoding="utf-8") as handle:
            handle.write(
                f"cProfile of writer 0 of {args.writers} over {args.models} model(s) ({system.label}), "
                f"{args.per_writer} registrations, "
                f"statement counting on; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
            )
            stats = pstats.Stats(str(prof), stream=handle)
            stats.sort_stats("cumulative").print_stats(35)
            stats.sort_stats("tottime").print_stats(20)
        prof.unlink(missing_ok=True)
        entry: dict[str, Any] = {
            "instrumented_versions_per_s": round(run.versions_per_s, 1),
            "errors": run.errors,
            "retries": run.retries,
            "checks_ok": run.checks.get("ok"),
            "statements_per_registration": round(sum(merged.values()) / ops, 3),
            "by_kind_per_registration": {k: round(v / ops, 3) for k, v in sorted(merged.items())},
            "round_trips_per_registration_estimate": round(
                sum(
                    w["statements"]["round_trips_per_op_estimate"] * w["statements"]["operations"]
                    for w in run.worker_results
                )
                / ops,
                3,
            ),
            "rollbacks": sum(w["statements"]["rollbacks"] for w in run.worker_results),
            "server_per_version": run.server["per_version"],
            "tables_per_version": run.server["tables_per_version"],
            "client_cpu_ms_per_version": run.client_cpu_ms_per_version,
            "cprofile": str(stats_io.relative_to(BENCH_DIR.parent)),
        }
        solo = run_system(args, system, 801, writers=1, per_writer=args.solo_ops)
        entry["solo_1_writer"] = {
            "versions_per_s": round(solo.versions_per_s, 1),
            "ms_per_registration": round(1000 / solo.versions_per_s, 2) if solo.versions_per_s else None,
            "client_cpu_ms_per_version": solo.client_cpu_ms_per_version,
            "checks_ok": solo.checks.get("ok"),
        }
        if shutil.which("strace"):
            entry["strace_solo"] = strace_round_trips(args, system)
        out[system.key] = entry
        print(f"profiled {system.label}: {json.dumps(entry, sort_keys=True)}", flush=True)
    return out


# --------------------------------------------------------------------------------------------
# report


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        first = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()[0]
        mem_kb = int(re.findall(r"\d+", first)[0])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def print_table(runs: list[RunResult], systems: dict[str, System]) -> None:
    header = (
        f"{'round':>5}  {'w x m':>6}  {'system':<18} {'versions':>8} {'seconds':>8} {'versions/s':>10} {'errors':>6} "
        f"{'retries':>7} {'dup':>4} {'miss':>4} {'checks':>6} {'idle?':>5} {'cpu ms/v':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        idle = "yes" if r.idle_wait.get("idle") else "NO"
        print(
            f"{r.round:>5}  {RunConfig(r.writers, r.models).label:>6}  {systems[r.system].label:<18} {r.versions:>8} "
            f"{r.elapsed_s:>8.2f} {r.versions_per_s:>10.1f} {r.errors:>6} {r.retries:>7} {r.checks['duplicates']:>4} "
            f"{r.checks['missing']:>4} {'ok' if r.checks['ok'] else 'FAIL':>6} {idle:>5} "
            f"{r.client_cpu_ms_per_version:>8.2f}"
        )


def summarize_config(runs: list[RunResult], systems: dict[str, System], config: RunConfig) -> dict[str, Any]:
    """Medians per system of one configuration, the bridge/MLflow ratio and its verdict against
    ``config.target`` (``pass`` is None for a configuration without a target)."""
    summary: dict[str, Any] = {"writers": config.writers, "models": config.models}
    for key, system in systems.items():
        mine = [r for r in runs if r.system == key]
        if not mine:
            continue
        rates = [r.versions_per_s for r in mine]
        summary[key] = {
            "label": system.label,
            "rounds": len(mine),
            "versions_per_s": [round(x, 1) for x in rates],
            "median_versions_per_s": round(statistics.median(rates), 1),
            "min_versions_per_s": round(min(rates), 1),
            "max_versions_per_s": round(max(rates), 1),
            "errors": sum(r.errors for r in mine),
            "retries": sum(r.retries for r in mine),
            "duplicates": sum(r.checks["duplicates"] for r in mine),
            "missing": sum(r.checks["missing"] for r in mine),
            "all_checks_ok": all(r.checks["ok"] for r in mine),
        }
    if "mlflow" in summary and summary["mlflow"]["median_versions_per_s"]:
        mlflow = summary["mlflow"]
        what_if = {
            key: round(summary[key]["median_versions_per_s"] / mlflow["median_versions_per_s"], 2)
            for key in WHAT_IF
            if key in summary
        }
        if what_if:
            summary["what_if_ratio_over_mlflow"] = what_if
            summary["what_if"] = {key: WHAT_IF[key] for key in what_if}
    if "bridge" in summary and "mlflow" in summary and summary["mlflow"]["median_versions_per_s"]:
        bridge, mlflow = summary["bridge"], summary["mlflow"]
        ratio = bridge["median_versions_per_s"] / mlflow["median_versions_per_s"]
        per_round = [
            round(b.versions_per_s / m.versions_per_s, 2)
            for b, m in zip(
                [r for r in runs if r.system == "bridge"], [r for r in runs if r.system == "mlflow"], strict=False
            )
            if m.versions_per_s
        ]
        clean = (
            bridge["errors"] == 0 and bridge["duplicates"] == 0 and bridge["missing"] == 0 and bridge["all_checks_ok"]
        )
        summary["ratio_bridge_over_mlflow"] = round(ratio, 2)
        summary["ratio_per_round"] = per_round
        summary["target_ratio"] = config.target
        summary["pass"] = None if config.target is None else bool(ratio >= config.target and clean)
    return summary


def summarize(runs: list[RunResult], systems: dict[str, System]) -> dict[str, Any]:
    """One summary per configuration (writers x models), in the order they ran; ``pass``: every
    configuration with a target met it (None when no configuration has a verdict)."""
    configs = list(dict.fromkeys(RunConfig(r.writers, r.models) for r in runs))
    per_config = {
        config.label: summarize_config(
            [r for r in runs if (r.writers, r.models) == (config.writers, config.models)], systems, config
        )
        for config in configs
    }
    verdicts = [c["pass"] for c in per_config.values() if c.get("pass") is not None]
    return {"configs": per_config, "pass": all(verdicts) if verdicts else None}


def print_summary(summary: dict[str, Any], systems: dict[str, System]) -> None:
    for label, config in summary["configs"].items():
        plural = "" if config["models"] == 1 else "s"
        print(f"{label}: {config['writers']} writers over {config['models']} model{plural}")
        for key in ("bridge", "mlflow", *WHAT_IF):
            if key in config:
                s = config[key]
                print(
                    f"  {s['label']:<18} median {s['median_versions_per_s']:8.1f} versions/s "
                    f"(rounds: {s['versions_per_s']}), errors {s['errors']}, duplicates {s['duplicates']}, "
                    f"missing {s['missing']}, checks {'ok' if s['all_checks_ok'] else 'FAIL'}"
                )
        if "ratio_bridge_over_mlflow" in config:
            target = config["target_ratio"]
            verdict = (
                f"target >= {target:.0f}x: {'PASS' if config['pass'] else 'FAIL'}"
                if target is not None
                else "no target for this configuration (reported only)"
            )
            print(
                f"  ratio airflow-bridge / MLflow (medians): {config['ratio_bridge_over_mlflow']:.2f}x "
                f"(per round {config['ratio_per_round']}); {verdict}"
            )
        for key, ratio in config.get("what_if_ratio_over_mlflow", {}).items():
            print(f"  * {systems[key].label} / MLflow {ratio:.2f}x -- what-if, not pass/fail: {WHAT_IF[key]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument(
        "--models",
        type=int,
        default=1,
        help=f"writer i registers versions of {MODEL}_{{i %% N}} (1, the default: all of {MODEL}); 1 <= N <= writers",
    )
    parser.add_argument(
        "--configs",
        default="",
        help="comma-separated WRITERSxMODELS, e.g. 8x1,8x8: every round runs each (instead of --writers/--models; "
        f"targets: 1 model >= {TARGET_RATIO:.0f}x MLflow, models >= writers >= {TARGET_RATIO_SPREAD:.0f}x)",
    )
    parser.add_argument(
        "--per-writer",
        type=int,
        default=1000,
        help="registrations per writer (default 1000: at 8x8 shorter runs last under a second, and then mostly "
        "measure start-up: each writer's first registration of a model, and its connection)",
    )
    parser.add_argument(
        "--systems",
        default="bridge,mlflow",
        help="comma-separated: bridge, mlflow; what-if variants (reported, never pass/fail): " + ", ".join(WHAT_IF),
    )
    parser.add_argument("--bridge-python", default=sys.executable)
    parser.add_argument("--mlflow-python", default=str(DEFAULT_MLFLOW_PYTHON))
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--pg-admin-db", default="postgres")
    parser.add_argument("--db-prefix", default="ab_regbench")
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--run-timeout", type=float, default=1800)
    parser.add_argument("--idle-max-busy", type=float, default=0.15, help="wait until CPUs are at most this busy")
    parser.add_argument("--idle-settle", type=float, default=3.0, help="... for this many seconds")
    parser.add_argument("--idle-max-wait", type=float, default=60.0, help="... or give up after this many")
    parser.add_argument("--profile", action="store_true", help="afterwards: instrumented runs (statements, cProfile)")
    parser.add_argument("--profile-only", action="store_true", help="skip the timed rounds")
    parser.add_argument("--strace-ops", type=int, default=100)
    parser.add_argument("--solo-ops", type=int, default=300, help="--profile: registrations of the 1-writer run")
    parser.add_argument("--out", default=str(RESULTS_DIR / "registry_throughput.json"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (1 round, 2 writers x 5, no idle wait) into a temp folder; MLflow only if its venv exists",
    )
    args = parser.parse_args(argv)
    results_dir = RESULTS_DIR
    if args.smoke:
        results_dir = _benchlib.smoke_mode() / "results"
        args.rounds, args.writers, args.models, args.per_writer, args.configs = 1, 2, 1, 5, ""
        args.idle_max_wait, args.db_prefix, args.out = (
            0.0,
            "ab_regbench_smoke",
            str(results_dir / "registry_throughput.json"),
        )
        args.systems = "bridge,mlflow" if Path(args.mlflow_python).exists() else "bridge"
    if not 1 <= args.models <= args.writers:
        parser.error("--models must be between 1 and --writers")
    try:
        configs = parse_configs(args.configs.strip() or f"{args.writers}x{args.models}")
    except ValueError as exc:
        parser.error(str(exc))

    all_systems = {
        "bridge": System("bridge", "airflow-bridge", args.bridge_python, BRIDGE_WORKER),
        "mlflow": System("mlflow", "MLflow", args.mlflow_python, MLFLOW_WORKER),
        # what-if variants (opt-in; never part of the pass/fail): see WHAT_IF
        "bridge_async": System(
            "bridge_async", "bridge-async*", args.bridge_python, BRIDGE_WORKER, env=ASYNC_ENV, what_if=True
        ),
        "mlflow_async": System(
            "mlflow_async", "mlflow-async*", args.mlflow_python, MLFLOW_WORKER, env=ASYNC_ENV, what_if=True
        ),
        "bridge_analyzed": System(
            "bridge_analyzed", "bridge-analyzed*", args.bridge_python, BRIDGE_WORKER, what_if=True, analyze_every_s=2
        ),
        "mlflow_analyzed": System(
            "mlflow_analyzed", "mlflow-analyzed*", args.mlflow_python, MLFLOW_WORKER, what_if=True, analyze_every_s=2
        ),
    }
    chosen = [all_systems[k.strip()] for k in args.systems.split(",") if k.strip()]
    if any(s.key == "mlflow" for s in chosen) and not Path(args.mlflow_python).exists():
        parser.error(
            f"no MLflow venv at {args.mlflow_python}: python3 -m venv benchmarks/.venv-mlflow && "
            "benchmarks/.venv-mlflow/bin/pip install -r benchmarks/requirements-mlflow.txt"
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    packages = {
        ("bridge" if s.worker == BRIDGE_WORKER else "mlflow"): run_json(s.python, s.worker, "versions") for s in chosen
    }
    machine = machine_info()
    postgres = postgres_info(args)
    print(f"machine: {json.dumps(machine)}")
    print(f"postgres: {postgres['version']}")
    for key, versions in packages.items():
        print(f"{all_systems[key].label} side: {json.dumps(versions, sort_keys=True)}")
    if not args.profile_only:
        print(
            f"{args.rounds} rounds x {len(chosen)} systems x configurations "
            f"{', '.join(c.label for c in configs)} (writers x models), {args.per_writer} registrations per writer",
            flush=True,
        )

    runs: list[RunResult] = []
    if not args.profile_only:
        for round_no in range(1, args.rounds + 1):
            for config in configs:
                for system in chosen:
                    run = run_system(args, system, round_no, writers=config.writers, models=config.models)
                    runs.append(run)
                    print(
                        f"round {round_no} {config.label:>5} {system.label:<18} {run.versions_per_s:8.1f} versions/s "
                        f"({run.versions} in {run.elapsed_s:.2f}s, errors {run.errors}, retries {run.retries}, "
                        f"checks {'ok' if run.checks['ok'] else 'FAIL ' + json.dumps(run.checks)})",
                        flush=True,
                    )
                    for sample in run.error_samples[:2]:
                        print(f"    error: {sample}", flush=True)
        print()
        print_table(runs, all_systems)
        summary = summarize(runs, {s.key: s for s in chosen})
        print()
        print_summary(summary, all_systems)
        report = {
            "benchmark": "registry registration throughput, concurrent writer processes, PostgreSQL",
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": {
                "rounds": args.rounds,
                "configs": [
                    {
                        "label": c.label,
                        "writers": c.writers,
                        "models": c.models,
                        "registrations_per_run": c.writers * args.per_writer,
                        "target_ratio": c.target,
                    }
                    for c in configs
                ],
                "per_writer": args.per_writer,
                "model_of_writer": f"{MODEL} with one model, else {MODEL}_{{writer % models}}",
                "order": [s.key for s in chosen],
                "order_configs": [c.label for c in configs],
                "timing": "clock starts when GO is sent to all writers (all connected and warmed up), "
                "stops when the last writer reports",
                "bridge_call": "ModelRegistry.register_version(model, ArtifactRef(uri, sha256, size), "
                "run=RunRef(dag, run, task), actor, metrics, params): version + audit event + checksum",
                "mlflow_call": "SqlAlchemyStore.create_model_version(model, source=uri, run_id=None)",
            },
            "machine": machine,
            "postgresql": postgres,
            "packages": packages,
            "summary": summary,
            "runs": [r.__dict__ for r in runs],
        }
        Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")

    if args.profile or args.profile_only:
        profile = {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "note": "instrumented runs (statement listeners, cProfile on writer 0): rates are not benchmark figures",
            "writers": args.writers,
            "models": args.models,
            "per_writer": args.per_writer,
            "machine": machine,
            "postgresql": postgres,
            "packages": packages,
            "systems": profile_systems(args, chosen),
            "pgbench_tps_ceiling": pgbench_ceiling(args),
        }
        path = results_dir / "registry_throughput_profile.json"
        path.write_text(json.dumps(profile, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
