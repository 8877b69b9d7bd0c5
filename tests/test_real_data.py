"""Real, messy tables end to end: the model is a pipeline fitted on raw rows and served on raw rows.

Three public-domain tables (dag_specs/data/README.md): the Palmer penguins as the field lab exported
them, the cleaned penguin table and daily Seattle weather. Each is trained with ``airflow-bridge run``
and served over HTTP (FastAPI's test client) with rows as they appear in the file: text, blanks,
categories never seen in training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.helpers import EXAMPLES, FIXTURES, cli

pytestmark = pytest.mark.slow
DATA = FIXTURES / "data"


def _spec(folder: Path, name: str, data: str, target: str, estimator: str, **extra: Any) -> Path:
    spec = {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Experiment",
        "name": name,
        "owner": "carol",
        "team": "ecology",
        "data": {"training": {"uri": data, "target": target}, "split": {"seed": 3}, **extra.pop("data", {})},
        "model": {"estimator": estimator, **extra.pop("model", {})},
        "deployment": {"alias": "staging"},
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _run(spec: Path, home: Path) -> dict[str, Any]:
    done = cli("run", spec, "--home", home, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def _client(home: Path, model: str) -> Any:
    from fastapi.testclient import TestClient

    from airflow_bridge.registry import ModelRegistry
    from airflow_bridge.serving.app import ModelHolder, create_app

    holder = ModelHolder(ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}"), model, "staging")
    holder.load_initial()
    return TestClient(create_app(holder))


def _raw_rows(csv: Path, count: int) -> list[dict[str, Any]]:
    """Rows exactly as text in the file: every value a string, blanks as empty strings."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return [dict(row) for row in frame.head(count).to_dict(orient="records")]


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example spec on the raw field-lab export, run as a user runs it."""
    base = tmp_path_factory.mktemp("penguins")
    shutil.copytree(EXAMPLES, base / "specs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    home = base / "home"
    return {"summary": _run(base / "specs" / "penguin_species.yaml", home), "home": home}


def test_the_raw_lab_export_trains_with_each_column_role_explained(penguins: dict[str, Any]) -> None:
    summary = penguins["summary"]
    assert summary["state"] == "success" and summary["deployment"]["alias"] == "staging"
    from airflow_bridge.registry import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{penguins['home'] / 'airflow_bridge' / 'registry.db'}")
    roles = {c: (r["role"], r["reason"]) for c, r in registry.get_version("penguin_species", 1).data["roles"].items()}
    assert roles["Region"][0] == "ignore" and "same value in every row" in roles["Region"][1]
    assert roles["Individual ID"] == ("ignore", "set to ignore in the spec (data.columns)")
    assert roles["Island"][0] == "categorical" and roles["Sex"][0] == "categorical"
    assert roles["Date Egg"][0] == "datetime"
    assert roles["Body Mass (g)"][0] == "numeric" and roles["Species"][0] == "target"
    assert summary["metrics"]["balanced_accuracy"] >= 0.95


def test_the_served_model_takes_raw_rows_and_names_the_column_of_a_bad_one(penguins: dict[str, Any]) -> None:
    client = _client(penguins["home"], "penguin_species")
    rows = _raw_rows(EXAMPLES / "data" / "penguins_raw.csv", 5)
    rows[1]["Sex"] = ""  # a blank, as in the file
    rows[2]["Island"] = "Anvers Island"  # a category never seen in training

    answer = client.post("/predict", json={"instances": rows})

    assert answer.status_code == 200, answer.text
    [note] = answer.json()["warnings"]
    assert note.startswith("column 'Island': 'Anvers Island' never seen in training")
    assert set(answer.json()["predictions"]) <= {
        "Adelie Penguin (Pygoscelis adeliae)",
        "Chinstrap penguin (Pygoscelis antarctica)",
        "Gentoo penguin (Pygoscelis papua)",
    }
    missing = client.post("/predict", json={"instances": [{k: v for k, v in rows[0].items() if k != "Island"}]})
    assert missing.status_code == 422 and "'Island'" in missing.json()["detail"]
    text = client.post("/predict", json={"instances": [{**rows[0], "Body Mass (g)": "heavy"}]})
    assert text.status_code == 422 and "column 'Body Mass (g)' takes numbers; got 'heavy'" in text.json()["detail"]


@pytest.mark.parametrize(
    ("table", "target", "estimator", "metric"),
    [
        ("penguins.csv", "body_mass_g", "sklearn.ensemble.HistGradientBoostingRegressor", "r2"),
        ("seattle_weather.csv", "weather", "sklearn.ensemble.RandomForestClassifier", "accuracy"),
        ("seattle_weather.csv", "temp_max", "sklearn.linear_model.Ridge", "r2"),
    ],
)
def test_more_public_tables_train_and_serve_on_raw_rows(
    tmp_path: Path, table: str, target: str, estimator: str, metric: str
) -> None:
    shutil.copy(DATA / table, tmp_path / table)
    name = f"{Path(table).stem}_{target}"
    summary = _run(_spec(tmp_path, name, table, target, estimator), tmp_path / "home")
    assert summary["state"] == "success" and metric in summary["metrics"]

    rows = _raw_rows(DATA / table, 3)
    for row in rows:
        row.pop(target)
    answer = _client(tmp_path / "home", name).post("/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3
