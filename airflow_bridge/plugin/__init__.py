"""The airflow-bridge Airflow plugin: the Models page, its navigation entry and the task links.

Airflow imports this module in every process (entry point ``airflow.plugins``), so it stays cheap:
the FastAPI app is built on its first request, in the API server only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

from airflow_bridge.operators.links import PLUGIN_PREFIX, ModelReportLink, ModelVersionLink, ServingEndpointLink

if TYPE_CHECKING:
    from fastapi import FastAPI


class LazyModelsApp:
    """An ASGI app that builds ``airflow_bridge.plugin.app.create_app()`` when first called."""

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            from airflow_bridge.plugin.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


models_app = LazyModelsApp()


class AirflowBridgePlugin(AirflowPlugin):
    """Models page (``/airflow-bridge/models/``) in the navigation, and links from bridge tasks to it."""

    name = "airflow_bridge"
    fastapi_apps = [{"app": models_app, "url_prefix": PLUGIN_PREFIX, "name": "airflow-bridge models"}]
    external_views = [
        {
            "name": "Models",
            "href": f"{PLUGIN_PREFIX}/models/",
            "destination": "nav",
            "category": "browse",
            "url_route": "airflow-bridge-models",
            "icon_dark_mode": None,
        }
    ]
    operator_extra_links = [ModelVersionLink(), ModelReportLink(), ServingEndpointLink()]
