"""The dags-folder loader in Airflow's real DagBag and dag-processor, with valid and broken specs side by side.

One loader file builds a DAG per spec; a broken spec becomes a placeholder DAG (tag ``invalid-spec``) that
shows and fails with its errors, and never takes another spec's DAG down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pluggy
import pytest
import yaml

from tests.helpers import EXAMPLES, cli, write_loader

TASKS = ["train", "validate", "register", "approve", "deploy"]  # no team policy: production needs an approval
VALID_SPECS = ["breast_cancer_classifier.yaml", "diabetes_progression.yaml"]
VALID_IDS = {"breast_cancer_classifier", "diabetes_progression"}
BASE = (EXAMPLES / "diabetes_progression.yaml").read_text()


@dataclass(frozen=True)
class Broken:
    """A broken spec file and how it must show up: placeholder DAG id, position and message of its error."""

    file: str
    text: str
    dag_id: str
    line: int | None
    col: int | None
    message: str

    def where(self, folder: Path) -> str:
        """``specs/file.yaml:line:col`` (a pattern when the position is the YAML parser's to choose)."""
        shown = re.escape(f"{folder.name}/{self.file}")
        line = str(self.line) if self.line else r"\d+"
        col = str(self.col) if self.col else r"\d+"
        return f"{shown}:{line}:{col}: "


def _spec(name_line: str, *edits: tuple[str, str]) -> str:
    text = BASE.replace("name: diabetes_progression", name_line, 1)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def _broken_specs() -> list[Broken]:
    syntax = _spec("name: bad_syntax", ("tags: [example, regression]", "tags: [example, regression"))
    unknown = _spec("name: unknown_key_spec", ("owner: bob\n", "owner: bob\ncolour: blue\n"))
    estimator = _spec("name: estimator_not_allowed", ("sklearn.linear_model.Ridge", "os.system"))
    unreadable = _spec("name: [not, a, name]")
    twin = _spec("name: twin")
    return [
        Broken("bad_syntax.yaml", syntax, "invalid_spec__bad_syntax", None, None, "invalid YAML"),
        Broken(
            "unknown_key.yaml", unknown, "unknown_key_spec", _line_of(unknown, "colour:"), 1, "unknown key 'colour'"
        ),
        Broken(
            "estimator.yaml",
            estimator,
            "estimator_not_allowed",
            _line_of(estimator, "  estimator:"),
            len("  estimator: ") + 1,
            "estimator 'os.system' is not on the allow-list",
        ),
        Broken(
            "Unreadable-Name.yaml",
            unreadable,
            "invalid_spec__unreadable_name",
            _line_of(unreadable, "name:"),
            len("name: ") + 1,
            "input should be a valid string",
        ),
        # Two specs sharing one name: both are reported; which placeholder keeps the name is the factory's choice.
        Broken("twin_a.yaml", twin, "", _line_of(twin, "name:"), 7, "name 'twin' is also used by specs/twin_b.yaml"),
        Broken("twin_b.yaml", twin, "", _line_of(twin, "name:"), 7, "name 'twin' is also used by specs/twin_a.yaml"),
    ]


BROKEN = _broken_specs()


REPORT_FILE = "airflow_bridge_spec_errors.py"


def make_folder(parent: Path, *, broken: list[Broken] = BROKEN, report: bool = False) -> Path:
    """A dags folder like a user's: example specs, their data, the loader file (``report``: and the file
    listing invalid specs under Import Errors), and ``broken`` specs."""
    folder = parent / "specs"
    folder.mkdir(parents=True)
    for name in VALID_SPECS:
        shutil.copy(EXAMPLES / name, folder / name)
    shutil.copytree(EXAMPLES / "data", folder / "data")
    shutil.copy(EXAMPLES / "airflow_bridge_dags.py", folder / "airflow_bridge_dags.py")
    if report:
        shutil.copy(EXAMPLES / REPORT_FILE, folder / REPORT_FILE)
    for spec in broken:
        (folder / spec.file).write_text(spec.text)
    return folder


def dagbag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def placeholders(bag: Any) -> dict[str, Any]:
    return {dag_id: dag for dag_id, dag in bag.dags.items() if "invalid-spec" in dag.tags}


def placeholder_of(bag: Any, folder: Path, file: str) -> Any:
    """The placeholder DAG standing in for ``file`` (its docs name the file)."""
    found = [dag for dag in placeholders(bag).values() if f"`{folder.name}/{file}`" in (dag.doc_md or "")]
    assert len(found) == 1, f"{file}: {len(found)} placeholder DAGs"
    return found[0]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A folder with the example specs and every broken spec, parsed by a real DagBag."""
    folder = make_folder(tmp_path_factory.mktemp("mixed"))
    return folder, dagbag(folder)


@pytest.mark.parametrize("spec_file", VALID_SPECS)
def test_valid_spec_becomes_its_dag_next_to_broken_specs(spec_file: str, mixed: tuple[Path, Any]) -> None:
    folder, bag = mixed
    spec = yaml.safe_load((folder / spec_file).read_text())

    dag = bag.dags[spec["name"]]

    assert [t.task_id for t in dag.tasks] == TASKS
    for upstream, task_id in pairwise(TASKS):
        assert upstream in dag.get_task(task_id).upstream_task_ids
    assert spec["description"].strip() in dag.doc_md
    assert dag.description == spec["description"].strip().splitlines()[0]
    assert dag.owner == spec["owner"]
    assert {"airflow-bridge", f"team:{spec['team']}", *spec["tags"]} <= set(dag.tags)
    assert "invalid-spec" not in dag.tags
    assert dag.schedule == spec["schedule"]


def test_loader_never_fails_and_builds_one_dag_per_spec_file(mixed: tuple[Path, Any]) -> None:
    folder, bag = mixed

    assert bag.import_errors == {}
    assert set(bag.dags) - set(placeholders(bag)) == VALID_IDS
    assert {placeholder_of(bag, folder, b.file).dag_id for b in BROKEN} == set(placeholders(bag))
    assert all(dag.fileloc == str(folder / "airflow_bridge_dags.py") for dag in bag.dags.values())


@pytest.mark.parametrize("broken", BROKEN, ids=[b.file for b in BROKEN])
def test_broken_spec_becomes_placeholder_showing_its_error(broken: Broken, mixed: tuple[Path, Any]) -> None:
    folder, bag = mixed

    dag = placeholder_of(bag, folder, broken.file)

    if broken.dag_id:
        assert dag.dag_id == broken.dag_id
    assert {"airflow-bridge", "invalid-spec"} <= set(dag.tags)
    assert [t.task_id for t in dag.tasks] == ["spec_error"]
    assert dag.schedule is None
    assert dag.is_paused_upon_creation
    error = re.compile(broken.where(folder) + r"(\S+: )?" + re.escape(broken.message))
    assert error.search(dag.description), dag.description
    assert error.search(dag.doc_md), dag.doc_md
    assert f"airflow-bridge validate {folder.name}/{broken.file}" in dag.doc_md


def test_placeholder_docs_list_one_error_a_line(tmp_path: Path) -> None:
    two = _spec(
        "name: two_errors", ("owner: bob\n", "owner: bob\ncolour: blue\n"), ("sklearn.linear_model.Ridge", "os.system")
    )
    folder = make_folder(tmp_path, broken=[Broken("two.yaml", two, "two_errors", None, None, "")])

    dag = dagbag(folder).dags["two_errors"]

    items = [line for line in dag.doc_md.splitlines() if line.startswith("- ")]
    assert len(items) == 2, dag.doc_md
    assert items[0].startswith(f"- `{folder.name}/two.yaml:") and items[0].endswith("`")
    assert "unknown key 'colour'" in "\n".join(items) and "'os.system' is not on the allow-list" in "\n".join(items)


@pytest.mark.parametrize(
    ("file", "owner"),
    [("unknown_key.yaml", "bob"), ("Unreadable-Name.yaml", "bob"), ("no_owner.yaml", "airflow")],
)
def test_placeholder_is_owned_by_the_spec_owner_when_readable(file: str, owner: str, tmp_path: Path) -> None:
    ownerless = Broken("no_owner.yaml", "name: no_owner\nowner: [1, 2]\n", "no_owner", 2, 1, "")
    folder = make_folder(tmp_path, broken=[*BROKEN, ownerless])

    dag = placeholder_of(dagbag(folder), folder, file)

    assert dag.owner == owner


def _spec_errors(bag: Any, folder: Path) -> str:
    assert set(bag.import_errors) == {str(folder / REPORT_FILE)}, bag.import_errors
    return str(bag.import_errors[str(folder / REPORT_FILE)])


def test_invalid_specs_are_listed_under_import_errors_while_every_dag_stays(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, report=True)

    bag = dagbag(folder)

    errors = _spec_errors(bag, folder)
    assert f"{len(BROKEN)} invalid airflow-bridge spec(s) in {folder}" in errors
    for broken in BROKEN:
        assert re.search("^- " + broken.where(folder) + r".*" + re.escape(broken.message), errors, re.M), errors
    assert set(bag.dags) - set(placeholders(bag)) == VALID_IDS
    assert len(placeholders(bag)) == len(BROKEN)


def test_the_import_error_goes_away_when_every_spec_is_valid(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, broken=[], report=True)

    bag = dagbag(folder)

    assert bag.import_errors == {}
    assert set(bag.dags) == VALID_IDS


def test_two_specs_registering_one_model_are_both_flagged_with_both_positions(tmp_path: Path) -> None:
    # the original has no registry.model: it registers its name, 'diabetes_progression'
    copy = _spec("name: diabetes_copy") + "registry:\n  model: diabetes_progression\n"
    folder = make_folder(tmp_path, broken=[Broken("copy.yaml", copy, "diabetes_copy", None, None, "")])
    original = f"{folder.name}/diabetes_progression.yaml:{_line_of(BASE, 'name:')}:7"
    duplicate = f"{folder.name}/copy.yaml:{_line_of(copy, '  model: diabetes_progression')}:10"

    done = cli("validate", folder.name, "--no-data", cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    message = "model 'diabetes_progression' is also registered by"
    assert f"{original}: registry.model: {message} {duplicate}:" in done.stdout, done.stdout
    assert f"{duplicate}: registry.model: {message} {original}:" in done.stdout, done.stdout
    bag = dagbag(folder)
    assert {"diabetes_progression", "diabetes_copy"} <= set(placeholders(bag))


def test_duplicate_names_report_both_files_and_build_neither(mixed: tuple[Path, Any]) -> None:
    folder, bag = mixed

    twins = [placeholder_of(bag, folder, file) for file in ("twin_a.yaml", "twin_b.yaml")]

    assert twins[0].dag_id != twins[1].dag_id
    real = [dag for dag in bag.dags.values() if "invalid-spec" not in dag.tags]
    assert {dag.dag_id for dag in real} == VALID_IDS
    assert all(t.task_id == "spec_error" for dag in twins for t in dag.tasks)


def test_duplicate_names_get_file_based_placeholder_ids(mixed: tuple[Path, Any]) -> None:
    folder, bag = mixed

    ids = {placeholder_of(bag, folder, file).dag_id for file in ("twin_a.yaml", "twin_b.yaml")}

    assert ids == {"invalid_spec__twin_a", "invalid_spec__twin_b"}


def test_broken_specs_with_one_file_stem_each_get_a_placeholder(tmp_path: Path) -> None:
    syntax = BROKEN[0]
    folder = make_folder(tmp_path, broken=[])
    (folder / "sub").mkdir()
    for file in ("draft.yaml", "draft.yml", "sub/draft.yaml"):
        (folder / file).write_text(syntax.text)

    bag = dagbag(folder)

    for file in ("draft.yaml", "draft.yml", "sub/draft.yaml"):
        placeholder_of(bag, folder, file)


def _shape_of(dag: Any) -> tuple[Any, ...]:
    """What a user sees of a DAG: tasks and their wiring, docs, schedule, tags, owner."""
    return (
        [(t.task_id, sorted(t.upstream_task_ids)) for t in dag.tasks],
        dag.doc_md,
        dag.description,
        dag.schedule,
        sorted(dag.tags),
        dag.owner,
    )


def _shape(bag: Any) -> dict[str, tuple[Any, ...]]:
    return {dag.dag_id: _shape_of(dag) for dag in bag.dags.values() if "invalid-spec" not in dag.tags}


def test_adding_broken_specs_does_not_change_the_other_dags(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, broken=[])
    before = dagbag(folder)
    assert set(before.dags) == VALID_IDS and before.import_errors == {}

    for broken in BROKEN:
        (folder / broken.file).write_text(broken.text)
    after = dagbag(folder)

    assert _shape(after) == _shape(before)
    assert len(placeholders(after)) == len(BROKEN)
    assert after.import_errors == {}


# -- what a worker parses before running a task ---------------------------------------------------------------------


@pytest.fixture
def worker_folder(tmp_path: Path) -> Path:
    """The mixed folder plus a valid spec whose file name is not its DAG id."""
    folder = make_folder(tmp_path)
    (folder / "renamed_file.yaml").write_text(_spec("name: diabetes_renamed"))
    return folder


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        pytest.param("diabetes_progression", {"diabetes_progression"}, id="file-named-like-dag"),
        pytest.param("diabetes_renamed", {"diabetes_renamed"}, id="file-named-otherwise"),
        pytest.param("unknown_key_spec", None, id="placeholder-full-parse"),
        pytest.param("invalid_spec__bad_syntax", None, id="file-stem-placeholder-full-parse"),
        pytest.param("deleted_spec", None, id="unknown-dag-full-parse"),
    ],
)
def test_worker_parse_builds_only_the_dag_being_run(
    wanted: str, expected: set[str] | None, worker_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = dagbag(worker_folder)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)

    bag = dagbag(worker_folder)

    assert bag.import_errors == {}
    assert set(bag.dags) == (expected if expected is not None else set(full.dags))
    if wanted in full.dags:
        assert _shape_of(bag.dags[wanted]) == _shape_of(full.dags[wanted])


def test_worker_parse_of_a_duplicate_name_builds_the_placeholder(
    worker_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "twin")

    bag = dagbag(worker_folder)

    assert all([t.task_id for t in dag.tasks] == ["spec_error"] for dag in bag.dags.values() if "twin" in dag.dag_id)


# -- running a placeholder -------------------------------------------------------------------------------------------


class _FailureRecorder:
    """An Airflow listener keeping each failed task's error, as the task log and UI show it."""

    def __init__(self) -> None:
        self.failures: dict[str, str] = {}

    @pluggy.HookimplMarker("airflow")
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.failures[task_instance.task_id] = str(error)


@pytest.mark.slow
def test_triggering_a_placeholder_fails_at_spec_error_with_the_spec_errors(tmp_path: Path, airflow_db: Path) -> None:
    from airflow.sdk.listener import get_listener_manager

    from airflow_bridge.spec.loader import load_spec

    folder = make_folder(tmp_path, broken=[b for b in BROKEN if b.file == "unknown_key.yaml"])
    spec_path = folder / "unknown_key.yaml"
    bag = dagbag(write_loader([folder / "diabetes_progression.yaml", spec_path]))
    dag = bag.dags["unknown_key_spec"]
    issue = load_spec(spec_path).issues[0]
    recorder = _FailureRecorder()
    manager = get_listener_manager()
    manager.add_listener(recorder)
    try:
        dag_run = dag.test()
    finally:
        manager.pm.unregister(recorder)

    assert str(getattr(dag_run.state, "value", dag_run.state)) == "failed"
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert states == {"spec_error": "failed"}
    error = recorder.failures["spec_error"]
    assert "The spec of this DAG is invalid" in error
    assert f"{folder.name}/unknown_key.yaml:{issue.line}:{issue.col}: " in error
    assert issue.message in error


# -- the dag-processor: what the scheduler and UI get ----------------------------------------------------------------


def _airflow(args: list[str], env: dict[str, str], *, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run([str(airflow), *args], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == returncode, f"airflow {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _json_output(stdout: str) -> Any:
    """The JSON document in a command's output (Airflow may print warnings before it)."""
    lines = stdout.splitlines()
    for start, line in enumerate(lines):
        if line.startswith(("[", "{")):
            return json.loads("\n".join(lines[start:]))
    raise AssertionError(f"no JSON in output:\n{stdout}")


@pytest.mark.slow
def test_dag_processor_stores_valid_and_placeholder_dags_and_lists_invalid_specs_as_import_errors(
    tmp_path: Path,
) -> None:
    folder = make_folder(tmp_path, report=True)
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        }
    )
    expected_placeholders = set(placeholders(dagbag(folder)))

    _airflow(["db", "migrate"], env)
    _airflow(["dag-processor", "--num-runs", "1"], env)
    listed = _json_output(_airflow(["dags", "list", "-o", "json"], env).stdout)
    # exit 1: there are import errors (the invalid specs)
    import_errors = _json_output(_airflow(["dags", "list-import-errors", "-o", "json"], env, returncode=1).stdout)

    assert [e["filepath"] for e in import_errors] == [REPORT_FILE], import_errors
    for broken in BROKEN:
        line = "^- " + broken.where(folder) + r".*" + re.escape(broken.message)
        assert re.search(line, import_errors[0]["error"], re.M), broken.file
    assert {d["dag_id"] for d in listed} == VALID_IDS | expected_placeholders
    assert {d["fileloc"] for d in listed} == {str(folder / "airflow_bridge_dags.py")}
    with sqlite3.connect(home / "airflow.db") as db:
        descriptions = dict(db.execute("SELECT dag_id, description FROM dag"))
        tags: dict[str, set[str]] = {}
        for name, dag_id in db.execute("SELECT name, dag_id FROM dag_tag"):
            tags.setdefault(dag_id, set()).add(name)
    assert {dag_id for dag_id, names in tags.items() if "invalid-spec" in names} == expected_placeholders
    for broken in BROKEN:
        shown = [d for d in descriptions.values() if re.search(broken.where(folder), d or "")]
        assert len(shown) == 1 and broken.message in shown[0], (broken.file, descriptions)
