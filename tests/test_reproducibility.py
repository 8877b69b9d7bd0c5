"""Reproducible by construction: the same spec on the same data gives the same metrics and the same artifact
sha256, in separate processes; another seed gives another model; each version records what could still
make a rerun differ (library versions, platform, thread pools).

The table is the raw Palmer penguin export with its band codes (``Individual ID``) kept as a text column,
so skrub's text encoder (a randomised SVD) is part of the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import EXAMPLES, cli_env

MODEL = "penguin_repro"


def _spec(folder: Path, seed: int) -> Path:
    spec = {
        "apiVersion": "airflow-bridge/v1",
        "kind": "Experiment",
        "name": MODEL,
        "owner": "carol",
        "team": "ecology",
        "data": {
            "training": {"uri": "data/penguins_raw.csv", "target": "Species"},
            "columns": {"Sample Number": "ignore"},
            "split": {"test_size": 0.25, "seed": seed},
        },
        "model": {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 40}},
        "validation": {"thresholds": {"accuracy": {"min": 0.5}}},
        "deployment": {"alias": "staging"},
    }
    path = folder / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


TRAIN_AND_VALIDATE = """
import json, sys
from airflow_bridge.actions.training import train
from airflow_bridge.actions.validation import ValidationRules, validate
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.factory.build import training_request
from airflow_bridge.governance.loader import find_policy, load_policy
from airflow_bridge.spec.loader import load_spec

spec_path, store = sys.argv[1], sys.argv[2]
spec = load_spec(spec_path).spec
request = training_request(spec, load_policy(find_policy(spec_path)).policy)
trained = train(request, ArtifactStore(store))
checked = validate(trained, ValidationRules(thresholds={"accuracy": {"min": 0.5}}), None, ArtifactStore(store))
print(json.dumps({"training": trained.to_xcom(), "validation": checked.to_xcom()}))
"""


def _train_and_validate(spec: Path, store: Path, hash_seed: str) -> dict[str, Any]:
    """The train and validate actions (what every door calls) in a fresh process with its own string-hash salt."""
    import subprocess
    import sys

    env = {**cli_env(), "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_VALIDATE, str(spec), f"file://{store}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("repro")
    shutil.copy(EXAMPLES / "_policy.yaml", folder / "_policy.yaml")
    (folder / "data").mkdir()
    shutil.copy(EXAMPLES / "data" / "penguins_raw.csv", folder / "data" / "penguins_raw.csv")
    return folder


def test_the_same_spec_twice_gives_the_same_metrics_and_artifact_sha256(specs: Path) -> None:
    spec = _spec(specs, seed=11)
    first = _train_and_validate(spec, specs / "store-1", hash_seed="1")
    second = _train_and_validate(spec, specs / "store-2", hash_seed="2")

    trained = [run["training"] for run in (first, second)]
    assert trained[0]["data"]["roles"]["Individual ID"]["role"] == "text"  # the randomised text encoder is in play
    assert trained[0]["artifact"]["sha256"] == trained[1]["artifact"]["sha256"]
    assert trained[0]["holdout"]["sha256"] == trained[1]["holdout"]["sha256"]
    validated = [run["validation"] for run in (first, second)]
    assert validated[0]["metrics"] == validated[1]["metrics"]
    assert validated[0]["uncertainty"] == validated[1]["uncertainty"]  # the bootstrap draws from the seed too
    assert validated[0]["baseline"] == validated[1]["baseline"]
    importance = [v["report"]["pngs"]["feature_importance.png"]["sha256"] for v in validated]
    assert importance[0] == importance[1]  # permutation importance draws from the spec's seed too
    assert validated[0]["report"]["html"]["sha256"] == validated[1]["report"]["html"]["sha256"]  # the whole page
    assert trained[0]["params"] == {"n_estimators": 40}

    import sklearn
    import skrub

    environment = trained[0]["data"]["environment"]
    assert environment == trained[1]["data"]["environment"]
    assert environment["packages"]["scikit-learn"] == sklearn.__version__
    assert environment["packages"]["skrub"] == skrub.__version__
    assert {"airflow-bridge", "numpy", "pandas", "scipy"} <= set(environment["packages"])
    assert environment["python"] and environment["platform"] and environment["cpus"] >= 1
    assert environment["threadpools"] and all(isinstance(p["threads"], int) for p in environment["threadpools"])
    assert "/" not in json.dumps(environment["threadpools"])  # library names and versions, never file paths


def test_another_seed_gives_another_model(specs: Path, tmp_path: Path) -> None:
    from airflow_bridge.actions.training import train
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.factory.build import training_request
    from airflow_bridge.governance.loader import find_policy, load_policy
    from airflow_bridge.spec.loader import load_spec

    policy = load_policy(find_policy(specs)).policy
    assert policy is not None
    digests = {}
    for run, seed in enumerate((11, 12)):
        loaded = load_spec(_spec(specs, seed))
        assert loaded.spec is not None, loaded.issues
        result = train(training_request(loaded.spec, policy), ArtifactStore(f"file://{tmp_path / str(run)}"))
        digests[run] = (result.artifact.sha256, result.holdout.sha256 if result.holdout else "")
    assert digests[0][0] != digests[1][0] and digests[0][1] != digests[1][1]


def test_every_random_component_of_the_pipeline_is_seeded_and_an_explicit_null_is_kept() -> None:
    import pandas as pd

    from airflow_bridge.ml.columns import infer_roles
    from airflow_bridge.ml.estimator import build_estimator, build_model_pipeline

    frame = pd.read_csv(EXAMPLES / "data" / "penguins_raw.csv")
    roles = infer_roles(frame, "Species")
    assert roles["Individual ID"].role == "text"
    seeded = build_model_pipeline(
        build_estimator("sklearn.ensemble.RandomForestClassifier", {}, seed=7), roles, seed=7
    ).get_params(deep=True)
    random_states = {k: v for k, v in seeded.items() if k.endswith("random_state")}
    assert random_states and set(random_states.values()) == {7}, random_states
    assert "tablevectorizer__high_cardinality__random_state" in random_states  # skrub's StringEncoder

    unseeded = build_model_pipeline(
        build_estimator("sklearn.ensemble.RandomForestClassifier", {"random_state": None}, seed=7), roles, seed=7
    ).get_params(deep=True)
    assert unseeded["randomforestclassifier__random_state"] is None  # the spec said null on purpose
    assert unseeded["tablevectorizer__high_cardinality__random_state"] == 7
    fixed = build_model_pipeline(
        build_estimator("sklearn.ensemble.RandomForestClassifier", {"random_state": 3}, seed=7), roles, seed=7
    ).get_params(deep=True)
    assert fixed["randomforestclassifier__random_state"] == 3


def test_own_draws_get_one_stream_per_purpose_the_same_in_every_process() -> None:
    import subprocess
    import sys

    from airflow_bridge.ml.seeding import purpose_seed, rng

    assert purpose_seed(42, "bootstrap") == purpose_seed(42, "bootstrap")
    assert len({purpose_seed(42, "bootstrap"), purpose_seed(42, "folds"), purpose_seed(43, "bootstrap")}) == 3
    here = rng(42, "bootstrap").integers(0, 1000, 5).tolist()
    code = "from airflow_bridge.ml.seeding import rng; print(rng(42, 'bootstrap').integers(0, 1000, 5).tolist())"
    env = {**cli_env(), "PYTHONHASHSEED": "7"}
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert there.stdout.strip() == str(here), there.stderr
