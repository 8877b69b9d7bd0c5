"""A real Airflow 3.3 on this machine, without Docker: ``dev/stack start|stop|status|users|env``.

Same topology and configuration as docker-compose.yml: Celery executor (broker on the local Redis,
result backend on PostgreSQL), metadata DB and model registry each in their own PostgreSQL database,
api-server, scheduler, dag-processor, triggerer and a Celery worker, plus a small OpenLineage HTTP
sink. Everything listens on 127.0.0.1; state, logs and passwords live under ``.stack/NAME/``.

Settings (environment): ``AB_STACK_NAME`` (dev), ``AB_STACK_PORT`` (28080; the lineage sink uses
PORT+1), ``AB_STACK_DAGS_FOLDER`` (dag_specs/), ``AB_STACK_PG`` (postgresql://postgres@127.0.0.1:5432),
``AB_STACK_REDIS`` (redis://127.0.0.1:6379/3).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NAME = os.environ.get("AB_STACK_NAME", "dev")
STATE = REPO / ".stack" / NAME
PORT = int(os.environ.get("AB_STACK_PORT", "28080"))
LINEAGE_PORT = PORT + 1
DAGS = Path(os.environ.get("AB_STACK_DAGS_FOLDER", str(REPO / "dag_specs"))).resolve()
PG = os.environ.get("AB_STACK_PG", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("AB_STACK_REDIS", "redis://127.0.0.1:6379/3")
META_DB = f"airflow_bridge_{NAME}"
REGISTRY_DB = f"airflow_bridge_{NAME}_registry"
URL = f"http://127.0.0.1:{PORT}"
# Users of the example policy: alice, bob and carol write specs, dana and erin approve; victor only reads
# (Airflow's viewer role) and olga operates (op role) without being in any team.
USERS = {
    "admin": "admin",
    "alice": "user",
    "bob": "user",
    "carol": "user",
    "dana": "user",
    "erin": "user",
    "victor": "viewer",
    "olga": "op",
}
# name -> command; started in this order, stopped in reverse.
SERVICES: dict[str, list[str]] = {
    "lineage-sink": [sys.executable, str(REPO / "dev" / "lineage_sink.py")],
    "api-server": ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(PORT)],
    "scheduler": ["airflow", "scheduler"],
    "dag-processor": ["airflow", "dag-processor"],
    "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
    "celery-worker": [
        "airflow",
        *("celery", "worker", "--queues", "default,cpu_large", "--concurrency", "2", "--skip-serve-logs"),
    ],
}


def say(message: str) -> None:
    """Print one step of what the script does."""
    print(f"stack[{NAME}]: {message}", flush=True)


def secret(name: str) -> str:
    """A random secret kept in the state folder (stable across restarts)."""
    path = STATE / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def passwords_file() -> Path:
    return STATE / "airflow" / "simple_auth_manager_passwords.json"


def stack_env() -> dict[str, str]:
    """The environment of every service: the inherited one without Airflow settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AB_STACK_"))}
    home = STATE / "airflow"
    pg_host = PG.split("://", 1)[1]
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{URL}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file()),
            "AIRFLOW__API_AUTH__JWT_SECRET": secret("jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": secret("api_secret"),
            "AIRFLOW__API__BASE_URL": URL,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg_host}/{META_DB}",
            "AIRFLOW__CELERY__BROKER_URL": REDIS,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg_host}/{META_DB}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(STATE / "logs" / "tasks"),
            # Re-parse quickly so an edited spec shows within seconds (a dev stack, not production).
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW_CONN_MODEL_REGISTRY_DEFAULT": json.dumps(
                {
                    "conn_type": "model_registry",
                    "host": pg_host.rsplit("@", 1)[-1].split(":")[0],
                    "port": int(pg_host.rsplit(":", 1)[-1]) if ":" in pg_host.rsplit("@", 1)[-1] else 5432,
                    "schema": REGISTRY_DB,
                    "login": pg_host.split("@", 1)[0] if "@" in pg_host else "postgres",
                }
            ),
            "AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT": f"file://{STATE / 'artifacts'}",
            # Audit events are signed with a key the registry database never sees, and the chain head is
            # anchored in write-once files after every alias move (docs/governance.md#trust-boundary).
            "AIRFLOW_BRIDGE_AUDIT_KEY": secret("audit_key"),
            "AIRFLOW__AIRFLOW_BRIDGE__AUDIT_ANCHOR_URI": f"file://{STATE / 'anchors'}",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "http", "url": f"http://127.0.0.1:{LINEAGE_PORT}", "endpoint": "api/v1/lineage"}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": f"airflow-bridge-{NAME}",
            "AB_LINEAGE_SINK_PORT": str(LINEAGE_PORT),
            "AB_LINEAGE_SINK_FILE": str(STATE / "lineage" / "events.jsonl"),
        }
    )
    return env


def pid_file(service: str) -> Path:
    return STATE / "pids" / f"{service}.pid"


def running_pid(service: str) -> int | None:
    """The service's process id when it is alive."""
    path = pid_file(service)
    if not path.exists():
        return None
    pid = int(path.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state in {"Z", "X"} else pid  # an exited child not yet reaped is a zombie


def psql(database: str, sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(f"{PG}/{database}")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def database_exists(name: str) -> bool:
    import psycopg2

    connection = psycopg2.connect(f"{PG}/postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cursor.fetchone() is not None
    finally:
        connection.close()


def prepare(fresh: bool) -> None:
    """Databases, folders, passwords, `airflow db migrate` and the example policy's pool."""
    if fresh:
        say(f"fresh start: dropping databases {META_DB}, {REGISTRY_DB} and {STATE}")
        for name in (META_DB, REGISTRY_DB):
            psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(STATE, ignore_errors=True)
    for folder in ("airflow", "logs/tasks", "pids", "artifacts", "lineage"):
        (STATE / folder).mkdir(parents=True, exist_ok=True)
    for name in (META_DB, REGISTRY_DB):
        if not database_exists(name):
            say(f"creating PostgreSQL database {name}")
            psql("postgres", f'CREATE DATABASE "{name}"')
    if not passwords_file().exists():
        passwords = {user: secrets.token_urlsafe(9) for user in USERS}
        passwords_file().write_text(json.dumps(passwords, indent=2) + "\n")
        say(f"users and passwords written to {passwords_file()}")
    env = stack_env()
    say(f"airflow db migrate (metadata DB {META_DB})")
    run(["airflow", "db", "migrate"], env, "db-migrate")
    run(["airflow", "pools", "set", "training_large", "2", "airflow-bridge compute tier cpu-large"], env, "pools")


def run(command: list[str], env: dict[str, str], log: str) -> None:
    with (STATE / "logs" / f"{log}.log").open("ab") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        sys.exit(f"stack[{NAME}]: `{' '.join(command)}` failed (exit {result.returncode}); see {out.name}")


def start(fresh: bool = False) -> None:
    """Start every service not already running, then wait until all are healthy."""
    if all(running_pid(s) for s in SERVICES) and not fresh:
        say(f"already running on {URL}")
        wait_healthy()
        return
    if fresh:
        stop()
    prepare(fresh)
    env = stack_env()
    for service, command in SERVICES.items():
        pid = running_pid(service)
        if pid:
            say(f"{service} already running (pid {pid})")
            continue
        log = (STATE / "logs" / f"{service}.log").open("ab")
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=STATE
        )
        pid_file(service).write_text(str(process.pid))
        say(f"started {service} (pid {process.pid}, log {log.name})")
    try:
        wait_healthy()
    except SystemExit:  # never leave a half-started stack behind
        say("not healthy: stopping every service of this stack")
        stop()
        raise
    say(f"ready: {URL} (users: dev/stack users; stop: dev/stack stop)")


def health() -> dict[str, str]:
    """The status of each part: api-server components, the Celery worker and the lineage sink."""
    status: dict[str, str] = {}
    try:
        with urllib.request.urlopen(f"{URL}/api/v2/monitor/health", timeout=5) as response:
            body: dict[str, Any] = json.load(response)
        for part in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
            status[part] = str((body.get(part) or {}).get("status") or "unknown")
    except (OSError, ValueError) as error:
        status["api-server"] = f"unreachable ({error})"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{LINEAGE_PORT}/health", timeout=5):
            status["lineage-sink"] = "healthy"
    except OSError:
        status["lineage-sink"] = "unreachable"
    status["celery-worker"] = worker_ping()
    return status


def worker_ping() -> str:
    if not running_pid("celery-worker"):
        return "not running"
    code = (
        "from airflow.providers.celery.executors.celery_executor_utils import app\n"
        "print('healthy' if app.control.ping(timeout=3) else 'no reply')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=stack_env(), capture_output=True, text=True, check=False, timeout=60
    )
    return (result.stdout.strip().splitlines() or ["no reply"])[-1]


def wait_healthy(timeout: float = 300) -> None:
    say("waiting for api-server, metadatabase, scheduler, dag-processor and triggerer heartbeats, worker ping")
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        dead = [s for s in SERVICES if not running_pid(s)]
        if dead:
            sys.exit(f"stack[{NAME}]: {', '.join(dead)} exited; see {STATE / 'logs'}/<service>.log")
        status = health()
        if status and all(value == "healthy" for value in status.values()):
            say("healthy: " + ", ".join(status))
            return
        time.sleep(1)  # health() itself takes seconds (the worker ping starts a Python process)
    sys.exit(f"stack[{NAME}]: not healthy after {timeout:.0f}s: {status}; logs in {STATE / 'logs'}")


def stack_processes() -> list[int]:
    """Every process on this machine whose environment has this stack's AIRFLOW_HOME."""
    marker = f"AIRFLOW_HOME={STATE / 'airflow'}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def stop() -> None:
    """Stop every service (their process groups all at once: TERM, wait, KILL), then verify nothing is left.

    The groups get TERM together, so the slowest graceful shutdown (the Celery worker's) bounds the
    wait, not their sum.
    """
    groups: dict[str, int] = {}
    for service in reversed(SERVICES):
        pid = running_pid(service)
        if pid is None:
            pid_file(service).unlink(missing_ok=True)
            continue
        say(f"stopping {service} (process group {pid})")
        groups[service] = pid
    terminate_groups(list(groups.values()))
    for service in groups:
        pid_file(service).unlink(missing_ok=True)
    leftovers = stack_processes()
    for pid in leftovers:
        say(f"killing leftover process {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5 if leftovers else 0)
    remaining = stack_processes()
    if remaining:
        sys.exit(f"stack[{NAME}]: processes still running: {remaining}")
    say("stopped; nothing left running")


def terminate_groups(pgids: list[int], grace: float = 30) -> None:
    """TERM every process group, wait up to ``grace`` seconds for all of them to end, then KILL the rest."""
    alive = list(pgids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            alive = [pgid for pgid in alive if _group_alive(pgid)]
            if alive:
                time.sleep(0.2)
        if not alive:
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def status() -> int:
    services = {s: running_pid(s) for s in SERVICES}
    for service, pid in services.items():
        say(f"{service}: {f'running (pid {pid})' if pid else 'stopped'}")
    if not any(services.values()):
        return 3
    for part, value in health().items():
        say(f"{part}: {value}")
    return 0


def users() -> None:
    """Print the users, their roles and passwords (written on first start)."""
    if not passwords_file().exists():
        sys.exit(f"stack[{NAME}]: no users yet: run dev/stack start")
    passwords = json.loads(passwords_file().read_text())
    print(f"{URL}  (passwords in {passwords_file()})")
    for user, role in USERS.items():
        print(f"  {user:6} {role:6} {passwords.get(user, '?')}")


def main(argv: list[str]) -> int:
    commands = {"start", "stop", "restart", "status", "users", "env"}
    if not argv or argv[0] not in commands:
        print("usage: dev/stack start [--fresh] | stop | restart | status | users | env", file=sys.stderr)
        return 2
    command = argv[0]
    if command == "start":
        start(fresh="--fresh" in argv[1:])
    elif command == "stop":
        stop()
    elif command == "restart":
        stop()
        start()
    elif command == "status":
        return status()
    elif command == "users":
        users()
    else:  # env: `eval "$(dev/stack env)"` to run airflow commands against the stack
        STATE.mkdir(parents=True, exist_ok=True)
        for key, value in stack_env().items():
            if key.startswith(("AIRFLOW", "AB_")):
                print(f"export {key}={json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
