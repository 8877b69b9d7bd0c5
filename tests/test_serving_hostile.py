"""``airflow-bridge serve`` against hostile clients, over real HTTP and raw sockets.

One server per module with small limits (4 MiB bodies, 1000 rows, 2 s to read a request, 4 requests
in flight, a bearer token) takes oversized bodies, overflowing and nested values, slow and half-sent
requests; every assertion is about what a client sees: the status, a short JSON error naming the
problem, how long it took, and that ``/health`` kept answering. Start-up failures (registry or object
store unreachable, artifact deleted, bad token) must be one line on stderr and exit 1.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_bridge.artifacts import ArtifactRef, ArtifactStore
from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
from tests.pgproxy import CuttableProxy
from tests.test_serving import LAB_POLICY, _free_port, _register

TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "content-type": "application/json"}
LIMITS = ["--max-body-bytes", "4194304", "--max-rows", "1000", "--read-timeout", "2", "--max-in-flight", "4"]
# Limits are per process: one worker, so the in-flight limit is the server's (--workers: test_serve_workers.py).
OK_ROW = {"x1": 4, "x2": 0}
MAX_ERROR = 2048
SERVE = [sys.executable, "-m", "airflow_bridge.cli.main", "serve", "doubler", "--workers", "1"]


def _serve(url: str, *options: str, env: dict[str, str] | None = None) -> tuple[str, int, subprocess.Popen[str]]:
    """A running ``airflow-bridge serve doubler`` (base URL, port, process); its output goes to a log file."""
    port = _free_port()
    server = subprocess.Popen(
        [*SERVE, "--port", str(port), "--registry-url", url, "--refresh-seconds", "0.2", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/health", timeout=1)
            return base, port, server
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.2)


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """(base URL, port, registry folder) of a server with small limits and a token from a connection."""
    folder = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{folder / 'registry.db'}"
    registry, store = ModelRegistry(url), ArtifactStore(f"file://{folder / 'artifacts'}")
    _register(registry, store, "doubler", 1.0, 1)
    registry.deploy("doubler", 1, alias="production", target="local", actor="test")
    connection = json.dumps({"conn_type": "generic", "password": TOKEN})
    base, port, server = _serve(
        url, *LIMITS, "--token-conn-id", "serve_token_test", env={"AIRFLOW_CONN_SERVE_TOKEN_TEST": connection}
    )
    yield base, port, folder
    _stop(server)


def _health_seconds(base: str) -> float:
    start = time.monotonic()
    answer = httpx.get(f"{base}/health", timeout=5)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - start


def _assert_short_error(answer: httpx.Response, status: int | None = None, *, folder: Path | None = None) -> str:
    """The answer is a 4xx with a short JSON ``detail``: no traceback, no path; returns the detail."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    if status is not None:
        assert answer.status_code == status, answer.text[:500]
    assert len(answer.content) <= MAX_ERROR, len(answer.content)
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "Traceback" not in detail
    if folder is not None:
        assert str(folder) not in detail
    return str(detail)


def _raw(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``wait`` passes)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def _head(length: int | str, path: str = "/predict") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


# -- size ---------------------------------------------------------------------------------------


def test_a_60_mb_body_gets_413_at_once_and_the_server_stays_healthy(hostile: tuple[str, int, Path]) -> None:
    base, port, folder = hostile
    start = time.monotonic()
    answer = httpx.post(f"{base}/predict", content=b"0" * 60_000_000, headers=JSON, timeout=30)
    assert time.monotonic() - start < 5
    assert "at most 4194304 bytes" in _assert_short_error(answer, 413, folder=folder)

    declared = _raw(port, _head(60_000_000) + b'{"instances": [')  # the rest never comes: not waited for
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    absurd = _raw(port, _head("9" * 5000))
    assert absurd.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), absurd[:200]
    headers = _raw(port, b"POST /predict HTTP/1.1\r\n" + b"X-Filler: " + b"f" * 100_000)  # never ends
    assert headers.startswith(b"HTTP/1.1 431") and b"exceed 65536 bytes" in headers, headers[:200]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"instances": ["'
        for _ in range(100):
            yield b"x" * 65536

    chunked = httpx.post(f"{base}/predict", content=chunks(), headers=JSON, timeout=30)
    assert "over 4194304 bytes" in _assert_short_error(chunked, 413)
    assert _health_seconds(base) < 1
    assert httpx.post(f"{base}/predict", json={"instances": [OK_ROW]}, headers=AUTH).status_code == 200


def test_300k_numbers_get_a_short_413_fast(hostile: tuple[str, int, Path]) -> None:
    base, _, _ = hostile
    body = {"instances": list(range(300_000))}
    start = time.monotonic()
    answer = httpx.post(f"{base}/predict", json=body, headers=AUTH, timeout=30)
    assert time.monotonic() - start < 3
    assert "300000 rows; this server takes at most 1000" in _assert_short_error(answer, 413)

    few = httpx.post(f"{base}/predict", json={"instances": list(range(1000))}, headers=AUTH)
    assert "instances[0] must be a row object" in _assert_short_error(few, 422)
    nested = httpx.post(f"{base}/predict", json={"instances": [[OK_ROW] * 600, [OK_ROW] * 600]}, headers=AUTH)
    assert "at least 1200 rows" in _assert_short_error(nested, 413)


# -- values -------------------------------------------------------------------------------------

HOSTILE_VALUES = {
    "1e400": (b"1e400", "out of range"),
    "-1e400": (b"-1e400", "out of range"),
    "400-digit integer": (b"1" + b"0" * 400, "out of range"),
    "400-digit string": (b'"' + b"9" * 400 + b'"', "out of range"),
    "NaN": (b"NaN", "NaN is not a number"),
    "Infinity": (b"Infinity", "out of range"),
    "nested list": (b"[1, 2]", "a list where a single value is expected"),
    "nested object": (b'{"a": 1}', "an object where a single value is expected"),
}


@pytest.mark.parametrize("case", list(HOSTILE_VALUES))
def test_a_malformed_value_gets_422_naming_its_row_and_column(hostile: tuple[str, int, Path], case: str) -> None:
    base, _, folder = hostile
    value, expected = HOSTILE_VALUES[case]
    body = b'{"instances": [{"x1": 1, "x2": 0}, {"x1": %s, "x2": 0}]}' % value
    answer = httpx.post(f"{base}/predict", content=body, headers=JSON)
    detail = _assert_short_error(answer, 422, folder=folder)
    assert detail.startswith("instances[1], column 'x1'") and expected in detail, detail


FUZZ: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"not json", "application/json"),
    (b"\xff\xfe{}", "application/json"),
    (b"[" * 100_000, "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b'"instances"', "application/json"),
    (b"{}", "application/json"),
    (b'{"instances": null}', "application/json"),
    (b'{"instances": {}}', "application/json"),
    (b'{"instances": "x1"}', "application/json"),
    (b'{"instances": []}', "application/json"),
    (b'{"instances": [[]]}', "application/json"),
    (b'{"instances": [1, 2]}', "application/json"),
    (b'{"instances": [null]}', "application/json"),
    (b'{"instances": [[1, 2]]}', "application/json"),
    (b'{"instances": [{}]}', "application/json"),
    (b'{"instances": [{"x1": 1}]}', "application/json"),
    (b'{"instances": [{"x1": null, "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": "abc", "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": "' + b"A" * 1_000_000 + b'", "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": -Infinity, "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": 1' + b"0" * 5000 + b', "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": 18446744073709551616, "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": "inf", "x2": 0}]}', "application/json"),
    (b'{"instances": [{"x1": [4, 1], "x2": [0]}]}', "application/json"),
    (b'{"instances": [{"x1": [[4]], "x2": [[0]]}]}', "application/json"),
    (b'{"instances": [{"x1": 1, "x2": 0}]}', "text/plain"),
    (b"instances=1", "application/x-www-form-urlencoded"),
]
VALID: list[tuple[bytes, float]] = [  # (body, first prediction)
    (b'{"instances": [{"x1": 4, "x2": 0}]}', 4.0),
    (b'{"instances": [{"x1": true, "x2": false}], "parameters": {"ignored": [1]}}', 1.0),
    (b'{"instances": [{"x1": "4", "x2": " 0 "}, {"x1": 4.5e2, "x2": -0.0, "other": [1, {"a": 2}]}]}', 4.0),
    (b'{"instances": [[{"x1": 4, "x2": 0}], {"x1": [1, 2], "x2": [0, 0]}]}', 4.0),
    (b'{"instances": [{"x1": 4, "x2": 0, "\\u0000' + b"k" * 100_000 + b'": 1}]}', 4.0),
]


def test_no_body_a_client_can_send_gets_a_5xx(hostile: tuple[str, int, Path]) -> None:
    """Fuzz-style: every hostile body gets a short 4xx, the valid ones 200; never a 500."""
    base, _, folder = hostile
    with httpx.Client(timeout=10) as client:
        for path in ("/predict", "/v1/models/doubler:predict"):
            for body, content_type in FUZZ:
                answer = client.post(f"{base}{path}", content=body, headers={**AUTH, "content-type": content_type})
                detail = _assert_short_error(answer, folder=folder)
                assert "A" * 100 not in detail and "k" * 100 not in detail, (body[:60], detail)
            for body, first in VALID:
                answer = client.post(f"{base}{path}", content=body, headers=JSON)
                assert answer.status_code == 200, (body[:80], answer.text)
                assert answer.json()["predictions"][0] == pytest.approx(first, abs=1e-6), body[:80]
    assert _health_seconds(base) < 1


def _v2(*inputs: bytes, extra: bytes = b"") -> bytes:
    return b'{"inputs": [' + b", ".join(inputs) + b"]" + extra + b"}"


X1 = b'{"name": "x1", "shape": [1], "datatype": "FP64", "data": [4]}'
X2 = b'{"name": "x2", "shape": [1], "datatype": "FP64", "data": [0]}'
V2_FUZZ: list[bytes] = [
    b"{}",
    b'{"inputs": null}',
    b'{"inputs": []}',
    b'{"inputs": {"x1": [1]}}',
    b'{"inputs": [1, 2]}',
    b'{"inputs": [null]}',
    b'{"inputs": [{}]}',
    _v2(b'{"name": "x1"}'),
    _v2(b'{"name": ["x1"], "shape": [1], "datatype": "FP64", "data": [4]}', X2),
    _v2(b'{"name": "x1", "shape": [1e10], "datatype": "FP64", "data": [4]}', X2),
    _v2(b'{"name": "x1", "shape": [-1], "datatype": "FP64", "data": [4]}', X2),
    _v2(b'{"name": "x1", "shape": "1", "datatype": "FP64", "data": [4]}', X2),
    _v2(b'{"name": "x1", "shape": [1, 2], "datatype": "FP64", "data": [4, 5]}', X2),
    _v2(b'{"name": "x1", "shape": [1], "datatype": "' + b"F" * 100_000 + b'", "data": [4]}', X2),
    _v2(b'{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1e400]}', X2),
    _v2(b'{"name": "x1", "shape": [1], "datatype": "FP64", "data": [[[[4]]]]}', X2),
    _v2(b'{"name": "x1", "shape": [1], "datatype": "FP64", "data": ["' + b"A" * 1_000_000 + b'"]}', X2),
    _v2(b'{"name": "x1", "shape": [2], "datatype": "FP64", "data": [4, 4]}', X2),
    _v2(X1),
    _v2(X1, X2, extra=b', "id": "' + b"k" * 100_000 + b'"'),
    _v2(X1, X2, extra=b', "parameters": [1]'),
    _v2(X1, X2, extra=b', "parameters": {"probabilities": true}'),
    _v2(X1, X2, extra=b', "outputs": "predictions"'),
    _v2(X1, X2, extra=b', "outputs": [{"name": "' + b"o" * 100_000 + b'"}]'),
]
V2_VALID: list[bytes] = [
    _v2(X1, X2),
    _v2(X1, X2, extra=b', "id": "r1", "parameters": {"content_type": "pd", "probabilities": false}'),
    _v2(
        b'{"name": "x1", "shape": [1, 1], "datatype": "INT64", "data": [[4]]}',
        X2,
        b'{"name": "z", "shape": [1], "datatype": "BYTES", "data": ["ignored"]}',
    ),
    _v2(X1, X2, extra=b', "outputs": [{"name": "predictions"}]'),
]


def test_no_kserve_v2_body_gets_a_5xx(hostile: tuple[str, int, Path]) -> None:
    """KServe's v2 route takes the same hostile bodies as the others: a short 4xx, never a 500 or the input."""
    base, _, folder = hostile
    path = f"{base}/v2/models/doubler/infer"
    with httpx.Client(timeout=10) as client:
        for body in [*(b for b, _ in FUZZ), *V2_FUZZ]:
            detail = _assert_short_error(client.post(path, content=body, headers=JSON), folder=folder)
            assert all(c * 100 not in detail for c in "AFko"), (body[:60], detail)
        for body in V2_VALID:
            answer = client.post(path, content=body, headers=JSON)
            assert answer.status_code == 200, (body[:80], answer.text)
            outputs = answer.json()["outputs"]
            assert outputs[0]["name"] == "predictions" and outputs[0]["data"][0] == pytest.approx(4.0), body[:80]
        tensors = [b'{"name":"c%d","shape":[1],"datatype":"FP64","data":[4]}' % i for i in range(60_000)]
        start = time.monotonic()  # 60,000 columns in 3.5 MB: read in well under the read timeout
        answer = client.post(path, content=b'{"inputs": [' + b",".join(tensors) + b"]}", headers=JSON)
        assert "missing column(s) 'x1', 'x2'" in _assert_short_error(answer, 422)
        assert time.monotonic() - start < 3
        assert "sent twice" in _assert_short_error(client.post(path, content=_v2(X1, X1, X2), headers=JSON), 422)
        rows = json.dumps({"inputs": [{"name": "x1", "shape": [300_000], "datatype": "FP64", "data": [1] * 300_000}]})
        start = time.monotonic()
        assert "300000 rows; this server takes at most 1000" in _assert_short_error(
            client.post(path, content=rows, headers=JSON), 413
        )
        assert time.monotonic() - start < 3
    assert _health_seconds(base) < 1


def test_probabilities_from_a_regressor_get_422_naming_the_model(hostile: tuple[str, int, Path]) -> None:
    base, _, _ = hostile
    expected = "model 'doubler' v1 (LinearRegression) gives no class probabilities: it is a regression model"
    for path, body in [
        ("/predict", {"instances": [OK_ROW], "probabilities": True}),
        ("/v1/models/doubler:predict", {"instances": [OK_ROW], "probabilities": True}),
        ("/v2/models/doubler/infer", json.loads(_v2(X1, X2, extra=b', "parameters": {"probabilities": true}'))),
    ]:
        detail = _assert_short_error(httpx.post(f"{base}{path}", json=body, headers=AUTH), 422)
        assert detail.startswith(expected), (path, detail)
    assert httpx.get(f"{base}/metadata", headers=AUTH).json()["probabilities"] is False


# -- time and concurrency -------------------------------------------------------------------------


def test_a_client_sending_a_byte_a_second_gets_408_and_does_not_block_health(hostile: tuple[str, int, Path]) -> None:
    base, port, _ = hostile
    results: dict[str, bytes] = {}

    def drip(name: str, first: bytes, rest: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(first)
            sock.settimeout(1.0)
            received = b""
            for byte in rest:
                try:
                    sock.sendall(bytes([byte]))
                    received += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if received:
                    break
            sock.settimeout(2)
            with contextlib.suppress(OSError):
                while chunk := sock.recv(4096):  # the rest of the answer, until the server closes
                    received += chunk
            results[name] = received

    body = b'{"instances": [{"x1": 4, "x2": 0}]}'
    slow = [
        threading.Thread(target=drip, args=("body", _head(len(body)), body)),
        threading.Thread(target=drip, args=("headers", b"", _head(len(body)))),
    ]
    start = time.monotonic()
    for thread in slow:
        thread.start()
    health = []
    for _ in range(5):
        time.sleep(0.3)
        health.append(_health_seconds(base))
    for thread in slow:
        thread.join(timeout=10)
    assert max(health) < 1, health
    assert time.monotonic() - start < 6
    assert results["body"].startswith(b"HTTP/1.1 408") and b"did not arrive within 2 s" in results["body"]
    assert results["headers"].startswith(b"HTTP/1.1 408") and b"headers did not arrive" in results["headers"]


def test_half_sent_requests_beyond_the_limit_get_503_and_health_answers(hostile: tuple[str, int, Path]) -> None:
    base, port, _ = hostile
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    try:
        for sock in sockets:
            sock.sendall(_head(100) + b'{"inst')  # 6 of 100 bytes, then silence
            time.sleep(0.02)
        time.sleep(0.3)
        assert _health_seconds(base) < 1
        answers = []
        for sock in sockets:
            sock.settimeout(0.2)
            try:
                answers.append(sock.recv(65536))
            except TimeoutError:
                answers.append(b"")
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(busy) == 6 and all(b"--max-in-flight" in a and b"retry-after: 1" in a for a in busy), answers
        assert answers.count(b"") == 4  # the four in flight: still waiting for their bodies
        time.sleep(2.2)
        late = []
        for sock, first in zip(sockets, answers, strict=True):
            if not first:
                sock.settimeout(2)
                late.append(sock.recv(65536))
        assert len(late) == 4 and all(a.startswith(b"HTTP/1.1 408") for a in late), late
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.2)  # the server notices the closed sockets: its slots are free again
    assert httpx.post(f"{base}/predict", json={"instances": [OK_ROW]}, headers=AUTH).status_code == 200


def test_health_stays_fast_while_the_largest_requests_are_parsed(hostile: tuple[str, int, Path]) -> None:
    base, _, _ = hostile
    filler = "y" * 3800
    body = json.dumps({"instances": [{**OK_ROW, "note": filler} for _ in range(1000)]}).encode()
    assert 3_800_000 < len(body) < 4_194_304
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(3):
                statuses.append(client.post(f"{base}/predict", content=body, headers=JSON).status_code)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for thread in senders:
        thread.start()
    health = []
    while any(thread.is_alive() for thread in senders):
        health.append(_health_seconds(base))
        time.sleep(0.05)
    assert statuses and set(statuses) <= {200, 503}, statuses
    assert 200 in statuses and max(health) < 1, (statuses, health)


# -- authentication and disclosure ----------------------------------------------------------------


def test_the_token_guards_every_route_but_health(hostile: tuple[str, int, Path]) -> None:
    base, _, folder = hostile
    row = {"instances": [OK_ROW]}
    for headers in ({}, {"authorization": "Bearer wrong-token-0123456789abc"}, {"authorization": TOKEN}):
        for answer in (
            httpx.post(f"{base}/predict", json=row, headers=headers),
            httpx.post(f"{base}/v1/models/doubler:predict", json=row, headers=headers),
            httpx.get(f"{base}/metadata", headers=headers),
            httpx.get(f"{base}/openapi.json", headers=headers),
        ):
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in answer.text
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert httpx.post(f"{base}/predict", json=row, headers=AUTH).json()["predictions"] == [pytest.approx(4.0)]
    metadata = httpx.get(f"{base}/metadata", headers=AUTH).json()
    assert "artifact_uri" not in metadata and str(folder) not in json.dumps(metadata)
    assert metadata["artifact_name"] == f"{metadata['sha256']}.joblib" and metadata["artifact_store"] == "file"


# -- start-up and the registry going away -----------------------------------------------------------


def _start_fails(url: str, env: dict[str, str] | None = None, *options: str) -> str:
    """Run ``serve`` expecting exit 1; returns its stderr, which must be one line without a traceback."""
    done = subprocess.run(
        [*SERVE, "--registry-url", url, "--port", str(_free_port()), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "80", **(env or {})},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: cannot serve doubler@production: "), lines[0]
    return lines[0]


def _registry_with(folder: Path, artifact: ArtifactRef | None = None) -> tuple[str, ModelRegistry]:
    url = f"sqlite:///{folder / 'registry.db'}"
    registry = ModelRegistry(url)
    if artifact is None:
        _register(registry, ArtifactStore(f"file://{folder / 'artifacts'}"), "doubler", 1.0, 1)
    else:
        registry.register_version(
            "doubler",
            artifact,
            estimator="sklearn.linear_model.LinearRegression",
            data={"features": ["x1", "x2"]},
            run=RunRef("serve_test", "run1", "register"),
            actor="test",
            card=ModelCard(owner="test", team="lab"),
            policy=LAB_POLICY,
        )
    registry.deploy("doubler", 1, alias="production", target="local", actor="test")
    return url, registry


def test_an_unreachable_registry_at_start_is_one_line_and_exit_1() -> None:
    line = _start_fails("postgresql+psycopg2://u@127.0.0.1:1/x")
    assert "127.0.0.1 is unreachable" in line


def test_a_deleted_artifact_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url, registry = _registry_with(tmp_path)
    Path(urlsplit(registry.get_version("doubler", 1).artifact.uri).path).unlink()
    assert "was deleted after registration" in _start_fails(url)


def test_an_unreachable_object_store_at_start_is_one_line_and_exit_1(tmp_path: Path) -> None:
    key = "a" * 64
    url, _ = _registry_with(tmp_path, ArtifactRef(f"s3://models/doubler/{key}.joblib", key, 10, "store_down_serve"))
    connection = {
        "conn_type": "aws",
        "login": "key",
        "password": "secret",
        "extra": {
            "endpoint_url": f"http://127.0.0.1:{_free_port()}",
            "region_name": "us-east-1",
            "config_kwargs": {"retries": {"max_attempts": 1}},
        },
    }
    line = _start_fails(url, {"AIRFLOW_CONN_STORE_DOWN_SERVE": json.dumps(connection)})
    assert "cannot reach the object store" in line


def test_a_missing_or_short_token_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    assert "AIRFLOW_BRIDGE_SERVE_TOKEN" in _start_fails(url, {"AIRFLOW_BRIDGE_SERVE_TOKEN": "short"})
    assert "connection 'nope' (--token-conn-id) is not defined" in _start_fails(url, None, "--token-conn-id", "nope")


def test_health_is_degraded_while_the_registry_is_away_and_predictions_go_on(
    database: str, proxy: CuttableProxy, tmp_path: Path
) -> None:
    from tests.pgproxy import PASSWORD
    from tests.registry_workers import postgres_url

    registry = ModelRegistry(postgres_url(database))
    _register(registry, ArtifactStore(f"file://{tmp_path / 'artifacts'}"), "doubler", 1.0, 1)
    registry.deploy("doubler", 1, alias="production", target="local", actor="test")
    proxied = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/{database}"
    base, _, server = _serve(proxied)
    try:
        assert httpx.get(f"{base}/health").status_code == 200
        proxy.down()
        degraded = None
        deadline = time.monotonic() + 10
        while degraded is None and time.monotonic() < deadline:
            answer = httpx.get(f"{base}/health", timeout=2)
            degraded = answer if answer.status_code == 503 else None
            time.sleep(0.1)
        assert degraded is not None, "health never reported the registry outage"
        problem = degraded.json()["problem"]
        assert degraded.json()["status"] == "degraded" and problem.startswith("cannot read the registry")
        assert PASSWORD not in problem and str(tmp_path) not in problem
        answer = httpx.post(f"{base}/predict", json={"instances": [OK_ROW]}, timeout=5)
        assert answer.status_code == 200 and answer.json()["version"] == 1
        proxy.up()
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/health", timeout=2).status_code != 200:
            assert time.monotonic() < deadline, "health never recovered"
            time.sleep(0.1)
    finally:
        _stop(server)


def test_fastapis_own_validation_errors_are_short_and_never_echo_the_input(tmp_path: Path) -> None:
    """For routes with typed parameters (none of serve's today): the override of FastAPI's handler."""
    from fastapi.testclient import TestClient

    from airflow_bridge.serving.app import ModelHolder, create_app

    url, _ = _registry_with(tmp_path)
    holder = ModelHolder(ModelRegistry(url), "doubler", "production")
    holder.load_initial()
    app = create_app(holder)

    @app.get("/probe")
    def probe(count: int) -> int:
        return count

    answer = TestClient(app).get("/probe", params={"count": "nine" * 1000})
    assert _assert_short_error(answer, 422) == (
        "invalid request: query.count: Input should be a valid integer, unable to parse string as an integer"
    )


def test_every_limit_is_a_serve_option_with_the_documented_default() -> None:
    from airflow_bridge.cli.main import serve
    from airflow_bridge.serving.limits import ServeLimits

    defaults = {name: p.default for name, p in inspect.signature(serve).parameters.items()}
    limits = ServeLimits()
    for field in ("max_body_bytes", "max_rows", "read_timeout", "max_in_flight", "max_connections"):
        assert defaults[field] == getattr(limits, field), field
    assert defaults["keep_alive"] == limits.keep_alive and defaults["predict_threads"] == limits.predict_threads
    documented = (Path(__file__).parent.parent / "docs" / "serving.md").read_text()
    for option in ("--max-body-bytes", "--max-rows", "--read-timeout", "--max-in-flight", "--max-connections"):
        assert option in documented, option
