"""Airflow assets and task links of the bridge operators: where a task's model version lives.

Assets: ``airflow-bridge://<registry>/model/<name>`` gets an event per registered version and
``airflow-bridge://<registry>/model/<name>@<alias>`` one per alias move, each with the version's
metadata as the event's extra; ``<registry>`` is the registry connection id. Links: the worker
computes them after ``execute`` (Airflow stores them in XCom), from what the operator remembered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import Asset, BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.definitions.taskinstancekey import TaskInstanceKey

ASSET_SCHEME = "airflow-bridge"
PLUGIN_PREFIX = "/airflow-bridge"
"""Where the API server mounts the Models page (``airflow_bridge.plugin``)."""
SERVING_URL_KEY = "serving_url"
"""``[airflow_bridge] serving_url``: base URL of the model server (``airflow-bridge serve``), if any."""


def model_asset(model: str, registry: str | None = None) -> Asset:
    """The asset of a model: one event per registered version."""
    from airflow_bridge.config import DEFAULT_REGISTRY_CONN

    return Asset(f"{ASSET_SCHEME}://{registry or DEFAULT_REGISTRY_CONN}/model/{model}")


def alias_asset(model: str, alias: str, registry: str | None = None) -> Asset:
    """The asset of a model's alias: one event per move; schedule on it to follow e.g. production."""
    from airflow_bridge.config import DEFAULT_REGISTRY_CONN

    return Asset(f"{ASSET_SCHEME}://{registry or DEFAULT_REGISTRY_CONN}/model/{model}@{alias}")


def emit_asset_events(context: Context, outlets: Any, extra: dict[str, Any]) -> None:
    """Attach ``extra`` (the version's metadata) to the event of every asset in ``outlets``."""
    events = context.get("outlet_events")
    if events is None:
        return
    for outlet in outlets or ():
        if isinstance(outlet, Asset):
            events[outlet].extra = dict(extra)


def base_url() -> str:
    """Airflow's ``[api] base_url`` without a trailing slash ('' when unset: links stay host-relative)."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def models_url(model: str, version: int | None = None, page: str = "") -> str:
    """The Models page of ``model`` (at ``version``), or one of its sub-pages (``report``)."""
    url = f"{base_url()}{PLUGIN_PREFIX}/models/{quote(model)}"
    if version is None:
        return url
    return f"{url}/versions/{version}/{page}" if page else f"{url}#v{version}"


def serving_url(model: str, alias: str) -> str:
    """The serving endpoint of ``model@alias``: ``[airflow_bridge] serving_url``, else the alias on the Models page."""
    from airflow_bridge.config import bridge_config

    configured = bridge_config(SERVING_URL_KEY) or os.environ.get("AIRFLOW_BRIDGE_SERVING_URL")
    if configured:
        return f"{configured.rstrip('/')}/metadata"
    return f"{models_url(model)}#alias-{quote(alias)}"


def _produced(operator: BaseOperator) -> tuple[str, int] | None:
    """(model, version) the task registered or deployed, as remembered by ``execute``; None before that."""
    state = operator.__dict__.get("_lineage_state") or {}
    source = state.get("result") or state.get("registration")
    if source is None:
        return None
    return str(source.model), int(source.version)


class ModelVersionLink(BaseOperatorLink):
    """The version the task registered or deployed, on the Models page."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        produced = _produced(operator)
        return models_url(*produced) if produced else ""


class ModelReportLink(BaseOperatorLink):
    """The model report of that version (served checksum-verified by the Models page)."""

    name = "Model report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        produced = _produced(operator)
        return models_url(*produced, page="report") if produced else ""


class ServingEndpointLink(BaseOperatorLink):
    """Where the deployed alias is served."""

    name = "Serving endpoint"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        produced = _produced(operator)
        alias = getattr(operator, "alias", None)
        return serving_url(produced[0], str(alias)) if produced and alias else ""


VERSION_LINKS = (ModelVersionLink(), ModelReportLink())
DEPLOY_LINKS = (*VERSION_LINKS, ServingEndpointLink())
