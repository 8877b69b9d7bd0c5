"""The gate every move of an alias passes (policy, approval, checksum, target) before anything is applied.

Deploy, promote and rollback (:mod:`airflow_bridge.actions.deployment`) each build one ``Gate`` and call
``admit``; targets receive it to refuse a move of their own (a serving tier the team may not use).
Every refusal is written to the audit trail before it is raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from airflow_bridge.actions.moves import MoveRequest, PendingMove
from airflow_bridge.actions.results import ApprovalDecision
from airflow_bridge.exceptions import ChecksumMismatchError, PolicyViolationError
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.serving.target import LOCAL_TARGET
from airflow_bridge.spec.targets import UnknownTargetError, settings_refusal
from airflow_bridge.targets import Move, target_for

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_bridge.governance.enforcement import GoverningPolicy
    from airflow_bridge.registry.records import ModelRecord, ModelVersion, RunRef
    from airflow_bridge.registry.store import ModelRegistry
    from airflow_bridge.targets import Target


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
        self, chosen: ModelVersion, live: ModelVersion | None, request: MoveRequest, *, expected: int | None
    ) -> PendingMove:
        """Every check of a move in order (team, target and its settings, policy, approval, checksum), then
        the target serves ``chosen``: nothing is applied before the gate passes. The alias has not moved yet.

        ``expected`` is the version the alias must still point at when the move settles (compare-and-set).
        """
        from airflow_bridge.governance.enforcement import team_move_refusal

        governing = self.governing(chosen)
        if request.team_only:
            why = team_move_refusal(governing, self.record.name, self.record.card.team, self.actor)
            if why is not None:
                self.refuse(chosen, why)
        target, settings = self.target(chosen, request)
        approval, override = self.authorize(chosen, request.enforce_policy)
        self.verify(chosen)
        _same_target(self.registry, self, chosen, request.target)
        move = Move(str(self.registry.url), self.record, chosen, live, self.alias, governing, settings)
        rollout = target.apply(self, move)
        why = request.reason or self._default_reason(live)
        canary = rollout.get("canary_traffic_percent")
        return PendingMove(
            model=self.record.name,
            version=chosen.version,
            alias=self.alias,
            action=str(self.action),
            actor=self.actor,
            reason=f"{why} (canary: {canary}% of the traffic)" if canary else why,
            target=request.target,
            expected=expected,
            previous_version=live.version if live else None,
            rollout=rollout,
            run=[self.run.dag_id, self.run.run_id, self.run.task_id] if self.run else None,
            approval=approval.to_xcom() if approval else None,
            policy_override=override,
        )

    def target(self, version: ModelVersion, request: MoveRequest) -> tuple[Target, BaseModel]:
        """The installed target the request names and its settings; unknown or bad ones are refused, audited."""
        try:
            target = target_for(request.target)
        except UnknownTargetError as exc:
            self.refuse(version, str(exc))
        settings, problems = settings_refusal(target, request.settings)
        if settings is None:
            self.refuse(version, f"bad settings for target '{request.target}': {problems}")
        return target, settings

    def _default_reason(self, live: ModelVersion | None) -> str:
        if self.action == AuditAction.ROLLED_BACK and live is not None:
            return f"rollback from v{live.version}"
        return f"{self.action.replace('_', ' ')} by {self.actor}"

    def authorize(self, version: ModelVersion, enforce: bool) -> tuple[ApprovalDecision | None, bool]:
        """(the approval that allows the move, whether enforcement was turned off); raises when refused.

        The registry's own rule (``ModelRegistry.check_move``): the same check the registry repeats under
        the model's lock when the alias moves. Rows the audit chain does not vouch for refuse the move too.
        """
        from airflow_bridge.exceptions import AuditMismatchError

        try:
            clearance = self.registry.check_move(self.record.name, version.version, self.alias, override=not enforce)
        except (PolicyViolationError, AuditMismatchError) as exc:
            self.refuse(version, str(exc), error=exc if isinstance(exc, AuditMismatchError) else None)
        if not clearance.protected or clearance.override:
            return None, clearance.override
        decision = ApprovalDecision(
            self.record.name,
            version.version,
            self.alias,
            "granted",
            clearance.approver,
            clearance.reason,
            clearance.approval_seq,
        )
        return decision, False

    def governing(self, version: ModelVersion) -> GoverningPolicy:
        """The policy that governs the model (an unreadable one refuses the move, audited)."""
        try:
            return self.registry.governing_policy(self.record.name)
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
        message = f"{move_name(self.action)} of {self.record.name} v{version.version} to '{self.alias}' refused"
        if error is not None:
            raise type(error)(f"{message}: {why}; nothing moved") from None
        raise PolicyViolationError(f"{message}: {why}; nothing moved")


def move_name(action: str) -> str:
    """The noun of a move in messages: 'deployment of m v3 ... refused'."""
    names = {AuditAction.PROMOTED: "promotion", AuditAction.ROLLED_BACK: "rollback", AuditAction.DEPLOYED: "deployment"}
    return names.get(AuditAction(action), "move") if action in AuditAction.__members__.values() else "move"


def serving_target(registry: ModelRegistry, model: str, alias: str) -> str | None:
    """The target of the alias's last move (None: it never moved)."""
    served = [d for d in registry.deployments(model) if d.alias == alias]
    return served[-1].target if served else None


def _same_target(registry: ModelRegistry, gate: Gate, version: ModelVersion, target: str) -> None:
    """An alias served by a target other than ``local`` moves only with that target: a move with another one
    would leave the old version served there (an InferenceService)."""
    last = serving_target(registry, gate.record.name, gate.alias)
    if last not in (None, LOCAL_TARGET, target):
        gate.refuse(
            version,
            f"'{gate.alias}' of {gate.record.name} is served by target '{last}' (its last deployment); moving it "
            f"with target '{target}' would leave the old version served there: use target '{last}' with its "
            f"settings (--target {last})",
        )
