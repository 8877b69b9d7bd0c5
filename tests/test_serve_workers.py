"""``serve --workers 2``: one HTTP front process, two predictor processes. A predictor killed mid-batch costs
only that batch's requests a 503 naming why, the others keep serving and it is replaced; every predictor
follows an alias move; a tampered version is refused and the old one kept, ``/health`` degraded."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from airflow_bridge.registry import ModelRegistry
from airflow_bridge.serving.predictors import LOST, TIMED_OUT
from tests.serve_examples import register_doubler, register_staller, start_serve, stop_serve

ROW = {"instances": [{"x1": 2, "x2": 0}]}


def _predictors(base: str) -> dict[int, float]:
    """pid → version of each live predictor, from one scrape of the front's /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {
        int(sample.labels["pid"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "airflow_bridge_serve_predictor_version"
    }


def _until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_the_front_answers_and_two_predictors_predict(tmp_path: Path) -> None:
    base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "2", log=tmp_path / "s.log")
    try:
        predictors = _predictors(base)
        assert len(predictors) == 2 and set(predictors.values()) == {1.0}
        assert all(psutil.pid_exists(pid) and pid != server.pid for pid in predictors)
        for i in range(20):
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": i, "x2": 0}]})
            assert answer.status_code == 200 and answer.json()["version"] == 1
            assert abs(answer.json()["predictions"][0] - i) < 1e-6
        bad = httpx.post(f"{base}/predict", json={"instances": [{"x1": "text", "x2": 0}]})
        assert bad.status_code == 422 and "cannot predict on this input" in bad.json()["detail"]
    finally:
        stop_serve(server)
    assert server.returncode == 0
    assert _until(lambda: not any(psutil.pid_exists(pid) for pid in predictors), 10)


def test_a_killed_predictor_costs_its_batch_a_503_and_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "2", log=log)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    details: list[str] = []
    retry_after: set[str | None] = set()
    killed = threading.Event()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as session:
            while not stop.is_set():
                try:
                    answer = session.post(f"{base}/predict", json=ROW)
                    status = str(answer.status_code)
                    if answer.status_code == 503:
                        details.append(answer.json()["detail"])
                        retry_after.add(answer.headers.get("retry-after"))
                except httpx.TransportError:
                    status = "connection lost"
                (after if killed.is_set() else before)[status] += 1

    try:
        victim, survivor = sorted(_predictors(base))
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        os.kill(victim, signal.SIGKILL)
        killed.set()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(15)
        assert set(before) == {"200"}, before
        assert set(after) <= {"200", "503"}, after  # the front kept every connection
        assert after["503"] >= 1 and set(details) == {LOST}, (after, details)
        assert retry_after == {"1"}  # its replacement is up within about a second
        assert after["200"] > 10 * after["503"]  # the other predictor kept serving
        assert psutil.pid_exists(survivor)
        assert _until(lambda: len(_predictors(base)) == 2 and victim not in _predictors(base), 10)
        for _ in range(10):
            assert httpx.post(f"{base}/predict", json=ROW).status_code == 200
    finally:
        stop.set()
        stop_serve(server)
    assert f"worker {victim} exited" in log.read_text()


def test_a_stuck_prediction_gets_504_and_its_predictor_is_replaced(tmp_path: Path) -> None:
    """A row that makes the model hang (x1 = 999 sleeps for ten minutes) costs only its own request."""
    log = tmp_path / "s.log"
    options = ("--workers", "2", "--predict-timeout", "1.5")
    base, server = start_serve(register_staller(tmp_path), "staller", *options, log=log)
    stuck: dict[str, httpx.Response] = {}

    def send_the_stuck_row() -> None:
        stuck["answer"] = httpx.post(f"{base}/predict", json={"instances": [{"x1": 999, "x2": 0}]}, timeout=60)

    try:
        before = set(_predictors(base))
        started = time.monotonic()
        thread = threading.Thread(target=send_the_stuck_row)
        thread.start()
        time.sleep(0.3)
        for i in range(5):  # meanwhile the other predictor answers
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": i, "x2": 0}]}, timeout=10)
            assert answer.status_code == 200 and abs(answer.json()["predictions"][0] - i) < 1e-6
        thread.join(60)
        assert stuck["answer"].status_code == 504
        assert stuck["answer"].json()["detail"] == TIMED_OUT.format(seconds=1.5)
        assert 1.5 <= time.monotonic() - started < 15
        assert _until(lambda: len(_predictors(base)) == 2 and not before <= set(_predictors(base)), 15)
        assert [httpx.post(f"{base}/predict", json=ROW).status_code for _ in range(5)] == [200] * 5
    finally:
        stop_serve(server)
    assert "took longer than 1.5 s (--predict-timeout) on a batch of 1 request(s); stopping it" in log.read_text()


def test_every_predictor_follows_the_alias_and_a_tampered_version_is_refused(tmp_path: Path) -> None:
    url = register_doubler(tmp_path)
    registry = ModelRegistry(url)
    base, server = start_serve(url, "doubler", "--workers", "2", log=tmp_path / "s.log")
    try:
        registry.deploy("doubler", 2, alias="production", target="local", actor="test")
        assert _until(lambda: set(_predictors(base).values()) == {2.0})
        for _ in range(10):
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 1, "x2": 0}]}).json()
            assert answer["version"] == 2 and abs(answer["predictions"][0] - 2) < 1e-6

        tampered = registry.get_version("doubler", 3)
        path = Path(urlsplit(tampered.artifact.uri).path)
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
        registry.deploy("doubler", 3, alias="production", target="local", actor="test")
        assert _until(lambda: httpx.get(f"{base}/health").status_code == 503)
        assert set(_predictors(base).values()) == {2.0}
        for _ in range(10):
            health = httpx.get(f"{base}/health")
            assert health.status_code == 503
            assert health.json()["status"] == "degraded" and health.json()["version"] == 2
            assert "refused v3" in health.json()["problem"]
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 1, "x2": 0}]})
            assert answer.status_code == 200 and answer.json()["version"] == 2
    finally:
        stop_serve(server)
