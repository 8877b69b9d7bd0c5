"""``serve --workers 2``: one port, a model per worker, metrics for all, alias moves and refusals in each
worker, and a killed worker replaced while the others keep serving."""

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
from tests.serve_examples import register_doubler, start_serve, stop_serve


def _gauge(base: str, name: str) -> dict[str, float]:
    """pid → value of a per-worker gauge, from one scrape (whichever worker answers it)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {
        sample.labels["pid"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _workers(server: Any) -> list[int]:
    """The worker processes (multiprocessing's resource tracker, also a child, is not one)."""
    found = []
    for child in psutil.Process(server.pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:  # exited while listed
            continue
    return sorted(found)


def _ready(base: str, count: int) -> bool:
    return len(_gauge(base, "airflow_bridge_serve_model_version")) == count


def test_workers_share_one_port_and_answer_metrics_for_all(tmp_path: Path) -> None:
    base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "2", log=tmp_path / "s.log")
    try:
        assert _until(lambda: _ready(base, 2)), "two workers did not both load the model"
        workers = _workers(server)
        assert len(workers) == 2
        assert sorted(int(pid) for pid in _gauge(base, "airflow_bridge_serve_model_version")) == workers
        for i in range(30):  # a new connection each: the kernel spreads them over the workers
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": i, "x2": 0}]})
            assert answer.status_code == 200 and answer.json()["version"] == 1
        families = text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
        served = sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "airflow_bridge_serve_requests_total" and s.labels["route"] == "/predict"
        )
        assert served == 30  # counted by both workers, summed by whichever answered the scrape
    finally:
        stop_serve(server)
    assert server.returncode == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in workers)


def test_a_killed_worker_loses_only_its_own_requests_and_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "2", log=log)
    outcomes: Counter[str] = Counter()
    after_kill: Counter[str] = Counter()
    killed = threading.Event()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as session:
            while not stop.is_set():
                try:
                    status = str(session.post(f"{base}/predict", json={"instances": [{"x1": 2, "x2": 0}]}).status_code)
                except httpx.TransportError:
                    status = "connection lost"
                (after_kill if killed.is_set() else outcomes)[status] += 1

    try:
        assert _until(lambda: _ready(base, 2))
        victim, survivor = _workers(server)
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
        assert set(outcomes) == {"200"}
        assert set(after_kill) <= {"200", "connection lost"}, after_kill  # a dead process cannot answer
        assert after_kill["200"] > 10 * max(1, after_kill["connection lost"])  # the other worker kept serving
        assert psutil.pid_exists(survivor)
        assert _until(lambda: len(_workers(server)) == 2 and victim not in _workers(server))
        assert _until(lambda: _ready(base, 2))  # the replacement loaded the model; the dead one's gauge is gone
        assert str(victim) not in _gauge(base, "airflow_bridge_serve_model_version")
        assert httpx.post(f"{base}/predict", json={"instances": [{"x1": 2, "x2": 0}]}).status_code == 200
    finally:
        stop.set()
        stop_serve(server)
    assert f"worker {victim} exited" in log.read_text()


def test_every_worker_follows_the_alias_and_refuses_a_tampered_version(tmp_path: Path) -> None:
    url = register_doubler(tmp_path)
    registry = ModelRegistry(url)
    base, server = start_serve(url, "doubler", "--workers", "2", log=tmp_path / "s.log")
    try:
        assert _until(lambda: _ready(base, 2))
        registry.deploy("doubler", 2, alias="production", target="local", actor="test")
        assert _until(lambda: set(_gauge(base, "airflow_bridge_serve_model_version").values()) == {2.0})
        for _ in range(10):  # new connections: every worker answers with v2 now
            assert httpx.post(f"{base}/predict", json={"instances": [{"x1": 1, "x2": 0}]}).json()["version"] == 2

        tampered = registry.get_version("doubler", 3)
        path = Path(urlsplit(tampered.artifact.uri).path)
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")
        registry.deploy("doubler", 3, alias="production", target="local", actor="test")
        assert _until(lambda: set(_gauge(base, "airflow_bridge_serve_healthy").values()) == {0.0})
        assert set(_gauge(base, "airflow_bridge_serve_model_version").values()) == {2.0}
        for _ in range(10):
            health = httpx.get(f"{base}/health")
            assert health.status_code == 503
            assert health.json()["status"] == "degraded" and health.json()["version"] == 2
            assert "refused v3" in health.json()["problem"]
            answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 1, "x2": 0}]})
            assert answer.status_code == 200 and answer.json()["version"] == 2
    finally:
        stop_serve(server)
