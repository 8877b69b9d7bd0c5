"""The gate every move of an alias passes (policy, approval, checksum, target) before anything is applied.

Deploy, promote and rollback (:mod:`airflow_bridge.actions.deployment`) each build one ``Gate`` and call
``admit``; targets receive it to refuse a move of their own (a serving tier the team may not use).
Every refusal is written to the audit trail before it is raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from airflow_bridge.actions.names import KSERVE_TARGET
from airflow_bridge.actions.results import ApprovalDecision
from airflow_bridge.actions.targets import Move, PendingMove, target_for
from airflow_bridge.exceptions import ChecksumMismatchError, PolicyViolationError
from airflow_bridge.registry.events import AuditAction

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import ModelRecord, ModelVersion, RunRef
    from airflow_bridge.registry.store import ModelRegistry


class Gate:
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
        target: str,
        policy: GoverningPolicy | None,
        enforce: bool,
        reason: str,
        expected: int | None,
        serving: str | None = None,
        canary_traffic_percent: int | None = None,
        team_only: bool = False,
    ) -> PendingMove:
        """Every check of a move in order (team, policy, approval, checksum, target), then ``target`` serves
        ``chosen``: nothing is applied before the gate passes. The alias has not moved yet.

        ``team_only``: only the model's team may make the move (the Models page's rule). ``expected`` is
        the version the alias must still point at when the move settles (compare-and-set).
        """
        from airflow_bridge.governance.enforcement import team_move_refusal

        governing = policy or self.governing(chosen)
        if team_only:
            why = team_move_refusal(governing, self.record.name, self.record.card.team, self.actor)
            if why is not None:
                self.refuse(chosen, why)
        approval, override = self.authorize(chosen, governing, enforce, reason)
        self.verify(chosen)
        _same_target(self.registry, self, chosen, target)
        move = Move(
            str(self.registry.url), self.record, chosen, live, self.alias, governing, serving, canary_traffic_percent
        )
        rollout = target_for(target).apply(self, move)
        why = reason or self._default_reason(live)
        canary = rollout.get("canary_traffic_percent")
        return PendingMove(
            model=self.record.name,
            version=chosen.version,
            alias=self.alias,
            action=str(self.action),
            actor=self.actor,
            reason=f"{why} (canary: {canary}% of the traffic)" if canary else why,
            target=target,
            expected=expected,
            previous_version=live.version if live else None,
            rollout=rollout,
            run=[self.run.dag_id, self.run.run_id, self.run.task_id] if self.run else None,
            approval=approval.to_xcom() if approval else None,
            policy_override=override,
        )

    def _default_reason(self, live: ModelVersion | None) -> str:
        if self.action == AuditAction.ROLLED_BACK and live is not None:
            return f"rollback from v{live.version}"
        return f"{self.action.replace('_', ' ')} by {self.actor}"

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


def _same_target(registry: ModelRegistry, gate: Gate, version: ModelVersion, target: str) -> None:
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
