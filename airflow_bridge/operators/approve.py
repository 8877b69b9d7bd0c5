"""``ModelApprovalOperator``: Airflow's HITL approval in front of a deployment, with separation of duties.

The request shows the model card, metrics against thresholds, the champion comparison and a link to
the model report in the Airflow UI (Required Actions), assigned to the team's approvers minus everyone
behind the version (the owner, and whoever triggered the run), so Airflow itself refuses them. The
approver may leave a comment, kept as the audited reason. The decision is checked again when the task
resumes (an auth manager may let anyone answer) and written to the audit trail: granted, rejected,
timed out, refused (answered by someone not allowed) or superseded (a newer version asked meanwhile,
which ends the wait at once: ``operators.approval_wait``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.results import Registration
    from airflow_bridge.lineage.builders import LineageParts
    from airflow_bridge.registry.records import ModelRecord, ModelVersion
    from airflow_bridge.registry.store import ModelRegistry


class ModelApprovalOperator(OpenLineageMixin, ApprovalOperator):
    """Ask the team's approvers whether ``registration``'s version may move ``alias``.

    Approve → downstream deploy runs. Reject, timeout, or a request superseded by a newer version →
    the task fails with ``not deployed: <why>`` (deploy is upstream_failed, the run failed), nothing
    moves. An answer from an author or from a non-approver fails the task too (the request stays
    open: an approver can still answer it with ``airflow-bridge models approve``).
    Who may answer is checked by the approval action against the policy that governs the model.
    OpenLineage: reads ``model/<name>`` at the version; the run facet carries the decision and approver.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "registration")
    ui_color = "#fef9e7"

    def __init__(
        self,
        *,
        registration: Any,
        alias: str,
        approvers: Sequence[str],
        author: str,
        registry_conn_id: str | None = None,
        response_timeout: dt.timedelta | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow.sdk import Param

        from airflow_bridge.actions.approval import COMMENT_MAX_CHARS

        allowed = [user for user in approvers if user != author]
        super().__init__(
            subject=f"Approve deployment to '{alias}'?",
            body="(the model card is added when the task runs)",
            defaults="Reject",
            assigned_users=[{"id": user, "name": user} for user in allowed],
            response_timeout=response_timeout,
            params={
                "comment": Param(
                    "",
                    type="string",
                    maxLength=COMMENT_MAX_CHARS,
                    title="Comment",
                    description=f"Why you approve or reject (optional, at most {COMMENT_MAX_CHARS} characters); "
                    "kept in the audit trail.",
                )
            },
            **kwargs,
        )
        self.registration = registration
        self.alias = alias
        self.approvers = allowed
        self.author = author
        self.registry_conn_id = registry_conn_id
        self.lineage_context = dict(lineage_context or {})

    def _registration(self) -> Registration:
        from airflow_bridge.actions.results import Registration

        return Registration.from_xcom(self.registration, "registration")

    def execute(self, context: Context) -> Any:
        """Open the request (audited), assigned to the approvers who are not behind this version, and wait."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail
        from airflow.sdk.timezone import utcnow

        from airflow_bridge.actions.approval import request_approval
        from airflow_bridge.governance.enforcement import authors
        from airflow_bridge.operators.approval_wait import ApprovalWaitTrigger, poke_seconds

        with final_on_user_error():
            registration = self._registration()
            registry = open_registry(self.registry_conn_id)
            self._remember_registry(str(registry.url))
            model, number = registration.model, registration.version
            version = registry.get_version(model, number)
            record = registry.get_model(model)
            triggered_by = actor_of(context, "")
            behind = authors(self.author, record.card.owner, version.created_by, triggered_by)
            allowed = self._allowed_approvers(registry, model, record.card.team, behind)
            self.approvers = allowed
            self.assigned_users = [{"id": user, "name": user} for user in allowed]
            live = registry.alias_version(model, self.alias)
            self.subject = f"Deploy {model} v{number} to '{self.alias}'?"
            self.body = approval_body(record, version, self.alias, live, allowed, triggered_by=triggered_by)
            request_approval(
                registry,
                model=model,
                version=number,
                alias=self.alias,
                requested_by=self.author,
                approvers=allowed,
                run=run_ref(context),
            )
        ti = context["task_instance"]
        upsert_hitl_detail(
            ti_id=ti.id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        deadline = utcnow() + self.response_timeout if self.response_timeout else None
        self.log.info("Waiting for %s to answer (until %s)", ", ".join(allowed), deadline or "forever")
        self.defer(
            trigger=ApprovalWaitTrigger(
                ti_id=ti.id,
                options=self.options,
                defaults=self.defaults,
                params=self.serialized_params,
                multiple=self.multiple,
                timeout_datetime=deadline,
                poke_interval=poke_seconds(),
                model=model,
                version=number,
                alias=self.alias,
                registry_conn_id=self.registry_conn_id,
            ),
            method_name="execute_complete",
        )

    def _allowed_approvers(self, registry: ModelRegistry, model: str, team: str, behind: set[str]) -> list[str]:
        """The governing policy's approvers of ``team`` who are not behind the version; fails when none is left."""
        governing = registry.governing_policy(model)
        if governing.policy is None:
            from airflow_bridge.governance.enforcement import no_policy_message

            self._fail(no_policy_message(model, self.alias) + " (fail closed: nobody may approve)")
        allowed = governing.policy.approvers_for(team, behind)
        if not allowed:
            named = governing.policy.approvers_for(team, set())
            self._fail(
                f"nobody may approve {model} for '{self.alias}': the approvers of team '{team}' "
                f"({', '.join(named) or 'none'}) are all behind this version ({', '.join(sorted(behind))}: the "
                "owner, or who triggered the run); engineers add approvers in the team policy"
            )
        return allowed

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Record the answer; anything but a granted approval fails the task with ``not deployed: ...``.

        A failed ``approve`` (red in the grid, the run failed in the DAG list) tells a rejected, refused,
        timed-out or superseded approval apart from a deployment without opening the logs.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_bridge.actions.approval import decide, refuse, time_out
        from airflow_bridge.exceptions import PolicyViolationError, RequestError
        from airflow_bridge.operators.approval_wait import SUPERSEDED

        registration = self._registration()
        model, number = registration.model, registration.version
        registry = open_registry(self.registry_conn_id)
        self._remember_registry(str(registry.url))
        superseded = event.get(SUPERSEDED) or self._superseded(registry, model, number)
        if superseded:
            self._fail(superseded)
        user = event.get("responded_by_user") or {}
        responder = str(user.get("name") or user.get("id") or "")
        chosen = list(event.get("chosen_options") or [])
        comment = str((event.get("params_input") or {}).get("comment") or "")
        run = run_ref(context)
        if event.get("timedout") or event.get("error_type") == "timeout":
            self._remember(decision=time_out(registry, model=model, version=number, alias=self.alias, run=run))
            self._fail(f"the approval timed out after {self._timeout_text()} without an answer")
        if "error" in event:  # the answer did not pass the form's checks (e.g. a comment too long)
            why = f"the answer was not accepted: {event['error']}"
            refuse(registry, model=model, version=number, alias=self.alias, responder=responder, reason=why, run=run)
            self._remember(refused=(responder, why))
            self._fail(why)
        try:
            with final_on_user_error():
                try:
                    decision = decide(
                        registry,
                        model=model,
                        version=number,
                        alias=self.alias,
                        responder=responder,
                        approve=chosen == [self.APPROVE],
                        run=run,
                        via="Airflow UI",
                        comment=comment,
                    )
                except RequestError as exc:  # the comment: the request stays open for another answer
                    refuse(
                        registry,
                        model=model,
                        version=number,
                        alias=self.alias,
                        responder=responder,
                        reason=str(exc),
                        run=run,
                    )
                    self._remember(refused=(responder, str(exc)))
                    raise
                except PolicyViolationError as exc:
                    self._remember(refused=(responder, str(exc)))
                    raise
        except AirflowFailException as exc:
            self._fail(str(exc))
        self._remember(decision=decision)
        self.log.info("approval %s by %s for %s v%d → '%s'", decision.decision, responder, model, number, self.alias)
        if decision.decision != "granted":
            self._fail(f"{decision.decision} by {responder}: {decision.reason}")
        return super().execute_complete(context, {**event, "params_input": {"comment": comment}})

    def _superseded(self, registry: ModelRegistry, model: str, number: int) -> str | None:
        """Why the request is closed when a newer version asked for the alias meanwhile, else None."""
        from airflow_bridge.actions.approval import last_answer, pending_request
        from airflow_bridge.registry.events import AuditAction

        if pending_request(registry, model, number, self.alias) is not None:
            return None
        answered = last_answer(registry, model, number, self.alias)
        if answered is None or answered.action != AuditAction.APPROVAL_SUPERSEDED:
            return None
        return f"the approval request of {model} v{number} for '{self.alias}' was {answered.reason}"

    def _timeout_text(self) -> str:
        timeout = self.response_timeout
        if timeout is None:
            return "the response timeout"
        hours = timeout.total_seconds() / 3600
        return f"{hours:g} h"

    def _fail(self, why: str) -> NoReturn:
        """Fail for good (no retry) with ``not deployed: why``, in the task log and the grid."""
        from airflow.sdk.exceptions import AirflowFailException

        message = f"not deployed: {why}"
        self.log.error("%s", message)
        raise AirflowFailException(message)

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads the version to approve; the decision (or 'requested' while waiting) as a run facet."""
        from airflow_bridge.exceptions import BridgeError
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import ApprovalRunFacet, keyed

        try:
            registration = self._registration()
        except BridgeError:
            return builders.LineageParts()
        namespace = self.lineage_registry_namespace()
        parts = builders.LineageParts()
        if namespace:
            parts.inputs = [
                builders.model_dataset(
                    namespace, registration.model, registration.version, output=False, about=registration
                )
            ]
        state = self.lineage_state
        decision = state.get("decision")
        refused = state.get("refused")
        approval = ApprovalRunFacet(
            decision=decision.decision if decision else ("refused" if refused else "requested"),
            model=registration.model,
            version=registration.version,
            alias=self.alias,
            approver=(decision.approver if decision else (refused[0] if refused else None)) or None,
            approvers=list(self.approvers),
            author=self.author,
            reason=(decision.reason if decision else (refused[1] if refused else None)) or None,
        )
        parts.run_facets.update(keyed(approval))
        return parts


def approval_body(
    model: ModelRecord,
    version: ModelVersion,
    alias: str,
    live: ModelVersion | None,
    approvers: Sequence[str],
    *,
    triggered_by: str = "",
) -> str:
    """Markdown shown to approvers: model card, who triggered, gates, champion, report link, data, provenance."""
    from airflow_bridge.ml.gates import MARKDOWN_GATE_HEADER, champion_of, gates_of

    card = model.card
    lines = [
        f"### {model.name} v{version.version} → `{alias}`",
        "",
        card.description.strip() or "_No description._",
        "",
        f"- **Owner / team:** {card.owner or '-'} / {card.team or '-'}",
        f"- **Estimator:** `{version.estimator}` ({version.task_kind})",
        f"- **Triggered by:** {triggered_by or 'the schedule'} (registered by {version.created_by or '-'})",
        f"- **Currently live:** {f'v{live.version}' if live else 'nothing'}",
        f"- **Approvers:** {', '.join(approvers)} (nobody behind this version may approve)",
    ]
    if card.intended_use:
        lines.append(f"- **Intended use:** {card.intended_use}")
    if card.limitations:
        lines.append(f"- **Limitations:** {card.limitations}")
    gates = gates_of(version.validation.get("gates"))
    if gates:
        lines += ["", *MARKDOWN_GATE_HEADER, *(gate.markdown() for gate in gates)]
    champion = champion_of(version.validation.get("champion"))
    if champion is not None:
        lines += ["", champion.markdown()]
    report = version.validation.get("report")
    if report:
        from airflow_bridge.operators.links import models_url
        from airflow_bridge.report import summary_markdown

        lines += ["", "**Model report**", "", summary_markdown(report.get("summary") or {})]
        lines += [
            "",
            f"[Full model report]({models_url(model.name, version.version, page='report')}) (confusion matrix "
            "or residuals, curves, feature importance, history), on the Models page of this Airflow.",
        ]
    data = version.data
    lines += [
        "",
        f"- **Training data:** `{data.get('uri', '?')}` ({data.get('rows', '?')} rows, "
        f"sha256 `{str(data.get('sha256', ''))[:12]}`)",
        f"- **Artifact:** sha256 `{version.artifact.sha256[:12]}`, {version.artifact.size} bytes",
        f"- **Produced by:** {version.run.dag_id} / {version.run.run_id}",
    ]
    return "\n".join(lines)
