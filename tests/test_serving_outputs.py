"""What a served classifier answers: class probabilities on request (``/predict``, KServe v1 and v2), and
true/false columns written the ways a CSV writes them, at serving and in batch scoring.

The model is trained with ``airflow-bridge run`` on the raw Palmer penguin export with its ``Clutch
Completion`` (Yes/No) turned into a ``Clutch Complete`` column of ``True``/``False`` with blanks, as a
lab's export holds it; it is served by the real application (FastAPI's test client, with the server's
guards), and scored from CSV files as a batch job scores them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import EXAMPLES, cli

FLAG = "Clutch Complete"
MODEL = "penguin_flags"


def _derived_table(folder: Path) -> Path:
    raw = pd.read_csv(EXAMPLES / "data" / "penguins_raw.csv")
    flag = (raw.pop("Clutch Completion") == "Yes").astype(object)
    flag[::25] = None  # blanks, as exported
    raw.insert(7, FLAG, flag)
    path = folder / "penguins_flags.csv"
    raw.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The classifier trained and registered by ``airflow-bridge run``; its registry, pipeline and table."""
    from airflow_bridge.artifacts import load_model, read_verified
    from airflow_bridge.registry import ModelRegistry

    base = tmp_path_factory.mktemp("flags")
    specs = base / "specs"
    specs.mkdir()
    shutil.copy(EXAMPLES / "_policy.yaml", specs / "_policy.yaml")
    table = _derived_table(specs)
    spec = {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Experiment",
        "name": MODEL,
        "owner": "carol",
        "team": "ecology",
        "data": {
            "training": {"uri": table.name, "target": "Species"},
            "columns": {"Sample Number": "ignore", "Individual ID": "ignore", "Comments": "ignore"},
            "split": {"seed": 5},
        },
        "model": {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 40}},
        "deployment": {"alias": "staging"},
    }
    (specs / f"{MODEL}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    home = base / "home"
    done = cli("run", specs / f"{MODEL}.yaml", "--home", home, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    registry = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")
    version = registry.get_version(MODEL, 1)
    assert version.data["roles"][FLAG]["role"] == "numeric"  # skrub's kind for true/false
    pipeline = load_model(read_verified(version.artifact))
    frame = pd.read_csv(table)
    return {"registry": registry, "pipeline": pipeline, "frame": frame, "folder": base, "version": version}


@pytest.fixture(scope="module")
def client(trained: dict[str, Any]) -> Any:
    from fastapi.testclient import TestClient

    from airflow_bridge.serving.app import ModelHolder, create_app

    holder = ModelHolder(trained["registry"], MODEL, "staging")
    holder.load_initial()
    with TestClient(create_app(holder)) as test_client:
        yield test_client


def _rows(trained: dict[str, Any], count: int = 6) -> list[dict[str, Any]]:
    """Rows as JSON carries them: numbers as numbers, blanks as null, the flag as true/false."""
    features = trained["version"].data["features"]
    known = trained["frame"][features].dropna(subset=[FLAG])
    flag = known[FLAG].astype(bool)
    rows = pd.concat([known[flag].head(count - count // 2), known[~flag].head(count // 2)])
    records: list[dict[str, Any]] = json.loads(rows.to_json(orient="records"))
    assert {type(r[FLAG]) for r in records} == {bool} and len({r[FLAG] for r in records}) == 2
    return records


def _with_flag(rows: list[dict[str, Any]], spell: dict[bool, Any]) -> list[dict[str, Any]]:
    return [{**row, FLAG: spell[row[FLAG]]} for row in rows]


# -- true/false columns -----------------------------------------------------------------------------

SPELLINGS: dict[str, dict[bool, Any]] = {
    "True/False": {True: "True", False: "False"},
    "true/FALSE": {True: "true", False: "FALSE"},
    "yes/no": {True: "yes", False: "no"},
    "Y/N with blanks": {True: " Y ", False: "n "},
    "1/0 text": {True: "1", False: "0"},
    "1/0 numbers": {True: 1, False: 0},
    "1.0/0.0": {True: 1.0, False: 0.0},
    "t/f (PostgreSQL)": {True: "t", False: "f"},
}


def test_a_true_false_column_takes_every_spelling_a_csv_holds(trained: dict[str, Any], client: Any) -> None:
    rows = _rows(trained)
    expected = client.post("/predict", json={"instances": rows, "probabilities": True})
    assert expected.status_code == 200, expected.text
    for name, spell in SPELLINGS.items():
        answer = client.post("/predict", json={"instances": _with_flag(rows, spell), "probabilities": True})
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["predictions"] == expected.json()["predictions"], name
        assert answer.json()["probabilities"] == expected.json()["probabilities"], name
        assert "warnings" not in answer.json(), name
    # the value reaches the model as 1/0, not as a silent missing value
    step = trained["pipeline"].named_steps["columns"]
    seen = step.transform(pd.DataFrame(_with_flag(rows, SPELLINGS["yes/no"])))[FLAG]
    assert seen.tolist() == [1.0 if r[FLAG] else 0.0 for r in rows]
    blank = client.post("/predict", json={"instances": _with_flag(rows, {True: "", False: None})})
    assert blank.status_code == 200, blank.text


def test_anything_else_in_a_true_false_column_is_refused_naming_it(trained: dict[str, Any], client: Any) -> None:
    rows = _rows(trained)
    for value in ("maybe", 2, "ja"):
        answer = client.post("/predict", json={"instances": _with_flag(rows, {True: value, False: "no"})})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail == f"column '{FLAG}' takes true or false (True/False, yes/no, 1/0, in any case); got {value!r}"


def test_batch_scoring_reads_true_false_text_from_a_csv(trained: dict[str, Any]) -> None:
    from airflow_bridge.exceptions import DataError

    folder, pipeline = trained["folder"], trained["pipeline"]
    features = trained["version"].data["features"]
    rows = trained["frame"][features].head(40)
    expected = pipeline.predict(rows)
    spelled = rows.assign(**{FLAG: rows[FLAG].map({True: "yes", False: "NO"})})
    spelled.to_csv(folder / "to_score.csv", index=False)
    assert (pipeline.predict(pd.read_csv(folder / "to_score.csv")[features]) == expected).all()
    spelled.loc[spelled.index[3], FLAG] = "unknown?"
    spelled.to_csv(folder / "to_score_bad.csv", index=False)
    with pytest.raises(DataError, match=f"column '{FLAG}' takes true or false .* got 'unknown[?]'"):
        pipeline.predict(pd.read_csv(folder / "to_score_bad.csv")[features])


# -- probabilities ------------------------------------------------------------------------------------


def test_probabilities_come_with_the_class_labels_on_predict_and_kserve_v1(
    trained: dict[str, Any], client: Any
) -> None:
    rows, pipeline = _rows(trained), trained["pipeline"]
    frame = pd.DataFrame(rows)
    classes = [str(c) for c in pipeline.classes_]
    for path in ("/predict", f"/v1/models/{MODEL}:predict"):
        answer = client.post(path, json={"instances": rows, "probabilities": True})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["classes"] == classes and len(classes) == 3
        assert body["predictions"] == list(pipeline.predict(frame))
        np.testing.assert_allclose(body["probabilities"], pipeline.predict_proba(frame), rtol=1e-12)
        assert all(sum(row) == pytest.approx(1.0) for row in body["probabilities"])
        plain = client.post(path, json={"instances": rows}).json()
        assert "probabilities" not in plain and plain["predictions"] == body["predictions"]
    assert client.get("/metadata").json()["probabilities"] is True
    for flag in ("yes", 1, None):
        wrong = client.post("/predict", json={"instances": rows, "probabilities": flag})
        assert wrong.status_code == 422 and "'probabilities' must be true or false" in wrong.json()["detail"]


def _v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    frame = pd.DataFrame(rows)
    inputs = []
    for column in frame.columns:
        data = json.loads(frame[column].to_json(orient="values"))
        kind = "BYTES" if frame[column].dtype == object else "BOOL" if frame[column].dtype == bool else "FP64"
        inputs.append({"name": column, "shape": [len(data)], "datatype": kind, "data": data})
    return inputs


def test_kserve_v2_answers_output_tensors_with_probabilities_of_shape_rows_by_classes(
    trained: dict[str, Any], client: Any
) -> None:
    rows, pipeline = _rows(trained), trained["pipeline"]
    frame = pd.DataFrame(rows)
    expected = pipeline.predict_proba(frame)
    body = {"id": "req-7", "inputs": _v2_inputs(rows), "parameters": {"content_type": "pd", "probabilities": True}}
    answer = client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["model_name"] == MODEL and result["model_version"] == "1" and result["id"] == "req-7"
    outputs = {o["name"]: o for o in result["outputs"]}
    assert list(outputs) == ["predictions", "probabilities", "classes"]
    assert outputs["predictions"]["shape"] == [len(rows)] and outputs["predictions"]["datatype"] == "BYTES"
    assert outputs["predictions"]["data"] == list(pipeline.predict(frame))
    assert outputs["probabilities"]["shape"] == [len(rows), 3] and outputs["probabilities"]["datatype"] == "FP64"
    assert outputs["probabilities"]["data"] == pytest.approx(expected.flatten().tolist())  # row-major
    assert outputs["classes"]["data"] == [str(c) for c in pipeline.classes_]
    only = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": body["inputs"], "outputs": [{"name": "classes"}]})
    assert [o["name"] for o in only.json()["outputs"]] == ["classes"]
    labels = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": body["inputs"]}).json()
    assert [o["name"] for o in labels["outputs"]] == ["predictions"] and "id" not in labels


def test_kserve_v2_refusals_name_the_input(trained: dict[str, Any], client: Any) -> None:
    inputs = _v2_inputs(_rows(trained, 3))
    mass = next(i for i, t in enumerate(inputs) if t["name"] == "Body Mass (g)")
    cases: dict[str, tuple[Any, str]] = {
        "not v2": ({"instances": [{}]}, 'expected a v2 request {"inputs"'),
        "shape": (
            {"inputs": [{**inputs[mass], "shape": [5]}]},
            "inputs[0] ('Body Mass (g)'): 'shape' says 5 rows but 'data' holds 3",
        ),
        "2-D": ({"inputs": [{**inputs[mass], "shape": [1, 3]}]}, "'shape' must be [rows] or [rows, 1]"),
        "datatype": ({"inputs": [{**inputs[mass], "datatype": "FLOAT"}]}, "'datatype' must be one of BOOL, BYTES"),
        "ragged": (
            {"inputs": [inputs[0], {**inputs[mass], "shape": [2], "data": [1, 2]}]},
            "every input must have the same number of rows",
        ),
        "value": (
            {"inputs": [*inputs[:mass], {**inputs[mass], "data": [3500, "heavy", 3600]}, *inputs[mass + 1 :]]},
            "column 'Body Mass (g)' takes numbers; got 'heavy'",
        ),
        "nested value": (
            {"inputs": [*inputs[:mass], {**inputs[mass], "data": [3500, [1], 3600]}, *inputs[mass + 1 :]]},
            "row 1, column 'Body Mass (g)': a list where a single value is expected",
        ),
        "flag": ({"inputs": inputs, "parameters": {"probabilities": "true"}}, "'parameters.probabilities' must be"),
        "outputs": ({"inputs": inputs, "outputs": [{"name": "output-0"}]}, "'outputs' must list outputs by name"),
        "id": ({"inputs": inputs, "id": "x" * 500}, "'id' must be a string of at most 128 characters"),
        "no rows": ({"inputs": [{**inputs[0], "shape": [0], "data": []}]}, "the inputs hold no rows"),
    }
    for name, (body, expected) in cases.items():
        answer = client.post(f"/v2/models/{MODEL}/infer", json=body)
        assert answer.status_code == 422, (name, answer.text)
        assert expected in answer.json()["detail"], (name, answer.json()["detail"])
    other = client.post("/v2/models/other/infer", json={"inputs": inputs})
    assert other.status_code == 404 and f"serves model '{MODEL}'" in other.json()["detail"]


def test_an_estimator_without_predict_proba_is_named_with_the_reason() -> None:
    from airflow_bridge.ml.columns import infer_roles
    from airflow_bridge.ml.estimator import build_estimator, build_model_pipeline
    from airflow_bridge.serving.inputs import InputError
    from airflow_bridge.serving.outputs import refuse_without_probabilities

    frame = pd.read_csv(EXAMPLES / "data" / "breast_cancer.csv")
    svc = build_model_pipeline(build_estimator("sklearn.svm.SVC", {}, seed=0), infer_roles(frame, "malignant"))
    svc.fit(frame.drop(columns=["malignant"]), frame["malignant"])
    version = SimpleNamespace(version=4, estimator="sklearn.svm.SVC", task_kind="classification")
    with pytest.raises(InputError) as refused:
        refuse_without_probabilities("tumours", version, svc)
    assert refused.value.status == 422
    assert refused.value.message.startswith("model 'tumours' v4 (SVC) gives no class probabilities")
    assert "for SVC, set model.params.probability: true" in refused.value.message
