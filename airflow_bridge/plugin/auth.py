"""Who may do what on the Models page and its API: Airflow's auth manager decides, per model's DAG.

Reading needs the ``Models`` custom view. Changing a model (promote, roll back, approve, reject,
transfer) needs what changing its DAG needs in Airflow: ``is_authorized_dag(method="PUT")`` on the DAG
that registers the model, plus the custom view. A viewer is refused (403) as Airflow's own API refuses
them; the team policy then decides among the users Airflow lets through (approvers, team members).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from airflow_bridge.registry.store import ModelRegistry

RESOURCE = "Models"
"""The custom view name the auth manager is asked about (``is_authorized_custom_view``)."""


def can_read(user: BaseUser) -> None:
    """403 unless the user may see the Models view."""
    from airflow.api_fastapi.app import get_auth_manager

    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE, user=user):
        raise HTTPException(403, f"user '{user.get_name()}' may not see models")


def model_dag(store: ModelRegistry, model: str) -> str | None:
    """The DAG that registers ``model`` (its newest version's), or None for a model registered outside Airflow.

    One indexed query (not a read of every version): writes stay fast on a model with 10,000 versions.
    """
    from airflow_bridge.registry import queries

    with store.reading(f"read the DAG of '{model}'") as conn:
        return queries.model_dag_id(conn, model)


def can_change(user: BaseUser, store: ModelRegistry, model: str, what: str) -> None:
    """403 unless Airflow lets ``user`` change the model's DAG (``PUT``) and use the Models view.

    Without a DAG (a model registered outside Airflow), the user must be allowed to change every DAG.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager: Any = get_auth_manager()
    name = user.get_name()
    if not manager.is_authorized_custom_view(method="POST", resource_name=RESOURCE, user=user):
        raise HTTPException(403, f"user '{name}' may not change models ({what} refused)")
    dag_id = model_dag(store, model)
    details = DagDetails(id=dag_id) if dag_id else None
    if not manager.is_authorized_dag(method="PUT", user=user, details=details):
        where = f"DAG '{dag_id}', which registers model '{model}'" if dag_id else "every DAG"
        raise HTTPException(
            403,
            f"user '{name}' may not {what}: Airflow does not let them change {where} (read-only role?); "
            "nothing changed",
        )
