"""Sharded loading on the real stack: N specs, ``loaders --shards auto``, the real dag-processor.

Generates N specs, lays them out with ``airflow-bridge loaders``, starts a fresh ``dev/stack``
(its own name, port, databases and Redis DB; PostgreSQL metadata DB, Airflow's own dag-processor)
with ``AB_STACK_DAGS_FOLDER`` at that folder, and counts the rows of the ``dag`` and
``serialized_dag`` tables every few seconds from the moment the dag-processor process exists.
Reports when all N DAGs are in the metadata DB (target: within 120 s), the ``import_error`` rows,
and whether the dag-processor log shows a persist failure or a timeout. Stops the stack and drops
its databases afterwards.

    .venv/bin/python benchmarks/shards_stack.py [--n 10000] [--port 28480] [--wait 600]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import _benchlib as lib

NAME = "shards_stack"
TARGET_S = 120.0
PG = os.environ.get("AB_STACK_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
BAD_LOG = re.compile(r"Failed to persist|StatementTooComplex|timed out|Killing DAGFileProcessorProcess|Traceback")


def _counts(database: str) -> tuple[int, int, int] | None:
    import psycopg2

    try:
        connection = psycopg2.connect(f"{PG}/{database}", connect_timeout=3)
    except psycopg2.Error:
        return None
    try:
        with connection.cursor() as cursor:
            values = []
            for table in ("dag", "serialized_dag", "import_error"):
                cursor.execute(f"SELECT count(*) FROM {table}")
                row = cursor.fetchone()
                values.append(int(row[0]) if row else 0)
            return values[0], values[1], values[2]
    except psycopg2.Error:
        return None
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=28480)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for all DAGs after the start")
    args = parser.parse_args()
    start_state = lib.source_state()
    stack_name = f"shards{args.n}"
    folder = lib.GENERATED_DIR / f"stack_{args.n}"
    names = lib.write_spec_folder(folder, args.n)
    (folder / "airflow_bridge_dags.py").unlink()  # the shard files replace it
    cli = [lib.PYTHON, "-m", "airflow_bridge.cli.main", "loaders", str(folder), "--shards", "auto"]
    print(subprocess.run(cli, check=True, capture_output=True, text=True).stdout.strip())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AB_STACK_"))}
    env.update(
        {
            "AB_STACK_NAME": stack_name,
            "AB_STACK_PORT": str(args.port),
            "AB_STACK_DAGS_FOLDER": str(folder),
            "AB_STACK_REDIS": f"redis://127.0.0.1:6379/{args.redis_db}",
            "AB_STACK_PG": PG,
        }
    )
    stack = [str(lib.REPO_ROOT / "dev" / "stack")]
    state = lib.REPO_ROOT / ".stack" / stack_name
    pid_file = state / "pids" / "dag-processor.pid"
    database = f"airflow_bridge_{stack_name}"
    launched = time.monotonic()
    starter = subprocess.Popen([*stack, "start", "--fresh"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples: list[dict[str, Any]] = []
    t0: float | None = None
    all_in: float | None = None
    log = ""
    bad: list[str] = []
    try:
        while time.monotonic() - launched < args.wait:
            if t0 is None:
                if pid_file.exists():
                    t0 = time.monotonic()
                    print(f"dag-processor started {t0 - launched:.0f} s after 'dev/stack start --fresh'", flush=True)
                else:
                    time.sleep(0.5)
                    continue
            counts = _counts(database)
            if counts is not None:
                dags, serialized, errors = counts
                elapsed = time.monotonic() - t0
                samples.append({"t_s": round(elapsed, 1), "dag": dags, "serialized_dag": serialized, "errors": errors})
                print(f"  t={elapsed:6.1f} s  dag={dags:6d}  serialized_dag={serialized:6d}  import_error={errors}")
                if all_in is None and dags >= args.n and serialized >= args.n:
                    all_in = elapsed
                if all_in is not None and elapsed > all_in + 30:  # a few more parse rounds for log and errors
                    break
            time.sleep(5)
        starter.wait(timeout=600)
        log = (state / "logs" / "dag-processor.log").read_text(errors="replace")
        bad = sorted({line.strip()[:300] for line in log.splitlines() if BAD_LOG.search(line)})
    finally:
        subprocess.run([*stack, "stop"], env=env, check=False, capture_output=True)
        import psycopg2

        connection = psycopg2.connect(f"{PG}/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            for db in (database, f"{database}_registry"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        connection.close()
        shutil.rmtree(folder, ignore_errors=True)
    runtimes = _runtimes(log)
    last = samples[-1] if samples else {}
    checks = {
        f"all {args.n} DAGs in the metadata DB within {TARGET_S:g} s": all_in is not None and all_in <= TARGET_S,
        "no import error": bool(last) and last["errors"] == 0,
        "no persist failure or timeout in the dag-processor log": not bad,
    }
    print(f"all DAGs in the DB after: {all_in if all_in is not None else 'never'} s; samples: {len(samples)}")
    if runtimes:
        print("slowest file runtimes (dag-processor stats): " + ", ".join(f"{f} {s:.2f} s" for f, s in runtimes[:3]))
    for line in bad[:10]:
        print(f"  log: {line}")
    for label, ok in checks.items():
        print(f"{lib.verdict(ok)}  {label}")
    lib.write_results(
        NAME,
        {
            "n": args.n,
            "dag_names": len(names),
            "machine": lib.machine_info(),
            "all_in_metadata_db_s": all_in,
            "samples": samples,
            "slowest_file_runtimes": runtimes[:5],
            "slowest_spec_errors_runtimes": [r for r in runtimes if "spec_errors" in r[0]][:3],
            "bulk_writes": log.count("Bulk-writing dags to db"),
            "log_problems": bad[:50],
            "checks": checks,
            "source": lib.source_note(start_state),
        },
    )
    return 0 if all(checks.values()) else 1


# Bundle, File Path, [PID, Current Duration,] # DAGs, # Errors, Last Duration, Last Run At
_STATS_ROW = re.compile(r"(airflow_bridge_\w+_shard_\d+_of_\d+\.py)\s+(?:\d+\s+[\d.]+s\s+)?\d+\s+\d+\s+([\d.]+)s")


def _runtimes(log: str) -> list[tuple[str, float]]:
    """The largest 'Last Duration' per shard file in the dag-processor's stats tables."""
    best: dict[str, float] = {}
    for line in log.splitlines():
        match = _STATS_ROW.search(line)
        if match:
            best[match.group(1)] = max(best.get(match.group(1), 0.0), float(match.group(2)))
    return sorted(best.items(), key=lambda item: -item[1])


if __name__ == "__main__":
    sys.exit(main())
