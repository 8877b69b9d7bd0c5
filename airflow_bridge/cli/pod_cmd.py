"""``airflow-bridge pod train``: the entrypoint of a KubernetesTrainOperator pod.

It runs the same train action as a local task, with the request the operator put in the pod's
environment, writes the ``TrainingResult`` XCom where the XCom sidecar reads it, and tells the
operator how it failed: exit code 3 (and the termination log) for user errors, which fail the task
without retry; any other non-zero exit is an infrastructure failure, which retries.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from airflow_bridge.kubernetes import contract

pod_app = typer.Typer(help="Commands run inside Kubernetes pods (not for interactive use).", no_args_is_help=True)


@pod_app.command("train")
def train(
    artifact_root: Annotated[str, typer.Option("--artifact-root", help="Object-store root for the artifacts.")],
    artifact_conn_id: Annotated[
        str | None, typer.Option("--artifact-conn-id", help="Connection for the artifact root.")
    ] = None,
) -> None:
    """Train from $AIRFLOW_BRIDGE_TRAINING_REQUEST and write the result for the XCom sidecar.

    Exit codes: 0 trained, 3 user error (final), anything else an infrastructure failure (retried).
    """
    raise typer.Exit(run_training(os.environ, artifact_root, artifact_conn_id))


def run_training(env: Mapping[str, str], artifact_root: str, artifact_conn_id: str | None) -> int:
    """Train and write the XCom file; the exit code as documented on :func:`train`."""
    from airflow_bridge.exceptions import is_user_error

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    termination_log = env.get(contract.TERMINATION_LOG_ENV, contract.TERMINATION_LOG)
    try:
        request = contract.request_from_json(env[contract.REQUEST_ENV])
    except (KeyError, ValueError, TypeError) as exc:
        return _fail(
            termination_log, f"bad training request in ${contract.REQUEST_ENV}: {exc}", contract.USER_ERROR_EXIT
        )
    try:
        from airflow_bridge.actions.training import train as train_action
        from airflow_bridge.resolution import artifact_store

        result = train_action(request, artifact_store(artifact_root, artifact_conn_id, in_airflow=True))
    except Exception as exc:  # user errors are final; anything else is infrastructure: the task retries
        if is_user_error(exc):
            return _fail(termination_log, f"{type(exc).__name__}: {exc}", contract.USER_ERROR_EXIT)
        logging.getLogger(__name__).exception("training failed")
        return _fail(termination_log, f"{type(exc).__name__}: {exc}", 1)
    xcom_path = env.get(contract.XCOM_PATH_ENV, contract.XCOM_PATH)
    os.makedirs(os.path.dirname(xcom_path), exist_ok=True)
    with open(xcom_path, "w", encoding="utf-8") as handle:
        json.dump(result.to_xcom(), handle)
    print(f"Trained {request.model}: {result.artifact.uri} (sha256 {result.artifact.sha256[:12]})", flush=True)
    return 0


def _fail(termination_log: str, message: str, code: int) -> int:
    """Print ``message`` to the log and keep it (truncated to Kubernetes' limit) as the termination message."""
    print(message, file=sys.stderr, flush=True)
    try:
        with open(termination_log, "wb") as handle:
            handle.write(message.encode()[: contract.TERMINATION_MESSAGE_LIMIT])
    except OSError as exc:  # outside a container there may be no termination log
        print(f"(cannot write the termination log {termination_log}: {exc.strerror})", file=sys.stderr)
    return code
