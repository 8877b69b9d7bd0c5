"""The Models JSON API: the changes the CLI makes on a shared registry, as the user Airflow authenticated.

Mounted with the Models page under ``/airflow-bridge/api``. The caller presents an Airflow token (what
``airflow-bridge login`` stores); the auth manager says who they are, ``plugin.auth.can_change`` what
Airflow lets them change, and the actions (``decide``, ``promote``, ``rollback``, ``transfer``) apply the
team policy with that user as the actor. Every request is audited with principal ``airflow:<user>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from airflow_bridge.plugin import auth

if TYPE_CHECKING:
    from airflow_bridge.actions.moves import MoveRequest
    from airflow_bridge.registry.store import ModelRegistry

REASON_MAX = 2000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Decision(_Body):
    alias: str = "production"
    comment: Annotated[str, Field(max_length=20_000)] = ""
    """Checked against ``COMMENT_MAX_CHARS`` by the action, so the API and the CLI say the same thing."""


class Rollback(_Body):
    alias: str = "production"
    target: str = "local"
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    """The target's own settings (``serving`` for ``kserve``); the gate checks them."""
    serving: str | None = None
    """Older clients' ``serving``: the same as ``settings.serving``."""
    reason: Annotated[str, Field(max_length=REASON_MAX)] = ""

    def request(self, model: str, actor: str, *, action: str, **more: Any) -> MoveRequest:
        """The move this body asks for, as every door asks for one."""
        from airflow_bridge.actions.moves import MoveRequest

        legacy = {k: v for k, v in self.legacy_settings().items() if v is not None}
        verb = "promoted" if action == "promoted" else "rolled back"
        return MoveRequest(
            model=model,
            alias=self.alias,
            action=action,
            target=self.target,
            settings={**self.settings, **legacy},
            reason=self.reason or f"{verb} by {actor} through the airflow-bridge API",
            **more,
        )

    def legacy_settings(self) -> dict[str, Any]:
        return {"serving": self.serving}


class Promotion(Rollback):
    version: int
    expect: int | None = None
    canary: Annotated[int | None, Field(ge=1, le=99)] = None
    """Older clients' ``canary``: the same as ``settings.canary_traffic_percent``."""

    def legacy_settings(self) -> dict[str, Any]:
        return {"serving": self.serving, "canary_traffic_percent": self.canary}


class Transfer(_Body):
    team: str
    policy: str
    """The new team's policy file, relative to the dags folder of this Airflow (``ecology/_policy.yaml``)."""
    reason: Annotated[str, Field(max_length=REASON_MAX)]


def router(registry: Any, after_move: Any) -> APIRouter:
    """The API routes; ``registry()`` opens the registry, ``after_move(result)`` emits the alias's asset event."""
    api = APIRouter(prefix="/api")

    def acting(user: Any, model: str, what: str) -> tuple[ModelRegistry, str]:
        store = registry()
        auth.can_change(user, store, model, what)
        name = str(user.get_name())
        return store.acting_as(f"airflow:{name}"), name

    @api.get("/whoami")
    def whoami(user: GetUserDep) -> dict[str, Any]:
        """Who Airflow says the caller is (``airflow-bridge login`` checks its token with this)."""
        auth.can_read(user)
        return {"user": user.get_name(), "id": str(user.get_id())}

    @api.post("/models/{name}/versions/{version}/approve")
    def approve(name: str, version: int, body: Decision, request: Request, user: GetUserDep) -> dict[str, Any]:
        return _decide(name, version, body, user, approve=True)

    @api.post("/models/{name}/versions/{version}/reject")
    def reject(name: str, version: int, body: Decision, request: Request, user: GetUserDep) -> dict[str, Any]:
        return _decide(name, version, body, user, approve=False)

    def _decide(name: str, version: int, body: Decision, user: Any, *, approve: bool) -> dict[str, Any]:
        from airflow_bridge.actions.approval import decide

        store, actor = acting(user, name, "approve" if approve else "reject")
        decision = decide(
            store,
            model=name,
            version=version,
            alias=body.alias,
            responder=actor,
            approve=approve,
            via="airflow-bridge API",
            comment=body.comment,
        )
        return decision.to_xcom()

    @api.post("/models/{name}/promote")
    def promote(name: str, body: Promotion, user: GetUserDep) -> dict[str, Any]:
        from airflow_bridge.actions.deployment import move

        store, actor = acting(user, name, f"promote {name}")
        request = body.request(name, actor, action="promoted", version=body.version, expected=body.expect)
        result = move(store, request, actor=actor)
        after_move(result)
        return result.to_xcom()

    @api.post("/models/{name}/rollback")
    def rollback(name: str, body: Rollback, user: GetUserDep) -> dict[str, Any]:
        from airflow_bridge.actions.deployment import move

        store, actor = acting(user, name, f"roll back {name}")
        result = move(store, body.request(name, actor, action="rolled_back"), actor=actor)
        after_move(result)
        return result.to_xcom()

    @api.post("/models/{name}/transfer")
    def transfer(name: str, body: Transfer, user: GetUserDep) -> dict[str, Any]:
        from airflow_bridge.actions.ownership import transfer as transfer_action
        from airflow_bridge.governance.identity import dags_folder

        store, actor = acting(user, name, f"transfer {name}")
        return transfer_action(
            store,
            model=name,
            team=body.team,
            policy_file=body.policy,
            actor=actor,
            reason=body.reason,
            root=dags_folder(),
        ).to_xcom()

    return api
