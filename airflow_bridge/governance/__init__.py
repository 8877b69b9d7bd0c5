"""Governance: the team policy (approvers, tiers, quotas, allowed estimators) and its enforcement."""

from __future__ import annotations

from airflow_bridge.governance.loader import (
    LoadedPolicy,
    check_against_policy,
    context_for_folder,
    find_policy,
    load_policy,
    needs_approval,
    spec_context,
)
from airflow_bridge.governance.policy import OPEN_POLICY, POLICY_FILE, Policy, TeamPolicy

__all__ = [
    "OPEN_POLICY",
    "POLICY_FILE",
    "LoadedPolicy",
    "Policy",
    "TeamPolicy",
    "check_against_policy",
    "context_for_folder",
    "find_policy",
    "load_policy",
    "needs_approval",
    "spec_context",
]
