"""HTTP serving of the version behind an alias (target ``local``): ``/predict`` (and KServe's v1 and v2
inference routes, :mod:`.outputs`), ``/health``, ``/metadata``.

The artifact's checksum is verified before a version is loaded. A background thread re-reads the alias
every ``refresh_seconds``, so an alias move (deploy, promote, rollback) is served without a restart and
no request ever waits on the registry. If the new version's artifact fails verification, or the
registry cannot be read, the server keeps the last verified version, says so (``/health`` answers 503
with the reason) and logs it loudly.

Requests are bounded (:mod:`.limits`: size, read time, requests in flight, optional bearer token) and
read by :mod:`.inputs` in a small thread pool, so the event loop, and with it ``/health``, stays free.
Every error body is short JSON ``{"detail": ...}`` that names the problem and never repeats the input,
a traceback or a filesystem path.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
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
from airflow_bridge.serving.inputs import InputError, excerpt, parse_body, read_instances, wants_probabilities
from airflow_bridge.serving.limits import RequestGuard, ServeLimits, error_body
from airflow_bridge.serving.outputs import (
    V2InferRequest,
    labels_and_probabilities,
    plain,
    probability_rows,
    read_v2,
    refuse_without_probabilities,
    v2_answer,
    v2_location,
)

log = logging.getLogger("airflow_bridge.serve")
MAX_WARNING_CHARS = 500


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
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_initial(self) -> LoadedModel:
        """Load the version behind the alias now; raises when it is missing or fails verification (its
        checksum, or the audit chain: the alias and version rows must be what their events recorded)."""
        if self.registry.alias_version(self.model, self.alias) is None:
            raise NotFoundError(f"alias '{self.alias}' of model '{self.model}' points at no version")
        self.current = self._load(self.registry.trusted_version(self.model, self.alias))
        self._checked_at = time.monotonic()
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
        self._checked_at = time.monotonic()
        try:
            version = self.registry.alias_version(self.model, self.alias)
        except Exception as exc:  # an unreachable database above all: keep serving, and say so
            self._report(f"cannot read the registry: {exc}", exc)
            return
        if version is None:
            self._report(f"alias '{self.alias}' was removed; still serving the last version")
            return
        if self.current and version.version == self.current.version.version:
            if not self.problem or not self.problem.startswith("refused"):
                self.problem = None
            return
        try:
            loaded = self._load(self.registry.trusted_version(self.model, self.alias))
        except (ChecksumMismatchError, AuditMismatchError) as exc:
            self._report(f"refused v{version.version}: {exc}")
            return
        except Exception as exc:  # the registry or the object store went away meanwhile: retried next round
            self._report(f"cannot load v{version.version}: {exc}", exc)
            return
        self.current, self.problem = loaded, None
        log.info("alias '%s' moved: now serving %s v%d", self.alias, self.model, loaded.version.version)

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


def create_app(holder: ModelHolder, limits: ServeLimits | None = None, token: str | None = None) -> Any:
    """The FastAPI application; ``holder`` must have loaded its first version. With ``token``, every
    route but ``/health`` needs ``Authorization: Bearer <token>``."""
    from anyio import CapacityLimiter, to_thread
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    limits = limits or ServeLimits()
    predicting = CapacityLimiter(limits.predict_threads)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        holder.start()
        try:
            yield
        finally:
            holder.stop()

    app = FastAPI(title=f"airflow-bridge: {holder.model}@{holder.alias}", lifespan=lifespan)
    app.add_middleware(RequestGuard, limits=limits, token=token)

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

    async def answer(request: Request, protocol: str = "v1") -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
        status, payload = await to_thread.run_sync(
            predict_body, holder, body, content_type, limits.max_rows, protocol, limiter=predicting
        )
        return reply(status, payload)

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


def predict_body(
    holder: ModelHolder, body: bytes, content_type: str | None, max_rows: int, protocol: str = "v1"
) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a prediction request (``protocol`` v1: ``/predict`` and KServe's v1
    route; v2: KServe's v2 infer route): run in the prediction pool, off the event loop."""
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
        frame = read_instances(document, loaded.features, max_rows)
    except InputError as exc:
        return exc.status, error_body(v2_location(exc.message) if protocol == "v2" else exc.message)
    missing = [f for f in loaded.features if f not in frame.columns]
    if missing:
        return 422, error_body(
            f"missing column(s) {', '.join(repr(m) for m in missing)}: send every column the model was trained "
            f"on ({', '.join(loaded.features)}); a value may be null"
        )
    try:
        labels, classes, matrix = labels_and_probabilities(
            loaded.estimator, frame[loaded.features] if loaded.features else frame, probabilities
        )
    except BridgeError as exc:  # a row the model's column check refused: it names the column
        return 422, error_body(_tame(str(exc)))
    except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
        return 422, error_body(f"cannot predict on this input: {_tame(str(exc))}")
    columns_step: Any = getattr(loaded.estimator, "named_steps", {}).get("columns")
    notes = columns_step.unseen(frame) if hasattr(columns_step, "unseen") else []
    warnings = [_tame(note, MAX_WARNING_CHARS) for note in notes]
    predictions = [plain(p) for p in labels]
    rows = probability_rows(matrix) if matrix is not None else None
    if v2 is not None:
        tensors = v2_answer(
            v2,
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
