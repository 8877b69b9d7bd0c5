"""``airflow-bridge serve`` against KServe's own model server on the same artifact, under 1 and 50 clients.

The model is the breast-cancer example's (``dag_specs/breast_cancer_classifier.yaml``: a 100-tree random
forest behind the product's column pipeline, ~30 ms per ``predict`` call whatever the rows), trained by
the product's training action and registered in a throwaway SQLite registry. The same artifact file is
served by:

- **bridge**: ``airflow-bridge serve`` with its defaults (adaptive batching; one HTTP front process and
  one predictor process per CPU, at least 2);
- **kserve**: KServe's model server (``.venv-kserve``, ``tests/kserve_predictor.py``: the sklearn
  predictor's ``predict``; one worker, its default), with KServe's REST v1 decoding.

Both get the same body on the same route, KServe v1's ``POST /v1/models/NAME:predict`` with
``{"instances": [[row, ...]]}`` (a list of rows, which both servers read), from the same client: one
asyncio process with raw HTTP/1.1 keep-alive connections, each client sending its next request as soon
as the last is answered, for ``--seconds`` per scenario and server after a warm-up. Scenarios: 1-row
and 100-row requests, 1 and 50 clients. Each round starts both servers afresh (an idle server costs
the other nothing). With 50 clients the servers take turns (ABAB: bridge first in odd rounds, kserve
first in even ones). With one client, where both spend ~all of a request in the same ``predict`` call
and a shared machine's speed drifts by several milliseconds from one minute to the next, the client
alternates between the servers every ``--slice`` seconds (0.5), each on its own kept-alive connection,
so both are measured under the same conditions. Throughput is answered requests per second (any
status; non-200s are counted and shown), latency is per request, send to last byte.

Targets (issue 20): at 50 one-row clients ≥ 5x KServe's throughput with p99 ≤ 500 ms; at 1 client, a
p50 no worse than KServe's.

    .venv/bin/python benchmarks/serve_load.py [--rounds 2] [--seconds 8] [--slice 0.5] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _benchlib
from _benchlib import REPO_ROOT, display, machine_info, print_table, source_note, source_state, write_results

sys.path.insert(0, str(REPO_ROOT / "tests"))
from serve_examples import Example, register_example  # the tests' example registration

KSERVE_PYTHON = REPO_ROOT / ".venv-kserve" / "bin" / "python"
SCENARIOS = {  # name: (rows per request, clients)
    "1 row, 1 client": (1, 1),
    "100 rows, 1 client": (100, 1),
    "1 row, 50 clients": (1, 50),
    "100 rows, 50 clients": (100, 50),
}
SIDES = ("bridge", "kserve")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kserve_available() -> bool:
    return (REPO_ROOT / ".venv-kserve" / "installed").exists()


def _start(side: str, example: Example, folder: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    if side == "bridge":
        cmd = [sys.executable, "-m", "airflow_bridge.cli.main", "serve", example.model]
        cmd += ["--registry-url", example.registry_url, "--port", str(port), *extra]  # defaults: access log on
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    else:
        cmd = [str(KSERVE_PYTHON), str(REPO_ROOT / "tests" / "kserve_predictor.py"), str(port)]
        cmd += [f"{example.model}={example.artifact_path}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=folder)
    ready = f"GET /v1/models/{example.model} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()
    probe = b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" if side == "bridge" else ready
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(probe)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"the {side} server did not start")
        time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


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


async def _client(port: int, request: bytes, until: float, latencies: list[float], statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < until:
        start = time.perf_counter()
        try:
            status, closing = await _exchange(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError):
            status, closing = 0, True
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
        if closing:
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


async def _alternating(ports: dict[str, int], request: bytes, seconds: float, slice_s: float) -> dict[str, Any]:
    """One client taking turns between the servers every ``slice_s``, ``seconds`` on each: side → run."""
    connections = {side: await asyncio.open_connection("127.0.0.1", port) for side, port in ports.items()}
    runs: dict[str, dict[str, Any]] = {side: {"latencies": [], "statuses": Counter(), "wall_s": 0.0} for side in ports}
    spent = 0.0
    while spent < seconds:
        for side, port in ports.items():
            run, (reader, writer) = runs[side], connections[side]
            start = time.perf_counter()
            while time.perf_counter() - start < slice_s:
                sent = time.perf_counter()
                status, closing = await _exchange(reader, writer, request)
                run["latencies"].append(time.perf_counter() - sent)
                run["statuses"][status] += 1
                if closing:
                    writer.close()
                    connections[side] = reader, writer = await asyncio.open_connection("127.0.0.1", port)
            run["wall_s"] += time.perf_counter() - start
        spent += slice_s
    for _, writer in connections.values():
        writer.close()
    return {side: {**run, "statuses": dict(run["statuses"])} for side, run in runs.items()}


async def _load(port: int, request: bytes, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, request, start + seconds, latencies, statuses) for _ in range(clients)))
    wall = time.perf_counter() - start
    return {"latencies": latencies, "statuses": dict(statuses), "wall_s": wall}


def _batches(port: int) -> tuple[float, float]:
    """(requests, predict calls) so far, from the bridge server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).split(b"\r\n\r\n", 1)[1].decode()
    found = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for key in found:
                if sample.name == f"airflow_bridge_serve_batch_requests_{key}":
                    found[key] += sample.value
    return found["sum"], found["count"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _figures(run: dict[str, Any]) -> dict[str, Any]:
    lat = run["latencies"]
    return {
        "throughput_rps": len(lat) / run["wall_s"],
        "p50_ms": _pct(lat, 0.5) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "requests": len(lat),
        "statuses": {str(k): v for k, v in run["statuses"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="ABAB rounds (each server started afresh per round)")
    parser.add_argument("--seconds", type=float, default=8.0, help="load per scenario and server, after warm-up")
    parser.add_argument("--slice", type=float, default=0.5, help="one-client scenarios: seconds per turn")
    parser.add_argument("--bridge-args", default="", help="extra `serve` options, e.g. '--workers 1'")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="run only this scenario (repeatable)")
    parser.add_argument("--bridge-only", action="store_true", help="leave KServe's server out (quick tuning runs)")
    parser.add_argument("--smoke", action="store_true", help="tiny run (1 round, short loads) into a temp folder")
    args = parser.parse_args()
    scenarios = {name: SCENARIOS[name] for name in args.only} if args.only else SCENARIOS
    if args.smoke:
        _benchlib.smoke_mode()
        args.rounds, args.seconds, args.slice = 1, 0.5, 0.1
        scenarios = {name: (rows, min(clients, 4)) for name, (rows, clients) in scenarios.items()}
    sides = SIDES if _kserve_available() and not args.bridge_only else ("bridge",)
    if not _kserve_available():
        print("the KServe venv is missing (`make .venv-kserve`): measuring airflow-bridge serve alone")
    started = source_state()
    folder = Path(tempfile.mkdtemp(prefix="airflow-bridge-bench-serve-"))
    try:
        logging.getLogger("airflow_bridge").setLevel(logging.WARNING)  # the training action's column report
        example = register_example("breast_cancer_classifier", folder)
        rows = json.loads(example.rows.to_json(orient="records"))
        bodies = {
            n: json.dumps({"instances": [[rows[i % len(rows)] for i in range(n)]]}).encode()
            for n in {r for r, _ in scenarios.values()}
        }
        path = f"/v1/models/{example.model}:predict"
        extra = args.bridge_args.split()
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {k: [] for k in scenarios} for s in sides}
        for round_ in range(args.rounds):
            order = sides if round_ % 2 == 0 else sides[::-1]
            servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
            try:
                for side in order:
                    servers[side] = _start(side, example, folder, extra)
                ports = {side: servers[side][1] for side in order}
                for port in ports.values():
                    asyncio.run(_load(port, _request(path, bodies[1]), 4, 0.3 if args.smoke else 1.0))  # warm-up
                for name, (n_rows, clients) in scenarios.items():
                    request = _request(path, bodies[n_rows])
                    before = _batches(ports["bridge"])
                    if clients == 1:
                        runs = asyncio.run(_alternating(ports, request, args.seconds, args.slice))
                    else:
                        runs = {side: asyncio.run(_load(ports[side], request, clients, args.seconds)) for side in order}
                    after = _batches(ports["bridge"])
                    for side in order:
                        figures = _figures(runs[side])
                        if side == "bridge":
                            calls = after[1] - before[1]
                            figures["requests_per_predict"] = (after[0] - before[0]) / calls if calls else None
                        samples[side][name].append(figures)
                        per_call = figures.get("requests_per_predict")
                        print(
                            f"  round {round_ + 1}/{args.rounds} {side:6} {name:21} "
                            f"{figures['throughput_rps']:7.1f} req/s  p50 {figures['p50_ms']:7.1f} ms  "
                            f"p99 {figures['p99_ms']:7.1f} ms  statuses {figures['statuses']}"
                            + (f"  {per_call:.1f} requests per predict" if per_call else ""),
                            flush=True,
                        )
            finally:
                for server, _ in servers.values():
                    _stop(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = _summarize(samples, scenarios)
    result.update(
        rounds=args.rounds,
        seconds_per_scenario=args.seconds,
        one_client_slice_s=args.slice,
        bridge=f"airflow-bridge serve (defaults{', ' + args.bridge_args if args.bridge_args else ''})",
        kserve="KServe ModelServer, tests/kserve_predictor.py (the sklearn predictor's predict), 1 worker",
        machine=machine_info(),
        source=source_note(started),
    )
    out = write_results("serve_load", result)
    print(f"\nwrote {display(out)}")


def _summarize(samples: dict[str, dict[str, list[dict[str, Any]]]], scenarios: dict[str, Any]) -> dict[str, Any]:
    table = []
    for name in scenarios:
        for index in range(len(samples["bridge"][name])):
            row: list[Any] = [name, index + 1]
            for side in SIDES:
                if side in samples:
                    f = samples[side][name][index]
                    row += [f["throughput_rps"], f["p50_ms"], f["p99_ms"]]
                else:
                    row += ["-", "-", "-"]
            if "kserve" in samples:
                row.append(
                    samples["bridge"][name][index]["throughput_rps"] / samples["kserve"][name][index]["throughput_rps"]
                )
            else:
                row.append("-")
            table.append(row)
    print()
    print_table(
        [
            *("scenario", "round", "bridge req/s", "bridge p50 ms", "bridge p99 ms"),
            *("kserve req/s", "kserve p50 ms", "kserve p99 ms", "throughput ratio"),
        ],
        table,
    )
    targets: dict[str, Any] = {}
    if "kserve" in samples and {"1 row, 50 clients", "1 row, 1 client"} <= set(scenarios):
        many, one = samples["bridge"]["1 row, 50 clients"], samples["bridge"]["1 row, 1 client"]
        k_many, k_one = samples["kserve"]["1 row, 50 clients"], samples["kserve"]["1 row, 1 client"]
        targets = {
            "50 clients: throughput >= 5x kserve": all(
                b["throughput_rps"] >= 5 * k["throughput_rps"] for b, k in zip(many, k_many, strict=True)
            ),
            "50 clients: p99 <= 500 ms": all(b["p99_ms"] <= 500 for b in many),
            "1 client: p50 <= kserve's": all(b["p50_ms"] <= k["p50_ms"] for b, k in zip(one, k_one, strict=True)),
        }
        for target, met in targets.items():
            print(f"{target}: {'met in every round' if met else 'NOT met in every round'}")
    return {"scenarios": samples, "targets": targets}


if __name__ == "__main__":
    main()
