"""Example models for the serving tests and benchmarks: a spec of dag_specs/ trained by the product's own
training action (no Airflow), registered in a throwaway SQLite registry with its alias on the version.

Not a test module: tests/test_serve_*.py and benchmarks/serve_load.py import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "dag_specs"
EXAMPLES = {
    "breast_cancer_classifier": "breast_cancer",
    "penguin_species": "penguin_species",
    "diabetes_progression": "diabetes_progression",
}


@dataclass
class Example:
    """A registered example model: where, its artifact file, and rows of its table without the target."""

    registry_url: str
    model: str
    artifact_path: str
    rows: Any
    """A pandas DataFrame of the table's feature columns (the rows clients send)."""


def register_example(spec_name: str, root: Path, *, alias: str = "production") -> Example:
    """Train ``dag_specs/<spec_name>.yaml`` into ``root`` and register it as v1 with ``alias`` on it."""
    import dill  # noqa: F401 - imported before the artifact is written, as in an Airflow task process

    from airflow_bridge.actions.training import train
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.loader import find_policy, load_policy
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.ml.data import read_table
    from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
    from airflow_bridge.registry.records import binding_for
    from airflow_bridge.spec.loader import load_spec

    loaded = load_spec(SPECS / f"{spec_name}.yaml")
    assert loaded.spec is not None, loaded.issues
    policy = load_policy(find_policy(SPECS)).policy
    assert policy is not None
    request = training_request(loaded.spec, policy)
    result = train(request, ArtifactStore(f"file://{root / 'artifacts'}"))
    table = read_table(request.data_uri, request.data_format, delimiter=request.delimiter, encoding=request.encoding)
    url = f"sqlite:///{root / 'registry.db'}"
    registry = ModelRegistry(url)
    lab = Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"lab": {"approval_required_for": []}}}
    )
    features = list(result.data.features)
    registry.register_version(
        request.model,
        result.artifact,
        estimator=result.estimator,
        task_kind=result.task_kind,
        data={"features": features, "target": request.target},
        run=RunRef("serve_test", "run1", "register"),
        actor="test",
        card=ModelCard(owner="test", team="lab"),
        policy=binding_for(lab, "specs/_policy.yaml"),
    )
    registry.deploy(request.model, 1, alias=alias, target="local", actor="test")
    return Example(url, request.model, result.artifact.uri.removeprefix("file://"), table.frame[features])


DOUBLER_FEATURES = ["x1", "x2"]


def register_doubler(root: Path, coefs: tuple[float, ...] = (1.0, 2.0, 3.0)) -> str:
    """A tiny regressor per coefficient (y ≈ coef * x1: the answer shows which version served), v1 on
    ``production``; the registry URL."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    x = np.array([[i, 0.0] for i in range(10)])
    return _register_regressors(root, "doubler", [LinearRegression().fit(x, coef * x[:, 0]) for coef in coefs])


STALL_X1 = 999
"""The ``x1`` that makes :func:`stall_on_signal`, and so the staller model, hang."""


def stall_on_signal(frame: Any) -> Any:
    """The staller model's first step: rows pass unchanged, unless one has ``x1`` = 999 (then it hangs)."""
    import time

    if (frame["x1"] == STALL_X1).any():
        time.sleep(600)
    return frame


def register_staller(root: Path) -> str:
    """A linear model (y = x1) that hangs on a row with ``x1`` = 999, v1 on ``production``; the registry URL."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    frame = pd.DataFrame({"x1": np.arange(10.0), "x2": np.zeros(10)})
    model = make_pipeline(FunctionTransformer(stall_on_signal), LinearRegression()).fit(frame, frame["x1"])
    return _register_regressors(root, "staller", [model])


def _register_regressors(root: Path, name: str, models: list[Any]) -> str:
    """Each model a version of ``name`` (columns x1, x2; team lab, no approvals), v1 on ``production``."""
    from airflow_bridge.artifacts import ArtifactStore, dump_model
    from airflow_bridge.governance.policy import Policy
    from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef
    from airflow_bridge.registry.records import binding_for

    url = f"sqlite:///{root / 'registry.db'}"
    registry, store = ModelRegistry(url), ArtifactStore(f"file://{root / 'artifacts'}")
    lab = Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"lab": {"approval_required_for": []}}}
    )
    for run, model in enumerate(models, start=1):
        registry.register_version(
            name,
            store.put(dump_model(model), f"models/{name}", ".joblib"),
            estimator="sklearn.linear_model.LinearRegression",
            task_kind="regression",
            data={"features": DOUBLER_FEATURES, "target": "y"},
            run=RunRef("serve_test", f"run{run}", "register"),
            actor="test",
            card=ModelCard(owner="test", team="lab"),
            policy=binding_for(lab, "specs/_policy.yaml"),
        )
    registry.deploy(name, 1, alias="production", target="local", actor="test")
    return url


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(url: str, model: str, *options: str, log: Path) -> tuple[str, Any]:
    """A running ``airflow-bridge serve MODEL`` (base URL, process), its stderr (access log) into ``log``."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "airflow_bridge.cli.main", "serve", model, "--registry-url", url]
    handle = log.open("w")
    server = subprocess.Popen(
        [*command, "--port", str(port), "--refresh-seconds", "0.2", *options],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    handle.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return base, server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"serve did not start: {log.read_text()}")
        time.sleep(0.2)


def stop_serve(server: Any) -> None:
    import subprocess

    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
