"""Deploy, promote and rollback: the only doors to an alias, each policy-checked and audited.

A move onto a protected alias needs a recorded approval of the target version for that alias by an
allowed approver (never an author) under the policy that governs the model. A rollback is a move like
any other: it goes back only to a version that was approved for that alias. Turning enforcement off
(``enforce_policy=False``) is possible only where the policy allows it, and is itself audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow_bridge.actions.names import LOCAL_TARGET, local_endpoint
from airflow_bridge.actions.results import ApprovalDecision, DeploymentResult
from airflow_bridge.exceptions import ChecksumMismatchError, NotFoundError, PolicyViolationError
from airflow_bridge.registry.events import AuditAction

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import Deployment, ModelRecord, ModelVersion, RunRef
    from airflow_bridge.registry.store import ModelRegistry

TARGETS = (LOCAL_TARGET,)
_CURRENT: Any = object()
"""``expected`` default: compare-and-set against what the alias points at when the action starts."""


def deploy(
    registry: ModelRegistry,
    *,
    model: str,
    version: int,
    alias: str,
    actor: str,
    target: str = LOCAL_TARGET,
    run: RunRef | None = None,
    reason: str = "",
    expected: int | None = _CURRENT,
    enforce_policy: bool = True,
    policy: GoverningPolicy | None = None,
    action: AuditAction = AuditAction.DEPLOYED,
) -> DeploymentResult:
    """Point ``alias`` at ``version`` (compare-and-set against ``expected``) after the policy checks."""
    if target not in TARGETS:
        raise PolicyViolationError(f"unknown deployment target '{target}'; available: {', '.join(TARGETS)}")
    record = registry.get_model(model)
    chosen = registry.get_version(model, version)
    live = registry.alias_version(model, alias)
    gate = _Gate(registry, record, alias=alias, actor=actor, run=run, action=action)
    approval, override = gate.authorize(chosen, policy, enforce_policy, reason)
    gate.verify(chosen)
    moved = registry.deploy(
        model,
        version,
        alias=alias,
        target=target,
        endpoint=local_endpoint(model, alias),
        expected=(live.version if live else None) if expected is _CURRENT else expected,
        actor=actor,
        reason=reason or f"{action.replace('_', ' ')} by {actor}",
        run=run,
        action=action,
    )
    from airflow_bridge.actions.approval import close_superseded

    close_superseded(registry, model=model, alias=alias, newer=version, actor=actor, run=run)
    return _result(moved, live.version if live else None, approval, override)


def promote(registry: ModelRegistry, **kwargs: Any) -> DeploymentResult:
    """``deploy`` recorded as a promotion (a person moving an alias outside a pipeline run)."""
    return deploy(registry, action=AuditAction.PROMOTED, **kwargs)


def rollback(
    registry: ModelRegistry,
    *,
    model: str,
    alias: str,
    actor: str,
    target: str = LOCAL_TARGET,
    run: RunRef | None = None,
    reason: str = "",
    enforce_policy: bool = True,
    policy: GoverningPolicy | None = None,
) -> DeploymentResult:
    """Move ``alias`` back to the version it pointed at before (rollbacks undo moves), policy-checked."""
    record = registry.get_model(model)
    current = registry.alias_version(model, alias)
    previous = registry.previous_alias_version(model, alias)
    if current is None or previous is None:
        raise NotFoundError(f"alias '{alias}' of '{model}' has no earlier version to roll back to")
    chosen = registry.get_version(model, previous)
    gate = _Gate(registry, record, alias=alias, actor=actor, run=run, action=AuditAction.ROLLED_BACK)
    approval, override = gate.authorize(chosen, policy, enforce_policy, reason)
    gate.verify(chosen)
    moved = registry.rollback(
        model, alias, actor=actor, target=target, run=run, reason=reason or f"rollback from v{current.version}"
    )
    return _result(moved, current.version, approval, override)


def _result(
    moved: Deployment, previous: int | None, approval: ApprovalDecision | None, override: bool
) -> DeploymentResult:
    return DeploymentResult(
        model=moved.model,
        version=moved.version,
        alias=moved.alias,
        target=moved.target,
        endpoint=moved.endpoint or local_endpoint(moved.model, moved.alias),
        previous_version=previous,
        action=str(moved.action),
        actor=moved.actor,
        approval=approval,
        policy_override=override,
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

    def authorize(
        self, version: ModelVersion, policy: GoverningPolicy | None, enforce: bool, reason: str
    ) -> tuple[ApprovalDecision | None, bool]:
        """(the approval that allows the move, whether enforcement was turned off); raises when refused."""
        from airflow_bridge.actions.approval import last_answer
        from airflow_bridge.governance.enforcement import (
            approval_refusal,
            authors_of,
            governing_policy,
            no_policy_message,
        )

        governing = policy or self._governing(version, governing_policy)
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

    def _governing(self, version: ModelVersion, find: Any) -> GoverningPolicy:
        try:
            governing: GoverningPolicy = find(self.registry, self.record.name)
        except PolicyViolationError as exc:
            self.refuse(version, str(exc))
        return governing

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
