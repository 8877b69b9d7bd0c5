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

from typing import TYPE_CHECKING, Any, NoReturn

from airflow_bridge.actions.names import KSERVE_TARGET, LOCAL_TARGET, local_endpoint
from airflow_bridge.actions.results import ApprovalDecision, DeploymentResult
from airflow_bridge.actions.targets import TARGETS, Move, Outcome, PendingMove, Target, target_for
from airflow_bridge.exceptions import (
    ChecksumMismatchError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    PolicyViolationError,
)
from airflow_bridge.registry.events import AuditAction

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import ModelRecord, ModelVersion, RunRef
    from airflow_bridge.registry.store import ModelRegistry

__all__ = ["TARGETS", "begin_deploy", "begin_rollback", "deploy", "promote", "rollback", "settle"]
_CURRENT: Any = object()
"""``expected`` default: compare-and-set against what the alias points at when the action starts."""


def deploy(registry: ModelRegistry, **kwargs: Any) -> DeploymentResult:
    """Point ``alias`` at ``version`` after the policy checks, once the target serves it (see ``begin_deploy``)."""
    pending = begin_deploy(registry, **kwargs)
    return settle(registry, pending, target_for(pending.target).wait(pending.rollout))


def promote(registry: ModelRegistry, **kwargs: Any) -> DeploymentResult:
    """``deploy`` recorded as a promotion (a person moving an alias, or sending a canary all traffic)."""
    return deploy(registry, action=AuditAction.PROMOTED, **kwargs)


def rollback(registry: ModelRegistry, **kwargs: Any) -> DeploymentResult:
    """Move ``alias`` back to the version it pointed at before (rollbacks undo moves), policy-checked."""
    pending = begin_rollback(registry, **kwargs)
    return settle(registry, pending, target_for(pending.target).wait(pending.rollout))


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
    policy: GoverningPolicy | None = None,
    action: AuditAction = AuditAction.DEPLOYED,
) -> PendingMove:
    """Check the move (approval, checksum) and have ``target`` serve ``version``; the alias has not moved yet.

    ``serving`` and ``canary_traffic_percent`` are the kserve target's settings. The caller waits for the
    target (``deploy`` blocks; ``DeployModelOperator`` defers to the target's trigger), then ``settle``s.
    """
    chosen_target = target_for(target)
    record = registry.get_model(model)
    chosen = registry.get_version(model, version)
    live = registry.alias_version(model, alias)
    gate = _Gate(registry, record, alias=alias, actor=actor, run=run, action=action)
    move, rollout, approval, override = gate.admit(
        chosen,
        live,
        serve=chosen_target,
        target=target,
        policy=policy,
        enforce=enforce_policy,
        reason=reason,
        serving=serving,
        canary_traffic_percent=canary_traffic_percent,
    )
    return _pending(
        move,
        action=action,
        actor=actor,
        reason=reason or f"{action.replace('_', ' ')} by {actor}",
        target=target,
        expected=(live.version if live else None) if expected is _CURRENT else expected,
        rollout=rollout,
        run=run,
        approval=approval,
        override=override,
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
    policy: GoverningPolicy | None = None,
) -> PendingMove:
    """Check a rollback of ``alias`` to its previous version and have ``target`` serve that version (no canary)."""
    chosen_target = target_for(target)
    record = registry.get_model(model)
    current = registry.alias_version(model, alias)
    previous = registry.previous_alias_version(model, alias)
    if current is None or previous is None:
        raise NotFoundError(f"alias '{alias}' of '{model}' has no earlier version to roll back to")
    chosen = registry.get_version(model, previous)
    gate = _Gate(registry, record, alias=alias, actor=actor, run=run, action=AuditAction.ROLLED_BACK)
    move, rollout, approval, override = gate.admit(
        chosen,
        current,
        serve=chosen_target,
        target=target,
        policy=policy,
        enforce=enforce_policy,
        reason=reason,
        serving=serving,
    )
    return _pending(
        move,
        action=AuditAction.ROLLED_BACK,
        actor=actor,
        reason=reason or f"rollback from v{current.version}",
        target=target,
        expected=current.version,
        rollout=rollout,
        run=run,
        approval=approval,
        override=override,
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
                pending.model, pending.alias, actor=pending.actor, target=pending.target, run=run, reason=pending.reason
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
            )
    except ConflictError:
        target.restore(pending.rollout)
        raise
    if pending.action != AuditAction.ROLLED_BACK:
        from airflow_bridge.actions.approval import close_superseded

        close_superseded(
            registry, model=pending.model, alias=pending.alias, newer=pending.version, actor=pending.actor, run=run
        )
    if pending.previous_version == pending.version and pending.target != LOCAL_TARGET:
        # the alias did not move (a canary promoted to all traffic): record what changed on the target
        registry.record_event(
            pending.action,
            actor=pending.actor,
            model=pending.model,
            version=pending.version,
            alias=pending.alias,
            run=run,
            reason=pending.reason,
            before={"version": pending.version},
            after={"version": pending.version, "target": pending.target, **_traffic(pending)},
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


def _pending(
    move: Move,
    *,
    action: str,
    actor: str,
    reason: str,
    target: str,
    expected: int | None,
    rollout: dict[str, Any],
    run: RunRef | None,
    approval: ApprovalDecision | None,
    override: bool,
) -> PendingMove:
    canary = rollout.get("canary_traffic_percent")
    if canary:
        reason = f"{reason} (canary: {canary}% of the traffic)"
    return PendingMove(
        model=move.record.name,
        version=move.version.version,
        alias=move.alias,
        action=str(action),
        actor=actor,
        reason=reason,
        target=target,
        expected=expected,
        previous_version=move.live.version if move.live else None,
        rollout=rollout,
        run=[run.dag_id, run.run_id, run.task_id] if run else None,
        approval=approval.to_xcom() if approval else None,
        policy_override=override,
    )


def _same_target(registry: ModelRegistry, gate: _Gate, version: ModelVersion, target: str) -> None:
    """An alias served by KServe moves only with target kserve: a local move would leave the service behind."""
    served = [d for d in registry.deployments(gate.record.name) if d.alias == gate.alias]
    last = served[-1].target if served else None
    if last == KSERVE_TARGET and target != KSERVE_TARGET:
        gate.refuse(
            version,
            f"'{gate.alias}' of {gate.record.name} is served by target '{last}' (its last deployment); moving it "
            f"with target '{target}' would leave the InferenceService serving the old version: use target "
            f"'{last}' with its serving tier (--target {last} --serving TIER)",
        )


def _traffic(pending: PendingMove) -> dict[str, Any]:
    return {"canary_traffic_percent": pending.rollout.get("canary_traffic_percent") or 100}


def _abandon(registry: ModelRegistry, pending: PendingMove, target: Any, why: str) -> NoReturn:
    """Restore the target, audit the refusal, and fail: the alias never moved."""
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
    raise DeploymentError(
        f"{pending.action.replace('_', ' ')} of {pending.model} v{pending.version} to '{pending.alias}' "
        f"refused: {why}; the alias still points at "
        f"{'v' + str(pending.expected) if pending.expected is not None else 'no version'}"
    )


class _Gate:
    """The checks every move passes before the alias changes; refusals are written to the audit trail."""

    def __init__(
        self, registry: ModelRegistry, record: ModelRecord, *, alias: str, actor: str, run: RunRef | None, action: str
    ) -> None:
        self.registry, self.record, self.alias, self.actor, self.run, self.action = (
            registry,
            record,
            alias,
            actor,
            run,
            action,
        )

    def admit(
        self,
        chosen: ModelVersion,
        live: ModelVersion | None,
        *,
        serve: Target,
        target: str,
        policy: GoverningPolicy | None,
        enforce: bool,
        reason: str,
        serving: str | None = None,
        canary_traffic_percent: int | None = None,
    ) -> tuple[Move, dict[str, Any], ApprovalDecision | None, bool]:
        """Every check of a move in order (policy, approval, checksum, target), then ``serve`` (the target's
        implementation) serves ``chosen``: nothing is applied before the gate passes.

        Returns the move, the target's rollout, the approval that allowed it and whether enforcement was off.
        """
        governing = policy or self.governing(chosen)
        approval, override = self.authorize(chosen, governing, enforce, reason)
        self.verify(chosen)
        _same_target(self.registry, self, chosen, target)
        move = Move(
            str(self.registry.url), self.record, chosen, live, self.alias, governing, serving, canary_traffic_percent
        )
        return move, serve.apply(self, move), approval, override

    def authorize(
        self, version: ModelVersion, policy: GoverningPolicy | None, enforce: bool, reason: str
    ) -> tuple[ApprovalDecision | None, bool]:
        """(the approval that allows the move, whether enforcement was turned off); raises when refused."""
        from airflow_bridge.actions.approval import last_answer
        from airflow_bridge.governance.enforcement import (
            approval_refusal,
            authors_of,
            no_policy_message,
        )

        governing = policy or self.governing(version)
        team = self.record.card.team
        if not governing.protects(team, self.alias):
            return None, False
        if not enforce:
            if governing.policy is not None and not governing.policy.allows_enforcement_opt_out(team):
                self.refuse(
                    version,
                    f"the team policy ({governing.source}) forbids turning enforcement off for '{self.alias}'",
                )
            self.registry.record_event(
                AuditAction.POLICY_OVERRIDE,
                actor=self.actor,
                model=self.record.name,
                version=version.version,
                alias=self.alias,
                run=self.run,
                reason=reason or f"{self.action} with enforce_policy=False",
                after={"policy": governing.source, "action": self.action},
            )
            return None, True
        if governing.policy is None:
            self.refuse(version, no_policy_message(self.record.name, self.alias))
        answer = last_answer(self.registry, self.record.name, version.version, self.alias)
        if answer is None or answer.action != AuditAction.APPROVAL_GRANTED:
            state = answer.action.removeprefix("approval_") if answer else "never approved"
            approvers = (
                governing.policy.approvers_for(team, authors_of(self.record, version)) if governing.policy else []
            )
            self.refuse(
                version,
                f"v{version.version} has no recorded approval for '{self.alias}' ({state}); it needs one by "
                f"{' or '.join(approvers) or 'an approver of team ' + repr(team)}: "
                f"airflow-bridge models approve {self.record.name} {version.version} "
                f"--alias {self.alias} --as APPROVER",
            )
        approver = str((answer.after or {}).get("approver") or answer.actor)
        why = approval_refusal(governing.policy, team, authors_of(self.record, version), approver)
        if why is not None:
            self.refuse(version, f"the approval by '{approver}' does not count under {governing.source}: {why}")
        decision = ApprovalDecision(
            self.record.name, version.version, self.alias, "granted", approver, answer.reason, answer.seq
        )
        return decision, False

    def governing(self, version: ModelVersion) -> GoverningPolicy:
        """The policy that governs the model (an unreadable one refuses the move, audited)."""
        from airflow_bridge.governance.enforcement import governing_policy

        try:
            return governing_policy(self.registry, self.record.name)
        except PolicyViolationError as exc:
            self.refuse(version, str(exc))

    def verify(self, version: ModelVersion) -> None:
        """The artifact must still match its checksum; a mismatch is refused and recorded."""
        from airflow_bridge.artifacts import verify_artifact

        try:
            verify_artifact(version.artifact)
        except ChecksumMismatchError as exc:
            self.refuse(version, str(exc), error=exc)

    def refuse(self, version: ModelVersion, why: str, error: Exception | None = None) -> NoReturn:
        self.registry.record_event(
            AuditAction.MOVE_REFUSED,
            actor=self.actor,
            model=self.record.name,
            version=version.version,
            alias=self.alias,
            run=self.run,
            reason=why,
            after={"action": self.action, "refused": True},
        )
        message = f"{self.action.replace('_', ' ')} of {self.record.name} v{version.version} to '{self.alias}' refused"
        if error is not None:
            raise type(error)(f"{message}: {why}; nothing moved") from None
        raise PolicyViolationError(f"{message}: {why}; nothing moved")
