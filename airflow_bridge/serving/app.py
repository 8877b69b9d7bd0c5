"""HTTP serving of the version behind an alias (target ``local``): ``/predict`` (and KServe's v1 and v2
inference routes, :mod:`.outputs`), ``/health``, ``/metadata``.

The artifact's checksum is verified before a version is loaded. A background thread re-reads the alias
every ``refresh_seconds``, so an alias move (deploy, promote, rollback) is served without a restart and
no request ever waits on the registry. If the new version's artifact fails verification, or the
registry cannot be read, the server keeps the last verified version, says so (``/health`` answers 503
with the reason) and logs it loudly.

Requests are bounded (:mod:`.limits`: size, read time, requests in flight, optional bearer token) and
read by :mod:`.inputs` (small bodies on the event loop, large ones in a small thread pool, so the event
loop, and with it ``/health``, stays free). Concurrent requests are predicted together
(:mod:`.batching`), in this process or, with ``serve --workers N``, by predictor processes
(:mod:`.predictors`: a predictor's death costs its batch a 503, never a connection); ``/metrics`` and
the access log are :mod:`.metrics`.
Every error body is short JSON ``{"detail": ...}`` that names the problem and never repeats the input,
a traceback or a filesystem path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from starlette.requests import Request  # at module level: FastAPI resolves the routes' annotations here

from airflow_bridge.exceptions import AuditMismatchError, BridgeError, ChecksumMismatchError, NotFoundError
from airflow_bridge.registry.records import ModelVersion
from airflow_bridge.registry.store import ModelRegistry
from airflow_bridge.serving.batching import Batcher, BatchSettings, Job, Outcome, predict_jobs, predict_one
from airflow_bridge.serving.inputs import InputError, excerpt, parse_body, read_columns, wants_probabilities
from airflow_bridge.serving.limits import RequestGuard, ServeLimits, error_body
from airflow_bridge.serving.metrics import Observed, ServeMetrics
from airflow_bridge.serving.outputs import (
    V2InferRequest,
    V2Request,
    plain,
    probability_rows,
    read_v2,
    refuse_without_probabilities,
    v2_answer,
    v2_location,
)
from airflow_bridge.serving.predictors import PredictorLost, PredictorPool, PredictorRefused, PredictorTimedOut
from airflow_bridge.serving.runtime import settle

log = logging.getLogger("airflow_bridge.serve")
MAX_WARNING_CHARS = 500
INLINE_BYTES = 16 * 1024
"""Request bodies up to this size are read on the event loop; larger ones in the prediction pool."""
INLINE_ROWS = 200
RETRY_AFTER = {"Retry-After": "1"}
"""On a 503 from a lost predictor: its replacement is up within about a second."""
"""Answers of up to this many rows are written on the event loop; larger ones in the prediction pool."""


class PredictRequest(BaseModel):
    """Body of ``POST /predict`` and of KServe's v1 ``POST /v1/models/NAME:predict`` (the OpenAPI schema;
    :mod:`.inputs` reads and checks the body).

    Each instance is a row ``{column: value}``, or one of KServe's v1 table shapes: a list of rows, or
    columns ``{column: [values]}``. The same body then works against the ``local`` and ``kserve`` targets.
    """

    instances: list[dict[str, Any] | list[dict[str, Any]]] = Field(
        min_length=1,
        description="Rows as {column: value} objects; or KServe v1's [[rows]] or [{column: [values]}]. "
        "Values are strings, finite numbers, booleans or null.",
    )
    probabilities: bool = Field(
        default=False,
        description="Also answer each class's probability: 'classes' (the model's order) and 'probabilities' "
        "(one row per instance). Classifiers with predict_proba only; others answer 422.",
    )


@dataclass
class LoadedModel:
    version: ModelVersion
    estimator: Any
    features: list[str]
    loaded_at: float


class ModelHolder:
    """The model being served, swapped atomically when the alias moves."""

    def __init__(self, registry: ModelRegistry, model: str, alias: str, refresh_seconds: float = 2.0) -> None:
        self.registry = registry
        self.model = model
        self.alias = alias
        self.refresh_seconds = refresh_seconds
        self.current: LoadedModel | None = None
        self.problem: str | None = None
        self.freeze_heap = False
        """After each load, freeze the long-lived heap (:func:`.runtime.settle`): set in the ``serve`` process."""
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_refresh: Callable[[str], None] | None = None
        """Told each re-read's outcome: unchanged, moved, refused (checksum or audit), failed (metrics)."""
        self.before_serving: Callable[[int], None] | None = None
        """Called with a new version once the front verified it, before it is served (the predictor
        processes load it); raising ``ChecksumMismatchError`` refuses it (the old one keeps serving)."""

    def load_initial(self) -> LoadedModel:
        """Load the version behind the alias now; raises when it is missing or fails verification (its
        checksum, or the audit chain: the alias and version rows must be what their events recorded)."""
        if self.registry.alias_version(self.model, self.alias) is None:
            raise NotFoundError(f"alias '{self.alias}' of model '{self.model}' points at no version")
        self.current = self._load(self.registry.trusted_version(self.model, self.alias))
        self._checked_at = time.monotonic()
        if self.freeze_heap:
            settle()
        return self.current

    def start(self) -> None:
        """Follow the alias from a background thread (the server's start-up); ``get`` then never blocks."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name="alias-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)

    def get(self) -> LoadedModel:
        """The model to answer with; without the background thread (tests), the alias is re-read here."""
        if self._thread is None and time.monotonic() - self._checked_at >= self.refresh_seconds:
            with self._lock:
                if time.monotonic() - self._checked_at >= self.refresh_seconds:
                    self._refresh()
        assert self.current is not None
        return self.current

    def _follow(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self._refresh()
            except Exception:  # never let the thread die: the next round tries again
                log.exception("alias refresh failed")

    def _refresh(self) -> None:
        outcome = self._reread()
        if self.on_refresh is not None:
            self.on_refresh(outcome)

    def _reread(self) -> str:
        self._checked_at = time.monotonic()
        try:
            version = self.registry.alias_version(self.model, self.alias)
        except Exception as exc:  # an unreachable database above all: keep serving, and say so
            self._report(f"cannot read the registry: {exc}", exc)
            return "failed"
        if version is None:
            self._report(f"alias '{self.alias}' was removed; still serving the last version")
            return "failed"
        if self.current and version.version == self.current.version.version:
            if not self.problem or not self.problem.startswith("refused"):
                self.problem = None
            return "unchanged"
        try:
            loaded = self._load(self.registry.trusted_version(self.model, self.alias))
            if self.before_serving is not None:
                self.before_serving(loaded.version.version)
        except (ChecksumMismatchError, AuditMismatchError) as exc:
            self._report(f"refused v{version.version}: {exc}")
            return "refused"
        except Exception as exc:  # the registry or the object store went away meanwhile: retried next round
            self._report(f"cannot load v{version.version}: {exc}", exc)
            return "failed"
        # Requests already holding the old version finish on it; new ones take this one.
        self.current, self.problem = loaded, None
        if self.freeze_heap:
            settle()  # the old version goes once its last requests are answered
        log.info("alias '%s' moved: now serving %s v%d", self.alias, self.model, loaded.version.version)
        return "moved"

    def _report(self, problem: str, exc: Exception | None = None) -> None:
        """Record ``problem`` for ``/health``; logged once per change, with a traceback if it is a bug."""
        if problem != self.problem:
            serving = self.current.version.version if self.current else "?"
            unexpected = exc is not None and not isinstance(exc, BridgeError | OSError)
            log.error("%s; still serving v%s", problem, serving, exc_info=exc if unexpected else None)
        self.problem = problem

    @staticmethod
    def _load(version: ModelVersion) -> LoadedModel:
        from airflow_bridge.artifacts import load_model, read_verified

        data = read_verified(version.artifact)
        features = list(version.data.get("features") or [])
        return LoadedModel(version, load_model(data), features, time.time())


def create_app(
    holder: ModelHolder,
    limits: ServeLimits | None = None,
    token: str | None = None,
    batching: BatchSettings | None = None,
    metrics: ServeMetrics | None = None,
    *,
    pool: PredictorPool | None = None,
) -> Any:
    """The FastAPI application; ``holder`` must have loaded its first version. With ``token``, every
    route but ``/health`` needs ``Authorization: Bearer <token>``. ``batching``: see :mod:`.batching`
    (default on); ``metrics``: see :mod:`.metrics` (``/metrics``). With ``pool`` (started), every
    prediction is made by its predictor processes (:mod:`.predictors`), never in this process."""
    from anyio import CapacityLimiter, to_thread
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    limits = limits or ServeLimits()
    batching = batching or BatchSettings()
    metrics = metrics or ServeMetrics(holder.model, holder.alias)
    predicting = CapacityLimiter(limits.predict_threads)
    batch_thread = CapacityLimiter(1 if pool is None else pool.size)
    predict_batch = predict_jobs if pool is None else pool.predict

    def serving() -> int | None:
        return holder.current.version.version if holder.current else None

    def refreshed(outcome: str) -> None:
        metrics.refreshed(outcome)
        metrics.served(serving() or 0, holder.problem is None)

    holder.on_refresh = refreshed
    metrics.served(serving() or 0, holder.problem is None)

    def predicted(jobs: list[Job]) -> None:
        loaded = jobs[0].version
        metrics.batch(loaded.version.version, sum(job.rows for job in jobs), len(jobs), jobs[0].predict_seconds)

    async def in_batch_thread(function: Callable[[list[Job]], list[Outcome]], jobs: list[Job]) -> list[Outcome]:
        if pool is not None:  # small batches go to an idle predictor from the event loop
            outcomes = await pool.predict_async(jobs)
            if outcomes is not None:
                return outcomes
        return await to_thread.run_sync(function, jobs, limiter=batch_thread)

    batcher = None
    if batching.enabled:
        concurrency = 1 if pool is None else pool.size
        batcher = Batcher(batching, in_batch_thread, predicted, predict=predict_batch, concurrency=concurrency)
    if pool is not None:
        holder.before_serving = pool.load_everywhere
        pool.on_change = lambda: metrics.predictors(pool.pids())
        metrics.predictors(pool.pids())

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        holder.start()
        try:
            yield
        finally:
            holder.stop()
            if batcher is not None:
                await batcher.close()

    app = FastAPI(title=f"airflow-bridge: {holder.model}@{holder.alias}", lifespan=lifespan)
    app.add_middleware(RequestGuard, limits=limits, token=token)
    app.add_middleware(Observed, metrics=metrics, serving=serving)  # added last: outermost, sees every answer
    app.state.metrics = metrics

    def reply(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        """FastAPI's default echoes the input; this names where and what, never the value."""
        shown = [
            f"{'.'.join(str(part)[:30] for part in e.get('loc', ()))}: {str(e.get('msg', ''))[:120]}"
            for e in exc.errors()[:3]
        ]
        more = f" (and {len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
        return reply(422, error_body("invalid request: " + "; ".join(shown) + more))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return reply(exc.status_code, error_body(str(exc.detail)), exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> Response:
        log.error("request failed", exc_info=exc)
        return reply(500, error_body("internal error; the server's log has the details"))

    @app.get("/health")
    async def health() -> Response:
        loaded = holder.get()
        problem = holder.problem
        body = {
            "status": "ok" if problem is None else "degraded",
            "model": holder.model,
            "alias": holder.alias,
            "version": loaded.version.version,
            "problem": None if problem is None else public(problem)[:1000],
        }
        return reply(200 if problem is None else 503, json.dumps(body).encode())

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        loaded = holder.get()
        version = loaded.version
        location = urlsplit(version.artifact.uri)
        return {
            "model": version.model,
            "alias": holder.alias,
            "version": version.version,
            "sha256": version.artifact.sha256,
            "size": version.artifact.size,
            "artifact_name": PurePosixPath(location.path).name,
            "artifact_store": location.scheme or "file",
            "estimator": version.estimator,
            "task_kind": version.task_kind,
            "features": loaded.features,
            "probabilities": hasattr(loaded.estimator, "predict_proba"),
            "metrics": version.metrics,
            "created_at": version.created_at.isoformat(),
            "produced_by": {"dag_id": version.run.dag_id, "run_id": version.run.run_id},
        }

    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        }
    }

    @app.get("/metrics")
    async def scrape() -> Response:
        """Prometheus' text format (:mod:`.metrics`); behind the token when the server has one."""
        payload, content_type = metrics.exposition()
        return Response(payload, media_type=content_type)

    async def answer(request: Request, protocol: str = "v1") -> Response:
        """Read the request (prediction pool), predict it (in a batch, or alone), write the answer."""
        if batcher is not None:
            batcher.arriving()
        submitted = False
        try:
            body = await request.body()
            content_type = request.headers.get("content-type")
            if len(body) <= INLINE_BYTES:  # ~0.1 ms: cheaper than a trip to a thread
                prepared = prepare(holder, body, content_type, limits.max_rows, protocol)
            else:
                prepared = await to_thread.run_sync(
                    prepare, holder, body, content_type, limits.max_rows, protocol, limiter=predicting
                )
            if isinstance(prepared, tuple):
                return reply(*prepared)
            request.state.version = prepared.loaded.version.version
            job = prepared.job()
            if batcher is not None and job.rows <= INLINE_ROWS:
                await asyncio.sleep(0)  # requests that arrived with this one start reading first
            if pool is None and batcher is not None and job.rows <= INLINE_ROWS and batcher.alone():
                # A lone request: predicting here saves the trip to a thread (~1 ms of a ~30 ms call);
                # /health waits for this one call (at most INLINE_ROWS rows) instead.
                outcome = predict_one(job)
                predicted([job])
            elif batcher is not None:
                submitted = True
                outcome = await batcher.submit(job)
            elif pool is not None:
                outcome = (await in_batch_thread(pool.predict, [job]))[0]
                predicted([job])
            else:
                outcome = await to_thread.run_sync(predict_one, job, limiter=predicting)
                predicted([job])
            request.state.rows, request.state.batch_rows = job.rows, job.batch_rows
            request.state.predict_ms = round(job.predict_seconds * 1000, 2)
            if job.rows <= INLINE_ROWS:
                status, payload = finish(holder, prepared, outcome)
            else:
                status, payload = await to_thread.run_sync(finish, holder, prepared, outcome, limiter=predicting)
            return reply(status, payload, RETRY_AFTER if status == 503 else None)
        finally:
            if batcher is not None and not submitted:
                batcher.gone()

    @app.post("/v1/models/{name}:predict", openapi_extra=body_schema)
    async def predict_v1(name: str, request: Request) -> Response:
        """KServe's v1 protocol, so a client of the ``kserve`` target works against ``local`` unchanged."""
        if name != holder.model:
            return reply(404, error_body(f"this server serves model '{holder.model}', not {excerpt(name)}"))
        return await answer(request)

    @app.post("/predict", openapi_extra=body_schema)
    async def predict(request: Request) -> Response:
        return await answer(request)

    v2_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": V2InferRequest.model_json_schema()}},
        }
    }

    @app.post("/v2/models/{name}/infer", openapi_extra=v2_schema)
    async def infer_v2(name: str, request: Request) -> Response:
        """KServe's v2 (Open Inference Protocol) inference over JSON: one input tensor per column."""
        if name != holder.model:
            return reply(404, error_body(f"this server serves model '{holder.model}', not {excerpt(name)}"))
        return await answer(request, "v2")

    return app


@dataclass
class Prepared:
    """A prediction request read and checked, ready for the model (alone or in a batch)."""

    loaded: LoadedModel
    columns: dict[str, list[Any]]
    """The request's table as checked columns: the model's features, in its order (all columns if it has none)."""
    probabilities: bool
    protocol: str
    v2: V2Request | None = None

    def job(self) -> Job:
        return Job(self.loaded.estimator, self.columns, self.probabilities, version=self.loaded)


def prepare(
    holder: ModelHolder, body: bytes, content_type: str | None, max_rows: int, protocol: str = "v1"
) -> Prepared | tuple[int, bytes]:
    """The request read against the version being served now, or (HTTP status, JSON body) of its refusal."""
    loaded = holder.get()
    v2 = None
    try:
        document = parse_body(body, content_type)
        if protocol == "v2":
            v2 = read_v2(document)
            document, probabilities = v2.instances, v2.probabilities
        else:
            probabilities = wants_probabilities(document)
        if probabilities:
            refuse_without_probabilities(holder.model, loaded.version, loaded.estimator)
        columns = read_columns(document, loaded.features, max_rows)
    except InputError as exc:
        return exc.status, error_body(v2_location(exc.message) if protocol == "v2" else exc.message)
    missing = [f for f in loaded.features if f not in columns]
    if missing:
        return 422, error_body(
            f"missing column(s) {', '.join(repr(m) for m in missing)}: send every column the model was trained "
            f"on ({', '.join(loaded.features)}); a value may be null"
        )
    return Prepared(loaded, columns, probabilities, protocol, v2)


def finish(holder: ModelHolder, prepared: Prepared, outcome: Outcome) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a predicted request; a failed prediction is a 422 naming why, a
    predictor process that died or could not load the version a 503 (the client may retry), one that
    overran ``--predict-timeout`` a 504."""
    if isinstance(outcome, PredictorTimedOut):
        return 504, error_body(str(outcome))
    if isinstance(outcome, PredictorLost | PredictorRefused):
        return 503, error_body(public(str(outcome))[:600])
    if isinstance(outcome, BridgeError):  # a row the model's column check refused: it names the column
        return 422, error_body(_tame(str(outcome)))
    if isinstance(outcome, ValueError | TypeError | ArithmeticError | LookupError):
        return 422, error_body(f"cannot predict on this input: {_tame(str(outcome))}")
    if isinstance(outcome, BaseException):
        raise outcome
    labels, classes, matrix = outcome
    loaded = prepared.loaded
    columns_step: Any = getattr(loaded.estimator, "named_steps", {}).get("columns")
    notes = _unseen(columns_step, prepared.columns)
    warnings = [_tame(note, MAX_WARNING_CHARS) for note in notes]
    predictions = [plain(p) for p in labels]
    rows = probability_rows(matrix) if matrix is not None else None
    if prepared.v2 is not None:
        tensors = v2_answer(
            prepared.v2,
            model=holder.model,
            version=loaded.version.version,
            labels=predictions,
            classes=classes,
            probabilities=rows,
            warnings=warnings,
        )
        return 200, json.dumps(tensors, allow_nan=False).encode()
    answer: dict[str, Any] = {"model": holder.model, "version": loaded.version.version, "predictions": predictions}
    if rows is not None:
        answer.update(classes=classes, probabilities=rows)
    if warnings:
        answer["warnings"] = warnings
    return 200, json.dumps(answer, allow_nan=False).encode()


def _unseen(columns_step: Any, columns: dict[str, list[Any]]) -> list[str]:
    """The column step's notes on categories training never saw (only its categorical columns are read)."""
    categorical = [name for name in getattr(columns_step, "categories_", None) or {} if name in columns]
    if not categorical or not hasattr(columns_step, "unseen"):
        return []
    import pandas as pd

    return list(columns_step.unseen(pd.DataFrame({name: columns[name] for name in categorical})))


def predict_body(
    holder: ModelHolder, body: bytes, content_type: str | None, max_rows: int, protocol: str = "v1"
) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a prediction request predicted alone (``protocol`` v1: ``/predict`` and
    KServe's v1 route; v2: KServe's v2 infer route): the unbatched path, and the reference of batching."""
    prepared = prepare(holder, body, content_type, max_rows, protocol)
    if isinstance(prepared, tuple):
        return prepared
    return finish(holder, prepared, predict_one(prepared.job()))


_LONG_WORD = re.compile(r"\S{61,}")


def _tame(text: str, limit: int = 600) -> str:
    """A message from the model or pandas, which may quote the input: long words (values) cut to an excerpt."""
    text = _LONG_WORD.sub(lambda found: f"{found.group(0)[:40]}…({len(found.group(0))} characters)", text)
    return text if len(text) <= limit else text[:limit] + "…"


_URI = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://[^\s'\"(),;]*")
_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"(),;:]+/)+([^\s/'\"(),;:]*)")


def public(text: str) -> str:
    """``text`` for an unauthenticated reader: a URI or absolute path becomes its last part (a file
    ``…/ab12.joblib``, ``s3://…/ab12.joblib``), credentials and folders are dropped."""

    def uri(found: re.Match[str]) -> str:
        scheme, rest = found.group(1), found.group(0).split("://", 1)[1]
        name = rest.rstrip("/").rsplit("/", 1)[-1] if "/" in rest else ""
        if scheme == "file":
            return name
        return f"{scheme}://…/{name}" if name else f"{scheme}://…"

    return _PATH.sub(lambda found: found.group(1) or "…", _URI.sub(uri, text))
