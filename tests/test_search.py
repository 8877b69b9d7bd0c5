"""Hyperparameter search in the spec (``model.search``): validated like ``params``, capped by the team policy,
seeded and reproducible, every trial recorded and shown in the report.

Real Optuna and scikit-learn on the breast cancer example (569 rows); each search is a few trials of a small
forest on 2 folds, so each test takes a few seconds. The end-to-end ``airflow-bridge run`` is marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_bridge.actions.training import TrainingRequest, train
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.exceptions import EstimatorError, PolicyViolationError
from airflow_bridge.spec.loader import load_spec_text
from tests.helpers import EXAMPLES, cli, cli_env

SPEC = EXAMPLES / "breast_cancer_search.yaml"
DATA = EXAMPLES / "data" / "breast_cancer.csv"
SMALL_SEARCH = {
    "space": {
        "max_depth": {"low": 2, "high": 8},
        "min_samples_leaf": {"low": 1, "high": 20, "log": True},
        "criterion": {"choices": ["gini", "entropy"]},
    },
    "budget": {"trials": 6},
    "metric": "roc_auc",
    "folds": 2,
}


def _spec_text(search: dict[str, Any] | None = None, **model: Any) -> str:
    data = yaml.safe_load(SPEC.read_text())
    if search is not None:
        data["model"]["search"] = search
    data["model"].update(model)
    return yaml.safe_dump(data, sort_keys=False)


def _issues(text: str) -> list[tuple[str, str, str]]:
    loaded = load_spec_text(text, str(SPEC))
    return [(i.field, i.message, i.hint or "") for i in loaded.issues]


def _request(**changes: Any) -> TrainingRequest:
    base = TrainingRequest(
        model="bc_search",
        data_uri=str(DATA),
        target="malignant",
        estimator="sklearn.ensemble.RandomForestClassifier",
        params={"n_estimators": 15},
        task_kind="classification",
        test_size=0.25,
        search=SMALL_SEARCH,
    )
    return dataclasses.replace(base, **changes)


# -- validate: the space against the estimator's parameters ----------------------------------------------------------


def test_the_example_search_spec_is_valid() -> None:
    assert _issues(SPEC.read_text()) == []


@pytest.mark.parametrize(
    ("space", "field", "message", "hint"),
    [
        pytest.param(
            {"max_dept": {"low": 2, "high": 8}},
            "model.search.space.max_dept",
            "RandomForestClassifier has no parameter 'max_dept' to search",
            "max_depth",
            id="unknown-name",
        ),
        pytest.param(
            {"max_depth": {"low": 12, "high": 2}},
            "model.search.space.max_depth",
            "low (12) is greater than high (2)",
            "swap",
            id="low-above-high",
        ),
        pytest.param(
            {"min_samples_leaf": {"low": 0, "high": 20, "log": True}},
            "model.search.space.min_samples_leaf",
            "a log scale needs low above 0 (got 0)",
            "small positive low",
            id="log-from-zero",
        ),
        pytest.param(
            {"max_depth": {"low": 2.5, "high": 8.0}},
            "model.search.space.max_depth",
            "the decimal range 2.5 to 8.0 does not fit 'max_depth', which takes an integer >= 1 or null",
            "whole-number bounds",
            id="decimal-range-for-an-integer",
        ),
        pytest.param(
            {"min_samples_split": {"low": 1, "high": 10}},
            "model.search.space.min_samples_split",
            "the integer range 1 to 10 does not fit 'min_samples_split'",
            "",
            id="range-outside-bounds",
        ),
        pytest.param(
            {"criterion": {"choices": []}},
            "model.search.space.criterion",
            "choices is empty: there is nothing to try",
            "at least one value",
            id="empty-choices",
        ),
        pytest.param(
            {"criterion": {"choices": ["gini", "entropi"]}},
            "model.search.space.criterion.choices[1]",
            "'criterion' takes one of 'entropy', 'gini', 'log_loss'; got string 'entropi'",
            "entropy",
            id="bad-choice-with-did-you-mean",
        ),
        pytest.param(
            {"criterion": {"choices": ["gini"], "low": 1, "high": 2}},
            "model.search.space.criterion",
            "give either choices or a range (low, high), not both",
            "",
            id="choices-and-range",
        ),
        pytest.param(
            {"n_estimators": {"low": 10, "high": 50}},
            "model.search.space.n_estimators",
            "'n_estimators' is both fixed in model.params and searched",
            "remove it from one of them",
            id="fixed-and-searched",
        ),
    ],
)
def test_a_space_the_estimator_cannot_take_is_refused_with_where_and_why(
    space: dict[str, Any], field: str, message: str, hint: str
) -> None:
    issues = _issues(_spec_text({**SMALL_SEARCH, "space": space}))

    assert [i for i in issues if i[0] == field and message in i[1] and hint in i[2]], issues


def test_a_metric_of_the_other_task_and_a_budget_beyond_the_timeout_are_refused() -> None:
    issues = _issues(_spec_text({**SMALL_SEARCH, "metric": "r2", "budget": {"minutes": 90}}))

    fields = {i[0]: i for i in issues}
    assert "'r2' is not a classification metric" in fields["model.search.metric"][1]
    assert "times out after 60" in fields["model.search.budget.minutes"][1]
    assert _issues(_spec_text({**SMALL_SEARCH, "budget": {}}))[0][1] == "a budget needs trials, minutes or both"


def test_parsing_a_search_spec_does_not_import_optuna() -> None:
    code = (
        "import sys; from airflow_bridge.spec.loader import load_spec; "
        f"assert load_spec({str(SPEC)!r}).ok; assert 'optuna' not in sys.modules, 'optuna imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_validate_warns_when_optuna_is_not_installed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.spec import semantics

    monkeypatch.setattr(semantics, "_optuna_installed", lambda: False)
    loaded = load_spec_text(SPEC.read_text(), str(SPEC))

    assert loaded.ok, loaded.issues  # a warning: the workers may have it where the dag-processor does not
    [warning] = [w for w in loaded.warnings if w.field == "model.search"]
    assert "pip install 'airflow-bridge[search]'" in warning.message


# -- the team's cap ---------------------------------------------------------------------------------------------------


@pytest.fixture
def capped(tmp_path: Path) -> Path:
    """The example spec and data under a policy that caps oncology's searches at 5 trials."""
    policy = yaml.safe_load((EXAMPLES / "_policy.yaml").read_text())
    policy["teams"]["oncology"]["max_search_trials"] = 5
    (tmp_path / "_policy.yaml").write_text(yaml.safe_dump(policy))
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    shutil.copy(SPEC, tmp_path / SPEC.name)
    return tmp_path


def test_the_cap_is_in_the_bound_policy_document_only_when_a_team_sets_it() -> None:
    from airflow_bridge.governance.policy import Policy

    base = {"apiVersion": "airflow-bridge/v1", "kind": "Policy", "teams": {"oncology": {"members": ["alice"]}}}
    capped = {**base, "teams": {"oncology": {"members": ["alice"], "max_search_trials": 5}}}

    assert "max_search_trials" not in Policy.model_validate(base).document()["teams"]["oncology"]
    assert Policy.model_validate(capped).document()["teams"]["oncology"]["max_search_trials"] == 5
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Policy.model_validate({**base, "teams": {"oncology": {"max_search_trials": 0}}})


def test_a_budget_above_the_team_cap_is_refused_at_validate(capped: Path) -> None:
    done = cli("validate", capped / SPEC.name, "--no-data")

    assert done.returncode == 1, done.stdout
    assert "model.search.budget.trials: budget.trials 12 is above team 'oncology''s cap of 5" in done.stdout
    assert "teams.oncology.max_search_trials" in done.stdout


def test_a_budget_above_the_cap_is_refused_at_run_time_and_nothing_is_written(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(PolicyViolationError, match=r"budget.trials 6 is above the team's cap of 5"):
        train(_request(max_search_trials=5), ArtifactStore(str(store)))
    minutes_only = {**SMALL_SEARCH, "budget": {"minutes": 1}}
    with pytest.raises(PolicyViolationError, match=r"caps a search at 5 trials .* sets only minutes"):
        train(_request(search=minutes_only, max_search_trials=5), ArtifactStore(str(store)))
    assert not store.exists() or not any(store.rglob("*.joblib"))


def test_the_factory_carries_the_search_and_the_cap_into_the_request_and_the_pod(capped: Path) -> None:
    from airflow_bridge.factory.build import build_dag, training_request
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.kubernetes.contract import request_from_json, request_to_json
    from airflow_bridge.spec.loader import load_spec

    spec = load_spec(capped / SPEC.name).spec
    policy = load_policy(str(capped / "_policy.yaml")).policy
    assert spec is not None and policy is not None
    request = training_request(spec, policy)

    assert request.max_search_trials == 5
    assert request.search is not None and request.search["budget"] == {"trials": 12}
    assert request.search["space"]["max_depth"] == {"low": 2, "high": 12, "log": False}
    assert request_from_json(request_to_json(request)) == request  # what the training pod reads
    doc = build_dag(spec, policy=policy).get_task("train").doc_md
    assert "searches max_depth, min_samples_leaf, max_features, criterion (12 trials, roc_auc on 3 folds" in doc


# -- the search ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small search trained and validated (with its report)."""
    from airflow_bridge.actions.validation import ValidationRules, validate

    store = ArtifactStore(str(tmp_path_factory.mktemp("search-store")))
    trained = train(_request(), store)
    checked = validate(trained, ValidationRules(thresholds={"roc_auc": {"min": 0.9}}), None, store)
    return {"trained": trained, "validated": checked, "store": store}


def test_the_best_trial_becomes_the_candidate_and_every_trial_is_recorded(searched: dict[str, Any]) -> None:
    from airflow_bridge.actions.results import TrainingResult

    trained = searched["trained"]
    search = trained.search

    assert [t.number for t in search.trials] == list(range(6))
    assert all(set(t.params) == {"max_depth", "min_samples_leaf", "criterion"} for t in search.trials)
    assert all(t.state in ("COMPLETE", "PRUNED") and t.duration_seconds is not None for t in search.trials)
    complete = [t for t in search.trials if t.state == "COMPLETE"]
    best = max(complete, key=lambda t: t.value or 0)
    assert (search.best_trial, search.best_value, search.best_params) == (best.number, best.value, best.params)
    assert trained.params == {"n_estimators": 15, **best.params}  # the candidate's params: fixed + best
    assert {k: trained.effective_params[k] for k in best.params} == best.params
    assert (search.metric, search.direction, search.folds, search.stopped_by) == ("roc_auc", "maximize", 2, "trials")
    assert search.sampler == "TPESampler(seed=42)" and search.library.startswith("optuna ")
    assert set(search.importance) == {"max_depth", "min_samples_leaf", "criterion"}
    as_json = json.loads(json.dumps(trained.to_xcom()))  # what XCom and the registry carry
    assert TrainingResult.from_xcom(as_json) == trained


def test_the_report_shows_every_trial_the_history_and_the_importance(searched: dict[str, Any]) -> None:
    from airflow_bridge.actions.results import artifact_from
    from airflow_bridge.artifacts import read_verified

    report = searched["validated"].report
    html = read_verified(artifact_from(report["html"])).decode()
    search = searched["trained"].search

    assert '<section id="search"><h2>Hyperparameter search</h2>' in html
    table = html.split('<section id="search">')[1].split("</section>")[0]
    assert len(re.findall(r"<tr><td class=\"num\">", table)) == len(search.trials)
    assert f"<b>{search.best_trial} ✓</b>" in table and "Chosen: trial" in table
    assert {"search_history.png", "search_importance.png"} <= set(report["pngs"])
    assert table.count("data:image/png;base64,") == 2
    assert report["summary"]["search"]["best_params"] == search.best_params


def test_a_parameter_combination_that_raises_is_a_failed_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    search = {
        "space": {"penalty": {"choices": ["l1", "l2"]}, "C": {"low": 0.01, "high": 10.0, "log": True}},
        "budget": {"trials": 6},
        "metric": "roc_auc",
        "folds": 2,
        "pruning": False,
    }
    request = _request(
        estimator="sklearn.linear_model.LogisticRegression", params={"solver": "lbfgs", "max_iter": 500}, search=search
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn deprecates penalty= in favour of l1_ratio
        trained = train(request, ArtifactStore(str(tmp_path)))

    failed = [t for t in trained.search.trials if t.state == "FAIL"]
    assert failed and all(t.params["penalty"] == "l1" and "l1" in t.error for t in failed)
    assert len(trained.search.trials) == 6 and trained.params["penalty"] == "l2"


def test_an_error_metric_is_minimised_and_a_minutes_budget_says_it_stopped_the_search(tmp_path: Path) -> None:
    search = {
        "space": {"alpha": {"low": 0.001, "high": 100.0, "log": True}, "fit_intercept": {"choices": [True, False]}},
        "budget": {"minutes": 0.03},  # about 2 seconds: as many trials as fit
        "metric": "mae",
        "folds": 2,
    }
    request = _request(
        data_uri=str(EXAMPLES / "data" / "diabetes.csv"),
        target="progression",
        estimator="sklearn.linear_model.Ridge",
        params={},
        task_kind="regression",
        search=search,
    )
    trained = train(request, ArtifactStore(str(tmp_path)))
    summary = trained.search

    assert (summary.direction, summary.stopped_by, summary.budget) == (
        "minimize",
        "minutes",
        {"trials": None, "minutes": 0.03},
    )
    complete = [t for t in summary.trials if t.state == "COMPLETE"]
    assert len(summary.trials) >= 2 and summary.best_value == min(t.value for t in complete if t.value is not None)
    assert trained.params == summary.best_params and isinstance(trained.params["fit_intercept"], bool)


def test_choices_that_are_lists_are_tried_as_they_are(tmp_path: Path) -> None:
    search = {
        "space": {"hidden_layer_sizes": {"choices": [[4], [8, 4]]}},
        "budget": {"trials": 3},
        "metric": "accuracy",
        "folds": 2,
        "pruning": False,
    }
    request = _request(estimator="sklearn.neural_network.MLPClassifier", params={"max_iter": 50}, search=search)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP's ConvergenceWarning at 50 iterations
        trained = train(request, ArtifactStore(str(tmp_path)))

    assert {json.dumps(t.params["hidden_layer_sizes"]) for t in trained.search.trials} <= {"[4]", "[8, 4]"}
    assert trained.params["hidden_layer_sizes"] in ([4], [8, 4])
    assert all(t.state == "COMPLETE" for t in trained.search.trials)


def test_without_optuna_the_search_says_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError

    with pytest.raises(EstimatorError, match=r"pip install 'airflow-bridge\[search\]'"):
        train(_request(), ArtifactStore(str(tmp_path)))


# -- reproducibility -------------------------------------------------------------------------------------------------

SEARCH_TWICE = """
import json, sys
from airflow_bridge.actions.training import train
from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.factory.build import training_request
from airflow_bridge.governance.loader import find_policy, load_policy
from airflow_bridge.spec.loader import load_spec

spec_path, store = sys.argv[1], sys.argv[2]
spec = load_spec(spec_path).spec
trained = train(training_request(spec, load_policy(find_policy(spec_path)).policy), ArtifactStore(store))
print(json.dumps(trained.to_xcom()))
"""


def test_the_same_search_spec_twice_gives_the_same_best_parameters_and_artifact_sha256(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    shutil.copy(EXAMPLES / "_policy.yaml", tmp_path / "_policy.yaml")
    spec = tmp_path / SPEC.name
    search = {**SMALL_SEARCH, "budget": {"trials": 8}}
    spec.write_text(_spec_text(search, params={"n_estimators": 15}))
    runs = []
    for attempt in ("1", "2"):  # separate processes, different string-hash salts
        done = subprocess.run(
            [sys.executable, "-c", SEARCH_TWICE, str(spec), f"file://{tmp_path / f'store-{attempt}'}"],
            env={**cli_env(), "PYTHONHASHSEED": attempt},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))

    first, second = runs
    assert first["search"]["best_params"] == second["search"]["best_params"]
    assert first["params"] == second["params"]
    assert first["artifact"]["sha256"] == second["artifact"]["sha256"]
    trials = [[(t["params"], t["value"], t["state"]) for t in run["search"]["trials"]] for run in runs]
    assert trials[0] == trials[1] and len(trials[0]) == 8
    print(f"\nbest params {first['params']}; artifact sha256 {first['artifact']['sha256']} (twice)")


# -- end to end --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_airflow_bridge_run_of_the_search_example_registers_the_best_trial(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    shutil.copy(EXAMPLES / "_policy.yaml", tmp_path / "_policy.yaml")
    shutil.copy(SPEC, tmp_path / SPEC.name)
    home = tmp_path / "home"

    done = cli("run", SPEC.name, "--home", home, "--format", "json", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    summary = json.loads(done.stdout)
    assert summary["state"] == "success" and summary["version"] == 1
    assert summary["deployment"]["alias"] == "staging"
    assert summary["search"]["trials"] == 12 and summary["search"]["stopped_by"] == "trials"
    assert summary["search"]["complete"] + summary["search"]["pruned"] + summary["search"]["failed"] == 12
    written = cli(
        "models", "report", "breast_cancer_search", "--home", home, "--out", tmp_path / "report", "--format", "json"
    )
    assert written.returncode == 0, written.stdout + written.stderr
    pages = json.loads(written.stdout)
    html = Path(pages["html"]).read_text()
    assert '<section id="search"><h2>Hyperparameter search</h2>' in html and "Chosen: trial" in html
    assert {"search_history.png", "search_importance.png"} <= set(pages["pngs"])
    # the candidate keeps every trial beside its gates, and is the version the run registered
    listed = cli("models", "candidates", "breast_cancer_search", "--home", home, "--format", "json")
    (candidate,) = json.loads(listed.stdout)
    assert (candidate["candidate_id"], candidate["version"]) == (summary["candidate"], 1)
    assert len(candidate["search"]["trials"]) == 12
    assert candidate["params"] == {**candidate["params"], **candidate["search"]["best_params"]}


def test_on_a_kubernetes_tier_the_pod_gets_the_search_and_runs_it(tmp_path: Path) -> None:
    """The train task's pod carries the search and the cap in its request; its entrypoint runs the search."""
    from airflow_bridge.cli.pod_cmd import run_training
    from airflow_bridge.factory.build import build_dag
    from airflow_bridge.governance.loader import load_policy
    from airflow_bridge.kubernetes import contract
    from airflow_bridge.spec.loader import load_spec

    policy = load_policy(str(EXAMPLES / "_policy.yaml")).policy
    spec = load_spec(SPEC).spec
    assert spec is not None and policy is not None
    on_pods = spec.model_copy(update={"training": spec.training.model_copy(update={"compute": "cpu-pod"})})
    task = build_dag(on_pods, policy=policy).get_task("train")
    env = task.env_vars if isinstance(task.env_vars, dict) else {e.name: e.value for e in task.env_vars}
    sent = json.loads(env[contract.REQUEST_ENV])
    assert sent["search"]["budget"] == {"trials": 12} and sent["max_search_trials"] == 50

    small = {**sent, "data_uri": str(DATA), "search": {**SMALL_SEARCH, "budget": {"trials": 3}}}
    xcom = tmp_path / "return.json"
    pod_env = {
        contract.REQUEST_ENV: json.dumps(small),
        contract.XCOM_PATH_ENV: str(xcom),
        contract.TERMINATION_LOG_ENV: str(tmp_path / "termination"),
    }
    assert run_training(pod_env, f"file://{tmp_path / 'store'}", None) == 0
    result = json.loads(xcom.read_text())
    assert len(result["search"]["trials"]) == 3 and result["params"] == {
        "n_estimators": 40,
        **result["search"]["best_params"],
    }
