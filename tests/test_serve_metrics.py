"""``/metrics`` of a real ``serve`` process, read with Prometheus' own text parser, and its access log."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from airflow_bridge.registry import ModelRegistry
from tests.serve_examples import register_doubler, start_serve, stop_serve


def _scrape(base: str) -> dict[str, list[Any]]:
    """Samples by name (``..._total``, ``..._bucket`` etc.) of one scrape, parsed as Prometheus parses it."""
    answer = httpx.get(f"{base}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_requests_errors_latency_batches_version_and_refreshes(tmp_path: Path) -> None:
    url = register_doubler(tmp_path)
    log = tmp_path / "serve.log"
    base, server = start_serve(url, "doubler", "--workers", "1", "--max-batch-wait-ms", "20", log=log)
    try:
        rows = [{"x1": i, "x2": 0} for i in range(20)]
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda row: httpx.post(f"{base}/predict", json={"instances": [row]}), rows))
        assert [a.status_code for a in answers] == [200] * 20
        assert httpx.post(f"{base}/predict", json={"instances": [{"x1": 1}]}).status_code == 422
        assert httpx.post(f"{base}/v1/models/other:predict", json={"instances": [rows[0]]}).status_code == 404

        samples = _scrape(base)
        model = {"model": "doubler"}
        requests = "airflow_bridge_serve_requests_total"
        assert _value(samples, requests, **model, route="/predict", status="200", version="1") == 20
        assert _value(samples, "airflow_bridge_serve_errors_total", **model, route="/predict", status="422") == 1
        v1 = "/v1/models/{name}:predict"
        assert _value(samples, "airflow_bridge_serve_errors_total", route=v1, status="404") == 1
        assert _value(samples, "airflow_bridge_serve_errors_total", status="200") == 0
        latency = "airflow_bridge_serve_request_duration_seconds"
        assert _value(samples, f"{latency}_count", route="/predict") == 21
        assert _value(samples, f"{latency}_bucket", route="/predict", le="+Inf") == 21
        assert 0 < _value(samples, f"{latency}_sum", route="/predict") < 21 * 10
        # 20 rows reached the model (the 422 never did); with this ~1 ms model most calls answer one request
        assert _value(samples, "airflow_bridge_serve_batch_rows_sum", version="1") == 20
        assert 1 <= _value(samples, "airflow_bridge_serve_batch_rows_count", version="1") <= 20
        assert _value(samples, "airflow_bridge_serve_batch_requests_sum", version="1") == 20
        calls = _value(samples, "airflow_bridge_serve_batch_rows_count", version="1")
        model_time = "airflow_bridge_serve_predict_duration_seconds"
        assert _value(samples, f"{model_time}_count", version="1") == calls  # one observation per predict call
        assert 0 < _value(samples, f"{model_time}_sum", version="1") < _value(samples, f"{latency}_sum")
        assert _value(samples, "airflow_bridge_serve_model_version", **model, alias="production") == 1
        assert _value(samples, "airflow_bridge_serve_healthy", **model) == 1
        assert _value(samples, "airflow_bridge_serve_alias_refreshes_total", outcome="unchanged") >= 1

        ModelRegistry(url).deploy("doubler", 2, alias="production", target="local", actor="test")
        deadline = time.monotonic() + 20
        while _value(_scrape(base), "airflow_bridge_serve_model_version", **model) != 2:
            assert time.monotonic() < deadline, "the version gauge did not follow the alias"
            time.sleep(0.2)
        samples = _scrape(base)
        assert _value(samples, "airflow_bridge_serve_alias_refreshes_total", outcome="moved") == 1
        answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 3, "x2": 0}]}).json()
        assert answer["version"] == 2
    finally:
        stop_serve(server)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    predicted = [line for line in lines if line["route"] == "/predict"]
    assert len(predicted) == 22
    first = predicted[0]
    assert {k: first[k] for k in ("method", "status", "model", "alias", "version", "rows")} == {
        "method": "POST",
        "status": 200,
        "model": "doubler",
        "alias": "production",
        "version": 1,
        "rows": 1,
    }
    assert first["ms"] > 0 and first["batch_rows"] >= 1 and first["pid"] == server.pid
    assert 0 < first["predict_ms"] <= first["ms"]  # the model's share of the request's time
    assert predicted[-1]["version"] == 2
    assert [line["status"] for line in predicted].count(422) == 1


def test_metrics_need_the_token_when_the_server_has_one(tmp_path: Path) -> None:
    import os

    token = "s3cret-token-of-the-test-1234"
    os.environ["AIRFLOW_BRIDGE_SERVE_TOKEN"] = token
    try:
        base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "1", log=tmp_path / "s.log")
    finally:
        del os.environ["AIRFLOW_BRIDGE_SERVE_TOKEN"]
    try:
        assert httpx.get(f"{base}/metrics").status_code == 401
        answer = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and "airflow_bridge_serve_requests_total" in answer.text
    finally:
        stop_serve(server)


def test_concurrent_clients_share_predict_calls_and_get_their_own_answers(tmp_path: Path) -> None:
    """The breast-cancer example's ~30 ms pipeline behind a real server: 24 clients at once."""
    import asyncio

    from tests.serve_examples import register_example

    example = register_example("breast_cancer_classifier", tmp_path)
    rows = json.loads(example.rows.head(24).to_json(orient="records"))
    base, server = start_serve(example.registry_url, example.model, "--workers", "1", log=tmp_path / "s.log")
    try:
        alone = [httpx.post(f"{base}/predict", json={"instances": [row]}, timeout=30).json() for row in rows]
        before = _scrape(base)

        async def together() -> list[Any]:
            limits = httpx.Limits(max_connections=len(rows))
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
                sent = [client.post("/predict", json={"instances": [row]}) for row in rows]
                return [answer.json() for answer in await asyncio.gather(*sent)]

        assert asyncio.run(together()) == alone
        after = _scrape(base)
        calls = _value(after, "airflow_bridge_serve_batch_requests_count") - _value(
            before, "airflow_bridge_serve_batch_requests_count"
        )
        answered = _value(after, "airflow_bridge_serve_batch_requests_sum") - _value(
            before, "airflow_bridge_serve_batch_requests_sum"
        )
        assert answered == len(rows) and calls < len(rows) / 2, (calls, answered)
    finally:
        stop_serve(server)


def test_no_access_log_writes_no_request_lines(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    base, server = start_serve(register_doubler(tmp_path), "doubler", "--workers", "1", "--no-access-log", log=log)
    try:
        assert httpx.post(f"{base}/predict", json={"instances": [{"x1": 1, "x2": 0}]}).status_code == 200
    finally:
        stop_serve(server)
    assert not [line for line in log.read_text().splitlines() if line.startswith("{")]
    assert "serving doubler v1" in log.read_text()
