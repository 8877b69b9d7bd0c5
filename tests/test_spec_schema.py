"""The JSON Schema editors use, the example specs, and what importing the spec package costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from airflow_bridge.spec import SpecContext, discover_specs, load_spec
from airflow_bridge.spec.schema import SCHEMA_ID, experiment_schema, experiment_schema_text

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "experiment-v1.json"
EXAMPLES = REPO / "dag_specs"
INVALID = Path(__file__).resolve().parent / "fixtures" / "invalid"
EXAMPLE_SPECS = [Path(p) for p in discover_specs(EXAMPLES)]
MODELINE = "# yaml-language-server: $schema=../schemas/experiment-v1.json"


def as_json(path: Path) -> Any:
    """The spec as the JSON an editor's schema validator sees (dates become strings)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


def schema_errors(instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(experiment_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == experiment_schema_text(), (
        "schemas/experiment-v1.json is out of date with the spec models; "
        "regenerate it with: airflow-bridge schema -o schemas/experiment-v1.json"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False  # unknown keys are flagged in the editor too


def test_there_are_example_specs() -> None:
    assert len(EXAMPLE_SPECS) >= 2


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_validates_against_the_schema(path: Path) -> None:
    assert schema_errors(as_json(path)) == []


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_loads_without_issues(path: Path) -> None:
    loaded = load_spec(path, SpecContext())

    assert [issue.format() for issue in loaded.issues] == []
    assert loaded.spec is not None


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_spec_starts_with_a_schema_modeline(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]

    assert first_line == MODELINE
    target = (path.parent / first_line.split("$schema=", 1)[1]).resolve()
    assert target == SCHEMA_FILE.resolve()
    assert target.is_file()


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("unknown_keys.yaml", ""),  # schedul: -> additional property at the top
        ("wrong_types.yaml", "data/split/test_size"),
        ("missing_keys.yaml", ""),
        ("bad_name.yaml", "name"),
        ("broken_churn.yaml", ""),
    ],
)
def test_schema_flags_structural_mistakes_in_the_editor(name: str, where: str) -> None:
    errors = schema_errors(as_json(INVALID / name))

    assert errors
    assert any(e.startswith(f"{where}: ") for e in errors), errors


IMPORT_CHECK = """
import json, sys
import airflow_bridge.spec
from airflow_bridge.spec import load_spec
issues = [issue.format() for path in sys.argv[1:] for issue in load_spec(path).issues]
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"airflow", "sklearn", "sqlalchemy", "pandas"})
print(json.dumps({"heavy": heavy, "issues": issues}))
"""


def test_the_spec_package_imports_no_airflow_or_ml_stack() -> None:
    # A fresh interpreter: this test process has imported Airflow already.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, *map(str, EXAMPLE_SPECS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=120,
    )

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"heavy": [], "issues": []}
