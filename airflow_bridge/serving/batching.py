"""Adaptive micro-batching: concurrent requests for one model version answered by one ``predict`` call.

A forest behind the column pipeline costs about as much for 50 rows as for one (a fixed ~35 ms per
call), so under concurrent load one call per request caps throughput at ~30 requests a second. The
:class:`Batcher` gathers the requests that are ready into one call and splits the answer back, in order:

- **adaptive**: a request is predicted at once when no other request is on its way and recent calls
  answered one request each (one client pays no wait: :meth:`Batcher.alone`, and the caller predicts
  it itself); while others are being read, or while far
  fewer wait than recent batches held (the clients of the last batch are sending their next requests),
  it waits for them, at most ``max_wait_ms`` after it arrived; while a batch is predicting the next
  one fills up by itself;
- **bounded**: a batch holds at most ``max_batch_size`` rows (a larger request is predicted alone);
- **exact**: only requests for the same loaded version, the same output (labels or probabilities) and
  the same kinds of values in each column share a call: their columns are joined before pandas reads
  them, so each column gets the dtype it would have alone and the model sees the same values;
  predictions are identical to unbatched ones (tested);
- **isolated**: if the batch's call fails, each request is predicted alone, so a bad row fails only
  its own request.

One batch is predicted at a time (in a thread, off the event loop) unless ``concurrency`` says more:
``serve --workers N`` dispatches up to N batches at once, one to each predictor process (:mod:`.predictors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from airflow_bridge.exceptions import BridgeError
from airflow_bridge.serving.outputs import labels_and_probabilities

MAX_BATCH_SIZE = 1024
"""Rows in one ``predict`` call by default: a tabular pipeline costs about the same for 1 or 1000 rows."""
MAX_WAIT_MS = 10.0
"""Longest a request waits for company by default (only when others are on their way or load is steady)."""


class BatchSettingsError(BridgeError):
    """A batch size or wait ``serve`` cannot use (0 rows, a negative wait)."""


@dataclass(frozen=True)
class BatchSettings:
    """``serve --max-batch-size`` (rows per predict call; 1 turns batching off) and ``--max-batch-wait-ms``."""

    max_batch_size: int = MAX_BATCH_SIZE
    max_wait_ms: float = MAX_WAIT_MS

    def __post_init__(self) -> None:
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int):
            raise BatchSettingsError(f"max batch size must be a whole number of rows; got {self.max_batch_size!r}")
        if self.max_batch_size < 1:
            raise BatchSettingsError(
                f"max batch size must be at least 1 row (1 turns batching off); got {self.max_batch_size}"
            )
        if not isinstance(self.max_wait_ms, int | float) or not self.max_wait_ms >= 0 or self.max_wait_ms > 60_000:
            raise BatchSettingsError(
                f"max batch wait must be between 0 and 60000 milliseconds; got {self.max_wait_ms!r}"
            )

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1


Outcome = tuple[Any, list[Any], Any] | BaseException
"""(labels, classes, probabilities or None) of one request, or the exception its prediction raised."""


@dataclass
class Job:
    """One request's table, ready for the model: ``estimator`` and ``columns`` (checked, the model's)."""

    estimator: Any
    columns: dict[str, list[Any]]
    probabilities: bool
    version: Any = None
    """The loaded version (an identity: jobs of different loads never share a call)."""
    rows: int = 0
    key: tuple[Any, ...] = ()
    arrived: float = 0.0
    batch_rows: int = 0
    """Rows of the predict call that answered this job (its own rows when predicted alone)."""
    predict_seconds: float = 0.0
    """Seconds the model took for this job's call (where it ran: this process or a predictor)."""
    future: asyncio.Future[Outcome] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.rows = len(next(iter(self.columns.values()))) if self.columns else 0
        # pandas infers a column's dtype from the kinds of its values: equal kinds, equal dtypes, joined or not
        kinds = tuple((name, frozenset(map(type, values))) for name, values in self.columns.items())
        self.key = (id(self.estimator), id(self.version), self.probabilities, kinds)

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.columns)


def predict_one(job: Job) -> Outcome:
    job.batch_rows = job.rows
    start = time.perf_counter()
    try:
        return labels_and_probabilities(job.estimator, job.frame(), job.probabilities)
    except Exception as exc:  # handed to the request's handler, which answers 422 or 500
        return exc
    finally:
        job.predict_seconds = time.perf_counter() - start


def predict_jobs(jobs: list[Job]) -> list[Outcome]:
    """Each job's outcome, from one model call over their rows together when they are more than one.

    If that call fails, every job is predicted alone: the bad row's request gets its own error.
    """
    if len(jobs) == 1:
        return [predict_one(jobs[0])]
    import pandas as pd

    start = time.perf_counter()
    first = jobs[0]
    frame = pd.DataFrame({name: list(chain.from_iterable(job.columns[name] for job in jobs)) for name in first.columns})
    try:
        labels, classes, matrix = labels_and_probabilities(first.estimator, frame, first.probabilities)
    except Exception:
        alone = [predict_one(job) for job in jobs]
        for job in jobs:
            job.predict_seconds = time.perf_counter() - start
        return alone
    seconds = time.perf_counter() - start
    outcomes: list[Outcome] = []
    offset = 0
    for job in jobs:
        job.batch_rows, job.predict_seconds = len(frame), seconds
        end = offset + job.rows
        outcomes.append((labels[offset:end], classes, None if matrix is None else matrix[offset:end]))
        offset = end
    return outcomes


class Batcher:
    """Gathers :class:`Job` s submitted from the event loop into :func:`predict_jobs` calls.

    ``run_in_thread(function, argument)`` runs a call off the event loop; ``on_batch(jobs)`` is
    told of each call (the batch-size metrics). Handlers call :meth:`arriving` when a prediction
    request comes in and :meth:`submit` (or :meth:`gone`) once it is read: requests on their way are
    what a waiting batch waits for.
    """

    def __init__(
        self,
        settings: BatchSettings,
        run_in_thread: Callable[[Callable[[list[Job]], list[Outcome]], list[Job]], Awaitable[list[Outcome]]],
        on_batch: Callable[[list[Job]], None] | None = None,
        *,
        predict: Callable[[list[Job]], list[Outcome]] = predict_jobs,
        concurrency: int = 1,
    ) -> None:
        self.settings = settings
        self._run_in_thread = run_in_thread
        self._on_batch = on_batch
        self._predict = predict
        self._concurrency = concurrency
        self._waiting: deque[Job] = deque()
        self._coming = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._typical = 1.0
        """Requests per call lately (a moving average): under steady load a batch that just gathered far
        fewer waits for the rest, which arrive as soon as the last batch's clients have their answers."""

    def arriving(self) -> None:
        self._coming += 1

    def alone(self) -> bool:
        """Whether a request now being read is the only one: nothing queued or predicting, no other request
        on its way and recent calls answered one request each (its caller may predict it at once)."""
        return not self._waiting and not self._busy and self._coming <= 1 and self._typical < 1.5

    def gone(self) -> None:
        """A request that was arriving will not be submitted (refused while being read)."""
        self._coming = max(0, self._coming - 1)
        if self._wake is not None:
            self._wake.set()

    async def submit(self, job: Job) -> Outcome:
        """The job's outcome, once the batch it joined is predicted; counts it as arrived."""
        loop = asyncio.get_running_loop()
        self._coming = max(0, self._coming - 1)
        job.arrived = loop.time()
        job.future = loop.create_future()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            # first use, or an event loop of its own (Starlette's TestClient runs one per request)
            self._waiting = deque(j for j in self._waiting if j.future is not None and j.future.get_loop() is loop)
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._dispatch(), name="airflow-bridge-batcher")
        self._waiting.append(job)
        assert self._wake is not None
        self._wake.set()
        return await job.future

    async def close(self) -> None:
        task, self._task = self._task, None
        for pending in [task, *self._running]:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
        while self._waiting:
            job = self._waiting.popleft()
            if job.future is not None and not job.future.done():
                job.future.set_result(RuntimeError("the server is shutting down"))

    async def _dispatch(self) -> None:
        assert self._wake is not None
        wake = self._wake
        loop = asyncio.get_running_loop()
        limit = self.settings.max_batch_size
        max_wait = self.settings.max_wait_ms / 1000
        slots = asyncio.Semaphore(self._concurrency)
        while True:
            while not self._waiting:
                wake.clear()
                await wake.wait()
            await slots.acquire()  # a free predictor: meanwhile the queue fills by itself
            first = self._waiting[0]
            deadline = first.arrived + max_wait
            while self._more_coming() and self._ready_rows(first.key) < limit and loop.time() < deadline:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), deadline - loop.time())
                except TimeoutError:
                    break
            batch = self._take(first.key, limit)
            self._typical += 0.3 * (len(batch) - self._typical)
            self._busy += 1
            task = loop.create_task(self._run(batch, slots), name="airflow-bridge-batch")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[Job], slots: asyncio.Semaphore) -> None:
        try:
            outcomes = await self._run_in_thread(self._predict, batch)
        except BaseException as exc:  # cancelled (shutdown) or a bug: every job of the batch learns of it
            for job in batch:
                if job.future is not None and not job.future.done():
                    job.future.set_result(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._busy -= 1
            slots.release()
        if self._on_batch is not None:
            self._on_batch(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.future is not None and not job.future.done():
                job.future.set_result(outcome)

    def _more_coming(self) -> bool:
        """Requests are being read, or far fewer are waiting than lately made a batch."""
        return self._coming > 0 or len(self._waiting) < self._typical / 2

    def _ready_rows(self, key: tuple[Any, ...]) -> int:
        return sum(job.rows for job in self._waiting if job.key == key)

    def _take(self, key: tuple[Any, ...], limit: int) -> list[Job]:
        """The first job and those after it with its key, in arrival order, up to ``limit`` rows."""
        batch: list[Job] = []
        rows = 0
        kept: deque[Job] = deque()
        while self._waiting:
            job = self._waiting.popleft()
            if job.key == key and (not batch or rows + job.rows <= limit):
                batch.append(job)
                rows += job.rows
            else:
                kept.append(job)
        self._waiting = kept
        return batch
