"""One bad spec costs only itself: hostile numbers, hostile YAML and bugs in a check or a build.

A folder of good example specs next to specs that overflow, are not finite, nest too deep, expand
an alias bomb, are 10 MB long, exceed a team's parameter cap, or make a check or the builder raise
is parsed by Airflow's real ``DagBag``: every good DAG is built, each bad spec is a placeholder tagged
``invalid-spec`` showing its error, and ``airflow-bridge validate`` reports each as an issue of its
file, without a traceback.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from tests.helpers import EXAMPLES, cli

GOOD = {
    "breast_cancer_classifier.yaml": "breast_cancer_classifier",
    "diabetes_progression.yaml": "diabetes_progression",
    "penguin_species.yaml": "penguin_species",
}
BASE = (EXAMPLES / "breast_cancer_classifier.yaml").read_text()
PARAMS = "  params: {n_estimators: 100, max_depth: 6}"
VALUE_COL = len("  params: {n_estimators: ") + 1
HUGE = "9" * 400
CAPS = "    param_caps: {n_estimators: 2000, max_iter: 10000}\n"


def spec(name: str, params: str = PARAMS, extra: str = "") -> str:
    """The breast cancer example renamed (name and model), with other ``params`` and ``extra`` lines."""
    text = BASE.replace("name: breast_cancer_classifier", f"name: {name}").replace(
        "registry: {model: breast_cancer}", f"registry: {{model: {name}}}"
    )
    assert PARAMS in text
    return text.replace(PARAMS, params) + extra


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def alias_bomb() -> str:
    rows = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Bad:
    """A bad spec file, the placeholder it must become, and what its error says (and where, when known)."""

    file: str
    text: str
    dag_id: str
    message: str
    where: str | None = None  # "line:col" when the error has a position in the file
    on_disk: bool = True  # False: bad only because a test makes a check or the build raise

    @property
    def id(self) -> str:
        return self.file.removesuffix(".yaml")


def _bad_specs() -> list[Bad]:
    at_params = line_of(spec("x"), "  params:")
    deep = spec("deep_nesting", f"  params: {{n_estimators: 100, max_depth: 6, extra: {nested(40)}}}")
    bomb = spec("billion_laughs", extra=alias_bomb())
    return [
        Bad(
            "huge_int.yaml",
            spec("huge_int", f"  params: {{n_estimators: {HUGE}, max_depth: 6}}"),
            "huge_int",
            "model.params.n_estimators: 999999999999...999 (400 digits) is out of range",
            f"{at_params}:{VALUE_COL}",
        ),
        Bad(
            "float_overflow.yaml",
            spec("float_overflow", "  params: {n_estimators: 1.0e+400, max_depth: 6}"),
            "float_overflow",
            "model.params.n_estimators: '1.0e+400' is not a finite number",
            f"{at_params}:{VALUE_COL}",
        ),
        Bad(
            "one_e_400.yaml",
            spec("one_e_400", "  params: {n_estimators: 1e400, max_depth: 6}"),
            "one_e_400",
            "model.params.n_estimators: 'n_estimators' takes an integer >= 1; got string '1e400'",
            f"{at_params}:{VALUE_COL}",
        ),
        Bad(
            "not_a_number.yaml",
            spec("not_a_number", "  params: {n_estimators: .nan, max_depth: 6}"),
            "not_a_number",
            "model.params.n_estimators: '.nan' is not a finite number",
            f"{at_params}:{VALUE_COL}",
        ),
        Bad(
            "over_the_cap.yaml",
            spec("over_the_cap", "  params: {n_estimators: 1000000000000, max_depth: 6}"),
            "over_the_cap",
            "model.params.n_estimators: 1000000000000 is above team 'oncology''s cap of 2000 (param_caps.n_estimators)",
            f"{at_params}:{VALUE_COL}",
        ),
        Bad(
            "deep_nesting.yaml",
            deep,
            "deep_nesting",
            "model: document expands to deeper than 32",
            f"{line_of(deep, 'model:')}:1",
        ),
        Bad(
            "billion_laughs.yaml",
            bomb,
            "billion_laughs",
            "document expands to more than 20000 nodes",
        ),
        Bad(
            "huge_file.yaml",
            spec("huge_file") + "# " + "x" * (10 * 1024 * 1024) + "\n",
            "invalid_spec__huge_file",
            "over the 262144-byte limit",
            "1:1",
        ),
        Bad("build_raises.yaml", spec("build_raises"), "build_raises", "kaboom", "1:1", on_disk=False),
        Bad("check_raises.yaml", spec("check_raises"), "check_raises", "check exploded", "1:1", on_disk=False),
        Bad("recursion.yaml", spec("recursion"), "recursion", "RecursionError", "1:1", on_disk=False),
        Bad("memory_hog.yaml", spec("memory_hog"), "invalid_spec__memory_hog", "MemoryError", "1:1", on_disk=False),
    ]


BAD = _bad_specs()


def make_folder(parent: Path, bad: list[Bad] = BAD) -> Path:
    """The example specs, their data, the loader, the team policy with oncology's caps, and ``bad``."""
    folder = parent / "specs"
    folder.mkdir(parents=True)
    for name in GOOD:
        shutil.copy(EXAMPLES / name, folder / name)
    shutil.copytree(EXAMPLES / "data", folder / "data")
    shutil.copy(EXAMPLES / "airflow_bridge_dags.py", folder / "airflow_bridge_dags.py")
    policy = (EXAMPLES / "_policy.yaml").read_text()
    anchor = "    allowed_serving: [cpu-small]\n"
    assert anchor in policy
    (folder / "_policy.yaml").write_text(policy.replace(anchor, anchor + CAPS, 1))
    for item in bad:
        (folder / item.file).write_text(item.text)
    return folder


@pytest.fixture
def bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a check, the builder, the spec checks and the YAML reader raise, each for one spec only."""
    patch_bugs(monkeypatch)


def patch_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_bridge.governance.loader as governance
    from airflow_bridge.factory import build
    from airflow_bridge.spec import loader

    def raising(original: Any, name: str, exc: BaseException, *, raw: bool = False) -> Any:
        def wrapper(first: Any, *args: Any, **kwargs: Any) -> Any:
            if (f"name: {name}\n".encode() in first) if raw else getattr(first, "name", None) == name:
                raise exc
            return original(first, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(build, "dag_doc", raising(build.dag_doc, "build_raises", RuntimeError("kaboom")))
    monkeypatch.setattr(
        governance,
        "compute_findings",
        raising(governance.compute_findings, "check_raises", RuntimeError("check exploded")),
    )
    monkeypatch.setattr(
        loader, "check_experiment", raising(loader.check_experiment, "recursion", RecursionError("too deep"))
    )
    monkeypatch.setattr(loader, "load_located", raising(loader.load_located, "memory_hog", MemoryError(), raw=True))


def dagbag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The folder of good and bad specs, parsed by a real DagBag with the bugs in place."""
    folder = make_folder(tmp_path_factory.mktemp("bad"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_bugs(monkeypatch)
        bag = dagbag(folder)
    return folder, bag


def placeholder_of(bag: Any, folder: Path, file: str) -> Any:
    found = [
        dag
        for dag in bag.dags.values()
        if "invalid-spec" in dag.tags and f"`{folder.name}/{file}`" in (dag.doc_md or "")
    ]
    assert len(found) == 1, f"{file}: {len(found)} placeholder DAGs among {sorted(bag.dags)}"
    return found[0]


# -- the dags folder --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", sorted(GOOD))
def test_every_good_dag_is_built_next_to_the_bad_specs(file: str, parsed: tuple[Path, Any]) -> None:
    _, bag = parsed

    dag = bag.dags.get(GOOD[file])

    assert dag is not None, f"{GOOD[file]} missing; import errors: {bag.import_errors}"
    assert "invalid-spec" not in dag.tags
    assert [t.task_id for t in dag.tasks][:3] == ["train", "validate", "register"]


def test_the_loader_never_fails_and_builds_one_dag_per_spec(parsed: tuple[Path, Any]) -> None:
    _, bag = parsed

    assert bag.import_errors == {}
    assert len(bag.dags) == len(GOOD) + len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.id)
def test_each_bad_spec_is_a_placeholder_showing_its_error(bad: Bad, parsed: tuple[Path, Any]) -> None:
    folder, bag = parsed

    dag = placeholder_of(bag, folder, bad.file)

    assert dag.dag_id == bad.dag_id
    assert [t.task_id for t in dag.tasks] == ["spec_error"]
    errors = [line for line in dag.doc_md.splitlines() if line.startswith("- ")]
    where = f"{folder.name}/{bad.file}:{bad.where or ''}"
    assert any(where in line and bad.message in line for line in errors), errors
    assert dag.description.startswith("INVALID SPEC")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        pytest.param("build_raises", None, id="build-raises"),
        pytest.param("huge_int", None, id="placeholder"),
        pytest.param("breast_cancer_classifier", {"breast_cancer_classifier"}, id="good-dag"),
    ],
)
def test_worker_parse_survives_a_bad_spec(
    wanted: str, expected: set[str] | None, parsed: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, full = parsed
    patch_bugs(monkeypatch)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)

    bag = dagbag(folder)

    assert bag.import_errors == {}
    assert set(bag.dags) == (expected if expected is not None else set(full.dags))
    assert ("invalid-spec" in bag.dags[wanted].tags) == (expected is None)


# -- validate ---------------------------------------------------------------------------------------------------------


def test_validate_reports_each_bad_file_without_a_traceback(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, [b for b in BAD if b.on_disk])

    result = cli("validate", folder, "--no-registry")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in GOOD:
        assert f"✓ {folder / name}" in result.stdout
    for bad in BAD:
        if bad.on_disk:
            where = f"{folder / bad.file}:{bad.where or ''}"
            assert f"✗ {folder / bad.file}" in result.stdout
            assert any(where in line and bad.message in line for line in result.stdout.splitlines()), bad.file
    assert f"{len(GOOD)} valid, {sum(b.on_disk for b in BAD)} invalid spec(s)" in result.stdout


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.usefixtures("bugs")
@pytest.mark.parametrize("file", ["check_raises.yaml", "recursion.yaml", "memory_hog.yaml"])
def test_validate_reports_a_bug_in_a_check_as_an_issue_of_its_file(file: str, tmp_path: Path) -> None:
    bad = next(b for b in BAD if b.file == file)
    folder = make_folder(tmp_path, [bad])

    result = invoke("validate", folder, "--no-registry")

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"{folder / file}:{bad.where}: " in result.output and bad.message in result.output
    assert f"{len(GOOD)} valid, 1 invalid spec(s)" in result.output


def test_validate_reports_a_bug_in_the_data_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_bridge.spec import datacheck

    original = datacheck.check_data

    def check_data(spec: Any, *args: Any) -> Any:
        if spec.name == "penguin_species":
            raise ValueError("the reader tripped")
        return original(spec, *args)

    monkeypatch.setattr(datacheck, "check_data", check_data)
    folder = make_folder(tmp_path, [])

    result = invoke("validate", folder, "--no-registry")

    assert result.exit_code == 1, result.output
    uri = line_of((folder / "penguin_species.yaml").read_text(), "    uri:")
    expected = f"{folder / 'penguin_species.yaml'}:{uri}:10: data.training.uri: could not check the training data: "
    assert expected + "ValueError: the reader tripped" in result.output
    assert f"{len(GOOD) - 1} valid, 1 invalid spec(s)" in result.output


# -- numbers ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("min_rows: 500", "min_rows: 18446744073709551616", "data.checks.min_rows", "out of range"),
        ("test_size: 0.25", "test_size: .nan", "data.split.test_size", "'.nan' is not a finite number"),
        ("{min: 0.92}", f"{{min: {HUGE}}}", "validation.thresholds.accuracy.min", "(400 digits) is out of range"),
        ("min_improvement: 0.0", "min_improvement: -.inf", "validation.champion.min_improvement", "'-.inf' is not"),
        (
            PARAMS,
            f"  params: {{n_estimators: 100, class_weight: {{0: {2**60}, 1: 1}}}}",
            "model.params.class_weight.0",
            "out of range",
        ),
        ('schedule: "@weekly"', f'schedule: "@weekly"\nstart_date: {HUGE}', "start_date", "out of range"),
    ],
)
def test_numbers_are_finite_and_bounded_with_their_position(
    old: str, new: str, field: str, message: str, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, [])
    path = folder / "breast_cancer_classifier.yaml"
    text = BASE.replace(old, new, 1)
    path.write_text(text)

    result = invoke("validate", path, "--no-registry", "--format", "json")

    issues = json.loads(result.stdout)["files"][0]["issues"]
    assert result.exit_code == 1
    assert [(i["field"], message in i["message"]) for i in issues] == [(field, True)], issues
    if "out of range" in message:
        assert "2**53" in issues[0]["message"]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if new.splitlines()[-1] in row)
    assert issues[0]["line"] == line


def test_infinity_is_accepted_only_where_the_estimator_takes_it(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, [])
    mlp = "  estimator: sklearn.neural_network.MLPClassifier\n  params: {n_iter_no_change: .inf, max_iter: %s}"
    for value, valid in (("200", True), (".inf", False)):
        text = BASE.replace("  estimator: sklearn.ensemble.RandomForestClassifier\n" + PARAMS, mlp % value)
        (folder / "breast_cancer_classifier.yaml").write_text(text)

        result = invoke("validate", folder / "breast_cancer_classifier.yaml", "--no-registry", "--no-data")

        assert (result.exit_code == 0) == valid, result.output
    assert "model.params.max_iter: '.inf' is not a finite number" in result.output


def test_policy_numbers_are_bounded_too(tmp_path: Path) -> None:
    from airflow_bridge.governance.loader import load_policy

    path = tmp_path / "_policy.yaml"
    path.write_text(f"apiVersion: airflow-bridge/v1\nkind: Policy\nteams:\n  a:\n    max_active_runs: {HUGE}\n")

    issues = [i.format() for i in load_policy(str(path)).issues]

    assert len(issues) == 1 and issues[0].startswith(f"{path}:5:22: teams.a.max_active_runs: ")
    assert "2**53" in issues[0]


# -- parameter caps ---------------------------------------------------------------------------------------------------


def test_a_parameter_above_the_teams_cap_is_refused_at_validate_with_its_position(tmp_path: Path) -> None:
    greedy = next(b for b in BAD if b.file == "over_the_cap.yaml")
    folder = make_folder(tmp_path, [greedy])

    result = cli("validate", folder, "--no-registry", "--no-data")

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{folder / greedy.file}:{greedy.where}: {greedy.message}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_parameter_under_the_teams_cap_passes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, [])
    (folder / "modest.yaml").write_text(spec("modest", "  params: {n_estimators: 2000, max_depth: 6}"))

    result = cli("validate", folder, "--no-registry", "--no-data")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(GOOD) + 1} valid, 0 invalid spec(s)" in result.stdout


@pytest.mark.parametrize(
    ("policy", "params", "message"),
    [
        pytest.param(
            "defaults:\n  param_caps: {max_depth: 10}\nteams:\n  oncology: {members: [alice], approvers: [dana]}\n",
            "{n_estimators: 100, max_depth: 50}",
            "max_depth: 50 is above the team policy's default cap of 10 (defaults.param_caps.max_depth)",
            id="policy-default",
        ),
        pytest.param(
            "defaults:\n  param_caps: {max_depth: 10}\nteams:\n  oncology:\n    members: [alice]\n"
            "    approvers: [dana]\n    param_caps: {max_depth: 20}\n",
            "{n_estimators: 100, max_depth: 50}",
            "max_depth: 50 is above team 'oncology''s cap of 20 (param_caps.max_depth)",
            id="team-over-default",
        ),
        pytest.param(
            None,
            "{n_estimators: 1000000000000}",
            "n_estimators: 1000000000000 is above the built-in cap of 10000 (param_caps.n_estimators)",
            id="built-in",
        ),
        pytest.param(
            "defaults:\n  param_caps: {n_estimators: 20000}\n",
            "{n_estimators: 15000}",
            None,
            id="policy-raises-built-in",
        ),
    ],
)
def test_caps_come_from_the_team_the_policy_defaults_or_the_built_ins(
    policy: str | None, params: str, message: str | None, tmp_path: Path
) -> None:
    (tmp_path / ".git").mkdir()  # no policy of a parent folder applies
    if policy is not None:
        (tmp_path / "_policy.yaml").write_text(f"apiVersion: airflow-bridge/v1\nkind: Policy\n{policy}")
    path = tmp_path / "capped.yaml"
    path.write_text(spec("capped", f"  params: {params}").replace("alias: production", "alias: staging"))

    result = invoke("validate", path, "--no-registry", "--no-data")

    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert f"{path}:{line_of(path.read_text(), '  params:')}:" in result.output
        assert f"model.params.{message}" in result.output


def test_the_policy_schema_describes_param_caps() -> None:
    result = invoke("schema", "policy")

    schema = json.loads(result.stdout)
    defs = schema["$defs"]
    assert "param_caps" in defs["TeamPolicy"]["properties"]
    assert "param_caps" in defs["PolicyDefaults"]["properties"]
