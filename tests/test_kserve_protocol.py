"""Registry artifacts served by KServe's own model server: which request bodies work, and that they
predict what the pipeline predicts where it was trained.

The models are trained here (pandas 3, in an Airflow-free process) and served from the KServe venv
(``make .venv-kserve``: kserve at the version of the ``kserve`` image, pandas 2 as KServe requires) by
``tests/kserve_predictor.py``, over HTTP, through KServe's REST v1 and v2 decoding. KServe's server binds
0.0.0.0 (it has no host setting); the port is a free one. No cluster, no sklearnserver image: see
docs/kserve.md for what that leaves unverified.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
KSERVE_VENV = REPO / ".venv-kserve"
KSERVE_PYTHON = KSERVE_VENV / "bin" / "python"
SPECS = REPO / "dag_specs"
MODELS = {"penguins": "penguin_species", "diabetes": "diabetes_progression", "penguins-lgbm": "penguin_species"}
ESTIMATORS = {"penguins-lgbm": ("lightgbm.LGBMClassifier", {"n_estimators": 30, "num_leaves": 7, "verbose": -1})}
"""Models trained with another estimator than their spec's: LightGBM inside the Pipeline, served by the same
sklearn server (its image adds lightgbm, dev/kserve-requirements.txt)."""

if not (KSERVE_VENV / "installed").exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{KSERVE_VENV} is missing: `make .venv-kserve` builds it (make unit does)")
    pytest.skip("the KServe venv is missing: run `make .venv-kserve`", allow_module_level=True)


def _trained(spec_name: str, root: Path, name: str) -> tuple[str, Any, list[Any]]:
    """(artifact path, a few rows without the target, the pipeline's own predictions on them)."""
    import dataclasses

    import dill  # noqa: F401 - imported before the artifact is written, as in an Airflow task process

    from airflow_bridge.actions.training import train
    from airflow_bridge.artifacts import ArtifactStore, load_model
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.loader import find_policy, load_policy
    from airflow_bridge.ml.data import read_table
    from airflow_bridge.spec.loader import load_spec

    loaded = load_spec(SPECS / f"{spec_name}.yaml")
    assert loaded.spec is not None, loaded.issues
    policy = load_policy(find_policy(SPECS)).policy
    assert policy is not None
    request = training_request(loaded.spec, policy)
    if name in ESTIMATORS:
        estimator, params = ESTIMATORS[name]
        request = dataclasses.replace(request, estimator=estimator, params=params)
    result = train(request, ArtifactStore(f"file://{root / name}"))
    path = result.artifact.uri.removeprefix("file://")
    table = read_table(request.data_uri, request.data_format, delimiter=request.delimiter, encoding=request.encoding)
    rows = table.frame.drop(columns=[request.target]).head(5)
    predictions = load_model(Path(path).read_bytes()).predict(rows)
    return path, rows, [p.item() if hasattr(p, "item") else p for p in predictions]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def kserve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, tuple[Any, list[Any]]]]]:
    """(base URL of a KServe model server serving both models, name → (rows, expected predictions))."""
    root = tmp_path_factory.mktemp("kserve")
    trained = {name: _trained(spec, root, name) for name, spec in MODELS.items()}
    port = _free_port()
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [str(KSERVE_PYTHON), str(REPO / "tests" / "kserve_predictor.py"), str(port)]
        + [f"{name}={path}" for name, (path, _, _) in trained.items()],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base, list(trained)):
            assert server.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, "KServe's model server did not become ready in 60 s"
            time.sleep(0.3)
        yield base, {name: (rows, expected) for name, (_, rows, expected) in trained.items()}
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def _ready(base: str, names: list[str]) -> bool:
    try:
        return all(httpx.get(f"{base}/v1/models/{name}").json().get("ready") for name in names)
    except httpx.HTTPError:
        return False


def _records(rows: Any) -> list[dict[str, Any]]:
    return list(json.loads(rows.to_json(orient="records")))


def _columns(rows: Any) -> dict[str, list[Any]]:
    return {column: json.loads(rows[column].to_json(orient="values")) for column in rows.columns}


def _same(got: list[Any], expected: list[Any]) -> bool:
    return got == expected or got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", list(MODELS))
def test_kserve_v1_takes_a_list_of_rows_or_columns_and_predicts_as_the_pipeline(
    kserve: tuple[str, dict[str, tuple[Any, list[Any]]]], name: str
) -> None:
    base, models = kserve
    rows, expected = models[name]
    for shape, body in {
        "[[rows]]": {"instances": [_records(rows)]},
        "[{column: [values]}]": {"instances": [_columns(rows)]},
    }.items():
        answer = httpx.post(f"{base}/v1/models/{name}:predict", json=body, timeout=30)
        assert answer.status_code == 200, (shape, answer.text)
        assert _same(answer.json()["predictions"], expected), shape


@pytest.mark.parametrize("name", list(MODELS))
def test_kserve_v1_refuses_bare_rows(kserve: tuple[str, dict[str, tuple[Any, list[Any]]]], name: str) -> None:
    """The trap docs/kserve.md warns about: ``{"instances": [row, row]}`` (the local target's first form)."""
    base, models = kserve
    rows, _ = models[name]
    answer = httpx.post(f"{base}/v1/models/{name}:predict", json={"instances": _records(rows)}, timeout=30)
    assert answer.status_code == 500
    assert "If using all scalar values, you must pass an index" in answer.text


@pytest.mark.parametrize("name", list(MODELS))
def test_kserve_v2_takes_named_columns_as_a_dataframe(
    kserve: tuple[str, dict[str, tuple[Any, list[Any]]]], name: str
) -> None:
    base, models = kserve
    rows, expected = models[name]
    inputs = [
        {"name": column, "shape": [len(rows)], "datatype": _v2_type(rows[column]), "data": values}
        for column, values in _columns(rows).items()
    ]
    body = {"inputs": inputs, "parameters": {"content_type": "pd"}}
    answer = httpx.post(f"{base}/v2/models/{name}/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["outputs"]
    assert _same(output["data"], expected)


def _v2_type(column: Any) -> str:
    import pandas as pd

    if pd.api.types.is_float_dtype(column):
        return "FP64"
    if pd.api.types.is_integer_dtype(column):
        return "INT64"
    return "BYTES"


def test_the_predictor_needs_no_airflow() -> None:
    """What the kserve image installs is enough to unpickle: airflow-bridge without its dependencies."""
    probe = "import importlib.util as u, sys; sys.exit(0 if not (u.find_spec('airflow') or u.find_spec('dill')) else 1)"
    assert subprocess.run([str(KSERVE_PYTHON), "-c", probe], check=False).returncode == 0
    assert sys.executable != str(KSERVE_PYTHON)
