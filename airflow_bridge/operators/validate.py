"""``ValidateModelOperator``: metrics on the held-out split, threshold and data gates, champion comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.lineage.mixin import OpenLineageMixin
from airflow_bridge.operators._common import as_dict, final_on_user_error, open_registry

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.lineage.builders import LineageParts


class ValidateModelOperator(OpenLineageMixin, BaseOperator):
    """Gate a trained model: every threshold, every data check and (optionally) the champion.

    ``training`` is the XCom of ``TrainModelOperator`` (pass ``train.output``). The report — metrics,
    each gate with its value and bounds, the champion comparison — is returned as XCom and also
    pushed under key ``report`` before a failed gate raises ``AirflowFailException`` (no retry),
    whose message lists every failed gate. OpenLineage: reads the training data, model artifact and
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
        registry_conn_id: str | None = None,
        lineage_context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = training
        self.thresholds = {k: dict(v) for k, v in (thresholds or {}).items()}
        self.checks = dict(checks or {})
        self.champion_metric = champion_metric
        self.min_improvement = min_improvement
        self.champion_alias = champion_alias
        self.registry_conn_id = registry_conn_id
        self.lineage_context = dict(lineage_context or {})

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_bridge.ml.gates import format_gate_table

        with final_on_user_error():
            report = self.build_report(as_dict(self.training, "training"))
        self._remember(report=report)  # before a failed gate raises: the FAIL event carries it
        context["ti"].xcom_push(key="report", value=report)
        failed = [g for g in report["gates"] if not g["passed"]]
        champion = report.get("champion")
        if failed or (champion and not champion["passed"]):
            reasons = [f"{len(failed)} of {len(report['gates'])} gate(s) failed"] if failed else []
            if champion and not champion["passed"]:
                reasons.append(f"it does not beat the live v{champion['champion_version']} by enough")
            lines = [f"Validation failed for {report['model']}: {'; '.join(reasons)}:"]
            lines.append(format_gate_table(report["gates"]))
            if champion and not champion["passed"]:
                lines.append(_champion_line(champion))
            raise AirflowFailException("\n".join(lines))
        self.log.info("All gates passed:\n%s", format_gate_table(report["gates"]))
        return report

    def build_report(self, training: dict[str, Any]) -> dict[str, Any]:
        from airflow_bridge.artifacts import ArtifactStore, load_frame, load_model
        from airflow_bridge.ml.gates import compare_champion, evaluate_data_checks, evaluate_thresholds
        from airflow_bridge.ml.metrics import compute_metrics
        from airflow_bridge.registry.records import ArtifactRef

        store = ArtifactStore.from_config()
        model = load_model(store.read_verified(ArtifactRef(**training["artifact"])))
        holdout = load_frame(store.read_verified(ArtifactRef(**training["holdout"])))
        data = training["data"]
        features, labels = holdout[data["features"]], holdout[data["target"]]
        metrics = compute_metrics(training["task_kind"], model, features, labels)
        gates = [*evaluate_data_checks(data, self.checks), *evaluate_thresholds(metrics, self.thresholds)]
        report: dict[str, Any] = {
            "model": training["model"],
            "metrics": metrics,
            "gates": gates,
            "champion": None,
        }
        if self.champion_metric:
            champion_value, champion_version = self._champion_score(training, features, labels, store)
            report["champion"] = compare_champion(
                self.champion_metric,
                metrics.get(self.champion_metric, float("nan")),
                champion_value,
                self.min_improvement,
                champion_version,
            )
            report["champion"]["alias"] = self.champion_alias
        report["passed"] = all(g["passed"] for g in gates) and (report["champion"] or {}).get("passed", True)
        return report

    def lineage_parts(self, stage: str) -> LineageParts:
        """Reads what train produced; the report's metrics, gates and champion once it exists."""
        from airflow_bridge.lineage import builders
        from airflow_bridge.lineage.facets import keyed

        training = self.training if isinstance(self.training, dict) else {}
        parts = builders.LineageParts(inputs=builders.training_datasets(training, holdout=True))
        report = self.lineage_state.get("report")
        if report:
            champion = report.get("champion")
            parts.run_facets.update(
                keyed(
                    builders.metrics(report.get("metrics") or {}),
                    builders.gates(report.get("gates") or []),
                    builders.champion(champion) if champion else None,
                )
            )
        return parts

    def _champion_score(
        self, training: dict[str, Any], features: Any, labels: Any, store: Any
    ) -> tuple[float | None, int | None]:
        """The live version's metric on the same held-out rows, or (None, None) when nothing is live."""
        from airflow_bridge.artifacts import load_model
        from airflow_bridge.ml.metrics import compute_metrics

        live = open_registry(self.registry_conn_id).alias_version(training["model"], self.champion_alias)
        if live is None:
            return None, None
        champion = load_model(store.read_verified(live.artifact))
        scores = compute_metrics(training["task_kind"], champion, features, labels)
        return scores.get(str(self.champion_metric)), live.version


def _champion_line(champion: dict[str, Any]) -> str:
    return (
        f"  FAIL  champion: {champion['metric']} {champion['candidate']:.4f} vs v{champion['champion_version']} "
        f"{champion['champion']:.4f} (improvement {champion['improvement']:+.4f}, "
        f"required {champion['min_improvement']:+.4f})"
    )
