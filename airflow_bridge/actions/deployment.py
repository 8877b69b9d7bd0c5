"""Deploy, promote and rollback: the only doors to an alias, each policy-checked and audited.

A move onto a protected alias needs a recorded approval of the target version for that alias by an
allowed approver (never an author) under the policy that governs the model. A rollback is a move like
any other: it goes back only to a version that was approved for that alias. Turning enforcement off
(``enforce_policy=False``) is possible only where the policy allows it, and is itself audited.

Every door asks for a move with one :class:`~airflow_bridge.actions.moves.MoveRequest` (deploy, promote
or rollback) and it runs in two halves around its target (:mod:`airflow_bridge.targets`):
``begin_move`` passes the gate and has the target serve the version (``kserve`` applies an
InferenceService; ``local`` has nothing to do); ``settle`` moves the alias once the target reports
ready, or restores the target and audits the refusal. ``move`` runs both halves and waits in between;
the operators defer to the target's trigger instead and settle in ``execute_complete``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow_bridge.actions.gate import Gate, move_name
from airflow_bridge.actions.moves import MoveRequest, PendingMove
from airflow_bridge.actions.results import ApprovalDecision, DeploymentResult
from airflow_bridge.exceptions import (
    AuditMismatchError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    PolicyViolationError,
)
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.serving.target import LOCAL_TARGET, local_endpoint
from airflow_bridge.targets import Outcome, target_for

if TYPE_CHECKING:
    from airflow_bridge.registry.records import RunRef
    from airflow_bridge.registry.store import ModelRegistry

__all__ = ["MoveRequest", "begin_move", "move", "settle"]


def begin_move(registry: ModelRegistry, request: MoveRequest, *, actor: str, run: RunRef | None = None) -> PendingMove:
    """Check the move (team, target, approval, checksum) and have its target serve the version; the alias
    has not moved yet. The caller waits for the target (``move`` blocks; the operators defer to the
    target's trigger), then ``settle``s. A rollback goes to the version the alias pointed at before."""
    model, alias = request.model, request.alias
    record = registry.get_model(model)
    live = registry.alias_version(model, alias)
    gate = Gate(registry, record, alias=alias, actor=actor, run=run, action=request.action)
    if request.action == AuditAction.ROLLED_BACK:
        previous = registry.previous_alias_version(model, alias)
        if live is None or previous is None:
            raise NotFoundError(f"alias '{alias}' of '{model}' has no earlier version to roll back to")
        return gate.admit(registry.get_version(model, previous), live, request, expected=live.version)
    assert request.version is not None  # MoveRequest refuses a deploy without one
    chosen = registry.get_version(model, request.version)
    expected = request.expected if request.expected is not None else (live.version if live else None)
    return gate.admit(chosen, live, request, expected=expected)


def move(registry: ModelRegistry, request: MoveRequest, *, actor: str, run: RunRef | None = None) -> DeploymentResult:
    """``begin_move`` and ``settle`` with the wait for the target in between, for doors that can block."""
    pending = begin_move(registry, request, actor=actor, run=run)
    return settle(registry, pending, target_for(pending.target).wait(pending.rollout))


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
