"""HTTP serving of the version behind an alias (target ``local``): ``/predict``, ``/health``, ``/metadata``.

The artifact's checksum is verified before a version is loaded. The alias is re-read at most every
``refresh_seconds``, so an alias move (deploy, promote, rollback) is served without a restart. If
the new version's artifact fails verification, the server keeps the last verified version,
refuses to pretend otherwise (``/health`` answers 503 with the reason) and logs it loudly.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from airflow_bridge.exceptions import AuditMismatchError, BridgeError, ChecksumMismatchError, NotFoundError
from airflow_bridge.registry.records import ModelVersion
from airflow_bridge.registry.store import ModelRegistry

log = logging.getLogger("airflow_bridge.serve")


class PredictRequest(BaseModel):
    """Body of ``POST /predict`` and of KServe's v1 ``POST /v1/models/NAME:predict``.

    Each instance is a row ``{column: value}``, or one of KServe's v1 table shapes: a list of rows, or
    columns ``{column: [values]}``. The same body then works against the ``local`` and ``kserve`` targets.
    """

    instances: list[dict[str, Any] | list[dict[str, Any]]] = Field(
        min_length=1,
        description="Rows as {column: value} objects; or KServe v1's [[rows]] or [{column: [values]}].",
    )

    def frame(self) -> Any:
        """The instances as one table, in request order."""
        import pandas as pd

        if all(isinstance(item, dict) and not _is_columns(item) for item in self.instances):
            return pd.DataFrame(self.instances)
        parts = [
            pd.DataFrame(item if not isinstance(item, dict) or _is_columns(item) else [item]) for item in self.instances
        ]
        return pd.concat(parts, ignore_index=True)


def _is_columns(item: dict[str, Any]) -> bool:
    return bool(item) and all(isinstance(value, list) for value in item.values())


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

    def load_initial(self) -> LoadedModel:
        """Load the version behind the alias now; raises when it is missing or fails verification (its
        checksum, or the audit chain: the alias and version rows must be what their events recorded)."""
        if self.registry.alias_version(self.model, self.alias) is None:
            raise NotFoundError(f"alias '{self.alias}' of model '{self.model}' points at no version")
        self.current = self._load(self.registry.trusted_version(self.model, self.alias))
        self._checked_at = time.monotonic()
        return self.current

    def get(self) -> LoadedModel:
        """The model to answer with, after following an alias move if one happened."""
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            with self._lock:
                if time.monotonic() - self._checked_at >= self.refresh_seconds:
                    self._refresh()
        assert self.current is not None
        return self.current

    def _refresh(self) -> None:
        self._checked_at = time.monotonic()
        try:
            version = self.registry.alias_version(self.model, self.alias)
        except BridgeError as exc:
            self.problem = f"cannot read the registry: {exc}"
            log.error("%s; still serving v%s", self.problem, self.current.version.version if self.current else "?")
            return
        if version is None:
            self.problem = f"alias '{self.alias}' was removed; still serving the last version"
            return
        if self.current and version.version == self.current.version.version:
            if not self.problem or not self.problem.startswith("refused"):
                self.problem = None
            return
        try:
            self.current = self._load(self.registry.trusted_version(self.model, self.alias))
            self.problem = None
            log.info("alias '%s' moved: now serving %s v%d", self.alias, self.model, self.current.version.version)
        except (ChecksumMismatchError, AuditMismatchError) as exc:
            self.problem = f"refused v{version.version}: {exc}"
            log.error("%s; still serving v%s", self.problem, self.current.version.version if self.current else "?")

    @staticmethod
    def _load(version: ModelVersion) -> LoadedModel:
        from airflow_bridge.artifacts import load_model, read_verified

        data = read_verified(version.artifact)
        features = list(version.data.get("features") or [])
        return LoadedModel(version, load_model(data), features, time.time())


def create_app(holder: ModelHolder) -> Any:
    """The FastAPI application; ``holder`` must have loaded its first version."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    app = FastAPI(title=f"airflow-bridge: {holder.model}@{holder.alias}")

    @app.get("/health")
    def health() -> Any:
        loaded = holder.get()
        body = {
            "status": "ok" if holder.problem is None else "degraded",
            "model": holder.model,
            "alias": holder.alias,
            "version": loaded.version.version,
            "problem": holder.problem,
        }
        return JSONResponse(body, status_code=200 if holder.problem is None else 503)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        version = holder.get().version
        return {
            "model": version.model,
            "alias": holder.alias,
            "version": version.version,
            "sha256": version.artifact.sha256,
            "size": version.artifact.size,
            "artifact_uri": version.artifact.uri,
            "estimator": version.estimator,
            "task_kind": version.task_kind,
            "features": holder.get().features,
            "metrics": version.metrics,
            "created_at": version.created_at.isoformat(),
            "produced_by": {"dag_id": version.run.dag_id, "run_id": version.run.run_id},
        }

    @app.post("/v1/models/{name}:predict")
    def predict_v1(name: str, request: PredictRequest) -> dict[str, Any]:
        """KServe's v1 protocol, so a client of the ``kserve`` target works against ``local`` unchanged."""
        if name != holder.model:
            raise HTTPException(404, f"this server serves model '{holder.model}', not '{name}'")
        return predict(request)

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        loaded = holder.get()
        try:
            frame = request.frame()
        except ValueError as exc:  # columns of unequal length
            raise HTTPException(422, f"cannot read the instances as a table: {exc}") from None
        missing = [f for f in loaded.features if f not in frame.columns]
        if missing:
            raise HTTPException(
                422,
                f"missing column(s) {', '.join(repr(m) for m in missing)}: send every column the model was trained "
                f"on ({', '.join(loaded.features)}); a value may be null",
            )
        try:
            predictions = loaded.estimator.predict(frame[loaded.features] if loaded.features else frame)
        except BridgeError as exc:  # a row the model's column check refused: it names the column
            raise HTTPException(422, str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, f"cannot predict on this input: {exc}") from None
        answer: dict[str, Any] = {
            "model": holder.model,
            "version": loaded.version.version,
            "predictions": [_plain(p) for p in predictions],
        }
        columns_step: Any = getattr(loaded.estimator, "named_steps", {}).get("columns")
        notes = columns_step.unseen(frame) if hasattr(columns_step, "unseen") else []
        if notes:
            answer["warnings"] = notes
        return answer

    return app


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
