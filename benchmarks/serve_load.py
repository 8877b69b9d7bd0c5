"""``airflow-bridge serve`` under load: latency of 1-row and 1000-row requests, 1 and 200 clients, and RSS.

The model is a scikit-learn LogisticRegression fitted on the breast-cancer example table (30 numeric
columns; bodies of 1000 rows are ~0.6 MB), registered in a throwaway SQLite registry. Its ``predict``
takes well under a millisecond, so the figures are the server's own cost (the product's full
pipeline adds ~30 ms per call, the same on both sides). Two servers run on it, one at a time, alternating
per scenario and repetition (ABAB / BABA), against the same client:

- **baseline**: the server before the request limits (``airflow_bridge/serving/app.py`` at
  ``--baseline-rev``, read with ``git show``) under ``uvicorn.run`` with its old defaults;
- **candidate**: ``airflow-bridge serve`` as it is now, with ``--max-in-flight 256`` so that 200 clients
  do the same work as on the baseline (a short extra run with the default 64 shows the 503 share).

The client is one asyncio process with raw HTTP/1.1 keep-alive connections (its own cost is small and
the same for both). Latency is per request, send to last byte; p50 / p99 over every request of the
scenario's repetitions; ratio = candidate / baseline (lower is faster). While the load runs, ``/health``
is polled every 100 ms: its latency shows whether the event loop stays free. A bare in-process
``model.predict`` on the same rows is the floor. RSS (``VmRSS``, ``VmHWM``) from ``/proc/<pid>/status``
after start-up and after the load.

    .venv/bin/python benchmarks/serve_load.py [--repetitions 3] [--baseline-rev 8844a26] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import _benchlib
from _benchlib import REPO_ROOT, display, machine_info, print_table, source_note, source_state, write_results

MODEL = "bench_serve"
SCENARIOS = {  # name: (rows per request, clients, requests per client)
    "1 row, 1 client": (1, 1, 300),
    "1000 rows, 1 client": (1000, 1, 30),
    "1 row, 200 clients": (1, 200, 5),
    "1000 rows, 200 clients": (1000, 200, 1),
}
SMOKE_SCENARIOS = {name: (rows, min(clients, 4), 2) for name, (rows, clients, _) in SCENARIOS.items()}
LIMITED_LOAD = (200, 5)  # clients, requests per client: the extra run at the default --max-in-flight
BASELINE_LAUNCHER = """
import importlib.util, sys, uvicorn
from airflow_bridge.registry.store import ModelRegistry
spec = importlib.util.spec_from_file_location("baseline_app", sys.argv[1])
app = sys.modules["baseline_app"] = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
holder = app.ModelHolder(ModelRegistry(sys.argv[2]), sys.argv[3], "production", 2.0)
holder.load_initial()
uvicorn.run(app.create_app(holder), host="127.0.0.1", port=int(sys.argv[4]), log_level="info")
"""


def _setup(folder: Path) -> tuple[str, Any, list[dict[str, Any]]]:
    """(registry URL, fitted model, held-out rows as JSON-ready dicts) of the benchmark's one version."""
    import pandas as pd
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from airflow_bridge.artifacts import ArtifactStore, dump_model
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
    from airflow_bridge.registry.records import binding_for

    table = pd.read_csv(REPO_ROOT / "dag_specs" / "data" / "breast_cancer.csv")
    features = table.drop(columns="malignant")
    # The unscaled columns need ~5000 solver iterations (~5 s) to converge; a smoke run only needs a fitted model.
    fit = LogisticRegression(max_iter=50 if _benchlib.SMOKE else 5000)
    with warnings.catch_warnings():
        if _benchlib.SMOKE:
            warnings.simplefilter("ignore", ConvergenceWarning)
        model = fit.fit(features.iloc[:400], table["malignant"].iloc[:400])
    features = features.iloc[400:]
    url = f"sqlite:///{folder / 'registry.db'}"
    registry = ModelRegistry(url)
    ref = ArtifactStore(f"file://{folder / 'artifacts'}").put(dump_model(model), f"models/{MODEL}", ".joblib")
    policy = Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"bench": {"approval_required_for": []}}}
    )
    registry.register_version(
        MODEL,
        ref,
        estimator="sklearn.linear_model.LogisticRegression",
        task_kind="classification",
        data={"features": [str(c) for c in features.columns], "target": "malignant"},
        run=RunRef("serve_load", "run1", "register"),
        actor="bench",
        card=ModelCard(owner="bench", team="bench"),
        policy=binding_for(policy, "specs/_policy.yaml"),
    )
    registry.deploy(MODEL, 1, alias="production", target="local", actor="bench")
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in features.to_dict(orient="records")
    ]
    return url, model, rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str, url: str, folder: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    if kind == "baseline":
        cmd = [sys.executable, "-c", BASELINE_LAUNCHER, str(folder / "baseline_app.py"), url, MODEL, str(port)]
    else:
        cmd = [sys.executable, "-m", "airflow_bridge.cli.main", "serve", MODEL, "--registry-url", url]
        cmd += ["--port", str(port), *extra]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=folder)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {kind} server did not start")
        time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=20)


def _memory(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid`` in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """Send one request, read its whole answer: (status, whether the server closes the connection)."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers.get("connection", "").lower() == "close"


async def _client(port: int, request: bytes, count: int, latencies: list[float], statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        start = time.perf_counter()
        status, closing = await _exchange(reader, writer, request)
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
        if closing:
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


async def _health_poll(port: int, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _exchange(reader, writer, b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
        latencies.append(time.perf_counter() - start)
        writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def _load(port: int, request: bytes, clients: int, per_client: int) -> dict[str, Any]:
    latencies: list[float] = []
    health: list[float] = []
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()
    poller = asyncio.create_task(_health_poll(port, stop, health))
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, request, per_client, latencies, statuses) for _ in range(clients)))
    wall = time.perf_counter() - start
    stop.set()
    await poller
    return {"latencies": latencies, "health": health, "statuses": dict(statuses), "wall_s": wall}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _in_process(model: Any, rows: list[dict[str, Any]], count: int) -> float:
    """Median seconds of ``model.predict`` on these rows as a DataFrame (the floor: no HTTP, no JSON)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        model.predict(frame)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--baseline-rev", default="8844a26", help="Commit whose serving/app.py is the baseline.")
    parser.add_argument("--smoke", action="store_true", help="tiny run (few requests, 1 repetition) into a temp folder")
    args = parser.parse_args()
    if args.smoke:
        global SCENARIOS, LIMITED_LOAD
        _benchlib.smoke_mode()
        SCENARIOS, LIMITED_LOAD, args.repetitions = SMOKE_SCENARIOS, (4, 1), 1
    started = source_state()
    folder = Path(tempfile.mkdtemp(prefix="airflow-bridge-bench-serve-"))
    try:
        old = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "show", f"{args.baseline_rev}:airflow_bridge/serving/app.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / "baseline_app.py").write_text(old)
        url, model, rows = _setup(folder)
        result = _run(args.repetitions, url, folder, model, rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.update(
        repetitions=args.repetitions,
        baseline=f"airflow_bridge/serving/app.py at {args.baseline_rev} under uvicorn.run defaults",
        candidate="airflow-bridge serve --max-in-flight 256 (other limits at their defaults)",
        machine=machine_info(),
        source=source_note(started),
    )
    path = write_results("serve_load", result)
    print(f"\nwrote {display(path)}")


def _run(repetitions: int, url: str, folder: Path, model: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    bodies = {n: json.dumps({"instances": [rows[i % len(rows)] for i in range(n)]}).encode() for n in (1, 1000)}
    sides = {"baseline": [], "candidate": ["--max-in-flight", "256"]}
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {k: [] for k in SCENARIOS} for s in sides}
    memory: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for rep in range(repetitions):
        order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
        for side in order:
            server, port = _start(side, url, folder, sides[side])
            before = _memory(server.pid)
            asyncio.run(_load(port, _request("/predict", bodies[1]), 4, 5))  # warm-up, not measured
            for name, (n_rows, clients, per_client) in SCENARIOS.items():
                run = asyncio.run(_load(port, _request("/predict", bodies[n_rows]), clients, per_client))
                samples[side][name].append(run)
                print(
                    f"  rep {rep + 1}/{repetitions} {side:9} {name:22} p50 {_pct(run['latencies'], 0.5) * 1000:7.1f} ms"
                    f"  statuses {run['statuses']}",
                    flush=True,
                )
            memory[side].append({"before": before, "after": _memory(server.pid)})
            _stop(server)
    defaults, port = _start("candidate", url, folder, [])
    limited = asyncio.run(_load(port, _request("/predict", bodies[1]), *LIMITED_LOAD))
    _stop(defaults)
    return _summarize(samples, memory, limited, model, rows, bodies)


def _summarize(
    samples: dict[str, dict[str, list[dict[str, Any]]]],
    memory: dict[str, list[dict[str, Any]]],
    limited: dict[str, Any],
    model: Any,
    rows: list[dict[str, Any]],
    bodies: dict[int, bytes],
) -> dict[str, Any]:
    counts = (2, 2) if _benchlib.SMOKE else (200, 30)
    floor = {
        1: _in_process(model, rows[:1], counts[0]),
        1000: _in_process(model, [rows[i % len(rows)] for i in range(1000)], counts[1]),
    }
    table, scenarios = [], {}
    for name, (n_rows, _, _) in SCENARIOS.items():
        figures: dict[str, Any] = {}
        for side in samples:
            runs = samples[side][name]
            pooled = [x for run in runs for x in run["latencies"]]
            health = [x for run in runs for x in run["health"]]
            statuses: Counter[str] = Counter()
            for run in runs:
                statuses.update({str(k): v for k, v in run["statuses"].items()})
            figures[side] = {
                "p50_ms": _pct(pooled, 0.5) * 1000,
                "p99_ms": _pct(pooled, 0.99) * 1000,
                "requests": len(pooled),
                "statuses": dict(statuses),
                "throughput_rps": statistics.median(len(r["latencies"]) / r["wall_s"] for r in runs),
                "health_p50_ms": _pct(health, 0.5) * 1000 if health else None,
                "health_max_ms": max(health) * 1000 if health else None,
                "p50_per_repetition_ms": [_pct(r["latencies"], 0.5) * 1000 for r in runs],
            }
        base, cand = figures["baseline"], figures["candidate"]
        paired = [c / b for c, b in zip(cand["p50_per_repetition_ms"], base["p50_per_repetition_ms"], strict=True)]
        figures.update(
            ratio_p50=cand["p50_ms"] / base["p50_ms"],
            ratio_p99=cand["p99_ms"] / base["p99_ms"],
            paired_p50_ratios=paired,
            in_process_predict_ms=floor[n_rows] * 1000,
            body_bytes=len(bodies[n_rows]),
        )
        scenarios[name] = figures
        table.append(
            [
                *(name, base["p50_ms"], cand["p50_ms"], figures["ratio_p50"], base["p99_ms"], cand["p99_ms"]),
                *(figures["ratio_p99"], base["health_max_ms"], cand["health_max_ms"], floor[n_rows] * 1000),
            ]
        )
    print()
    print_table(
        [
            *("scenario", "base p50 ms", "cand p50 ms", "p50 ratio", "base p99 ms", "cand p99 ms", "p99 ratio"),
            *("base /health max ms", "cand /health max ms", "predict() ms"),
        ],
        table,
    )
    rss = {
        side: {
            "before_mib": statistics.median(m["before"]["VmRSS"] for m in runs),
            "after_mib": statistics.median(m["after"]["VmRSS"] for m in runs),
            "peak_mib": statistics.median(m["after"]["VmHWM"] for m in runs),
        }
        for side, runs in memory.items()
    }
    print()
    print_table(
        ["server", "RSS before MiB", "RSS after MiB", "peak MiB"],
        [[side, r["before_mib"], r["after_mib"], r["peak_mib"]] for side, r in rss.items()],
    )
    busy = limited["statuses"]
    print(
        f"\ncandidate at default --max-in-flight 64, {LIMITED_LOAD[0]} clients x {LIMITED_LOAD[1]} one-row requests: "
        f"statuses {busy}, "
        f"p50 {_pct(limited['latencies'], 0.5) * 1000:.1f} ms, /health max {max(limited['health']) * 1000:.1f} ms"
    )
    return {
        "scenarios": scenarios,
        "rss": rss,
        "default_limit_200_clients": {
            "statuses": busy,
            "p50_ms": _pct(limited["latencies"], 0.5) * 1000,
            "health_max_ms": max(limited["health"]) * 1000,
        },
    }


if __name__ == "__main__":
    main()
