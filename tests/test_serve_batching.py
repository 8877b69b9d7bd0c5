"""Adaptive micro-batching in ``serve``: batched answers equal unbatched ones on every example table, a bad
row fails only its own request, a request waits at most the configured time, bad settings are refused."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_bridge.registry import ModelRegistry
from airflow_bridge.serving.app import ModelHolder, finish, predict_body, prepare
from airflow_bridge.serving.batching import Batcher, BatchSettings, BatchSettingsError, Job, predict_jobs
from tests.helpers import cli
from tests.serve_examples import EXAMPLES, register_doubler, register_example

SIZES = (1, 3, 1, 7, 2, 1, 1, 5, 4, 1, 2, 9)
"""Rows per request of the batched runs: mixed sizes, so that answers must be split back by offsets."""


def _bodies(rows: list[dict[str, Any]], probabilities: bool) -> list[bytes]:
    bodies, start = [], 0
    for size in SIZES:
        document: dict[str, Any] = {"instances": rows[start : start + size]}
        if probabilities:
            document["probabilities"] = True
        bodies.append(json.dumps(document).encode())
        start += size
    return bodies


async def _batched(holder: ModelHolder, bodies: list[bytes], settings: BatchSettings) -> tuple[list[Any], list[int]]:
    """Every body through one Batcher at once: (answers, requests per predict call)."""
    calls: list[int] = []

    async def in_thread(function: Any, jobs: list[Job]) -> Any:
        return await asyncio.to_thread(function, jobs)

    batcher = Batcher(settings, in_thread, lambda jobs: calls.append(len(jobs)))
    prepared = [prepare(holder, body, "application/json", 10_000) for body in bodies]
    for _ in prepared:
        batcher.arriving()  # all on their way: the first waits for the others (up to max_wait)
    outcomes = await asyncio.gather(*(batcher.submit(p.job()) for p in prepared))  # type: ignore[union-attr]
    await batcher.close()
    return [finish(holder, p, o) for p, o in zip(prepared, outcomes, strict=True)], calls  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", list(EXAMPLES))
def test_batched_answers_equal_unbatched_ones_on_each_example_table(spec: str, tmp_path: Path) -> None:
    example = register_example(spec, tmp_path)
    holder = ModelHolder(ModelRegistry(example.registry_url), example.model, "production")
    holder.load_initial()
    table = example.rows.sample(sum(SIZES), random_state=7, replace=len(example.rows) < sum(SIZES))
    rows = json.loads(table.to_json(orient="records"))  # NaN → null, as a client sends a missing value
    classifier = hasattr(holder.current.estimator, "predict_proba")  # type: ignore[union-attr]
    for probabilities in (False, True) if classifier else (False,):
        bodies = _bodies(rows, probabilities)
        alone = [predict_body(holder, body, "application/json", 10_000) for body in bodies]
        assert all(status == 200 for status, _ in alone), alone
        batched, calls = asyncio.run(_batched(holder, bodies, BatchSettings(max_batch_size=64, max_wait_ms=2000)))
        assert [status for status, _ in batched] == [status for status, _ in alone]
        for (_, got), (_, expected) in zip(batched, alone, strict=True):
            _same_answer(json.loads(got), json.loads(expected))
        assert max(calls) > 1, calls  # requests did share predict calls
        assert sum(calls) == len(bodies)


def _same_answer(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Labels (and every other field) identical; numbers the model computes to float32 precision.

    A linear model's float32 matrix product rounds its last bit differently with the number of rows
    (BLAS picks its kernel by shape): the same difference a client sees between sending rows one by one
    and together, with or without batching. Forest probabilities are sums per row, identical.
    """
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key == "predictions" and any(isinstance(v, float) for v in value):
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9)
        elif key == "probabilities":
            assert [g == pytest.approx(e, rel=1e-6, abs=1e-9) for g, e in zip(got[key], value, strict=True)]
        else:
            assert got[key] == value, key


def test_one_bad_row_fails_only_its_own_request(tmp_path: Path) -> None:
    """Both requests send mean_radius as text (the same kinds of values, so one batch); one is not a number."""
    example = register_example("breast_cancer_classifier", tmp_path)
    holder = ModelHolder(ModelRegistry(example.registry_url), example.model, "production")
    holder.load_initial()
    rows = json.loads(example.rows.head(3).to_json(orient="records"))
    for row in rows:
        row["mean_radius"] = str(row["mean_radius"])
    rows[1]["mean_radius"] = "abc"
    bodies = [json.dumps({"instances": [row]}).encode() for row in rows]
    answers, calls = asyncio.run(_batched(holder, bodies, BatchSettings(max_batch_size=64, max_wait_ms=2000)))
    assert calls == [3]  # tried together, then each alone
    assert [status for status, _ in answers] == [200, 422, 200]
    assert json.loads(answers[1][1])["detail"] == "column 'mean_radius' takes numbers; got 'abc'"
    assert answers[0] == predict_body(holder, bodies[0], "application/json", 10_000)
    assert answers[2] == predict_body(holder, bodies[2], "application/json", 10_000)


def test_a_request_waits_for_company_at_most_the_maximum_wait(tmp_path: Path) -> None:
    holder = ModelHolder(ModelRegistry(register_doubler(tmp_path)), "doubler", "production")
    holder.load_initial()
    body = json.dumps({"instances": [{"x1": 2, "x2": 0}]}).encode()

    async def timed(settings: BatchSettings, others_coming: int) -> float:
        async def in_thread(function: Any, jobs: list[Job]) -> Any:
            return await asyncio.to_thread(function, jobs)

        batcher = Batcher(settings, in_thread)
        for _ in range(others_coming + 1):  # this request, and others being read that never finish
            batcher.arriving()
        prepared = prepare(holder, body, None, 100)
        start = time.perf_counter()
        await batcher.submit(prepared.job())  # type: ignore[union-attr]
        elapsed = time.perf_counter() - start
        await batcher.close()
        return elapsed

    waited = asyncio.run(timed(BatchSettings(max_batch_size=64, max_wait_ms=300), others_coming=1))
    assert 0.3 <= waited < 1.5
    alone = asyncio.run(timed(BatchSettings(max_batch_size=64, max_wait_ms=5000), others_coming=0))
    assert alone < 1.5  # nobody on the way: predicted at once, not after 5 s


def test_a_batch_never_exceeds_the_maximum_size(tmp_path: Path) -> None:
    holder = ModelHolder(ModelRegistry(register_doubler(tmp_path)), "doubler", "production")
    holder.load_initial()
    bodies = [json.dumps({"instances": [{"x1": i, "x2": 0}] * 3}).encode() for i in range(10)]
    answers, calls = asyncio.run(_batched(holder, bodies, BatchSettings(max_batch_size=7, max_wait_ms=2000)))
    assert all(3 * n <= 7 for n in calls) and sum(calls) == 10
    assert [json.loads(body)["predictions"] for _, body in answers] == [
        pytest.approx([float(i)] * 3) for i in range(10)
    ]
    jobs = [prepare(holder, body, None, 100).job() for body in bodies[:2]]  # type: ignore[union-attr]
    assert [job.batch_rows for job in jobs] == [0, 0]
    predict_jobs(jobs)
    assert [job.batch_rows for job in jobs] == [6, 6]


@pytest.mark.parametrize(
    ("size", "wait", "message"),
    [
        (0, 5.0, "max batch size must be at least 1 row (1 turns batching off); got 0"),
        (8, -1.0, "max batch wait must be between 0 and 60000 milliseconds; got -1.0"),
        (8, float("nan"), "max batch wait must be between 0 and 60000 milliseconds; got nan"),
    ],
)
def test_unusable_batch_settings_are_refused(size: int, wait: float, message: str) -> None:
    with pytest.raises(BatchSettingsError) as refused:
        BatchSettings(size, wait)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        (
            "--max-batch-size",
            "0",
            "Invalid value for '--max-batch-size': max batch size must be at least 1 row (1 turns batching off); got 0",
        ),
        (
            "--max-batch-wait-ms",
            "-1",
            "Invalid value for '--max-batch-wait-ms': max batch wait must be between 0 and 60000 milliseconds; "
            "got -1.0",
        ),
        ("--workers", "0", "Invalid value for '--workers': at least 1 server process is needed; got 0"),
        (
            "--predict-timeout",
            "0",
            "Invalid value for '--predict-timeout': a predict timeout must be a number of seconds, at least 0.1; got 0",
        ),
    ],
)
def test_serve_refuses_bad_batching_and_workers_options_before_doing_anything(
    option: str, value: str, shown: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    result = cli("serve", "doubler", "--registry-url", url, option, value)
    assert result.returncode == 2
    assert shown in " ".join(result.stderr.replace("│", " ").split())
    assert not (tmp_path / "never.db").exists()


def test_requests_read_before_an_alias_move_finish_on_their_version(tmp_path: Path) -> None:
    """The graceful reload: a request already read is predicted by the version it was read against, and
    requests of the old and the new version never share a call."""
    url = register_doubler(tmp_path)
    holder = ModelHolder(ModelRegistry(url), "doubler", "production", refresh_seconds=0)
    holder.load_initial()
    body = json.dumps({"instances": [{"x1": 2, "x2": 0}]}).encode()
    before = prepare(holder, body, None, 100)
    ModelRegistry(url).deploy("doubler", 2, alias="production", target="local", actor="test")
    after = prepare(holder, body, None, 100)  # the alias is re-read: v2 is served from now on
    calls: list[int] = []

    async def both() -> list[Any]:
        async def in_thread(function: Any, jobs: list[Job]) -> Any:
            return await asyncio.to_thread(function, jobs)

        batcher = Batcher(BatchSettings(max_batch_size=64, max_wait_ms=500), in_thread, lambda j: calls.append(len(j)))
        batcher.arriving()
        batcher.arriving()
        outcomes = await asyncio.gather(*(batcher.submit(p.job()) for p in (before, after)))  # type: ignore[union-attr]
        await batcher.close()
        return list(outcomes)

    old, new = asyncio.run(both())
    answers = [json.loads(finish(holder, p, o)[1]) for p, o in ((before, old), (after, new))]  # type: ignore[arg-type]
    assert [(a["version"], a["predictions"]) for a in answers] == [
        (1, [pytest.approx(2.0)]),
        (2, [pytest.approx(4.0)]),
    ]
    assert calls == [1, 1]


def test_the_app_answers_from_one_event_loop_after_another(tmp_path: Path) -> None:
    """Starlette's TestClient, used without ``with``, runs each request on an event loop of its own."""
    from starlette.testclient import TestClient

    from airflow_bridge.serving.app import create_app

    holder = ModelHolder(ModelRegistry(register_doubler(tmp_path)), "doubler", "production")
    holder.load_initial()
    client = TestClient(create_app(holder))
    for x in range(3):
        answer = client.post("/predict", json={"instances": [{"x1": x, "x2": 0}]})
        assert answer.status_code == 200 and answer.json()["predictions"] == [pytest.approx(float(x))]
