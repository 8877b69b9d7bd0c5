"""Which policy governs a model, and the rules every door to a protected alias applies.

The policy is found without the current directory: the registry binds the team policy to the
model when a version is registered (``policy_bound`` in the audit trail). A model with no bound
policy falls back to the configured one (``[airflow_bridge] policy_file``, ``$AIRFLOW_BRIDGE_POLICY``,
or ``--policy`` on the CLI); with none in reach, the aliases protected by default fail closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.governance.policy import PROTECTED_BY_DEFAULT, Policy

SYSTEM_ACTORS = frozenset({"", "airflow"})
"""Actors that are not people: they never count as authors."""


@dataclass(frozen=True)
class GoverningPolicy:
    """The policy that governs a model (None: no policy in reach) and where it was found."""

    policy: Policy | None
    source: str
    sha256: str | None = None

    def protects(self, team: str, alias: str) -> bool:
        return is_protected(self.policy, team, alias)


def configured_policy_path() -> tuple[str, str] | None:
    """(path, where it was configured): ``[airflow_bridge] policy_file`` → ``$AIRFLOW_BRIDGE_POLICY``."""
    from airflow_bridge.config import POLICY_ENV, bridge_config

    configured = bridge_config("policy_file")
    if configured:
        return configured, "[airflow_bridge] policy_file"
    if os.environ.get(POLICY_ENV):
        return os.environ[POLICY_ENV], f"${POLICY_ENV}"
    return None


def load_policy_or_refuse(path: str, where: str) -> Policy:
    """The policy at ``path``; an unreadable or invalid file refuses the action (fail closed)."""
    from airflow_bridge.governance.loader import load_policy

    loaded = load_policy(path)
    if not loaded.ok or loaded.policy is None:
        problems = "; ".join(issue.format() for issue in loaded.issues) or "invalid"
        raise PolicyViolationError(
            f"the team policy {path} ({where}) is unreadable or invalid, so nothing may move: {problems}"
        )
    return loaded.policy


def team_move_refusal(governing: GoverningPolicy, model: str, team: str, user: str) -> str | None:
    """Why ``user`` may not move ``model``'s aliases as one of its team (None: they may).

    The Models page's rule: a governed model's aliases are moved there only by its team, members and
    approvers of the team in the policy that governs it. Models with no team in reach follow Airflow's
    auth manager alone.
    """
    rules = governing.policy.team(team) if governing.policy is not None else None
    if rules is None or user in {*rules.members, *rules.approvers}:
        return None
    allowed = ", ".join(sorted({*rules.members, *rules.approvers})) or "nobody"
    return (
        f"'{user}' is not a member or approver of team '{team}' in the policy that governs '{model}' "
        f"({governing.source}); its aliases are moved here by {allowed}"
    )


def is_protected(policy: Policy | None, team: str, alias: str) -> bool:
    """Does moving ``alias`` need an approval? With no policy in reach, the default protected aliases do."""
    if policy is None:
        return alias in PROTECTED_BY_DEFAULT
    return alias in policy.aliases_needing_approval(team)


def authors(*people: str | None) -> set[str]:
    """The people behind a version (the model's owner, who triggered the run that produced it): none of
    them may approve it."""
    return {person for person in people if person} - SYSTEM_ACTORS


def approval_refusal(policy: Policy | None, team: str, authors: set[str], user: str) -> str | None:
    """Why ``user`` may not approve a model of ``team`` by ``authors`` (None: they may). The one rule."""
    if not user:
        return "the answer carries no user"
    if user in authors:
        return f"'{user}' authored this model and cannot approve it (separation of duties)"
    if policy is None:
        return "no team policy governs this model, so nobody is an approver"
    approvers = policy.approvers_for(team, authors)
    if user not in approvers:
        return f"'{user}' is not an approver of team '{team}' (approvers: {', '.join(approvers) or 'none'})"
    return None


def no_policy_message(model: str, alias: str) -> str:
    return (
        f"alias '{alias}' is protected by default and no team policy governs '{model}': none was bound when it was "
        "registered and none is configured. Register the model from a specs folder that has a _policy.yaml naming "
        "its team's approvers ('airflow-bridge init' writes a starter one), or point at the deployment's policy with "
        "[airflow_bridge] policy_file (AIRFLOW__AIRFLOW_BRIDGE__POLICY_FILE) or $AIRFLOW_BRIDGE_POLICY"
    )
