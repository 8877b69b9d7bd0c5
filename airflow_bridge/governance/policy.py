"""Team policy: the YAML file engineers own (``_policy.yaml`` next to the specs).

It says who belongs to which team, who may approve, which aliases need approval, which
estimators and compute tiers each team may use, and the pools, concurrency and quotas that
apply. Specs are checked against it when validated; operators enforce it when tasks run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_bridge.governance.compute import ComputeQuota, ComputeTier
from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS, TaskKind
from airflow_bridge.ml.sanity import WARNING_CODES
from airflow_bridge.spec.models import NAME_PATTERN, bridge_error

POLICY_FILE = "_policy.yaml"
DOTTED_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
FORBIDDEN_MODULES = (
    "os",
    "sys",
    "subprocess",
    "builtins",
    "importlib",
    "shutil",
    "socket",
    "pickle",
    "marshal",
    "ctypes",
    "runpy",
    "code",
    "pty",
    "multiprocessing",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


BUILTIN_PARAM_CAPS: dict[str, float] = {"n_estimators": 10_000, "max_iter": 100_000}
"""Caps on costly estimator parameters when the team policy sets none for them: generous (no working
spec needs more), they stop a typo like ``n_estimators: 1000000000000`` from holding a worker until the
training timeout. A policy raises or lowers them with ``defaults.param_caps`` or per team."""

ParamCaps = dict[
    Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
    Annotated[float, Field(ge=0, allow_inf_nan=False)],
]
_CAPS_HELP = (
    "The most a spec may set an estimator parameter to, by parameter name, e.g. {n_estimators: 2000, "
    "max_iter: 10000}; checked when specs are validated and parsed. "
)


class CandidateRetention(_Section):
    """How long a model's candidates that failed a gate are kept (versions, and the candidates they were, stay)."""

    keep_last: int = Field(
        default=100, ge=1, description="The newest candidates of each model that failed a gate, always kept."
    )
    keep_days: float | None = Field(
        default=90.0,
        gt=0,
        description="Failed candidates younger than this many days are kept; null: only the newest keep_last are.",
    )


class TeamPolicy(_Section):
    members: list[str] = Field(default_factory=list, description="Airflow users who may own this team's specs.")
    approvers: list[str] = Field(default_factory=list, description="Airflow users who may approve deployments.")
    approval_required_for: list[str] | None = Field(
        default=None, description="Aliases whose moves need approval; the policy default when omitted."
    )
    allowed_estimators: list[str] | None = Field(default=None, description="Restrict estimators; all when omitted.")
    allowed_compute: list[str] | None = Field(default=None, description="Compute tiers allowed; all when omitted.")
    compute_quota: ComputeQuota | None = Field(
        default=None, description="The most one training run may ask for (cpu, memory, gpu); unbounded when omitted."
    )
    pool: str | None = Field(default=None, description="Airflow pool for the team's tasks.")
    max_active_runs: int = Field(default=1, ge=1, description="Concurrent runs per DAG.")
    max_active_tasks: int = Field(default=4, ge=1, description="Concurrent tasks per DAG.")
    max_versions_per_day: int | None = Field(default=None, ge=1, description="Quota of new versions per model.")
    approval_timeout_hours: float | None = Field(default=None, gt=0)
    allow_enforcement_opt_out: bool | None = Field(
        default=None,
        description="May an operator deploy to a protected alias with enforce_policy=False (audited)? "
        "The policy default when omitted.",
    )
    param_caps: ParamCaps = Field(
        default_factory=dict,
        description=_CAPS_HELP + "Each overrides the policy's defaults.param_caps for this team.",
    )
    fail_on_warnings: list[str] = Field(
        default_factory=list,
        description="Leakage and sanity warnings that fail validation for this team's models instead of only "
        "being shown: " + ", ".join(WARNING_CODES) + " (docs/governance.md).",
        json_schema_extra={"items": {"type": "string", "enum": list(WARNING_CODES)}},
    )
    candidate_retention: CandidateRetention | None = Field(
        default=None, description="Overrides the policy's defaults.candidate_retention for this team's models."
    )
    max_search_trials: int | None = Field(
        default=None,
        ge=1,
        description="The most trials one model.search may run (its budget.trials); a search with only a minutes "
        "budget is refused under a cap. Unbounded when omitted.",
    )

    @field_validator("fail_on_warnings")
    @classmethod
    def _known_warnings(cls, value: list[str]) -> list[str]:
        from airflow_bridge.issues import did_you_mean

        for code in value:
            if code not in WARNING_CODES:
                hint = did_you_mean(code, WARNING_CODES) or f"known warnings: {', '.join(WARNING_CODES)}"
                raise bridge_error(f"'{code}' is not a warning airflow-bridge raises", hint)
        return value


OPTIONAL_KEYS = ("param_caps", "fail_on_warnings", "candidate_retention", "max_search_trials")
"""Keys of ``defaults`` and teams left out of the bound document when unset (older policies keep their sha256)."""

PROTECTED_BY_DEFAULT = ("production",)
"""Aliases protected when no team policy governs a model: moving them fails closed."""


class PolicyDefaults(_Section):
    approval_required_for: list[str] = Field(default_factory=lambda: list(PROTECTED_BY_DEFAULT))
    approval_timeout_hours: float = Field(default=72.0, gt=0)
    allow_enforcement_opt_out: bool = Field(
        default=False, description="Whether operators may turn policy enforcement off (never by default)."
    )
    param_caps: ParamCaps = Field(
        default_factory=dict,
        description=_CAPS_HELP
        + "Applies to every team, each entry over the built-in cap of that parameter ("
        + ", ".join(f"{name}: {cap:g}" for name, cap in BUILTIN_PARAM_CAPS.items())
        + ").",
    )
    candidate_retention: CandidateRetention | None = Field(
        default=None,
        description="How long candidates that failed a gate are kept "
        "(airflow-bridge models candidates); 100 per model and 90 days when omitted.",
    )


# Deployment targets add keys of their own (kserve: serving_tiers, and allowed_serving in a team): the
# Policy and TeamPolicy this module exports are built with them from the installed targets
# (_with_target_fields, at the end), so the core below names no target.
class Policy(BaseModel):
    """The team policy file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    api_version: Literal["airflow-bridge/v1"] = Field(alias="apiVersion")
    kind: Literal["Policy"]
    data_roots: list[str] = Field(default_factory=list, description="Folders and URI prefixes data may come from.")
    estimators: dict[str, TaskKind] = Field(default_factory=dict, description="Estimators added to the allow-list.")
    compute_tiers: dict[str, ComputeTier] = Field(default_factory=dict)
    defaults: PolicyDefaults = PolicyDefaults()
    teams: dict[str, TeamPolicy] = Field(default_factory=dict)

    @field_validator("estimators")
    @classmethod
    def _safe_estimators(cls, value: dict[str, TaskKind]) -> dict[str, TaskKind]:
        for name in value:
            if not DOTTED_NAME.match(name):
                raise bridge_error(f"'{name}' is not a dotted class name", "for example xgboost.XGBClassifier")
            if name.split(".", 1)[0] in FORBIDDEN_MODULES:
                raise bridge_error(f"'{name}' is not an estimator", "only estimator classes may be allow-listed")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> Policy:
        known_estimators = set(DEFAULT_ESTIMATORS) | set(self.estimators)
        tiers = {"local", *self.compute_tiers}
        for team_name, team in self.teams.items():
            for name in team.allowed_estimators or []:
                if name not in known_estimators:
                    raise bridge_error(
                        f"team '{team_name}' allows unknown estimator '{name}'", "add it under 'estimators' first"
                    )
            for tier in team.allowed_compute or []:
                if tier not in tiers:
                    raise bridge_error(
                        f"team '{team_name}' allows unknown compute tier '{tier}'",
                        f"defined tiers: {', '.join(sorted(tiers))}",
                    )
            for alias in team.approval_required_for or []:
                if not re.match(NAME_PATTERN, alias):
                    raise bridge_error(f"team '{team_name}': '{alias}' is not an alias name")
        for plugin in _section_owners():
            for message, hint in plugin.policy_problems(self):
                raise bridge_error(message, hint)
        return self

    def team(self, name: str) -> TeamPolicy | None:
        return self.teams.get(name)

    def aliases_needing_approval(self, team: str) -> list[str]:
        rules = self.teams.get(team)
        if rules is not None and rules.approval_required_for is not None:
            return rules.approval_required_for
        return self.defaults.approval_required_for

    def approval_timeout_hours(self, team: str) -> float:
        rules = self.teams.get(team)
        return (rules.approval_timeout_hours if rules else None) or self.defaults.approval_timeout_hours

    def approvers_for(self, team: str, author: str | Iterable[str]) -> list[str]:
        """Who may approve a model of ``team`` written by ``author`` (one user or several): never an author."""
        authors = {author} if isinstance(author, str) else set(author)
        rules = self.teams.get(team)
        return [user for user in (rules.approvers if rules else []) if user not in authors]

    def candidate_retention_for(self, team: str) -> CandidateRetention:
        """How long ``team``'s unregistered candidates are kept: the team's rule, the default's, or 100 / 90 days."""
        rules = self.teams.get(team)
        return (
            (rules.candidate_retention if rules else None) or self.defaults.candidate_retention or CandidateRetention()
        )

    def allows_enforcement_opt_out(self, team: str) -> bool:
        rules = self.teams.get(team)
        if rules is not None and rules.allow_enforcement_opt_out is not None:
            return rules.allow_enforcement_opt_out
        return self.defaults.allow_enforcement_opt_out

    def warnings_failing_for(self, team: str) -> tuple[str, ...]:
        """The warning codes that fail validation for ``team`` (none without a team policy)."""
        rules = self.teams.get(team)
        return tuple(rules.fail_on_warnings) if rules is not None else ()

    def param_caps_for(self, team: str) -> dict[str, tuple[float, str]]:
        """Each capped parameter of ``team``: its cap, and where it is set ('team', 'defaults' or 'built-in')."""
        caps = {name: (cap, "built-in") for name, cap in BUILTIN_PARAM_CAPS.items()}
        caps.update({name: (cap, "defaults") for name, cap in self.defaults.param_caps.items()})
        rules = self.teams.get(team)
        if rules is not None:
            caps.update({name: (cap, "team") for name, cap in rules.param_caps.items()})
        return caps

    def document(self) -> dict[str, Any]:
        """The policy as a JSON document (what the registry binds to a model).

        Unset keys added since the first release (:data:`OPTIONAL_KEYS`) are left out, so a policy that sets
        none of them keeps the document (and sha256) it had before they existed.
        """
        document = self.model_dump(mode="json", by_alias=True)
        for section in (document["defaults"], *document["teams"].values()):
            for optional in OPTIONAL_KEYS:
                if not section.get(optional):
                    section.pop(optional, None)
        return document

    def canonical_sha256(self) -> str:
        """sha256 of the canonical JSON document: formatting and comments do not change it."""
        import hashlib
        import json

        text = json.dumps(self.document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _section_owners() -> list[Any]:
    """The installed targets that own keys of the policy (``policy_fields``/``team_fields``)."""
    from airflow_bridge.spec.targets import installed_targets

    return [p for p in installed_targets().usable.values() if callable(getattr(p, "policy_problems", None))]


def _with_target_fields(core: type[Policy]) -> tuple[type[Policy], type[TeamPolicy]]:
    """``Policy`` and ``TeamPolicy`` with the keys the installed targets own (read once, when this module
    is first imported: a target installed later needs a new process)."""
    from pydantic import create_model

    policy_fields: dict[str, Any] = {}
    team_fields: dict[str, Any] = {}
    for plugin in _section_owners():
        policy_fields |= {k: v for k, v in plugin.policy_fields.items() if k not in core.model_fields}
        team_fields |= {k: v for k, v in plugin.team_fields.items() if k not in TeamPolicy.model_fields}
    team: Any = create_model(
        "TeamPolicy", __base__=TeamPolicy, __module__=__name__, __doc__=TeamPolicy.__doc__, **team_fields
    )
    teams: Any = (dict[str, team], Field(default_factory=dict))
    policy: Any = create_model(
        "Policy", __base__=core, __module__=__name__, __doc__=core.__doc__, teams=teams, **policy_fields
    )
    return policy, team


if not TYPE_CHECKING:
    Policy, TeamPolicy = _with_target_fields(Policy)

OPEN_POLICY = Policy.model_validate({"apiVersion": "airflow-bridge/v1", "kind": "Policy"})
"""What applies without a policy file: any team, built-in estimators, local compute, and the aliases
protected by default (``production``) need an approval that nobody can give until a team policy names
approvers: a deployment there stops at its approval (fail closed). ``validate`` warns about it."""
