"""``serve --workers N`` (N ≥ 2): N *predictor* processes behind the one HTTP front process.

Why: the process that holds a client's connection must outlive the process that predicts. The front
(``serve`` itself) terminates HTTP, reads and checks requests, batches them (:mod:`.batching`), follows
the alias and answers ``/health`` and ``/metrics``; it never calls the model. Each predictor is a process
started by multiprocessing's *forkserver* (pandas, scikit-learn and the registry imported once in the
fork server, so a replacement only loads the model: ~0.4 s here); it opens the registry, verifies the
version (audit chain and artifact checksum) and loads the model itself.

- **Dispatch.** The front sends a batch to an idle predictor over that predictor's pipe: the version it
  was read against and each request's checked columns (pickled); the predictor answers each request's
  labels, classes and probabilities (or its error, as text), predicted exactly as in-process
  (:func:`.batching.predict_jobs`). A thread of the front waits for the answer, so the event loop stays free.
- **Death.** If a predictor dies mid-batch (``SIGKILL``, the out-of-memory killer), every request of that
  batch is answered 503 ``the worker predicting this request stopped (killed or out of memory); retry``;
  a monitor thread starts a replacement within about a second; the other predictors keep serving.
- **Overrun.** A batch that takes longer than ``timeout`` (``serve --predict-timeout``, 60 s by default)
  gets 504 naming the timeout, and its predictor, which may be stuck for good, is killed and replaced.
- **Alias moves.** The front's refresh thread verifies the new version, then asks every predictor to
  load it (each verifies it itself); only when all have it does the front serve it. A predictor that
  refuses it (checksum, audit chain) makes the front keep the old version, degraded on ``/health``.
  Each batch names its version and a predictor keeps the versions it loaded last (two), so batches
  already dispatched finish on the version they started with.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any

from airflow_bridge.exceptions import BridgeError, ChecksumMismatchError
from airflow_bridge.serving.batching import Job, Outcome, predict_jobs
from airflow_bridge.serving.runtime import settle, use_python_strings

log = logging.getLogger("airflow_bridge.serve")
LOST = "the worker predicting this request stopped (killed or out of memory); retry"
TIMED_OUT = "the prediction took longer than {seconds:g} s (--predict-timeout); the worker predicting it was stopped"
RESTART_PAUSE = 0.2
"""Seconds between noticing a dead predictor and starting its replacement (none spins on a crash loop)."""
START_SECONDS = 120.0
"""Longest a predictor may take to load its first version."""
KEPT_VERSIONS = 2
PRELOAD = [
    "airflow_bridge.serving.predictors",
    "airflow_bridge.artifacts",
    "airflow_bridge.resolution",
    "airflow_bridge.registry.store",
    "pandas",
    "sklearn.ensemble",
]
"""Imported once by the fork server, so a (replacement) predictor only opens the registry and loads the model."""
INLINE_PAYLOAD = 32 * 1024
"""Batches pickled to at most this many bytes are sent from the event loop (a pipe holds 64 KiB)."""


class PredictorLost(BridgeError):
    """The predictor answering a batch died (503: the client may retry)."""


class PredictorTimedOut(PredictorLost):
    """A predictor took longer than the predict timeout on a batch: it was stopped (504)."""


class PredictorRefused(BridgeError):
    """A predictor could not load a version (503: the front moves on to it only when every predictor has it)."""


def _portable(exc: BaseException) -> BaseException:
    """An outcome's exception as one that pickles everywhere, keeping what :func:`.app.finish` reads."""
    if isinstance(exc, BridgeError):
        return BridgeError(str(exc))
    if isinstance(exc, ValueError | TypeError | ArithmeticError | LookupError):
        return ValueError(str(exc))
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _predictor_main(conn: Any, registry_url: str, model: str, first: int) -> None:
    """A predictor process: load ``first``, then answer ``("load", v)`` and ``("predict", v, jobs)`` messages."""
    import signal

    from airflow_bridge.artifacts import load_model, read_verified
    from airflow_bridge.resolution import audit_key, registry_for_url

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the front stops us
    use_python_strings()  # as in the front (.runtime)
    registry = registry_for_url(registry_url, audit_key())
    models: dict[int, Any] = {}

    def load(version: int) -> Any:
        if version not in models:
            record = registry.trusted_version(model, version)
            models[version] = load_model(read_verified(record.artifact))
            while len(models) > KEPT_VERSIONS:
                models.pop(next(iter(models)))
            settle()  # the libraries and the model leave the cyclic collector's work (.runtime)
        return models[version]

    try:
        load(first)
    except Exception as exc:
        conn.send(("refused", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", first))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the front is gone
            return
        if message[0] == "load":
            try:
                load(message[1])
                conn.send(("ready", message[1]))
            except Exception as exc:
                conn.send(("refused", f"{type(exc).__name__}: {exc}"))
        elif message[0] == "predict":
            _, version, requests = message
            try:
                estimator = load(version)
            except Exception as exc:
                refused = PredictorRefused(f"the worker cannot load v{version}: {exc}")
                conn.send(("done", [refused] * len(requests), 0.0))
                continue
            jobs = [Job(estimator, columns, probabilities) for columns, probabilities in requests]
            outcomes = predict_jobs(jobs)
            seconds = max(job.predict_seconds for job in jobs)
            conn.send(("done", [_portable(o) if isinstance(o, BaseException) else o for o in outcomes], seconds))


@dataclass(eq=False)
class _Predictor:
    process: Any
    conn: Any
    version: int
    busy: bool = True
    dead: bool = False


class PredictorPool:
    """N predictor processes, each predicting one batch at a time; :meth:`predict` runs in a front thread."""

    def __init__(self, registry_url: str, model: str, size: int, version: int, *, timeout: float | None = None) -> None:
        if size < 1:
            raise ValueError("a predictor pool needs at least 1 predictor")
        self.timeout = timeout
        """Longest a batch may take (``serve --predict-timeout``): then its predictor is stopped and replaced."""
        self.registry_url = registry_url
        self.model = model
        self.size = size
        self.version = version
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._predictors: list[_Predictor] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.on_change: Callable[[], None] | None = None
        """Told when a predictor starts, loads a version or dies (the per-predictor gauge)."""

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every predictor and wait until each has loaded the version (raises if one cannot)."""
        starting = [self._spawn(self.version) for _ in range(self.size)]
        for predictor in starting:
            self._await_ready(predictor)
        with self._changed:
            self._predictors = starting
            for predictor in starting:
                predictor.busy = False
            self._changed.notify_all()
        self._monitor = threading.Thread(target=self._watch, name="predictor-monitor", daemon=True)
        self._monitor.start()
        self._told()

    def close(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(5)
        for predictor in self._predictors:
            predictor.conn.close()  # the predictor reads EOF and exits
        deadline = time.monotonic() + 10
        for predictor in self._predictors:
            predictor.process.join(max(0.1, deadline - time.monotonic()))
            if predictor.process.is_alive():
                predictor.process.kill()
                predictor.process.join(5)

    def pids(self) -> dict[int, int]:
        """pid → version of each live predictor (the version it was last told to serve)."""
        return {p.process.pid: p.version for p in self._predictors if not p.dead}

    def _spawn(self, version: int) -> _Predictor:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_predictor_main,
            args=(theirs, self.registry_url, self.model, version),
            name="airflow-bridge-serve-predictor",
            daemon=True,
        )
        process.start()
        theirs.close()  # the predictor's end lives in the predictor only: its death is our EOF
        return _Predictor(process, mine, version)

    def _await_ready(self, predictor: _Predictor) -> None:
        reply = self._receive(predictor, START_SECONDS)
        if reply[0] != "ready":
            predictor.process.kill()
            raise PredictorRefused(f"a worker could not load v{predictor.version}: {reply[1]}")

    def _receive(self, predictor: _Predictor, timeout: float | None = None) -> Any:
        """The predictor's next message; :class:`PredictorLost` if it dies first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not predictor.conn.poll(0.2):
                if not predictor.process.is_alive():
                    raise PredictorLost(LOST)
                if deadline is not None and time.monotonic() > deadline:
                    raise PredictorTimedOut(f"worker {predictor.process.pid} gave no answer within {timeout:g} s")
            return predictor.conn.recv()
        except (EOFError, OSError):
            raise PredictorLost(LOST) from None

    def _watch(self) -> None:
        """Replace any predictor that died (found dead by a batch, or idle and not alive)."""
        while not self._stop.wait(0.1):
            with self._changed:
                gone = [p for p in self._predictors if p.dead or (not p.busy and not p.process.is_alive())]
                for predictor in gone:
                    predictor.dead = predictor.busy = True
            for predictor in gone:
                self._replace(predictor)

    def _replace(self, old: _Predictor) -> None:
        log.error("worker %d exited (code %s); starting another", old.process.pid, old.process.exitcode)
        old.conn.close()
        self._told()
        while not self._stop.is_set():
            time.sleep(RESTART_PAUSE)
            new = self._spawn(self.version)
            try:
                self._await_ready(new)
            except BridgeError as exc:
                log.error("%s; retrying", exc)
                time.sleep(1)
                continue
            with self._changed:
                self._predictors = [new if p is old else p for p in self._predictors]
                new.busy = False
                self._changed.notify_all()
            log.info("worker %d serves v%d", new.process.pid, new.version)
            self._told()
            return

    def _told(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- work -------------------------------------------------------------------------------------
    def _take(self, wanted: _Predictor | None = None, block: bool = True) -> _Predictor | None:
        """An idle predictor (``wanted``, or any), marked busy; None if ``wanted`` died meanwhile, or if
        none is idle and not ``block``."""
        with self._changed:
            while True:
                if wanted is not None and (wanted.dead or wanted not in self._predictors):
                    return None
                for predictor in self._predictors:
                    if not predictor.busy and (wanted is None or predictor is wanted):
                        predictor.busy = True
                        return predictor
                if not block:
                    return None
                self._changed.wait(1.0)

    def _give(self, predictor: _Predictor, died: bool = False) -> None:
        with self._changed:
            if died:
                predictor.dead = True  # the monitor replaces it
            else:
                predictor.busy = False
            self._changed.notify_all()

    def predict(self, jobs: list[Job]) -> list[Outcome]:
        """Each job's outcome, from one predictor (all jobs are of one version: the batcher's key)."""
        predictor = self._take()
        assert predictor is not None
        try:
            predictor.conn.send(("predict", self._version_of(jobs), [(job.columns, job.probabilities) for job in jobs]))
            _, outcomes, seconds = self._receive(predictor, self.timeout)
        except PredictorTimedOut:
            return self._stop_slow(predictor, jobs)
        except (PredictorLost, OSError, EOFError):
            self._give(predictor, died=True)
            return [PredictorLost(LOST) for _ in jobs]
        self._give(predictor)
        self._count_rows(jobs, seconds)
        return list(outcomes)

    async def predict_async(self, jobs: list[Job]) -> list[Outcome] | None:
        """:meth:`predict` from the event loop, without a thread: the batch is written to an idle
        predictor's pipe and its answer read when the pipe is readable (~1 ms less per call). None when
        no predictor is idle or the batch is large: the caller uses :meth:`predict` in a thread."""
        import asyncio

        message = ("predict", self._version_of(jobs), [(job.columns, job.probabilities) for job in jobs])
        payload = ForkingPickler.dumps(message)
        if len(payload) > INLINE_PAYLOAD:
            return None
        predictor = self._take(block=False)
        if predictor is None:
            return None
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        overran = False
        fd = predictor.conn.fileno()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        try:
            predictor.conn.send_bytes(payload)  # small, into an idle predictor's empty pipe: does not block
            loop.add_reader(fd, ready)
            try:
                await asyncio.wait_for(readable, self.timeout)
            except TimeoutError:
                overran = True
            finally:
                loop.remove_reader(fd)
                os.set_blocking(fd, True)  # uvloop (libuv) made it non-blocking: a long answer then fails to read
            if overran:  # stopped once the loop no longer watches its pipe (the monitor closes it)
                return self._stop_slow(predictor, jobs)
            _, outcomes, seconds = predictor.conn.recv()  # written at once by the predictor: read at once
        except asyncio.CancelledError:  # shutdown: its answer would be read by the next batch
            predictor.process.kill()
            self._give(predictor, died=True)
            raise
        except (OSError, EOFError):
            self._give(predictor, died=True)
            return [PredictorLost(LOST) for _ in jobs]
        self._give(predictor)
        self._count_rows(jobs, seconds)
        return list(outcomes)

    def _stop_slow(self, predictor: _Predictor, jobs: list[Job]) -> list[Outcome]:
        """Kill a predictor that overran the timeout (the monitor replaces it); its batch's outcomes."""
        log.error(
            "worker %d took longer than %g s (--predict-timeout) on a batch of %d request(s); stopping it",
            predictor.process.pid,
            self.timeout,
            len(jobs),
        )
        predictor.process.kill()
        self._give(predictor, died=True)
        return [PredictorTimedOut(TIMED_OUT.format(seconds=self.timeout)) for _ in jobs]

    def _version_of(self, jobs: list[Job]) -> int:
        return int(jobs[0].version.version.version) if jobs[0].version is not None else self.version

    @staticmethod
    def _count_rows(jobs: list[Job], seconds: float) -> None:
        rows = sum(job.rows for job in jobs)
        for job in jobs:
            job.batch_rows = rows if len(jobs) > 1 else job.rows
            job.predict_seconds = seconds

    def load_everywhere(self, version: int) -> None:
        """Have every predictor load and verify ``version`` (refresh thread); raises if one refuses it."""
        for predictor in list(self._predictors):
            taken = self._take(predictor)
            if taken is None:  # died meanwhile: its replacement starts on self.version
                continue
            try:
                taken.conn.send(("load", version))
                reply = self._receive(taken, START_SECONDS)
            except (PredictorLost, OSError, EOFError):
                self._give(taken, died=True)
                continue
            self._give(taken)
            if reply[0] != "ready":
                raise ChecksumMismatchError(f"worker {taken.process.pid} refused v{version}: {reply[1]}")
            taken.version = version
        self.version = version
        self._told()
