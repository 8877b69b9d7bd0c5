"""The ``airflow-bridge`` command line: what each command prints and its exit code.

Exit codes: 0 success, 1 invalid input or failed run, 2 usage error. Most commands run in-process through
typer's CliRunner; ``run`` and the "never imports Airflow" checks use real processes.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from airflow_bridge.cli.main import app
from tests.helpers import EXAMPLES, REPO, cli, cli_env

DIABETES = "diabetes_progression.yaml"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """Copies of the example specs, their team policy and their data."""
    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("breast_cancer_classifier.yaml", DIABETES, "_policy.yaml"):
        shutil.copy(EXAMPLES / name, folder / name)
    shutil.copytree(EXAMPLES / "data", folder / "data")
    return folder


def write_broken(folder: Path, file: str = "broken.yaml") -> tuple[Path, dict[str, int]]:
    """A spec with two problems (unknown key, estimator not allowed); returns it and their line numbers."""
    text = (EXAMPLES / DIABETES).read_text()
    text = text.replace("name: diabetes_progression", "name: broken_spec").replace(
        "owner: bob\n", "owner: bob\ncolour: blue\n"
    )
    text = text.replace("sklearn.linear_model.Ridge", "os.system")
    lines = text.splitlines()
    where = {
        "colour": next(n for n, line in enumerate(lines, 1) if line.startswith("colour:")),
        "estimator": next(n for n, line in enumerate(lines, 1) if line.startswith("  estimator:")),
    }
    path = folder / file
    path.write_text(text)
    return path, where


# -- validate -------------------------------------------------------------------------------------------------------


def test_validate_valid_file(specs: Path) -> None:
    result = invoke("validate", specs / DIABETES)

    assert result.exit_code == 0, result.output
    assert f"✓ {specs / DIABETES}" in result.stdout
    assert "1 valid, 0 invalid spec(s)" in result.stdout


def test_validate_folder(specs: Path) -> None:
    result = invoke("validate", specs)

    assert result.exit_code == 0, result.output
    assert f"✓ {specs / 'breast_cancer_classifier.yaml'}" in result.stdout
    assert f"✓ {specs / DIABETES}" in result.stdout
    assert "2 valid, 0 invalid spec(s)" in result.stdout


def test_validate_invalid_spec_lists_every_error_with_its_position(specs: Path) -> None:
    broken, line = write_broken(specs)

    result = invoke("validate", specs)

    assert result.exit_code == 1
    assert f"✗ {broken}" in result.stdout
    assert f"{broken}:{line['colour']}:1: colour: unknown key 'colour'" in result.stdout
    assert f"{broken}:{line['estimator']}:14: model.estimator: estimator 'os.system' is not on the allow-list" in (
        result.stdout
    )
    assert f"✓ {specs / DIABETES}" in result.stdout
    assert "2 valid, 1 invalid spec(s)" in result.stdout


def test_validate_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path / "nope.yaml")

    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file or folder" in result.stderr


def test_validate_folder_without_specs_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path)

    assert result.exit_code == 2
    assert "no spec files" in result.stderr


def test_validate_json_report(specs: Path) -> None:
    broken, line = write_broken(specs)

    result = invoke("validate", "--format", "json", specs)

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["error_count"] == 2
    files = {f["path"]: f for f in report["files"]}
    assert set(files) == {str(specs / "breast_cancer_classifier.yaml"), str(specs / DIABETES), str(broken)}
    assert files[str(specs / DIABETES)] == {
        "path": str(specs / DIABETES),
        "valid": True,
        "name": "diabetes_progression",
        "issues": [],
        "warnings": [],
    }
    bad = files[str(broken)]
    assert bad["valid"] is False and bad["name"] == "broken_spec"
    assert [(i["line"], i["col"], i["field"]) for i in bad["issues"]] == [
        (line["colour"], 1, "colour"),
        (line["estimator"], 14, "model.estimator"),
    ]
    assert all(set(i) == {"path", "line", "col", "field", "message", "hint"} for i in bad["issues"])
    assert all(i["path"] == str(broken) and i["message"] for i in bad["issues"])


def _github_annotations(stdout: str) -> list[tuple[dict[str, str], str]]:
    """Workflow commands parsed as the GitHub runner does: ``::error k=v,k=v::message``, %-escapes undone."""

    def unescape(text: str, *, prop: bool) -> str:
        pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else [])
        for code, char in [*pairs, ("%25", "%")]:
            text = text.replace(code, char)
        return text

    found = []
    for line in stdout.splitlines():
        if not line.startswith("::error "):
            continue
        head, message = line[len("::error ") :].split("::", 1)
        props = dict(part.split("=", 1) for part in head.split(","))
        found.append(({k: unescape(v, prop=True) for k, v in props.items()}, unescape(message, prop=False)))
    return found


def test_validate_github_annotations(specs: Path) -> None:
    broken, line = write_broken(specs, "draft,v2.yaml")

    result = invoke("validate", "--format", "github", specs)

    assert result.exit_code == 1
    annotations = _github_annotations(result.stdout)
    assert [(p["file"], p["line"], p["col"]) for p, _ in annotations] == [
        (str(broken), str(line["colour"]), "1"),
        (str(broken), str(line["estimator"]), "14"),
    ]
    assert [set(p) for p, _ in annotations] == [{"file", "line", "col", "title"}] * 2
    assert annotations[0][1].startswith("unknown key 'colour'")
    assert annotations[1][0]["title"] == "airflow-bridge: model.estimator"
    assert "2 valid, 1 invalid spec(s)" in result.stdout


def test_validate_unknown_format_is_a_usage_error(specs: Path) -> None:
    result = invoke("validate", "--format", "xml", specs)

    assert result.exit_code == 2
    assert "--format must be text, json or github" in result.stderr


def test_validate_shows_paths_with_square_brackets_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "specs[" / "v2]"  # "[/v2]" reads like a closing markup tag
    folder.mkdir(parents=True)
    broken, line = write_broken(folder, "draft[old].yaml")

    result = invoke("validate", folder)

    assert result.exit_code == 1
    assert f"✗ {broken}\n" in result.stdout
    assert f"{broken}:{line['colour']}:1: " in result.stdout


_NO_AIRFLOW = """
import json, sys
from airflow_bridge.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
imported = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
sys.stderr.write("\\nRESULT " + json.dumps({"code": code, "airflow": imported}) + "\\n")
"""


def run_without_airflow(*args: str | Path, cwd: Path) -> dict[str, Any]:
    """Run a CLI command in a fresh interpreter; its exit code and the Airflow modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_AIRFLOW, *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    marker = done.stderr.rsplit("RESULT ", 1)
    assert len(marker) == 2, done.stderr
    return {**json.loads(marker[1]), "stdout": done.stdout, "stderr": done.stderr}


@pytest.mark.parametrize(
    ("command", "code"),
    [
        pytest.param(["validate", "specs"], 0, id="validate-valid"),
        pytest.param(["validate", "--format", "json", "specs"], 1, id="validate-invalid"),
        pytest.param(["schema"], 0, id="schema"),
        pytest.param(["loaders", "specs", "--shards", "1"], 0, id="loaders"),
        pytest.param(["init", "new_model", "--dir", "new"], 0, id="init"),
        pytest.param(["run", "specs/broken.yaml", "--home", "home"], 1, id="run-invalid-spec"),
    ],
)
def test_spec_commands_never_import_airflow(command: list[str], code: int, specs: Path) -> None:
    if code:
        write_broken(specs)

    outcome = run_without_airflow(*command, cwd=specs.parent)

    assert outcome["code"] == code, outcome["stderr"]
    assert outcome["airflow"] == []


# -- schema ---------------------------------------------------------------------------------------------------------


def test_schema_prints_the_committed_json_schema() -> None:
    result = invoke("schema")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((REPO / "schemas" / "experiment-v1.json").read_text())


def test_schema_to_file(tmp_path: Path) -> None:
    out = tmp_path / "experiment.json"

    result = invoke("schema", "-o", out)

    assert result.exit_code == 0
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    assert json.loads(out.read_text()) == json.loads((REPO / "schemas" / "experiment-v1.json").read_text())


def test_schema_to_unwritable_file_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "missing-folder" / "experiment.json"

    result = invoke("schema", "--out", out)

    assert result.exit_code == 1
    assert f"error: cannot write {out}: No such file or directory" in result.stderr
    assert not isinstance(result.exception, OSError)


# -- init -----------------------------------------------------------------------------------------------------------


def test_init_writes_a_starter_spec_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "dag_specs"

    result = invoke("init", "churn_model", "--dir", folder, "--owner", "alice")

    target = folder / "churn_model.yaml"
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout
    spec = yaml.safe_load(target.read_text())
    assert spec["name"] == "churn_model" and spec["owner"] == "alice"
    assert invoke("validate", "--no-data", target).exit_code == 0  # its data file does not exist yet


def test_init_does_not_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "churn_model.yaml"
    target.write_text("# my work\n")

    refused = invoke("init", "churn_model", "--dir", tmp_path)

    assert refused.exit_code == 1
    assert f"{target} already exists; pass --force to overwrite it" in refused.stderr
    assert target.read_text() == "# my work\n"

    forced = invoke("init", "churn_model", "--dir", tmp_path, "--force")

    assert forced.exit_code == 0
    assert yaml.safe_load(target.read_text())["name"] == "churn_model"


@pytest.mark.parametrize("name", ["Churn", "churn-model", "1churn", "churn model", "churn\n", "x" * 64, ""])
def test_init_rejects_invalid_names(name: str, tmp_path: Path) -> None:
    result = invoke("init", name, "--dir", tmp_path)

    assert result.exit_code == 2
    assert "is not a valid name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_into_a_folder_with_square_brackets(tmp_path: Path) -> None:
    folder = tmp_path / "specs[" / "draft]"

    result = invoke("init", "churn_model", "--dir", folder)

    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'churn_model.yaml'}" in result.stdout
    assert (folder / "churn_model.yaml").is_file()


# -- render ---------------------------------------------------------------------------------------------------------


def test_render_text_lists_tasks_and_connections(specs: Path) -> None:
    result = invoke("render", specs / DIABETES)

    assert result.exit_code == 0, result.output
    assert "DAG diabetes_progression  schedule=0 6 * * 1  owner=bob" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "Operator" in line]
    assert [row.split()[1] for row in rows] == ["train", "validate", "register", "deploy"]
    assert "ValidateModelOperator" in rows[1] and "train" in rows[1].split("ValidateModelOperator")[1]
    assert "connections referenced" in result.stdout
    assert "model_registry_default" in result.stdout


def test_render_json_structure(specs: Path) -> None:
    result = invoke("render", "--format", "json", specs / DIABETES)

    assert result.exit_code == 0, result.output
    dag = json.loads(result.stdout)
    assert dag["dag_id"] == "diabetes_progression"
    assert dag["schedule"] == "0 6 * * 1" and dag["owner"] == "bob"
    assert {"airflow-bridge", "team:endocrinology"} <= set(dag["tags"])
    assert [(t["task_id"], t["upstream"]) for t in dag["tasks"]] == [
        ("train", []),
        ("validate", ["train"]),
        ("register", ["train", "validate"]),
        ("deploy", ["register"]),
    ]
    assert next(t for t in dag["tasks"] if t["task_id"] == "validate")["retries"] == 0
    assert [c["conn_id"] for c in dag["connections"]] == ["model_registry_default"]


def test_render_names_the_registry_connection_of_the_spec(specs: Path) -> None:
    spec = yaml.safe_load((specs / DIABETES).read_text())
    spec["registry"] = {"conn_id": "ml_registry_prod"}
    (specs / DIABETES).write_text(yaml.safe_dump(spec))

    result = invoke("render", "--format", "json", specs / DIABETES)

    assert result.exit_code == 0, result.output
    assert [c["conn_id"] for c in json.loads(result.stdout)["connections"]] == ["ml_registry_prod"]


def test_render_shows_the_approval_the_team_policy_requires(specs: Path) -> None:
    (specs / "_policy.yaml").write_text(
        "apiVersion: airflow-bridge/v1\nkind: Policy\n"
        "defaults: {approval_required_for: [production]}\n"
        "teams:\n  endocrinology: {members: [bob], approvers: [dana]}\n"
    )

    result = invoke("render", "--format", "json", specs / DIABETES)

    assert result.exit_code == 0, result.output
    tasks = {t["task_id"]: t["upstream"] for t in json.loads(result.stdout)["tasks"]}
    assert "approve" in tasks["deploy"] and "register" in tasks["approve"]


def test_render_invalid_spec_exits_1_with_positions(specs: Path) -> None:
    broken, line = write_broken(specs)

    result = invoke("render", broken)

    assert result.exit_code == 1
    assert f"{broken}:{line['colour']}:1: colour: unknown key 'colour'" in result.stderr
    assert result.stdout == ""


def test_render_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("render", tmp_path / "nope.yaml")

    assert result.exit_code == 2
    assert "no such file" in result.stderr


# -- registry commands without runs ---------------------------------------------------------------------------------


def test_models_list_on_an_empty_home(tmp_path: Path) -> None:
    text = invoke("models", "list", "--home", tmp_path / "home")
    as_json = invoke("models", "list", "--home", tmp_path / "home", "--format", "json")

    assert text.exit_code == 0 and "no models registered yet" in text.stdout
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


def test_models_show_unknown_model(tmp_path: Path) -> None:
    result = invoke("models", "show", "churn", "--home", tmp_path / "home")

    assert result.exit_code == 1
    assert "error: cannot show 'churn': model 'churn' is not in the registry" in result.stderr
    assert result.stdout == ""


def test_run_missing_spec_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "nope.yaml", "--home", tmp_path / "home")

    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert not (tmp_path / "home").exists()


def test_run_invalid_spec_exits_1_before_starting_airflow(specs: Path, tmp_path: Path) -> None:
    broken, line = write_broken(specs)
    home = tmp_path / "home"

    result = cli("run", broken, "--home", home)

    assert result.returncode == 1
    assert f"{broken} is not a valid spec" in result.stderr
    assert f"{broken}:{line['colour']}:1: colour: unknown key 'colour'" in result.stderr
    assert not home.exists()


def test_run_explains_a_run_process_that_dies(specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from airflow_bridge.cli import run_cmd

    def killed(command: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        suicide = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        return subprocess.Popen([sys.executable, "-c", suicide], **kwargs)

    monkeypatch.setattr(run_cmd, "subprocess", SimpleNamespace(Popen=killed, PIPE=subprocess.PIPE))

    result = invoke("run", specs / DIABETES, "--home", tmp_path / "home")

    assert result.exit_code == 1
    assert "the run process ended before reporting a result (killed by signal 9); see " in result.stderr
    assert "run failed" in result.stderr


# -- run, and the registry it leaves behind -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``airflow-bridge run`` of a copy of the diabetes example, in its own home."""
    base = tmp_path_factory.mktemp("run")
    shutil.copy(EXAMPLES / DIABETES, base / DIABETES)
    shutil.copy(EXAMPLES / "_policy.yaml", base / "_policy.yaml")  # endocrinology deploys without approval
    shutil.copytree(EXAMPLES / "data", base / "data")
    home = base / "home"
    done = cli("run", DIABETES, "--home", home, cwd=base)
    return {"home": home, "done": done}


@pytest.mark.slow
def test_run_trains_registers_and_deploys(finished_run: dict[str, Any]) -> None:
    done = finished_run["done"]

    assert done.returncode == 0, done.stdout + done.stderr
    for task in ("train", "validate", "register", "deploy"):
        assert re.search(rf"✓ {task} \d+\.\ds", done.stdout), done.stdout
    assert "registered: diabetes_progression v1" in done.stdout
    assert "deployed: local alias production → v1 (was nothing)" in done.stdout
    assert "run succeeded" in done.stdout
    assert "report: file://" in done.stdout and "models report diabetes_progression --version 1" in done.stdout
    summary = json.loads(
        next((finished_run["home"] / "runs" / "diabetes_progression").glob("*/summary.json")).read_text()
    )
    assert summary["state"] == "success"
    [r2] = [g for g in summary["gates"] if g["name"] == "r2"]
    assert r2["passed"] and r2["min"] == 0.35 and 0 < r2["value"] < 1


@pytest.mark.slow
def test_models_list_after_a_run(finished_run: dict[str, Any]) -> None:
    home = finished_run["home"]

    text = invoke("models", "list", "--home", home)
    as_json = invoke("models", "list", "--home", home, "--format", "json")

    assert text.exit_code == 0 and "diabetes_progression" in text.stdout
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == [
        {
            "name": "diabetes_progression",
            "latest_version": 1,
            "aliases": {"production": 1},
            "owner": "bob",
            "team": "endocrinology",
        }
    ]


@pytest.mark.slow
def test_models_show_after_a_run(finished_run: dict[str, Any]) -> None:
    home = finished_run["home"]

    text = invoke("models", "show", "diabetes_progression", "--home", home)
    by_alias = invoke("models", "show", "diabetes_progression", "--version", "production", "--home", home)
    as_json = invoke("models", "show", "diabetes_progression", "--home", home, "--format", "json")

    assert text.exit_code == 0, text.output
    assert "aliases production→v1" in text.stdout
    assert "v1 sklearn.linear_model.Ridge (regression)" in text.stdout
    assert "produced by diabetes_progression / " in text.stdout
    assert re.search(r"^\s+r2\s+0\.\d{4}$", text.stdout, re.MULTILINE)
    assert by_alias.exit_code == 0 and by_alias.stdout == text.stdout
    shown = json.loads(as_json.stdout)
    assert shown["model"] == "diabetes_progression" and shown["aliases"] == {"production": 1}
    assert shown["version"]["version"] == 1 and "r2" in shown["version"]["metrics"]
    artifact = shown["version"]["artifact"]
    assert Path(artifact["uri"].removeprefix("file://")).is_file()
    assert str(artifact["uri"]).startswith(f"file://{home}")


@pytest.mark.slow
def test_audit_verify_and_export_after_a_run(finished_run: dict[str, Any], tmp_path: Path) -> None:
    home = finished_run["home"]

    verified = invoke("audit", "verify", "--home", home)
    exported = invoke("audit", "export", "--home", home)
    to_file = invoke("audit", "export", "--home", home, "--model", "diabetes_progression", "-o", tmp_path / "a.jsonl")

    assert verified.exit_code == 0
    assert re.search(r"audit trail intact: \d+ events verified", verified.stdout)
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert exported.exit_code == 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {"version_created", "deployed"} <= {e["action"] for e in events}
    assert all(e["model"] == "diabetes_progression" and e["hash"] for e in events)
    assert to_file.exit_code == 0
    assert f"wrote {len(events)} events to {tmp_path / 'a.jsonl'}" in to_file.stdout
    assert [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()] == events


@pytest.mark.slow
def test_audit_verify_detects_a_changed_event(finished_run: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(finished_run["home"] / "airflow_bridge", home / "airflow_bridge")
    with sqlite3.connect(home / "airflow_bridge" / "registry.db") as db:
        seq, position, model = db.execute(
            "SELECT seq, stream_seq, model FROM ab_audit_events WHERE action = 'version_created'"
        ).fetchone()
        db.execute("UPDATE ab_audit_events SET reason = 'nothing to see here' WHERE seq = ?", (seq,))

    text = invoke("audit", "verify", "--home", home)
    as_json = invoke("audit", "verify", "--home", home, "--format", "json")

    assert text.exit_code == 1
    assert f"audit trail broken: event {position} of model {model}'s chain (seq {seq}) was modified" in text.stdout
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["broken_seq"] == seq


@pytest.mark.slow
def test_run_with_a_failing_gate_names_the_task_and_the_gate(specs: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load((specs / DIABETES).read_text())
    spec["validation"]["thresholds"]["r2"] = {"min": 0.99}
    (specs / DIABETES).write_text(yaml.safe_dump(spec))
    home = tmp_path / "home"

    done = cli("run", specs / DIABETES, "--home", home)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ validate failed" in done.stdout
    summary = json.loads(next((home / "runs" / "diabetes_progression").glob("*/summary.json")).read_text())
    assert [(g["name"], g["min"], g["passed"]) for g in summary["gates"] if g["name"] == "r2"] == [("r2", 0.99, False)]
    assert "task 'validate' failed:" in done.stderr
    assert re.search(r"FAIL\s+r2 = 0\.\d{4}\s+required >= 0\.99", done.stderr), done.stderr
    assert "not run: " in done.stderr and {"register", "deploy"} <= set(
        done.stderr.split("not run: ")[1].splitlines()[0].split(", ")
    )
    assert "run failed (state failed)" in done.stderr
    assert "registered:" not in done.stdout
    [report] = [line for line in done.stdout.splitlines() if line.startswith("report: ")]
    assert report.endswith("(the candidate's report; it was not registered, open this file in a browser)")
    assert Path(report.split()[1]).is_file()  # the candidate's, not an older registered version's
    listed = invoke("models", "list", "--home", home)
    assert listed.exit_code == 0 and "no models registered yet" in listed.stdout


@pytest.mark.slow
def test_run_json_summary_is_the_only_thing_on_stdout(specs: Path, tmp_path: Path) -> None:
    done = cli("run", specs / DIABETES, "--home", tmp_path / "home", "--format", "json")

    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["state"] == "success"
    assert summary["model"] == "diabetes_progression" and summary["version"] == 1
    assert summary["deployment"]["alias"] == "production" and summary["deployment"]["version"] == 1
    assert summary["tasks"] == dict.fromkeys(["train", "validate", "register", "deploy"], "success")
    assert "✓ train" in done.stderr
    listed = cli("models", "candidates", "diabetes_progression", "--home", tmp_path / "home", "--format", "json")
    (candidate,) = json.loads(listed.stdout)
    assert (candidate["candidate_id"], candidate["version"], candidate["fate"]) == (summary["candidate"], 1, "live")


@pytest.mark.slow
def test_a_run_stopped_at_its_approval_is_answered_without_training_again(specs: Path, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "_policy.yaml", specs / "_policy.yaml")  # oncology: dana and erin approve alice's model
    spec, home = specs / "breast_cancer_classifier.yaml", tmp_path / "home"

    stopped = cli("run", spec, "--home", home, "--format", "json")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    first = json.loads(stopped.stdout)
    assert (first["version"], first["approval"]["status"]) == (1, "waiting")

    waiting = cli("run", spec, "--home", home, "--format", "json")  # no approver given: says so, trains nothing
    assert waiting.returncode == 3 and json.loads(waiting.stdout)["resumed"] is True
    assert "already waits for approval" in waiting.stderr

    refused = cli("run", spec, "--home", home, "--approve-as", "alice", "--format", "json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["approval"]["status"] == "refused"

    done = cli("run", spec, "--home", home, "--approve-as", "dana", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert (summary["resumed"], summary["version"], summary["deployment"]["version"]) == (True, 1, 1)
    versions = json.loads(invoke("models", "versions", "breast_cancer", "--home", home, "--format", "json").stdout)
    assert [v["version"] for v in versions] == [1]  # no duplicate registration
    history = json.loads(invoke("models", "history", "breast_cancer", "--home", home, "--format", "json").stdout)
    assert [(e["action"], e["actor"]) for e in history if e["action"].startswith(("approval", "deployed"))] == [
        ("approval_requested", "alice"),
        ("approval_refused", "alice"),
        ("approval_granted", "dana"),
        ("deployed", "dana"),
    ]
