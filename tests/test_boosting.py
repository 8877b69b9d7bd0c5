"""Gradient-boosting libraries as first-class estimators: LightGBM end to end on the raw penguin export.

LightGBM is installed in the test environment (the ``lightgbm`` extra); XGBoost and CatBoost are not,
which is how their "install the extra" refusal is tested.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_bridge.spec.loader import load_spec_text
from tests.helpers import EXAMPLES

LGBM = "lightgbm.LGBMClassifier"


def _penguin_spec(estimator: str, params: dict[str, Any]) -> dict[str, Any]:
    spec = yaml.safe_load((EXAMPLES / "penguin_species.yaml").read_text())
    spec["model"] = {"estimator": estimator, "params": params}
    return dict(spec)


def _issues(spec: dict[str, Any]) -> list[str]:
    loaded = load_spec_text(yaml.safe_dump(spec), str(EXAMPLES / "penguin_species.yaml"))
    return [f"{i.field}: {i.message}" + (f" ({i.hint})" if i.hint else "") for i in loaded.issues]


def test_validate_checks_lightgbm_parameters_without_importing_it() -> None:
    assert _issues(_penguin_spec(LGBM, {"n_estimators": 60, "num_leaves": 15, "verbose": -1})) == []
    assert _issues(_penguin_spec(LGBM, {"num_leafs": 15})) == [
        "model.params.num_leafs: LGBMClassifier has no parameter 'num_leafs' (did you mean 'num_leaves'?)"
    ]
    [rate] = _issues(_penguin_spec(LGBM, {"learning_rate": 0}))
    assert rate.startswith("model.params.learning_rate: ")


def test_a_library_that_is_not_installed_names_the_extra_to_install() -> None:
    [issue] = _issues(_penguin_spec("catboost.CatBoostClassifier", {}))
    assert issue == (
        "model.estimator: estimator 'catboost.CatBoostClassifier' needs the 'catboost' library, which is not "
        "installed where this runs: pip install 'airflow-bridge[catboost]' (on the workers, the dag-processor and "
        "the model server) (or choose a scikit-learn estimator, e.g. HistGradientBoostingClassifier)"
    )


def test_training_refuses_a_lightgbm_parameter_it_would_otherwise_ignore() -> None:
    from airflow_bridge.exceptions import EstimatorError
    from airflow_bridge.ml.estimator import build_estimator

    assert build_estimator(LGBM, {"num_leaves": 15, "verbose": -1}, seed=3).get_params()["random_state"] == 3
    with pytest.raises(EstimatorError, match=r"LGBMClassifier does not take parameter\(s\) 'num_leafs'"):
        build_estimator(LGBM, {"num_leafs": 15})


@pytest.fixture(scope="module")
def lightgbm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.test_real_data import _run

    base = tmp_path_factory.mktemp("lightgbm")
    shutil.copytree(EXAMPLES, base / "specs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = _penguin_spec(LGBM, {"n_estimators": 60, "num_leaves": 15, "verbose": -1})
    (base / "specs" / "penguin_species.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    home = base / "home"
    return {"summary": _run(base / "specs" / "penguin_species.yaml", home), "home": home}


def test_lightgbm_trains_validates_registers_and_deploys_on_the_raw_export(lightgbm_run: dict[str, Any]) -> None:
    from airflow_bridge.registry import ModelRegistry

    summary = lightgbm_run["summary"]
    assert summary["state"] == "success" and summary["deployment"]["alias"] == "staging"
    assert summary["metrics"]["balanced_accuracy"] >= 0.95
    registry = ModelRegistry(f"sqlite:///{lightgbm_run['home'] / 'airflow_bridge' / 'registry.db'}")
    version = registry.get_version("penguin_species", 1)
    assert version.estimator == LGBM and version.params["num_leaves"] == 15


def test_the_lightgbm_pipeline_uses_native_categories_and_missing_values_and_serves_raw_rows(
    lightgbm_run: dict[str, Any],
) -> None:
    from airflow_bridge.artifacts import load_model, read_verified
    from airflow_bridge.registry import ModelRegistry
    from tests.test_real_data import _client, _raw_rows

    registry = ModelRegistry(f"sqlite:///{lightgbm_run['home'] / 'airflow_bridge' / 'registry.db'}")
    pipeline = load_model(read_verified(registry.get_version("penguin_species", 1).artifact))
    names = [name for name, _ in pipeline.steps]
    assert "simpleimputer" not in names  # LightGBM takes missing values as they are
    assert type(pipeline.steps[-2][1].low_cardinality).__name__ == "ToCategorical"

    client = _client(lightgbm_run["home"], "penguin_species")
    rows = _raw_rows(EXAMPLES / "data" / "penguins_raw.csv", 4)
    rows[1]["Sex"] = ""
    answer = client.post("/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 4


def test_the_same_lightgbm_spec_trains_the_same_bytes_twice(tmp_path: Path) -> None:
    from airflow_bridge.actions.training import train
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.policy import OPEN_POLICY

    spec = load_spec_text(
        yaml.safe_dump(_penguin_spec(LGBM, {"n_estimators": 40, "verbose": -1})), str(EXAMPLES / "penguin_species.yaml")
    ).spec
    assert spec is not None
    shas = {
        train(training_request(spec, OPEN_POLICY), ArtifactStore(f"file://{tmp_path / str(i)}")).artifact.sha256
        for i in (1, 2)
    }
    assert len(shas) == 1
