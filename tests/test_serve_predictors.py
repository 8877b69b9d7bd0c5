"""The predictor pool behind ``serve --workers N``: the same answers as in-process, small batches from the
event loop (uvloop's, as uvicorn runs) and large ones from a thread, on the same pipes one after the other."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import uvloop

from airflow_bridge.exceptions import ChecksumMismatchError
from airflow_bridge.registry import ModelRegistry
from airflow_bridge.serving.app import ModelHolder
from airflow_bridge.serving.batching import Job, predict_jobs
from airflow_bridge.serving.predictors import TIMED_OUT, PredictorPool, PredictorTimedOut
from tests.serve_examples import STALL_X1, register_doubler, register_staller


def test_the_pool_answers_as_in_process_from_the_event_loop_and_from_threads(tmp_path: Path) -> None:
    url = register_doubler(tmp_path)
    holder = ModelHolder(ModelRegistry(url), "doubler", "production")
    loaded = holder.load_initial()
    pool = PredictorPool(url, "doubler", 2, loaded.version.version)
    pool.start()

    def job(rows: int) -> Job:
        return Job(loaded.estimator, {"x1": list(range(rows)), "x2": [0.5] * rows}, False, version=loaded)

    async def small_then_large() -> tuple[list[object] | None, list[object]]:
        small = await pool.predict_async([job(3), job(2)])  # under uvloop, whose poller makes pipes non-blocking
        large = await asyncio.to_thread(pool.predict, [job(10_000)])  # too large for the loop: a thread
        return small, large

    try:
        for _ in range(3):  # each predictor's pipe used from the loop, then from a thread
            small, large = uvloop.run(small_then_large())
            assert small is not None
            expected_all = predict_jobs([job(3), job(2)]) + predict_jobs([job(10_000)])
            for got, expected in zip([*small, *large], expected_all, strict=True):
                assert not isinstance(got, BaseException), got
                assert np.array_equal(got[0], expected[0])  # type: ignore[index]
            assert all(os.get_blocking(p.conn.fileno()) for p in pool._predictors)
        assert len(pool.pids()) == 2  # no predictor was taken for dead
    finally:
        pool.close()


def test_a_batch_that_overruns_the_timeout_stops_its_predictor_from_the_loop_and_from_a_thread(tmp_path: Path) -> None:
    url = register_staller(tmp_path)
    holder = ModelHolder(ModelRegistry(url), "staller", "production")
    loaded = holder.load_initial()
    pool = PredictorPool(url, "staller", 2, loaded.version.version, timeout=0.5)
    pool.start()
    stuck = Job(loaded.estimator, {"x1": [STALL_X1], "x2": [0.0]}, False, version=loaded)
    fine = Job(loaded.estimator, {"x1": [4.0], "x2": [0.0]}, False, version=loaded)
    try:
        first = set(pool.pids())
        from_loop = uvloop.run(pool.predict_async([stuck]))
        from_thread = pool.predict([stuck])
        for outcomes in (from_loop, from_thread):
            assert outcomes is not None and isinstance(outcomes[0], PredictorTimedOut)
            assert str(outcomes[0]) == TIMED_OUT.format(seconds=0.5)
        answered = pool.predict([fine])[0]
        assert not isinstance(answered, BaseException) and abs(answered[0][0] - 4.0) < 1e-6  # type: ignore[index]
        assert 0 < fine.predict_seconds < 0.5  # the model's own time, reported by the predictor
        deadline = time.monotonic() + 15
        while len(pool.pids()) < 2 or set(pool.pids()) & first:  # both stopped and replaced
            assert time.monotonic() < deadline, pool.pids()
            time.sleep(0.1)
    finally:
        pool.close()


def test_a_version_a_predictor_refuses_is_not_served_and_the_old_one_keeps_answering(tmp_path: Path) -> None:
    url = register_doubler(tmp_path)
    registry = ModelRegistry(url)
    holder = ModelHolder(registry, "doubler", "production")
    loaded = holder.load_initial()
    pool = PredictorPool(url, "doubler", 2, 1)
    pool.start()
    try:
        path = Path(urlsplit(registry.get_version("doubler", 2).artifact.uri).path)
        path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # after the front checked it, say
        with pytest.raises(ChecksumMismatchError, match=r"refused v2"):
            pool.load_everywhere(2)
        assert pool.version == 1 and set(pool.pids().values()) == {1}
        job = Job(loaded.estimator, {"x1": [4], "x2": [0]}, False, version=loaded)
        (labels, _, _), *_ = pool.predict([job])  # type: ignore[misc]
        assert abs(labels[0] - 4) < 1e-6  # v1 (y = x1) still answers
    finally:
        pool.close()
