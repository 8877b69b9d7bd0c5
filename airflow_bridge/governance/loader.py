"""Loading the team policy (with positions, like specs) and turning it into spec checks."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from airflow_bridge.governance.compute import compute_findings
from airflow_bridge.governance.policy import OPEN_POLICY, POLICY_FILE, Policy
from airflow_bridge.issues import SpecIssue, did_you_mean, failure_issue
from airflow_bridge.spec.loader import (
    LoadedSpec,
    dotted_path,
    load_spec,
    mark_duplicate_names,
    pydantic_issues,
)
from airflow_bridge.spec.models import Experiment
from airflow_bridge.spec.numbers import number_findings
from airflow_bridge.spec.semantics import Finding, SpecContext
from airflow_bridge.spec.yamlsafe import YamlProblem, load_located, read_bounded


@dataclass
class LoadedPolicy:
    """A policy file's outcome: the policy, or the issues that make it unusable."""

    path: str | None
    """As shown to users (relative to the specs folder's parent)."""
    policy: Policy | None = None
    issues: list[SpecIssue] = field(default_factory=list)
    sha256: str = ""
    file: str | None = None
    """The file read (None: no policy file, the open policy)."""

    @property
    def identity(self) -> str | None:
        """The source a model's binding records for this policy (``governance.identity``); None without a file."""
        from airflow_bridge.governance.identity import policy_identity

        return policy_identity(self.file) if self.file else None

    @property
    def ok(self) -> bool:
        return self.policy is not None and not self.issues


def find_policy(start: str | os.PathLike[str]) -> str | None:
    """The nearest ``_policy.yaml`` in ``start`` (a folder or a spec file's folder) or its parents.

    The search stops at a repository root (a folder holding ``.git``).
    """
    here = Path(start).resolve()
    folder = here if here.is_dir() else here.parent
    for candidate in [folder, *folder.parents]:
        if (candidate / POLICY_FILE).is_file():
            return str(candidate / POLICY_FILE)
        if (candidate / ".git").exists():
            break
    return None


def load_policy(path: str | None, *, display: str | None = None) -> LoadedPolicy:
    """Load ``path``; ``None`` means no policy file: the open policy applies."""
    if path is None:
        return LoadedPolicy(None, OPEN_POLICY)
    shown = display or path
    try:
        raw = read_bounded(path)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return LoadedPolicy(shown, issues=[SpecIssue(shown, 1, 1, "", f"cannot read policy: {reason}")])
    if isinstance(raw, YamlProblem):  # too large, or not a regular file
        return LoadedPolicy(shown, issues=[SpecIssue(shown, 1, 1, "", raw.message, raw.hint)], file=path)
    loaded = LoadedPolicy(shown, sha256=hashlib.sha256(raw).hexdigest(), file=path)
    try:
        _read_policy(loaded, raw)
    except Exception as exc:  # fail closed with the reason, never take the folder's parse down
        loaded.policy = None
        loaded.issues.append(failure_issue(shown, "could not read the team policy", exc))
    return loaded


def _read_policy(loaded: LoadedPolicy, raw: bytes) -> None:
    shown = loaded.path or ""
    doc = load_located(raw)
    for problem in doc.problems:
        position = problem.position
        loaded.issues.append(
            SpecIssue(shown, position.line, position.col, dotted_path(problem.path), problem.message, problem.hint)
        )
    if loaded.issues:
        return
    if not isinstance(doc.data, dict):
        loaded.issues.append(SpecIssue(shown, 1, 1, "", "a policy is a mapping (apiVersion, kind: Policy, teams...)"))
        return
    for where, message, hint in number_findings(doc):
        position = doc.position_of(where)
        loaded.issues.append(SpecIssue(shown, position.line, position.col, dotted_path(where), message, hint))
    try:
        policy = Policy.model_validate(doc.data)
    except ValidationError as exc:
        numbers = {issue.field for issue in loaded.issues}
        loaded.issues.extend(i for i in pydantic_issues(exc, doc, shown, Policy) if i.field not in numbers)
    else:
        loaded.policy = None if loaded.issues else policy


def spec_context(policy: Policy) -> SpecContext:
    """What specs may use under ``policy``, and the policy's own spec checks."""
    from airflow_bridge.spec.semantics import SpecContext

    env_roots = SpecContext.from_environment().data_roots
    return SpecContext(
        estimators=dict(policy.estimators),
        data_roots=(*policy.data_roots, *env_roots),
        compute_tiers=("local", *policy.compute_tiers),
        policy=policy,
        checks=(lambda spec: check_against_policy(spec, policy),),
        notes=(no_policy_notes,) if policy is OPEN_POLICY else (),
    )


def no_policy_notes(spec: Experiment) -> Iterator[Finding]:
    """Warnings for a spec with no team policy in reach: a protected alias will not move."""
    if spec.deployment is not None and needs_approval(spec, OPEN_POLICY):
        yield (
            ("deployment", "alias"),
            f"no team policy (_policy.yaml) is in reach, so alias '{spec.deployment.alias}' is protected and nobody "
            "may approve: the run will stop at its approval and nothing will be deployed",
            "add a _policy.yaml next to the spec naming team members and approvers ('airflow-bridge init' writes "
            "a starter one), or deploy to an alias that needs no approval, e.g. alias: staging",
        )


def needs_approval(spec: Experiment, policy: Policy) -> bool:
    """Does deploying this spec need a human approval (the spec asks, or the team policy does)?"""
    if spec.deployment is None:
        return False
    return spec.deployment.approval == "required" or spec.deployment.alias in policy.aliases_needing_approval(spec.team)


def check_against_policy(spec: Experiment, policy: Policy) -> Iterator[Finding]:
    """Static policy checks: known team and member, allowed estimator and tier, parameter caps, someone to approve."""
    team = policy.team(spec.team)
    if policy.teams and team is None:
        yield (
            ("team",),
            f"team '{spec.team}' is not in the team policy",
            did_you_mean(spec.team, set(policy.teams)) or f"teams: {', '.join(sorted(policy.teams))}",
        )
    if team is not None:
        if team.members and spec.owner not in team.members:
            yield (
                ("owner",),
                f"'{spec.owner}' is not a member of team '{spec.team}'",
                f"members: {', '.join(team.members)}; engineers add members in the team policy",
            )
        if team.allowed_estimators is not None and spec.model.estimator not in team.allowed_estimators:
            yield (
                ("model", "estimator"),
                f"team '{spec.team}' may not use '{spec.model.estimator}'",
                did_you_mean(spec.model.estimator, set(team.allowed_estimators))
                or f"allowed: {', '.join(team.allowed_estimators)}",
            )
        if team.allowed_compute is not None and spec.training.compute not in team.allowed_compute:
            yield (
                ("training", "compute"),
                f"team '{spec.team}' may not use compute tier '{spec.training.compute}'",
                f"allowed: {', '.join(team.allowed_compute)}",
            )
    yield from compute_findings(spec, policy)  # quotas, and what a Kubernetes tier's pods can reach
    yield from param_cap_findings(spec, policy)
    yield from search_cap_findings(spec, policy)
    if (
        policy is not OPEN_POLICY  # no policy at all: a warning (no_policy_notes), the deployment fails closed
        and needs_approval(spec, policy)
        and spec.deployment
        and not policy.approvers_for(spec.team, spec.owner)
    ):
        yield (
            ("deployment", "alias"),
            f"alias '{spec.deployment.alias}' needs approval but team '{spec.team}' has no approver "
            f"other than the author '{spec.owner}'",
            "engineers list approvers in the team policy; authors cannot approve their own models",
        )


def param_cap_findings(spec: Experiment, policy: Policy) -> Iterator[Finding]:
    """Estimator parameters set above their cap (the team's, the policy's default, or the built-in one)."""
    for name, (cap, source) in policy.param_caps_for(spec.team).items():
        value = spec.model.params.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > cap:
            continue
        shown = f"{cap:.15g}"
        if source == "team":
            whose, setting = f"team '{spec.team}''s cap", f"teams.{spec.team}.param_caps.{name}"
        elif source == "defaults":
            whose, setting = "the team policy's default cap", f"defaults.param_caps.{name}"
        else:
            whose, setting = "the built-in cap", f"defaults.param_caps.{name}"
        where = "defaults.param_caps" if source == "defaults" else "param_caps"
        yield (
            ("model", "params", name),
            f"{value} is above {whose} of {shown} ({where}.{name})",
            f"use at most {shown}; engineers change the cap in the team policy ({setting})",
        )


def search_cap_findings(spec: Experiment, policy: Policy) -> Iterator[Finding]:
    """A search budget above the team's ``max_search_trials`` (or one without a trials budget under a cap)."""
    from airflow_bridge.ml.search import cap_refusal

    search, team = spec.model.search, policy.team(spec.team)
    cap = getattr(team, "max_search_trials", None)
    refusal = cap_refusal(search.budget.trials if search else None, cap, spec.team) if search else None
    if refusal is not None:
        yield (("model", "search", "budget", "trials"), *refusal)


def context_for_folder(folder: str, policy_path: str | None = None) -> tuple[SpecContext, LoadedPolicy]:
    """The spec context for a dags/specs folder: its policy file (or ``policy_path``) applied."""
    path = policy_path or (
        os.path.join(folder, POLICY_FILE) if os.path.isfile(os.path.join(folder, POLICY_FILE)) else None
    )
    loaded = load_policy(path, display=os.path.relpath(path, os.path.dirname(folder)) if path else None)
    return spec_context(loaded.policy or OPEN_POLICY), loaded


def load_specs_governed(
    paths: Sequence[str], policy_path: str | None = None, *, read_data: bool = False
) -> tuple[list[LoadedSpec], dict[str | None, LoadedPolicy]]:
    """Load specs, each against its nearest team policy (or ``policy_path``); names unique across all.

    A spec under an invalid policy is reported invalid (fail closed) with the policy's errors.
    ``read_data`` also checks each spec against its local training data (``validate``).
    """
    groups: dict[str | None, list[str]] = {}
    nearest: dict[str, str | None] = {}  # one policy search per folder, not per spec
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in nearest:
            nearest[folder] = find_policy(folder)
        groups.setdefault(policy_path or nearest[folder], []).append(path)
    results: list[LoadedSpec] = []
    policies: dict[str | None, LoadedPolicy] = {}
    for policy_file, files in groups.items():
        loaded = policies[policy_file] = load_policy(policy_file)
        context = dataclasses.replace(spec_context(loaded.policy or OPEN_POLICY), read_data=read_data)
        group = [load_spec(path, context) for path in files]
        if not loaded.ok:
            for result in group:
                result.issues.insert(
                    0,
                    SpecIssue(
                        result.path,
                        1,
                        1,
                        "",
                        f"the team policy {policy_file} is invalid",
                        f"fix {policy_file} first (its errors are listed with it)",
                    ),
                )
                result.spec = None
        results.extend(group)
    return mark_duplicate_names(results), policies
