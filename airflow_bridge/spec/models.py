"""Pydantic models of the experiment spec, v1: the single source of truth for build, lint and JSON Schema.

Every model forbids unknown keys and validates strictly (``"200"`` is not an integer), so a spec
that loads is a spec that builds. Checks that need the file's location or several fields at
once live in :mod:`airflow_bridge.spec.semantics`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from airflow_bridge.issues import did_you_mean
from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS, TaskKind, missing_extra

API_VERSION = "airflow-bridge/v1"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
CONN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$")
SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="Lower-case letters, digits and '_'.")]


def bridge_error(message: str, hint: str | None = None) -> PydanticCustomError:
    """A validation error whose message and hint reach the user unchanged."""
    return PydanticCustomError("bridge", message, {"hint": hint} if hint else {})


def check_conn_id(value: str | None) -> str | None:
    """A conn_id names an Airflow connection; credentials pasted in its place are refused."""
    if value is None:
        return value
    if "://" in value or "@" in value or ":" in value:
        raise bridge_error(
            "looks like a connection URI or credentials, not a connection id",
            "create an Airflow connection holding the secret and put its conn_id here",
        )
    if not CONN_ID_PATTERN.match(value):
        raise bridge_error(
            f"'{value}' is not a valid connection id",
            "use letters, digits, '_', '.' and '-' (for example 's3_training_data')",
        )
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainingData(_Section):
    """Where the training table lives and which column is the label."""

    uri: str = Field(
        min_length=1,
        description="Path relative to the spec file, file:///absolute/path, or scheme://bucket/key "
        "(s3, gs, abfs...) read through `conn_id`.",
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="File format; inferred from the extension when omitted."
    )
    delimiter: str | None = Field(
        default=None, min_length=1, max_length=1, description="CSV field separator; ',' when omitted."
    )
    encoding: str | None = Field(default=None, description="CSV text encoding; utf-8 when omitted (e.g. latin-1).")
    decimal: Literal[".", ","] = Field(
        default=".",
        description="CSV decimal mark: ',' for European exports that write 1,5 (usually with delimiter ';').",
    )
    missing_values: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="CSV text that means 'missing' in this file (e.g. unknown, ?), read as blank like NA and N/A.",
    )
    target: str = Field(min_length=1, description="Name of the label column.")
    features: list[str] | None = Field(
        default=None, description="Feature columns; all columns but the target when omitted."
    )
    conn_id: str | None = Field(default=None, description="Airflow connection for remote storage.")

    _conn = field_validator("conn_id")(check_conn_id)

    @field_validator("uri")
    @classmethod
    def _no_credentials_in_uri(cls, value: str) -> str:
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise bridge_error("the URI contains a control character", "write the path or URI as plain text")
        try:
            urlsplit(value)
        except ValueError as exc:  # e.g. 's3://[bucket/x.csv': an unclosed IPv6 bracket
            raise bridge_error(f"'{value}' is not a valid URI ({exc})") from None
        _, sep, rest = value.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            raise bridge_error(
                "the URI carries credentials",
                "remove 'user:password@' and reference an Airflow connection with conn_id",
            )
        return value


class Split(_Section):
    """How the held-out evaluation set is cut; the seed makes runs reproducible."""

    test_size: float = Field(default=0.2, gt=0, lt=1, description="Fraction of rows held out for validation.")
    seed: int = Field(
        default=42,
        ge=0,
        le=2**32 - 1,
        description="The run's one random seed: the split, the encoders, the estimator (unless model.params sets "
        "random_state) and the report's permutation importance. Same spec and data: same model bytes.",
    )
    stratify: bool = Field(default=True, description="Keep class proportions (classification only).")


class DataChecks(_Section):
    """Basic data quality gates applied before a model may move forward."""

    min_rows: int = Field(default=1, ge=1, description="Fewest rows the training table may have.")
    required_columns: list[str] = Field(default_factory=list, description="Columns that must exist.")
    max_null_fraction: float = Field(
        default=1.0, ge=0, le=1, description="Largest fraction of missing values allowed in any used column."
    )
    max_missing_target_fraction: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Largest fraction of rows whose target is missing; those rows are dropped and counted.",
    )


ColumnRole = Literal["numeric", "categorical", "datetime", "text", "ignore"]
"""How a column is used: the role inferred from the data, unless the spec overrides it."""


class Data(_Section):
    training: TrainingData
    split: Split = Split()
    checks: DataChecks = DataChecks()
    columns: dict[str, ColumnRole] = Field(
        default_factory=dict,
        description="Override the inferred role of a column: numeric, categorical, datetime, text (free text "
        "or many categories) or ignore (never used). Other columns get the role inferred from the data.",
    )
    groups: list[str] = Field(
        default_factory=list,
        description="Columns whose values split the held-out rows into groups (e.g. sex, region): the model "
        "report shows the metrics of each group. They need not be features; they are kept in the held-out split.",
    )


class SearchDimension(_Section):
    """One searched parameter: ``choices`` (a list of values), or a range from ``low`` to ``high``."""

    choices: list[JsonValue] | None = Field(default=None, description="The values to try, e.g. [gini, entropy].")
    low: int | float | None = Field(default=None, allow_inf_nan=False, description="Smallest value of a range.")
    high: int | float | None = Field(default=None, allow_inf_nan=False, description="Largest value of a range.")
    log: bool = Field(default=False, description="Sample the range on a log scale (low must be above 0).")
    type: Literal["int", "float"] | None = Field(
        default=None,
        description="int or float; a range is int when low and high are both written as whole numbers (2, "
        "not 2.0), float otherwise.",
    )

    @model_validator(mode="after")
    def _shape(self) -> SearchDimension:
        ranged = self.low is not None or self.high is not None or self.log or self.type is not None
        if self.choices is not None:
            if ranged:
                raise bridge_error("give either choices or a range (low, high), not both")
            if not self.choices:
                raise bridge_error("choices is empty: there is nothing to try", "list at least one value")
            return self
        if self.low is None or self.high is None:
            raise bridge_error(
                "a searched parameter needs choices, or low and high",
                "for example {low: 2, high: 12}, {low: 0.001, high: 1.0, log: true} or {choices: [gini, entropy]}",
            )
        if self.low > self.high:
            raise bridge_error(f"low ({self.low}) is greater than high ({self.high})", "swap them")
        if self.log and self.low <= 0:
            raise bridge_error(
                f"a log scale needs low above 0 (got {self.low})", "use a small positive low such as 0.001"
            )
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high)):
            raise bridge_error(f"an int range needs whole bounds (got {self.low}, {self.high})")
        return self

    @property
    def kind(self) -> Literal["choices", "int", "float"]:
        if self.choices is not None:
            return "choices"
        if self.type is not None:
            return self.type
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"


class SearchBudget(_Section):
    """When the search stops: after ``trials`` trials, after ``minutes``, whichever comes first."""

    trials: int | None = Field(
        default=None, ge=1, le=10_000, description="Number of trials; the same spec gives the same trials."
    )
    minutes: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 60,
        allow_inf_nan=False,
        description="Wall-clock limit; a search it stops early depends on the machine's speed (not reproducible).",
    )

    @model_validator(mode="after")
    def _one_limit(self) -> SearchBudget:
        if self.trials is None and self.minutes is None:
            raise bridge_error("a budget needs trials, minutes or both", "for example {trials: 20}")
        return self


class Search(_Section):
    """Hyperparameter search (Optuna, seeded): the best trial's parameters become the candidate's."""

    space: dict[str, SearchDimension] = Field(
        min_length=1, description="The estimator parameters to search, each with choices or a low/high range."
    )
    budget: SearchBudget
    metric: str = Field(description="The metric to optimise (its direction comes from the metric, e.g. mae: lower).")
    folds: int = Field(
        default=3, description="Cross-validation folds of the training rows each trial is scored on (2 to 20)."
    )
    pruning: bool = Field(default=True, description="Stop a trial early when its first folds score below the median.")

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if not 2 <= value <= 20:
            raise bridge_error(f"folds: {value} is not between 2 and 20", "use folds: 3 or 5")
        return value


class ModelSection(_Section):
    """The estimator to fit: a dotted name on the allow-list and its constructor parameters."""

    estimator: str = Field(description="Dotted class name, e.g. sklearn.ensemble.RandomForestClassifier.")
    params: dict[str, JsonValue] = Field(default_factory=dict, description="Constructor parameters.")
    task: TaskKind | None = Field(default=None, description="classification or regression; known estimators imply it.")
    search: Search | None = Field(
        default=None,
        description="Search these parameters (Optuna): the candidate gets the best trial's; params stay fixed.",
    )

    @field_validator("estimator")
    @classmethod
    def _allowed(cls, value: str, info: ValidationInfo) -> str:
        allowed = allowed_estimators(info.context)
        if value not in allowed:
            missing = missing_extra(value)
            if missing is not None:
                raise bridge_error(missing, "or choose a scikit-learn estimator, e.g. HistGradientBoostingClassifier")
            hint = did_you_mean(value, set(allowed)) or (
                "estimators come from an allow-list that engineers extend in the team policy; "
                "'airflow-bridge schema' lists the built-in ones"
            )
            raise bridge_error(f"estimator '{value}' is not on the allow-list", hint)
        return value


class Training(_Section):
    compute: str = Field(default="local", description="'local' (in the worker) or a compute tier.")
    timeout_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    retries: int = Field(default=1, ge=0, le=10, description="Retries on infrastructure failures.")


class Threshold(_Section):
    """A gate on one metric; at least one bound."""

    min: float | None = Field(default=None, allow_inf_nan=False)  # a NaN bound would fail every run
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise bridge_error("a threshold needs 'min', 'max' or both", "for example {min: 0.8}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise bridge_error(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Champion(_Section):
    """Compare with the version behind the deployment alias; the candidate must beat it."""

    metric: str
    min_improvement: float = Field(
        default=0.0, allow_inf_nan=False, description="How much better the candidate must be."
    )


class BaselineGate(_Section):
    """The model must beat a dummy model (most frequent class / mean) on the same held-out rows."""

    metric: str = Field(description="The metric compared, e.g. roc_auc or mae (one the task computes).")
    min_improvement: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="How much better than the baseline the model must be (for errors such as mae: how much lower).",
    )


class CrossValidation(_Section):
    """k-fold cross-validation of the same pipeline on the training rows (seeded): mean ± std per metric."""

    folds: int = Field(description="Number of folds, 2 to 20; each one refits the model, so training takes longer.")
    gate_on: Literal["holdout", "lower_bound"] = Field(
        default="holdout",
        description="What the thresholds apply to: 'holdout' (the held-out metric) or 'lower_bound' (the "
        "cross-validation mean - std; mean + std for errors such as mae).",
    )

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value < 2:
            raise bridge_error(
                f"folds: {value} is not cross-validation (it needs at least 2 folds)",
                "use folds: 5 (a common choice), or remove cross_validation to get bootstrap intervals instead",
            )
        if value > 20:
            raise bridge_error(
                f"folds: {value} refits the model {value} times", "use at most 20 folds (5 or 10 is usual)"
            )
        return value


class Validation(_Section):
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    champion: Champion | None = None
    baseline: BaselineGate | None = Field(
        default=None, description="Optional gate: beat the dummy baseline by min_improvement on metric."
    )
    cross_validation: CrossValidation | None = Field(
        default=None,
        description="Optional k-fold cross-validation on the training rows; without it the report shows bootstrap "
        "95 % intervals of the held-out metrics.",
    )


class RegistrySection(_Section):
    model: Name | None = Field(default=None, description="Registered model name; the spec name by default.")
    conn_id: str | None = Field(
        default=None, description="Connection of the registry database; model_registry_default when omitted."
    )

    _conn = field_validator("conn_id")(check_conn_id)


class Deployment(_Section):
    """Where the new version goes: the keys every target shares, plus the target's own settings.

    Any other key is a setting of the target (``serving`` for ``kserve``); the target's settings
    model checks them (:mod:`airflow_bridge.spec.targets`), so an unknown key is still an error.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    target: Name = Field(
        default="local",
        description="Where the model is served: an installed deployment target. Built in: 'local' (the registry "
        "alias, airflow-bridge serve) and 'kserve' (a KServe InferenceService); packages add more.",
    )
    alias: Name = Field(default="production", description="Alias pointed at the new version.")
    approval: Literal["policy", "required"] = Field(
        default="policy",
        description="'policy': the team policy decides; 'required': always ask an approver.",
    )

    @property
    def settings(self) -> dict[str, Any]:
        """The target's own keys, as written (its settings model checks them)."""
        return dict(self.model_extra or {})


class Experiment(BaseModel):
    """An experiment spec: data, model, gates, registration and deployment of one model."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)

    api_version: Literal["airflow-bridge/v1"] = Field(alias="apiVersion")
    kind: Literal["Experiment"]
    name: Name = Field(description="Unique name; becomes the DAG id.")
    description: str = Field(default="", description="Shown as the DAG's documentation.")
    owner: str = Field(min_length=1, description="Airflow user who owns (and authored) the experiment.")
    team: str = Field(min_length=1, description="Team whose policy applies.")
    schedule: str | None = Field(default=None, description="Cron expression or preset such as @weekly.")
    start_date: dt.date = Field(default=dt.date(2024, 1, 1), strict=False)
    tags: list[str] = Field(default_factory=list)
    data: Data
    model: ModelSection
    training: Training = Training()
    validation: Validation = Validation()
    registry: RegistrySection = RegistrySection()
    deployment: Deployment | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None or value in SCHEDULE_PRESETS:
            return value
        if value.startswith("@"):
            hint = did_you_mean(value, SCHEDULE_PRESETS) or f"presets: {', '.join(SCHEDULE_PRESETS)}"
            raise bridge_error(f"unknown schedule preset '{value}'", hint)
        parts = value.split()
        if len(parts) != 5 or not all(_CRON_FIELD.match(p) for p in parts):
            raise bridge_error(
                f"'{value}' is not a cron expression",
                "use 5 fields, e.g. '0 6 * * 1', or a preset like @weekly",
            )
        from croniter import croniter  # what Airflow validates schedules with; imported only for cron strings

        if not croniter.is_valid(value):
            raise bridge_error(
                f"'{value}' is not a valid cron expression",
                "fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-6)",
            )
        return value

    @property
    def registered_model(self) -> str:
        return self.registry.model or self.name

    @property
    def task_kind(self) -> TaskKind:
        """Classification or regression, from the spec or the estimator allow-list."""
        return self.model.task or DEFAULT_ESTIMATORS.get(self.model.estimator, "classification")


def allowed_estimators(context: Any) -> dict[str, TaskKind]:
    """The allow-list in force: built-ins plus what the validation context (team policy) adds."""
    extra = (context or {}).get("estimators") if isinstance(context, dict) else None
    return {**DEFAULT_ESTIMATORS, **extra} if extra else DEFAULT_ESTIMATORS
