"""What the operators share: who and which task caused a change, the resolved registry, error translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_bridge.registry.records import RunRef
    from airflow_bridge.registry.store import ModelRegistry


def run_ref(context: Context) -> RunRef:
    from airflow_bridge.registry.records import RunRef

    ti = context["ti"]
    return RunRef(ti.dag_id, ti.run_id, ti.task_id)


LOCAL_ACTOR_ENV = "AIRFLOW_BRIDGE_LOCAL_ACTOR"
"""Set by ``airflow-bridge run``: the local user behind a ``dag.test()`` run (Airflow says 'dag_test')."""


def actor_of(context: Context, fallback: str = "airflow") -> str:
    """The user who triggered the run, or ``fallback`` for scheduled runs."""
    import os

    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None)
    if user == "dag_test":
        user = os.environ.get(LOCAL_ACTOR_ENV) or user
    return user or fallback


def open_registry(conn_id: str | None) -> ModelRegistry:
    """The registry of ``conn_id`` (or the resolution order of ``airflow_bridge.resolution``).

    In a local run (``airflow-bridge run``), names like ``--approve-as dana`` are claims of the OS user who
    ran it: that user is recorded as the principal of every event.
    """
    import os

    from airflow_bridge.resolution import open_registry as resolve_and_open
    from airflow_bridge.resolution import os_user

    registry = resolve_and_open(conn_id, in_airflow=True)
    if os.environ.get(LOCAL_ACTOR_ENV):
        return registry.acting_as(f"os:{os_user()}")
    return registry


@contextlib.contextmanager
def final_on_user_error() -> Iterator[None]:
    """User-caused errors (bad data, bad params, refused checksums or approvals) fail without retries.

    Retrying cannot fix them; infrastructure errors (an unreachable registry) pass through and retry.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_bridge.exceptions import BridgeError, is_user_error

    try:
        yield
    except BridgeError as exc:
        if not is_user_error(exc):
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
