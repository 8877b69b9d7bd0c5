"""The Models page: a FastAPI app the Airflow API server mounts under ``/airflow-bridge``.

Every route needs a user logged in to Airflow (its auth manager's JWT, as a cookie or bearer token)
who may see the ``Models`` custom view. Writes go only through the policy-checked
``airflow_bridge.actions.deployment`` actions, with the logged-in user as the actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airflow_bridge.exceptions import BridgeError, NotFoundError, PolicyViolationError, RegistryUnavailableError
from airflow_bridge.operators.links import PLUGIN_PREFIX
from airflow_bridge.plugin import pages

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from airflow_bridge.actions.results import DeploymentResult
    from airflow_bridge.registry.store import ModelRegistry

RESOURCE = "Models"
"""The custom view name the auth manager is asked about (``is_authorized_custom_view``)."""


def _authorized(method: str) -> Any:
    """A dependency: the user of Airflow's ``get_user`` (401 without a valid token), allowed ``method``."""

    def check(user: GetUserDep) -> BaseUser:
        from airflow.api_fastapi.app import get_auth_manager

        if not get_auth_manager().is_authorized_custom_view(method=method, resource_name=RESOURCE, user=user):  # type: ignore[arg-type]
            raise HTTPException(
                403, f"user '{user.get_name()}' may not {'see' if method == 'GET' else 'change'} models"
            )
        return user

    return check


Reader = Annotated[Any, Depends(_authorized("GET"))]
Writer = Annotated[Any, Depends(_authorized("POST"))]


def registry() -> ModelRegistry:
    """The registry Airflow tasks use (connection ``model_registry_default``, config, environment)."""
    from airflow_bridge.resolution import open_registry

    return open_registry(in_airflow=True)


def create_app() -> FastAPI:
    """The Models app (routes below); ``airflow_bridge.plugin`` builds it on its first request."""
    app = FastAPI(title="airflow-bridge models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        body = pages.page("Models", pages.message(str(exc.detail), ok=False), root=_root(request))
        return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BridgeError)
    async def _bridge_error(request: Request, exc: BridgeError) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 503 if isinstance(exc, RegistryUnavailableError) else 409
        body = pages.page("Models", pages.message(f"{type(exc).__name__}: {exc}", ok=False), root=_root(request))
        return HTMLResponse(body, status_code=status)

    @app.get("/", include_in_schema=False)
    @app.get("/models", include_in_schema=False)
    def _home(request: Request, user: Reader) -> Response:
        return RedirectResponse(f"{_root(request)}/models/", status_code=307)

    @app.get("/models/", response_class=HTMLResponse)
    def models_index(request: Request, user: Reader) -> str:
        store = registry()
        root = _root(request)
        body = (
            pages.verdict(store.verify_audit())
            + pages.models_table(root, store.list_models())
            + "<h2>Pending approvals</h2>"
            + pages.pending_table(root, _airflow_base(root), store.pending_approvals())
        )
        return pages.page("Models", body, root=root)

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model_page(request: Request, name: str, user: Reader) -> str:
        return _model_page(request, registry(), name)

    @app.get("/models/{name}/versions/{version}/report", response_class=HTMLResponse)
    def version_report(name: str, version: int, user: Reader) -> str:
        from airflow_bridge.artifacts import read_verified
        from airflow_bridge.report.storage import stored_report

        chosen = registry().get_version(name, version)
        stored = stored_report(chosen.validation, f"{name} v{version}")
        if stored is None:
            raise NotFoundError(f"{name} v{version} has no model report (it was registered without one)")
        return read_verified(stored.html).decode("utf-8")

    @app.get("/audit", response_class=HTMLResponse)
    def audit_trail(request: Request, user: Reader) -> str:
        store = registry()
        body = pages.verdict(store.verify_audit()) + pages.audit_table(store.audit_events())
        return pages.page("Audit trail", body, root=_root(request))

    @app.post("/models/{name}/promote", response_class=HTMLResponse)
    def promote(
        request: Request,
        name: str,
        *,
        user: Writer,
        version: Annotated[int, Form()],
        alias: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        from airflow_bridge.actions.deployment import promote as promote_action

        store = registry()
        actor = user.get_name()
        why = reason or f"promoted by {actor} in the Models page"
        return _move(
            request,
            store,
            name,
            act=lambda: promote_action(
                store, model=name, version=version, alias=alias, actor=actor, reason=why, team_only=True
            ),
        )

    @app.post("/models/{name}/rollback", response_class=HTMLResponse)
    def rollback(
        request: Request,
        name: str,
        user: Writer,
        alias: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        from airflow_bridge.actions.deployment import rollback as rollback_action

        store = registry()
        actor = user.get_name()
        why = reason or f"rolled back by {actor} in the Models page"
        return _move(
            request,
            store,
            name,
            act=lambda: rollback_action(store, model=name, alias=alias, actor=actor, reason=why, team_only=True),
        )

    return app


def _move(request: Request, store: ModelRegistry, name: str, *, act: Callable[[], DeploymentResult]) -> Response:
    """Run a policy-checked move; show the model page with the outcome (the refusal message when refused)."""
    _same_origin(request)
    try:
        result = act()
    except PolicyViolationError as exc:
        return HTMLResponse(_model_page(request, store, name, pages.message(f"Refused: {exc}", ok=False)), 403)
    except NotFoundError as exc:
        return HTMLResponse(_model_page(request, store, name, pages.message(f"Refused: {exc}", ok=False)), 404)
    was = f"v{result.previous_version}" if result.previous_version else "unset"
    action = result.action.replace("_", " ").capitalize()
    done = f"{action}: '{result.alias}' of {name} now serves v{result.version} (was {was})."
    return HTMLResponse(_model_page(request, store, name, pages.message(done, ok=True)))


def _model_page(request: Request, store: ModelRegistry, name: str, notice: str = "") -> str:
    from airflow_bridge.registry.events import ALIAS_MOVES

    root = _root(request)
    record = store.get_model(name)
    versions = store.list_versions(name)
    events = store.audit_events(model=name)
    moves = [e for e in events if e.action in ALIAS_MOVES and e.alias]
    card = record.card
    about = f"<p>{pages.escape(card.description)}</p>" if card.description else ""
    body = (
        notice
        + about
        + f"<p>Owner {pages.escape(card.owner or '—')}, team {pages.escape(card.team or '—')}.</p>"
        + "<h2>Versions</h2>"
        + pages.versions_table(root, name, versions)
        + "<h2>Aliases</h2><p>"
        + (pages.escape(", ".join(f"{a} → v{v}" for a, v in sorted(record.aliases.items()))) or "none")
        + "</p>"
        + (pages.move_forms(root, name, record, versions) if versions else "")
        + pages.alias_moves_table(moves)
        + "<h2>Pending approvals</h2>"
        + pages.pending_table(root, _airflow_base(root), store.pending_approvals(name))
        + "<h2>Audit trail</h2>"
        + pages.verdict(store.verify_audit())
        + pages.audit_table(events)
    )
    return pages.page(f"Model {name}", body, root=root)


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form post (the login cookie would otherwise authorize it)."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise HTTPException(403, f"cross-origin request from {origin} refused")


def _root(request: Request) -> str:
    """Where this app is mounted (``/airflow-bridge`` in the API server, '' in a bare test client)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _airflow_base(root: str) -> str:
    return root.removesuffix(PLUGIN_PREFIX)
