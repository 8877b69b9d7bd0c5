"""The Models page: a FastAPI app the Airflow API server mounts under ``/airflow-bridge``.

Every route needs a user logged in to Airflow (its auth manager's JWT, as a cookie or bearer token)
who may see the ``Models`` custom view; a change also needs Airflow's permission to change the model's
DAG (``plugin.auth``). Writes go only through the policy-checked actions, with the logged-in user as the
actor (principal ``airflow:<user>``); every alias move emits the alias's Airflow asset event, as the
``deploy`` task does. The same changes are offered as JSON under ``/api`` (``plugin.api``) for the CLI.
The HTML is built by ``plugin.views`` (paged registry reads), ``plugin.tables`` (the versions table),
``plugin.charts``, ``plugin.confirm`` (the confirmation before a move) and ``plugin.theme`` (Airflow's look).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from airflow_bridge.exceptions import (
    BridgeError,
    NotFoundError,
    PolicyViolationError,
    RegistryUnavailableError,
    RequestError,
)
from airflow_bridge.operators.links import PLUGIN_PREFIX
from airflow_bridge.plugin import api, auth, confirm, pages, tables, views

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.actions.results import DeploymentResult
    from airflow_bridge.registry.store import ModelRegistry


def _reader(user: GetUserDep) -> BaseUser:
    """The user of Airflow's ``get_user`` (401 without a valid token), allowed to see models."""
    auth.can_read(user)
    return user


def _writer(name: str, user: GetUserDep) -> BaseUser:
    """The user, allowed by Airflow to change model ``name``'s DAG (``plugin.auth.can_change``)."""
    auth.can_change(user, registry(), name, f"change model '{name}'")
    return user


Reader = Annotated[Any, Depends(_reader)]
Writer = Annotated[Any, Depends(_writer)]


def registry() -> ModelRegistry:
    """The registry Airflow tasks use (connection ``model_registry_default``, config, environment)."""
    from airflow_bridge.resolution import open_registry

    return open_registry(in_airflow=True)


def create_app() -> FastAPI:
    """The Models app (routes below); ``airflow_bridge.plugin`` builds it on its first request."""
    app = FastAPI(title="airflow-bridge models", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        body = pages.page("Models", pages.message(str(exc.detail), ok=False), root=_root(request))
        return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(BridgeError)
    async def _bridge_error(request: Request, exc: BridgeError) -> Response:
        status = _status(exc)
        if _is_api(request):
            return JSONResponse({"detail": f"{type(exc).__name__}: {exc}", "error": type(exc).__name__}, status)
        body = pages.page("Models", pages.message(f"{type(exc).__name__}: {exc}", ok=False), root=_root(request))
        return HTMLResponse(body, status_code=status)

    app.include_router(api.router(registry, emit_alias_event))
    app.middleware("http")(_same_origin_writes)

    @app.get("/", include_in_schema=False)
    @app.get("/models", include_in_schema=False)
    def _home(request: Request, user: Reader) -> Response:
        return RedirectResponse(f"{_root(request)}/models/", status_code=307)

    @app.get("/models/", response_class=HTMLResponse)
    def models_index(
        request: Request,
        user: Reader,
        *,
        q: str = "",
        team: str = "",
        live: str = "",
        sort: str = "name",
        desc: bool = False,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=tables.MAX_PER_PAGE)] = tables.PER_PAGE,
    ) -> str:
        asked = views.IndexQuery(q.strip(), team, live, sort, desc, page, per_page)
        root = _root(request)
        return views.index_page(registry(), root, _airflow_base(root), asked)

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model_page(
        request: Request,
        name: str,
        user: Reader,
        *,
        moved: str | None = None,
        sort: str = "version",
        desc: bool = True,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=tables.MAX_PER_PAGE)] = tables.PER_PAGE,
        around: Annotated[int | None, Query(ge=1)] = None,
    ) -> str:
        store = registry()
        notice = _moved_notice(store, name, moved) if moved else ""
        return _model_page(request, store, name, notice, views.VersionsQuery(page, per_page, sort, desc, around))

    @app.get("/models/{name}/compare", response_class=HTMLResponse)
    def compare(request: Request, name: str, user: Reader, v: Annotated[list[str], Query()]) -> str:
        """Versions side by side: the comparison ``airflow-bridge models compare`` prints."""
        from urllib.parse import quote

        from airflow_bridge.actions.comparison import compare_versions

        found = compare_versions(registry(), name, v)
        root = _root(request)
        back = f'<p><a href="{root}/models/{quote(name)}">Back to {pages.escape(name)}</a></p>'
        body = pages.comparison(found) + back
        crumbs = views.model_crumbs(root, name)
        return pages.page(f"Compare {name}: " + " · ".join(found.headers), body, root=root, crumbs=crumbs)

    @app.get("/models/{name}/versions/{version}/report", response_class=HTMLResponse)
    def version_report(request: Request, name: str, version: int, user: Reader) -> str:
        from urllib.parse import quote

        from airflow_bridge.artifacts import read_verified
        from airflow_bridge.report.fate import current_page
        from airflow_bridge.report.storage import stored_report

        store = registry()
        chosen = store.get_version(name, version)
        stored = stored_report(chosen.validation, f"{name} v{version}")
        if stored is None:
            raise NotFoundError(f"{name} v{version} has no model report (it was registered without one)")
        compare_url = f"{_root(request)}/models/{quote(name)}/compare"
        return current_page(store, name, version, read_verified(stored.html), compare_url).decode("utf-8")

    @app.get("/models/{name}/candidates/{candidate_id}/report", response_class=HTMLResponse)
    def candidate_report(name: str, candidate_id: str, user: Reader) -> str:
        """The report of a candidate that never became a version, as validate stored it (checksum verified)."""
        from airflow_bridge.artifacts import read_verified
        from airflow_bridge.report.storage import stored_report

        chosen = registry().get_candidate(name, candidate_id)
        stored = stored_report(chosen.validation, f"{name} candidate {candidate_id}")
        if stored is None:
            raise NotFoundError(f"{name} candidate {candidate_id} has no model report")
        return read_verified(stored.html).decode("utf-8")

    @app.get("/models/{name}/versions/{version}/artifact")
    def version_artifact(name: str, version: int, user: Reader) -> Response:
        """The version's model artifact, sent only after its bytes match the registered sha256 (else 409)."""
        from airflow_bridge.artifacts import read_verified

        chosen = registry().get_version(name, version)
        data = read_verified(chosen.artifact)
        suffix = chosen.artifact.uri.rsplit("/", 1)[-1].rpartition(".")[2] or "bin"
        filename = f"{name}-v{version}.{suffix}"
        headers = {
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Artifact-Sha256": chosen.artifact.sha256,
            "Cache-Control": "private, no-store",
        }
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.get("/models/{name}/versions/{version}/lineage", response_class=HTMLResponse)
    def version_lineage(request: Request, name: str, version: int, user: Reader) -> str:
        return views.lineage_page(registry(), _root(request), name, version)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_trail(
        request: Request,
        user: Reader,
        *,
        model: str | None = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=tables.MAX_PER_PAGE)] = tables.PER_PAGE,
        verify: bool = False,
    ) -> str:
        return views.audit_page(registry(), _root(request), model or None, page, per_page, verify=verify)

    @app.get("/models/{name}/promote", response_class=HTMLResponse)
    def confirm_promote(
        request: Request, name: str, user: Writer, version: Annotated[int, Query(ge=1)], alias: str = "production"
    ) -> str:
        """The confirmation page of a promotion (nothing changes until it is posted)."""
        return confirm.confirm_page(_root(request), confirm.plan_promote(registry(), name, version, alias.strip()))

    @app.get("/models/{name}/rollback", response_class=HTMLResponse)
    def confirm_rollback(request: Request, name: str, user: Writer, alias: str = "production") -> str:
        """The confirmation page of a rollback: the version the alias serves and the one it goes back to."""
        return confirm.confirm_page(_root(request), confirm.plan_rollback(registry(), name, alias.strip()))

    @app.post("/models/{name}/promote", response_class=HTMLResponse)
    def promote(
        request: Request,
        name: str,
        *,
        user: Writer,
        version: Annotated[int, Form()],
        alias: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
        expect: Annotated[str, Form()] = "",
    ) -> Response:
        from airflow_bridge.actions.gate import serving_target
        from airflow_bridge.actions.moves import MoveRequest
        from airflow_bridge.serving.target import LOCAL_TARGET

        actor = user.get_name()
        why = reason or f"promoted by {actor} in the Models page"
        store = registry().acting_as(f"airflow:{actor}")
        target = serving_target(store, name, alias) or LOCAL_TARGET
        expected = int(expect) if expect.strip().isdigit() else None
        asked = MoveRequest(
            name, alias, version, action="promoted", target=target, reason=why, team_only=True, expected=expected
        )
        return _move(request, store, asked, actor)

    @app.post("/models/{name}/rollback", response_class=HTMLResponse)
    def rollback(
        request: Request,
        name: str,
        user: Writer,
        alias: Annotated[str, Form()],
        *,
        reason: Annotated[str, Form()] = "",
        expect: Annotated[str, Form()] = "",
        to: Annotated[str, Form()] = "",
    ) -> Response:
        from airflow_bridge.actions.gate import serving_target
        from airflow_bridge.actions.moves import MoveRequest
        from airflow_bridge.serving.target import LOCAL_TARGET

        actor = user.get_name()
        why = reason or f"rolled back by {actor} in the Models page"
        store = registry().acting_as(f"airflow:{actor}")
        if expect.strip().isdigit() and to.strip().isdigit():  # posted from the confirmation page
            seen = confirm.PlannedMove(name, alias, "rollback", int(to), int(expect))
            try:
                confirm.check_unchanged(store, seen)
            except BridgeError as exc:
                page = _model_page(request, store, name, pages.message(f"Refused: {exc}", ok=False))
                return HTMLResponse(page, _status(exc))
        target = serving_target(store, name, alias) or LOCAL_TARGET
        asked = MoveRequest(name, alias, action="rolled_back", target=target, reason=why, team_only=True)
        return _move(request, store, asked, actor)

    return app


def _move(request: Request, store: ModelRegistry, asked: MoveRequest, actor: str) -> Response:
    """Run a policy-checked move; show the model page with the outcome (the refusal message when refused).

    A move answers with a redirect to the model page (303, the outcome in the query), so reloading the page
    never submits the form again.
    """
    from urllib.parse import quote

    from airflow_bridge.actions.deployment import move

    name = asked.model
    try:
        result = move(store, asked, actor=actor)
    except BridgeError as exc:
        return HTMLResponse(_model_page(request, store, name, pages.message(f"Refused: {exc}", ok=False)), _status(exc))
    emit_alias_event(result)
    return RedirectResponse(f"{_root(request)}/models/{quote(name)}?moved={quote(result.alias)}", status_code=303)


def _moved_notice(store: ModelRegistry, name: str, alias: str) -> str:
    """What the newest move of ``alias`` did, read from the audit trail (after a move's redirect)."""
    from airflow_bridge.registry import queries
    from airflow_bridge.registry.events import ALIAS_MOVES

    with store.reading(f"read the moves of '{name}'") as conn:
        events = queries.fate_events(conn, name)
    moves = [e for e in events if e.action in ALIAS_MOVES and e.alias == alias]
    if not moves:
        return ""
    last = moves[-1]
    was = (last.before or {}).get("version")
    action = last.action.replace("_", " ").capitalize()
    text = (
        f"{action}: '{alias}' of {name} now serves v{last.version} (was {f'v{was}' if was else 'unset'}), "
        f"by {last.who} at {last.created_at:%Y-%m-%d %H:%M:%S} UTC."
    )
    return pages.message(text, ok=True)


def emit_alias_event(result: DeploymentResult) -> None:
    """The Airflow asset event of the alias a page or API move changed, as the ``deploy`` task emits it,
    so DAGs scheduled on the alias (``score_breast_cancer``) run with the version it serves now."""
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_bridge.operators.links import alias_asset

    uri = alias_asset(result.model, result.alias).uri
    extra = {
        "model": result.model,
        "version": result.version,
        "alias": result.alias,
        "previous_version": result.previous_version,
        "endpoint": result.endpoint,
        "actor": result.actor,
        "action": result.action,
    }
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri).limit(1))
        if asset is not None:  # no DAG refers to the alias: nothing to schedule, nothing to record
            asset_manager.register_asset_change(asset=asset, extra=extra, source_is_api=True, session=session)


def _status(exc: BridgeError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, RegistryUnavailableError):
        return 503
    if isinstance(exc, PolicyViolationError):
        return 403
    if isinstance(exc, RequestError):
        return 422
    return 409


def _is_api(request: Request) -> bool:
    return str(request.url.path).removeprefix(_root(request)).startswith("/api/")


def _model_page(
    request: Request, store: ModelRegistry, name: str, notice: str = "", asked: views.VersionsQuery | None = None
) -> str:
    root = _root(request)
    return views.model_page(store, root, _airflow_base(root), name, asked=asked or views.VersionsQuery(), notice=notice)


async def _same_origin_writes(request: Request, call_next: Any) -> Response:
    """Refuse a cross-site POST (the login cookie would otherwise authorize it), on every route."""
    origin = request.headers.get("origin")
    if request.method != "GET" and origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        detail = f"cross-origin request from {origin} refused"
        if _is_api(request):
            return JSONResponse({"detail": detail}, status_code=403)
        return HTMLResponse(pages.page("Models", pages.message(detail, ok=False), root=_root(request)), 403)
    response: Response = await call_next(request)
    return response


def _root(request: Request) -> str:
    """Where this app is mounted (``/airflow-bridge`` in the API server, '' in a bare test client)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _airflow_base(root: str) -> str:
    return root.removesuffix(PLUGIN_PREFIX)
