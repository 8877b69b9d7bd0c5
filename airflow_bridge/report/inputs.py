"""What a model report is built from (:class:`ReportInputs`) and what it is (:class:`ModelReport`).

Plain dataclasses with no heavy imports, so the package can be imported at DAG-parse time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_bridge.exceptions import BridgeError, DataError
from airflow_bridge.ml.gates import ChampionComparison, GateResult

TASK_KINDS = ("classification", "regression")


class ReportError(BridgeError):
    """A model report cannot be built or read (bad inputs, a malformed report record)."""


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report shows about one model version.

    ``model`` takes the raw feature columns as a pandas DataFrame (an estimator or a Pipeline with its
    preprocessing); ``holdout`` holds the held-out rows with the features and the target. ``gates`` and
    ``champion`` are the results of :mod:`airflow_bridge.ml.gates`. ``profile`` is the data profile
    (``rows``, ``columns`` as name → dtype, optionally ``roles`` as name → ``{role, reason}`` plus
    ``dtype``, ``missing``, ``distinct`` when known, ``null_fraction``, ``train_rows``, ``test_rows``).
    ``history`` lists earlier versions of the model as ``{version, created_at, metrics}``; empty for a
    first version.
    """

    model: Any
    holdout: Any
    features: Sequence[str]
    target: str
    task_kind: str
    model_name: str
    version: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    gates: Sequence[GateResult] = ()
    champion: ChampionComparison | None = None
    profile: Mapping[str, Any] | None = None
    history: Sequence[Mapping[str, Any]] = ()
    estimator: str = ""
    seed: int = 0
    """The run's seed (``data.split.seed``): permutation importance draws its shuffles from it."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The estimator's effective hyperparameters, shown in the report."""
    groups: Sequence[str] = ()
    """The spec's ``data.groups``: held-out columns the report breaks the metrics down by."""
    changes: Any = None
    """What changed since the live version (:class:`airflow_bridge.report.drift.Changes`); None: not compared."""
    fates: Mapping[int, str] = field(default_factory=dict)
    """The earlier versions' fates when the report was built (readers rewrite them, see ``report.fate``)."""
    fate: str = ""
    """This version's fate when ``version`` is set (a candidate's comes from its gates)."""
    importance: Any = None
    """Permutation importance already computed by validation (``report.evaluation.Importance``); computed
    here when None. Validation computes it once for its warnings and the report."""
    warnings: Sequence[Mapping[str, Any]] = ()
    """Leakage and sanity warnings (``airflow_bridge.ml.sanity``), shown in a box at the top."""
    baseline: Mapping[str, Any] | None = None
    """The dummy baseline ``{strategy, metrics}``, shown beside every metric."""
    uncertainty: Mapping[str, Any] | None = None
    """Bootstrap intervals (``{method: bootstrap, metrics: {name: {low, high}}}``) or cross-validation
    (``{method: cross_validation, folds, metrics: {name: {mean, std, bound}}}``), shown beside every metric."""
    search: Mapping[str, Any] | None = None
    """The hyperparameter search that chose the parameters (``SearchSummary`` JSON): its trials, history plot and
    parameter importance get a section. None: the spec fixed the parameters."""

    @property
    def label(self) -> str:
        """``name vN``, or ``name (candidate)`` before registration."""
        return f"{self.model_name} v{self.version}" if self.version is not None else f"{self.model_name} (candidate)"

    def check(self) -> None:
        """Refuse inputs the report cannot be built from, naming what is wrong and how to fix it."""
        if self.task_kind not in TASK_KINDS:
            raise ReportError(
                f"cannot build the report of {self.label}: task kind '{self.task_kind}' is not one of "
                f"{', '.join(TASK_KINDS)}"
            )
        columns = [str(c) for c in getattr(self.holdout, "columns", [])]
        missing = [c for c in [*self.features, self.target] if c not in columns]
        if missing:
            raise DataError(
                f"cannot build the report of {self.label}: the held-out frame lacks column(s) "
                f"{', '.join(missing)}; pass the held-out rows with every feature and the target '{self.target}'"
            )
        if len(self.holdout) == 0:
            raise DataError(f"cannot build the report of {self.label}: the held-out frame has no rows")
        if not self.features:
            raise ReportError(f"cannot build the report of {self.label}: no feature columns were given")


@dataclass(frozen=True)
class ModelReport:
    """One self-contained HTML page (figures embedded), the same figures as PNG bytes by file name, and the
    key figures (JSON-ready) that :func:`airflow_bridge.report.summary_markdown` turns into an approval body."""

    html: str
    pngs: dict[str, bytes]
    key_figures: dict[str, Any]

    @property
    def html_bytes(self) -> bytes:
        return self.html.encode("utf-8")

    def summary_markdown(self) -> str:
        """The short Markdown summary for an approval request (see :func:`summary_markdown`)."""
        from airflow_bridge.report.summary import summary_markdown

        return summary_markdown(self.key_figures)
