"""``airflow-bridge serve`` over real HTTP: predictions, alias moves without restart, refused tampering."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_bridge.artifacts import ArtifactStore, dump_model
from airflow_bridge.governance.policy import Policy
from airflow_bridge.registry import ModelCard, ModelRegistry
from airflow_bridge.registry.records import binding_for

FEATURES = ["x1", "x2"]


def _register(registry: ModelRegistry, store: ArtifactStore, model: str, coef: float, run: int) -> int:
    """Fit a tiny regressor whose predictions reveal which version answered (y ≈ coef * x1)."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from airflow_bridge.registry import RunRef

    x = np.array([[i, 0.0] for i in range(10)])
    estimator = LinearRegression().fit(x, coef * x[:, 0])
    ref = store.put(dump_model(estimator), f"models/{model}", ".joblib")
    version = registry.register_version(
        model,
        ref,
        estimator="sklearn.linear_model.LinearRegression",
        task_kind="regression",
        data={"features": FEATURES, "target": "y"},
        run=RunRef("serve_test", f"run{run}", "register"),
        actor="test",
        card=ModelCard(owner="test", team="lab"),
        policy=LAB_POLICY,  # the lab team moves production without approval
    )
    return version.version


LAB_POLICY = binding_for(
    Policy.model_validate(
        {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"lab": {"approval_required_for": []}}}
    ),
    "specs/_policy.yaml",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ModelRegistry, ArtifactStore, str, subprocess.Popen[str]]]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry, store = ModelRegistry(url), ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    for run, coef in enumerate((1.0, 2.0, 3.0), start=1):
        _register(registry, store, "doubler", coef, run)
    registry.deploy("doubler", 1, alias="production", target="local", actor="test")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_bridge.cli.main",
            "serve",
            "doubler",
            "--port",
            str(port),
            "--registry-url",
            url,
            "--refresh-seconds",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/metadata", timeout=1)
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"server did not start: {server.stdout.read() if server.stdout else ''}")
            time.sleep(0.2)
    yield registry, store, base, server
    server.terminate()
    server.wait(timeout=10)


def _until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_serves_predictions_and_follows_alias_moves(served) -> None:
    registry, _, base, _ = served

    metadata = httpx.get(f"{base}/metadata").json()
    assert metadata["version"] == 1
    assert metadata["sha256"] == registry.get_version("doubler", 1).artifact.sha256
    assert metadata["features"] == FEATURES
    assert "artifact_uri" not in metadata and metadata["artifact_name"] == f"{metadata['sha256']}.joblib"
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 4, "x2": 0}]}).json()
    assert answer["version"] == 1 and answer["predictions"][0] == pytest.approx(4.0)

    registry.deploy("doubler", 2, alias="production", target="local", actor="test", expected=1)

    moved = _until(
        lambda: (
            httpx.post(f"{base}/predict", json={"instances": [{"x1": 4, "x2": 0}]}).json()
            if httpx.get(f"{base}/metadata").json()["version"] == 2
            else None
        )
    )
    assert moved["version"] == 2 and moved["predictions"][0] == pytest.approx(8.0)


def test_kserve_v1_bodies_are_served_too(served) -> None:
    """A client of the kserve target works against local unchanged: KServe v1's route and table shapes."""
    _, _, base, _ = served
    rows = [{"x1": 4, "x2": 0}, {"x1": 1, "x2": 1}]
    bodies = {
        "rows": {"instances": rows},
        "KServe v1 list of rows": {"instances": [rows]},
        "KServe v1 columns": {"instances": [{"x1": [4, 1], "x2": [0, 1]}]},
    }
    expected = httpx.post(f"{base}/predict", json=bodies["rows"]).json()["predictions"]
    assert expected[0] == pytest.approx(4.0)
    for path in ("/predict", "/v1/models/doubler:predict"):
        for shape, body in bodies.items():
            answer = httpx.post(f"{base}{path}", json=body)
            assert answer.status_code == 200, (path, shape, answer.text)
            assert answer.json()["predictions"] == expected, (path, shape)
    other = httpx.post(f"{base}/v1/models/tripler:predict", json=bodies["rows"])
    assert other.status_code == 404 and "serves model 'doubler'" in other.json()["detail"]
    ragged = httpx.post(f"{base}/predict", json={"instances": [{"x1": [4, 1], "x2": [0]}]})
    assert ragged.status_code == 422 and "cannot read the instances as a table" in ragged.json()["detail"]


def test_bad_requests_get_clear_errors(served) -> None:
    _, _, base, _ = served

    missing = httpx.post(f"{base}/predict", json={"instances": [{"x1": 1}]})
    assert missing.status_code == 422 and "x2" in missing.json()["detail"]
    empty = httpx.post(f"{base}/predict", json={"instances": []})
    assert empty.status_code == 422


def test_tampered_version_is_refused_and_the_verified_one_keeps_serving(served) -> None:
    registry, _, base, _ = served
    tampered = registry.get_version("doubler", 3)
    path = Path(urlsplit(tampered.artifact.uri).path)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")

    registry.deploy("doubler", 3, alias="production", target="local", actor="test", expected=1)

    health = _until(lambda: (r := httpx.get(f"{base}/health")).status_code == 503 and r)
    assert health, "the server never reported the refused version"
    assert "refused v3" in health.json()["problem"] and "modified after registration" in health.json()["problem"]
    assert path.name in health.json()["problem"] and str(path.parent) not in health.json()["problem"]  # no folders
    answer = httpx.post(f"{base}/predict", json={"instances": [{"x1": 4, "x2": 0}]}).json()
    assert answer["version"] == 1  # still the last verified version, and it says so


def test_serve_refuses_to_start_on_a_tampered_artifact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry, store = ModelRegistry(url), ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    _register(registry, store, "doubler", 1.0, 1)
    registry.deploy("doubler", 1, alias="production", target="local", actor="test")
    path = Path(urlsplit(registry.get_version("doubler", 1).artifact.uri).path)
    path.write_bytes(b"not the model")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_bridge.cli.main",
            "serve",
            "doubler",
            "--registry-url",
            url,
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )

    assert result.returncode == 1
    assert "modified after registration" in result.stderr and "refusing to use it" in result.stderr


def test_artifacts_load_without_dill_even_when_written_after_it(tmp_path: Path) -> None:
    """Airflow processes import dill before joblib; a model written there must load where dill is absent."""
    import subprocess
    import sys

    artifact = tmp_path / "model.joblib"
    write = (
        "import dill, joblib, sys\n"  # the order of an Airflow task process
        "from sklearn.linear_model import LinearRegression\n"
        "from airflow_bridge.artifacts import dump_model\n"
        "model = LinearRegression().fit([[0.0], [1.0], [2.0]], [type(None) is None, 2.0, 4.0])\n"
        f"open({str(artifact)!r}, 'wb').write(dump_model({{'model': model, 'none': type(None)}}))\n"
    )
    subprocess.run([sys.executable, "-c", write], check=True)
    read = (
        "import sys; sys.modules['dill'] = None  # not installed\n"
        "import joblib\n"
        f"loaded = joblib.load({str(artifact)!r})\n"
        "assert loaded['none'] is type(None)\n"
        "print(round(float(loaded['model'].predict([[3.0]])[0]), 6))\n"
    )
    done = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0"
