"""Deploy, promote and rollback: the only doors to an alias, each policy-checked and audited.

A move onto a protected alias needs a recorded approval of the target version for that alias by an
allowed approver (never an author) under the policy that governs the model. A rollback is a move like
any other: it goes back only to a version that was approved for that alias. Turning enforcement off
(``enforce_policy=False``) is possible only where the policy allows it, and is itself audited.

Each action runs in two halves around its target (:mod:`airflow_bridge.actions.targets`): ``begin_*``
passes the gate and has the target serve the version (``kserve`` applies an InferenceService; ``local``
has nothing to do); ``settle`` moves the alias once the target reports ready, or restores the target
and audits the refusal. ``deploy``/``promote``/``rollback`` run both halves and wait in between; the
operators defer to the target's trigger instead and settle in ``execute_complete``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, NoReturn, ParamSpec

from airflow_bridge.actions.gate import Gate, move_name
from airflow_bridge.actions.names import LOCAL_TARGET, local_endpoint
from airflow_bridge.actions.results import ApprovalDecision, DeploymentResult
from airflow_bridge.actions.targets import TARGETS, PendingMove, target_for
from airflow_bridge.exceptions import (
    AuditMismatchError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    PolicyViolationError,
)
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.targets import Outcome

if TYPE_CHECKING:
    from airflow_bridge.registry.records import RunRef
    from airflow_bridge.registry.store import ModelRegistry

__all__ = ["TARGETS", "begin_deploy", "begin_rollback", "deploy", "promote", "rollback", "settle"]
P = ParamSpec("P")
_CURRENT: Any = object()
"""``expected`` default: compare-and-set against what the alias points at when the action starts."""


def _to_the_end(
    begin: Callable[Concatenate[ModelRegistry, P], PendingMove], doc: str
) -> Callable[Concatenate[ModelRegistry, P], DeploymentResult]:
    """``begin`` and ``settle`` with the wait for the target in between, for callers that can block."""

    def both_halves(registry: ModelRegistry, /, *args: P.args, **kwargs: P.kwargs) -> DeploymentResult:
        pending = begin(registry, *args, **kwargs)
        return settle(registry, pending, target_for(pending.target).wait(pending.rollout))

    both_halves.__doc__ = doc
    return both_halves


def begin_deploy(
    registry: ModelRegistry,
    *,
    model: str,
    version: int,
    alias: str,
    actor: str,
    target: str = LOCAL_TARGET,
    serving: str | None = None,
    canary_traffic_percent: int | None = None,
    run: RunRef | None = None,
    reason: str = "",
    expected: int | None = _CURRENT,
    enforce_policy: bool = True,
    action: AuditAction = AuditAction.DEPLOYED,
    team_only: bool = False,
) -> PendingMove:
    """Check the move (approval, checksum) and have ``target`` serve ``version``; the alias has not moved yet.

    ``serving`` and ``canary_traffic_percent`` are the kserve target's settings. The caller waits for the
    target (``deploy`` blocks; ``DeployModelOperator`` defers to the target's trigger), then ``settle``s.
    ``team_only``: only the model's team may make the move (the Models page's rule).
    """
    record = registry.get_model(model)
    chosen = registry.get_version(model, version)
    live = registry.alias_version(model, alias)
    return Gate(registry, record, alias=alias, actor=actor, run=run, action=action).admit(
        chosen,
        live,
        target=target,
        enforce=enforce_policy,
        reason=reason,
        expected=(live.version if live else None) if expected is _CURRENT else expected,
        serving=serving,
        canary_traffic_percent=canary_traffic_percent,
        team_only=team_only,
    )


def begin_rollback(
    registry: ModelRegistry,
    *,
    model: str,
    alias: str,
    actor: str,
    target: str = LOCAL_TARGET,
    serving: str | None = None,
    run: RunRef | None = None,
    reason: str = "",
    enforce_policy: bool = True,
    team_only: bool = False,
) -> PendingMove:
    """Check a rollback of ``alias`` to its previous version and have ``target`` serve that version (no canary)."""
    record = registry.get_model(model)
    current = registry.alias_version(model, alias)
    previous = registry.previous_alias_version(model, alias)
    if current is None or previous is None:
        raise NotFoundError(f"alias '{alias}' of '{model}' has no earlier version to roll back to")
    chosen = registry.get_version(model, previous)
    return Gate(registry, record, alias=alias, actor=actor, run=run, action=AuditAction.ROLLED_BACK).admit(
        chosen,
        current,
        target=target,
        enforce=enforce_policy,
        reason=reason,
        expected=current.version,
        serving=serving,
        team_only=team_only,
    )


deploy = _to_the_end(
    begin_deploy,
    "Point ``alias`` at ``version`` after the policy checks, once the target serves it (see ``begin_deploy``).",
)
promote = functools.partial(deploy, action=AuditAction.PROMOTED)
promote.__doc__ = "``deploy`` recorded as a promotion (a person moving an alias, or sending a canary all traffic)."
rollback = _to_the_end(
    begin_rollback,
    "Move ``alias`` back to the version it pointed at before (rollbacks undo moves), policy-checked.",
)


def settle(registry: ModelRegistry, pending: PendingMove, outcome: Outcome) -> DeploymentResult:
    """Land a move once its target answered: ready → the alias moves (compare-and-set) and is recorded;
    not ready → the target is restored, the refusal audited, and the alias stays where it was."""
    from airflow_bridge.registry.records import RunRef

    target = target_for(pending.target)
    if not outcome.ok:
        _abandon(registry, pending, target, f"the {pending.target} target did not become ready: {outcome.reason}")
    run = RunRef(*pending.run) if pending.run else None
    endpoint = outcome.endpoint or local_endpoint(pending.model, pending.alias)
    try:
        live = registry.alias_version(pending.model, pending.alias)
        if pending.action == AuditAction.ROLLED_BACK:
            if (live.version if live else None) != pending.expected:
                raise ConflictError(
                    f"alias '{pending.alias}' of '{pending.model}' moved to "
                    f"{'v' + str(live.version) if live else 'no version'} during the rollback; reload and decide again"
                )
            moved = registry.rollback(
                pending.model,
                pending.alias,
                actor=pending.actor,
                target=pending.target,
                endpoint=endpoint,
                run=run,
                reason=pending.reason,
                to_version=pending.version,
                override=pending.policy_override,
            )
        else:
            moved = registry.deploy(
                pending.model,
                pending.version,
                alias=pending.alias,
                target=pending.target,
                endpoint=endpoint,
                expected=pending.expected,
                actor=pending.actor,
                reason=pending.reason,
                run=run,
                action=AuditAction(pending.action),
                override=pending.policy_override,
                rollout_note=_traffic(pending) if pending.target != LOCAL_TARGET else None,
            )
    except ConflictError:
        target.restore(pending.rollout)
        raise
    except (PolicyViolationError, AuditMismatchError) as exc:  # the registry's own check, under its lock
        _abandon(registry, pending, target, str(exc), error=exc)
    from airflow_bridge.actions.anchoring import anchor_after_move

    anchor_after_move(registry)
    if pending.action != AuditAction.ROLLED_BACK:
        from airflow_bridge.actions.approval import close_superseded

        close_superseded(
            registry, model=pending.model, alias=pending.alias, newer=pending.version, actor=pending.actor, run=run
        )
    approval = ApprovalDecision.from_xcom(pending.approval) if pending.approval else None
    return DeploymentResult(
        model=moved.model,
        version=moved.version,
        alias=moved.alias,
        target=moved.target,
        endpoint=endpoint,
        previous_version=pending.previous_version,
        action=str(moved.action),
        actor=moved.actor,
        approval=approval,
        policy_override=pending.policy_override,
    )


def _traffic(pending: PendingMove) -> dict[str, Any]:
    """What a move changed on its target; recorded even when the alias already served the version
    (a canary promoted to all traffic)."""
    return {"target": pending.target, "canary_traffic_percent": pending.rollout.get("canary_traffic_percent") or 100}


def _abandon(
    registry: ModelRegistry, pending: PendingMove, target: Any, why: str, error: Exception | None = None
) -> NoReturn:
    """Restore the target, audit the refusal, and fail (``error``'s type, else ``DeploymentError``):
    the alias never moved."""
    from airflow_bridge.registry.records import RunRef

    try:
        target.restore(pending.rollout)
    except Exception as exc:  # the refusal must still be recorded; say the restore failed too
        why = f"{why}; restoring the previous state failed too: {type(exc).__name__}: {exc}"
    registry.record_event(
        AuditAction.MOVE_REFUSED,
        actor=pending.actor,
        model=pending.model,
        version=pending.version,
        alias=pending.alias,
        run=RunRef(*pending.run) if pending.run else None,
        reason=why,
        after={"action": pending.action, "refused": True, "target": pending.target},
    )
    message = (
        f"{move_name(pending.action)} of {pending.model} v{pending.version} to '{pending.alias}' "
        f"refused: {why}; the alias still points at "
        f"{'v' + str(pending.expected) if pending.expected is not None else 'no version'}"
    )
    raise (type(error) if error is not None else DeploymentError)(message) from None
