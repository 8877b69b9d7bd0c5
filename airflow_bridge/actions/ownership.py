"""The transfer action: a model changes team (and policy), by an approver of both teams, audited.

A model belongs to the team that first registered it, under the policy found next to its spec; no
other team's spec or operator may register it or rebind its policy. A transfer is the one door that
changes that: ``actor`` must be an approver of the current team under the governing policy and of the
new team under the new policy (the registry checks both under the model's lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_bridge.actions.results import _XComForm
from airflow_bridge.exceptions import PolicyViolationError, RequestError

if TYPE_CHECKING:
    from airflow_bridge.registry.records import RunRef
    from airflow_bridge.registry.store import ModelRegistry


@dataclass(frozen=True)
class Transfer(_XComForm):
    model: str
    previous_team: str
    team: str
    policy: str
    """The new policy's source, as the binding records it."""
    actor: str


def transfer(
    registry: ModelRegistry,
    *,
    model: str,
    team: str,
    policy_file: str,
    actor: str,
    reason: str,
    root: Path | None = None,
    run: RunRef | None = None,
) -> Transfer:
    """Give ``model`` to ``team`` under the policy at ``policy_file`` (inside ``root`` when given: the
    API server takes only policies of its own dags folder)."""
    from airflow_bridge.governance.enforcement import load_policy_or_refuse
    from airflow_bridge.governance.identity import policy_identity
    from airflow_bridge.registry.records import binding_for

    path = Path(policy_file) if root is None else (root / policy_file)
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        raise RequestError(f"the policy {policy_file} is outside the dags folder of this Airflow; nothing changed")
    if not path.is_file():
        raise RequestError(f"no policy file {policy_file}" + (f" in {root}" if root else "") + "; nothing changed")
    policy = load_policy_or_refuse(str(path), "--policy")
    if policy.team(team) is None:
        raise PolicyViolationError(f"the policy {policy_file} has no team '{team}'; nothing changed")
    previous = registry.get_model(model).card.team
    source = policy_identity(path)
    registry.transfer(model, team=team, binding=binding_for(policy, source), actor=actor, reason=reason, run=run)
    return Transfer(model, previous, team, source, actor)
