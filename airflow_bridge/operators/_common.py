"""Helpers shared by the operators: who and which task caused a change, and error translation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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
    from airflow_bridge.hooks.registry import ModelRegistryHook

    return ModelRegistryHook(conn_id).get_registry()


@contextlib.contextmanager
def final_on_user_error() -> Iterator[None]:
    """User-caused errors (bad data, bad params, refused checksums) fail the task without retries.

    Retrying cannot fix them; infrastructure errors (an unreachable registry) pass through and retry.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_bridge.exceptions import (
        BridgeError,
        RegistryUnavailableError,
    )

    try:
        yield
    except RegistryUnavailableError:
        raise
    except BridgeError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def as_dict(value: Any, what: str) -> dict[str, Any]:
    """XCom input check: engineers wiring operators by hand get a clear message, not a KeyError."""
    if not isinstance(value, dict):
        from airflow_bridge.exceptions import BridgeError

        raise BridgeError(f"{what} must be the XCom of the upstream task (a dict), got {type(value).__name__}")
    return value
