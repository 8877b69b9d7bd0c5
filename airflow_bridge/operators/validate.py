"""``ValidateModelOperator``: the validate action inside an Airflow task; a failed gate is final."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import actor_of, final_on_user_error, open_registry, run_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.actions.validation import ValidationRules
    from airflow_bridge.governance.policy import CandidateRetention
    from airflow_bridge.lineage.builders import LineageParts


class ValidateModelOperator(OpenLineageMixin, BaseOperator):
    """Gate a trained model: every threshold, every data check and (optionally) the champion.

    ``training`` is the XCom of ``TrainModelOperator`` (pass ``train.output``). The ``ValidationReport``
    — metrics, each gate with its value and bounds, the champion comparison, and the model report (an
    HTML page with figures, written to the artifact store; docs/report.md) — is returned as XCom and
    pushed under key ``report`` before a failed gate raises ``AirflowFailException`` (no retry), whose
    message lists every failed gate. Passed or failed, the model is first recorded as a candidate in the
    registry (``airflow-bridge models candidates``; ``candidate_retention``, from the team policy, prunes old
    ones that never became a version). OpenLineage: reads the training data, model artifact and
    held-out split; run facets carry metrics, gate results and the champion comparison, also on FAIL.
    """

    template_fields: Sequence[str] = ("training",)
    ui_color = "#fff4e0"

    def __init__(
        self,
        *,
        training: Any,
        thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
        checks: Mapping[str, Any] | None = None,
        champion_metric: str | None = None,
        min_improvement: float = 0.0,
        champion_alias: str = "production",
        baseline: Mapping[str, Any] | None = None,
        gate_on: str = "holdout",
        fail_on_warnings: Sequence[str] = (),
        registry_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        candidate_retention: CandidateRetention | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_bridge.actions.validation import ValidationRules

        super().__init__(**kwargs)
        self.training = training
        self.rules = ValidationRules(
            thresholds={k: dict(v) for k, v in (thresholds or {}).items()},
            checks=dict(checks or {}),
            champion_metric=champion_metric,
            min_improvement=min_improvement,
            champion_alias=champion_alias,
            fail_on_warnings=tuple(fail_on_warnings),
            baseline_metric=(baseline or {}).get("metric"),
            baseline_min_improvement=float((baseline or {}).get("min_improvement") or 0.0),
            gate_on=gate_on,
        )
        """The gates, typed once (the factory passes a spec's with ``from_rules``)."""
        self.registry_conn_id = registry_conn_id
        self.lineage_context = dict(lineage_context or {})
        self.candidate_retention = candidate_retention

    @classmethod
    def from_rules(cls, rules: ValidationRules, **kwargs: Any) -> ValidateModelOperator:
        """The operator that applies ``rules`` as they are; ``kwargs`` are ``training`` and BaseOperator's."""
        operator = cls(**kwargs)
        operator.rules = rules
        return operator

    def execute(self, context: Context) -> dict[str, Any]:
        import dataclasses

        from airflow.sdk.exceptions import AirflowFailException

        from airflow_bridge.actions.candidates import record_candidate
        from airflow_bridge.actions.names import REPORT_XCOM_KEY
        from airflow_bridge.actions.results import TrainingResult
        from airflow_bridge.actions.validation import validate
        from airflow_bridge.ml.gates import format_gate_table
        from airflow_bridge.resolution import artifact_store

        rules = self.rules
        with final_on_user_error():
            training = TrainingResult.from_xcom(self.training, "training")
            registry = open_registry(self.registry_conn_id)
            store = artifact_store(in_airflow=True)
            report = validate(training, rules, registry, store)
        recorded = record_candidate(
            training,
            report,
            registry,
            run=run_ref(context),
            actor=actor_of(context),
            spec_sha256=str(self.lineage_context.get("spec_sha256") or ""),
            retention=self.candidate_retention,
        )
        report = dataclasses.replace(report, candidate_id=recorded.candidate_id)
        self.log.info(
            "Recorded candidate %s of %s (%s)%s",
            recorded.candidate_id,
            training.model,
            "passed" if report.passed else "failed",
            f"; pruned {recorded.pruned} old candidate(s) under the retention" if recorded.pruned else "",
        )
        self._remember(report=report)  # before a failed gate raises: the FAIL event carries it
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report.to_xcom())
        if not report.passed:
            raise AirflowFailException(report.failure_message())
        self.log.info("All gates passed:\n%s", format_gate_table(report.gates))
        return report.to_xcom()

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads what train produced; the report's metrics, gates and champion once it exists."""
        from airflow_bridge.actions.results import TrainingResult
        from airflow_bridge.exceptions import BridgeError
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        try:
            training = TrainingResult.from_xcom(self.training)
            parts = builders.LineageParts(inputs=builders.training_datasets(training, holdout=True))
        except BridgeError:  # not rendered yet, or not a training result: no inputs to report
            parts = builders.LineageParts()
        report = self.lineage_state.get("report")
        if report is not None:
            parts.run_facets.update(
                keyed(
                    builders.metrics(report.metrics),
                    builders.gates(report.gates),
                    builders.champion(report.champion) if report.champion else None,
                )
            )
        return parts
