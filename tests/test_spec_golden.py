"""Golden tests: for each kind of broken spec, exactly what the user sees.

Each input is a file in ``tests/fixtures/invalid/`` and its expected output, the
``path:line:col: field: message (hint)`` lines that ``airflow-bridge validate``, the placeholder DAG
and the logs show, is the file of the same stem in ``tests/fixtures/golden/``. These tests exist so
that wording and positions never change by accident; after improving a message on purpose, rewrite
the golden files with ``AIRFLOW_BRIDGE_UPDATE_GOLDEN=1 pytest tests/test_spec_golden.py`` and review
the diff.

A few cases are also spelled out field by field below, so the test reads as a specification.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from airflow_bridge.spec import LoadedSpec, SpecContext, SpecIssue, load_spec, load_spec_text, load_specs, yamlsafe
from airflow_bridge.spec.yamlsafe import MAX_SPEC_BYTES

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INVALID = FIXTURES / "invalid"
GOLDEN = FIXTURES / "golden"
PLAIN = SpecContext()  # no team policy and no extra data roots: the safe defaults
UPDATE = os.environ.get("AIRFLOW_BRIDGE_UPDATE_GOLDEN") == "1"
DUPLICATE_NAMES = ("duplicate_name_a.yaml", "duplicate_name_b.yaml")
SINGLE_FILE_CASES = sorted(p.name for p in INVALID.glob("*.yaml") if p.name not in DUPLICATE_NAMES)

ALLOW_LIST_HINT = (
    "estimators come from an allow-list that engineers extend in the team policy; "
    "'airflow-bridge schema' lists the built-in ones"
)
PLAIN_DATA_HINT = "specs are plain data: use strings, numbers, booleans, lists and mappings only"


def load(name: str, context: SpecContext = PLAIN) -> LoadedSpec:
    """Load a fixture as users see it: the path in messages is relative to tests/fixtures."""
    return load_spec(INVALID / name, context, display=f"invalid/{name}")


def lines(loaded: LoadedSpec) -> list[str]:
    return [issue.format() for issue in loaded.issues]


def check_golden(stem: str, actual: list[str]) -> None:
    golden = GOLDEN / f"{stem}.txt"
    if UPDATE:
        golden.write_text("".join(f"{line}\n" for line in actual), encoding="utf-8")
    assert golden.exists(), f"no golden output for {stem}: run with AIRFLOW_BRIDGE_UPDATE_GOLDEN=1 and review it"
    assert actual == golden.read_text(encoding="utf-8").splitlines()


def issue(name: str, line: int, col: int, field: str, message: str, hint: str | None = None) -> SpecIssue:
    return SpecIssue(f"invalid/{name}", line, col, field, message, hint)


# --- every fixture against its golden output ---------------------------------------------------


@pytest.mark.parametrize("name", SINGLE_FILE_CASES)
def test_golden_output(name: str) -> None:
    loaded = load(name)

    assert loaded.spec is None
    assert not loaded.ok
    assert loaded.issues, f"{name} is in tests/fixtures/invalid but loads without an issue"
    check_golden(name.removesuffix(".yaml"), lines(loaded))


def test_every_golden_file_has_its_fixture() -> None:
    fixtures = {name.removesuffix(".yaml") for name in SINGLE_FILE_CASES} | {"duplicate_names"}
    assert {p.stem for p in GOLDEN.glob("*.txt")} == fixtures


def test_duplicate_names_golden_output() -> None:
    results = load_specs([str(INVALID / name) for name in DUPLICATE_NAMES], PLAIN, relative_to=str(FIXTURES))

    assert [r.spec for r in results] == [None, None]
    check_golden("duplicate_names", [line for r in results for line in lines(r)])


# --- the same behaviour, field by field --------------------------------------------------------


def test_unknown_keys_say_did_you_mean() -> None:
    name = "unknown_keys.yaml"
    assert load(name).issues == [
        issue(name, 7, 1, "schedul", "unknown key 'schedul'", "did you mean 'schedule'?"),
        issue(name, 11, 5, "data.split.test_sise", "unknown key 'test_sise'", "did you mean 'test_size'?"),
        issue(name, 14, 3, "model.hyperparams", "unknown key 'hyperparams'", "did you mean 'params'?"),
    ]


def test_quoted_numbers_are_type_errors_outside_params() -> None:
    name = "wrong_types.yaml"
    issues = load(name).issues

    assert issues == [
        issue(name, 9, 22, "data.split.test_size", "input should be a valid number, got str '0.2'"),
        issue(name, 11, 15, "data.checks.min_rows", "input should be a valid integer, got str '1000'"),
        issue(name, 12, 23, "data.checks.required_columns", "input should be a valid list, got str 'tenure'"),
    ]
    # params are checked against the estimator (n_estimators: "200") once the rest of the spec is valid:
    # see tests/test_validate_data.py
    assert not [i for i in issues if i.field.startswith("model.params")]


@pytest.mark.parametrize(
    ("name", "estimator", "hint"),
    [
        ("estimator_os_system.yaml", "os.system", ALLOW_LIST_HINT),
        ("estimator_builtins_eval.yaml", "builtins.eval", ALLOW_LIST_HINT),
        (
            "estimator_misspelt.yaml",
            "sklearn.ensemble.RandomForestClasifier",
            "did you mean 'sklearn.ensemble.RandomForestClassifier'?",
        ),
    ],
)
def test_estimators_outside_the_allow_list(name: str, estimator: str, hint: str) -> None:
    assert load(name).issues == [
        issue(name, 10, 14, "model.estimator", f"estimator '{estimator}' is not on the allow-list", hint)
    ]


def test_a_team_policy_can_allow_more_estimators() -> None:
    text = (INVALID / "estimator_misspelt.yaml").read_text().replace("RandomForestClasifier", "MyForest")
    policy = SpecContext(estimators={"sklearn.ensemble.MyForest": "classification"})

    assert load_spec_text(text, str(INVALID / "x.yaml"), PLAIN).issues[0].field == "model.estimator"
    assert load_spec_text(text, str(INVALID / "x.yaml"), policy).ok


@pytest.mark.parametrize(
    ("name", "line", "col", "field", "tag"),
    [
        ("python_tag_apply.yaml", 5, 8, "owner", "!!python/object/apply:os.system"),
        ("python_tag_name.yaml", 10, 14, "model.estimator", "!!python/name:builtins.eval"),
    ],
)
def test_python_tags_are_refused(name: str, line: int, col: int, field: str, tag: str) -> None:
    assert load(name).issues == [issue(name, line, col, field, f"YAML tag '{tag}' is not allowed", PLAIN_DATA_HINT)]


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (INVALID / "python_tag_apply.yaml").read_text().replace('"echo pwned"', f'"touch {marker}"')

    loaded = load_spec_text(text, str(tmp_path / "spec.yaml"), PLAIN)

    assert loaded.issues[0].message == "YAML tag '!!python/object/apply:os.system' is not allowed"
    assert not marker.exists()


def test_duplicate_keys_name_both_positions() -> None:
    name = "duplicate_keys.yaml"
    loaded = load(name)

    assert loaded.issues == [
        issue(
            name,
            11,
            35,
            "model.params.C",
            "duplicate key 'C' (first defined at line 11, column 12)",
            "keep one of the two entries",
        ),
        issue(
            name,
            12,
            1,
            "owner",
            "duplicate key 'owner' (first defined at line 5, column 1)",
            "keep one of the two entries",
        ),
    ]
    # the name is still readable, so the placeholder DAG keeps the spec's DAG id
    assert loaded.raw_name == "duplicate_keys"


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    spec = (INVALID / "wrong_types.yaml").read_text()
    path = tmp_path / "huge.yaml"
    path.write_text(spec + "#" * (MAX_SPEC_BYTES - len(spec) + 1))
    size = path.stat().st_size
    assert size == MAX_SPEC_BYTES + 1 == 256 * 1024 + 1

    expected = SpecIssue(
        "huge.yaml",
        1,
        1,
        "",
        f"file is {size} bytes, over the 262144-byte limit",
        "a spec describes an experiment; keep data and long texts in separate files",
    )
    assert load_spec(path, PLAIN, display="huge.yaml").issues == [expected]
    assert load_spec_text(path.read_bytes(), str(path), PLAIN, display="huge.yaml").issues == [expected]


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    spec = (INVALID / "wrong_types.yaml").read_text()
    path = tmp_path / "big.yaml"
    path.write_text(spec + "#" * (MAX_SPEC_BYTES - len(spec)))
    assert path.stat().st_size == MAX_SPEC_BYTES

    loaded = load_spec(path, PLAIN)

    assert [i.field for i in loaded.issues] == [
        "data.split.test_size",
        "data.checks.min_rows",
        "data.checks.required_columns",
    ]


@pytest.mark.parametrize(
    ("name", "line", "field", "message"),
    [
        ("deep_nesting.yaml", 9, "model", "document expands to deeper than 32"),
        ("alias_bomb.yaml", 15, "lol4", "document expands to more than 20000 nodes"),
    ],
)
def test_hostile_yaml_is_cut_short(name: str, line: int, field: str, message: str) -> None:
    started = time.perf_counter()
    loaded = load(name)
    elapsed = time.perf_counter() - started

    assert loaded.issues == [
        issue(
            name,
            line,
            1,
            field,
            message,
            "specs are small; remove deep nesting or repeated aliases (a YAML 'alias bomb')",
        )
    ]
    assert elapsed < 5, f"{name} took {elapsed:.1f}s to reject"


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
def test_very_deep_nesting_is_a_yaml_error() -> None:
    text = "model: " + "[" * 1200 + "]" * 1200 + "\n"

    loaded = load_spec_text(text, "/specs/deep.yaml", PLAIN, display="deep.yaml")

    # libyaml stops at 1000 levels: the 1000th '[' is in column 7 + 1000
    assert lines(loaded) == [
        "deep.yaml:1:1007: invalid YAML: while increasing flow level exceeded maximum nesting depth"
    ]


def test_very_deep_nesting_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    # PyYAML falls back to its pure-Python parser when built without libyaml; that one recurses.
    monkeypatch.setattr(yamlsafe, "_Loader", yaml.SafeLoader)
    text = "model: " + "[" * 600 + "]" * 600 + "\n"

    loaded = load_spec_text(text, "/specs/deep.yaml", PLAIN, display="deep.yaml")

    assert lines(loaded) == [
        "deep.yaml:1:1: invalid YAML: nesting too deep to parse "
        "(specs are small; remove deep nesting or repeated aliases (a YAML 'alias bomb'))"
    ]


SECRET_HINT = "remove it and rotate it; secrets live in Airflow connections, referenced by conn_id"


def test_secrets_are_refused_where_they_are() -> None:
    name = "secrets.yaml"
    assert load(name).issues == [
        issue(name, 5, 14, "description", "value looks like a GitHub token", SECRET_HINT),
        issue(
            name,
            9,
            68,
            "data.training.conn_id",
            "looks like a connection URI or credentials, not a connection id",
            "create an Airflow connection holding the secret and put its conn_id here",
        ),
        issue(name, 13, 24, "model.params.aws_access_key_id", "value looks like an AWS access key id", SECRET_HINT),
        issue(
            name,
            14,
            15,
            "model.params.password",
            "'password' looks like a secret",
            "secrets live in Airflow connections; reference one with conn_id",
        ),
    ]


def test_a_registry_conn_id_holding_a_database_url_is_refused() -> None:
    text = (INVALID / "estimator_misspelt.yaml").read_text().replace("RandomForestClasifier", "RandomForestClassifier")
    text += 'registry: {conn_id: "postgres://u:p@h/db"}\n'

    loaded = load_spec_text(text, str(INVALID / "x.yaml"), PLAIN, display="x.yaml")

    assert lines(loaded) == [
        "x.yaml:11:21: registry.conn_id: looks like a connection URI or credentials, not a connection id "
        "(create an Airflow connection holding the secret and put its conn_id here)"
    ]


OUTSIDE_LOCAL = "keep data next to the spec, or ask engineers to add its folder to data_roots"
OUTSIDE_REMOTE = "engineers list allowed buckets/prefixes in the team policy (data_roots)"


@pytest.mark.parametrize(
    ("name", "uri", "hint"),
    [
        ("data_outside_roots.yaml", "/etc/passwd", OUTSIDE_LOCAL),
        ("data_parent_folder.yaml", "../../secret.csv", OUTSIDE_LOCAL),
        ("data_s3_bucket.yaml", "s3://bucket/x.csv", OUTSIDE_REMOTE),
    ],
)
def test_data_outside_the_allowed_roots(name: str, uri: str, hint: str) -> None:
    assert load(name).issues == [
        issue(name, 8, 19, "data.training.uri", f"'{uri}' is outside the allowed data roots", hint)
    ]


@pytest.mark.parametrize(
    ("name", "roots", "allowed"),
    [
        ("data_s3_bucket.yaml", ("s3://bucket",), True),
        ("data_s3_bucket.yaml", ("s3://bucket/",), True),
        ("data_s3_bucket.yaml", ("s3://bucket-other",), False),
        ("data_s3_bucket.yaml", ("s3://buck",), False),
        ("data_s3_bucket.yaml", ("gs://bucket",), False),
        ("data_parent_folder.yaml", (str(FIXTURES.parent),), True),
        ("data_parent_folder.yaml", (str(FIXTURES),), False),
    ],
)
def test_engineers_widen_the_data_roots(name: str, roots: tuple[str, ...], allowed: bool) -> None:
    loaded = load(name, SpecContext(data_roots=roots))

    assert loaded.ok is allowed
    assert [i.field for i in loaded.issues] == ([] if allowed else ["data.training.uri"])


def test_two_specs_with_one_name_are_both_reported() -> None:
    paths = [str(INVALID / name) for name in DUPLICATE_NAMES]
    for path in paths:  # each is fine on its own
        assert load_spec(path, PLAIN).ok

    first, second = load_specs(paths, PLAIN, relative_to=str(FIXTURES))

    assert first.spec is None
    assert second.spec is None
    assert first.issues == [
        SpecIssue(
            "invalid/duplicate_name_a.yaml",
            4,
            7,
            "name",
            "name 'same_name' is also used by invalid/duplicate_name_b.yaml",
            "give each spec a unique name",
        )
    ]
    assert second.issues == [
        SpecIssue(
            "invalid/duplicate_name_b.yaml",
            4,
            7,
            "name",
            "name 'same_name' is also used by invalid/duplicate_name_a.yaml",
            "give each spec a unique name",
        )
    ]


def test_a_name_is_claimed_even_by_a_spec_with_broken_yaml(tmp_path: Path) -> None:
    # Both are reported, whichever of the two is broken: fixing one file never silently swaps the DAG.
    valid = tmp_path / "churn.yaml"
    broken = tmp_path / "churn_copy.yaml"
    valid.write_text((INVALID / "duplicate_name_a.yaml").read_text())
    broken.write_text((INVALID / "duplicate_name_b.yaml").read_text() + "owner: bob\n")

    first, second = load_specs([str(valid), str(broken)], PLAIN, relative_to=str(tmp_path))

    assert lines(first) == [
        "churn.yaml:4:7: name: name 'same_name' is also used by churn_copy.yaml (give each spec a unique name)"
    ]
    assert lines(second) == [
        "churn_copy.yaml:4:7: name: name 'same_name' is also used by churn.yaml (give each spec a unique name)",
        "churn_copy.yaml:11:1: owner: duplicate key 'owner' (first defined at line 5, column 1) "
        "(keep one of the two entries)",
    ]
    assert first.spec is None
    assert second.spec is None


def test_missing_required_keys_point_at_their_parent() -> None:
    name = "missing_keys.yaml"
    assert load(name).issues == [
        issue(name, 2, 1, "owner", "required key 'owner' is missing"),
        issue(name, 8, 5, "data.training.target", "required key 'target' is missing"),
        issue(name, 10, 3, "model.estimator", "required key 'estimator' is missing"),
    ]


CLASSIFICATION_METRICS = "choose from accuracy, balanced_accuracy, precision, recall, f1, roc_auc, log_loss"


def test_metrics_must_fit_the_task_kind() -> None:
    name = "metric_for_task.yaml"
    assert load(name).issues == [
        issue(name, 13, 9, "validation.thresholds.r2", "'r2' is not a classification metric", CLASSIFICATION_METRICS),
        issue(
            name,
            14,
            14,
            "validation.thresholds.acuracy",
            "'acuracy' is not a classification metric",
            "did you mean 'accuracy'?",
        ),
        issue(
            name,
            15,
            22,
            "validation.champion.metric",
            "'rmse' is not a classification metric",
            CLASSIFICATION_METRICS,
        ),
    ]


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        ("bad_schedule_preset.yaml", "unknown schedule preset '@weeky'", "did you mean '@weekly'?"),
        (
            "bad_schedule_words.yaml",
            "'every monday at 6' is not a cron expression",
            "use 5 fields, e.g. '0 6 * * 1', or a preset like @weekly",
        ),
        (
            "bad_schedule_range.yaml",
            "'0 25 * * 1' is not a valid cron expression",
            "fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-6)",
        ),
    ],
)
def test_bad_schedules(name: str, message: str, hint: str) -> None:
    assert load(name).issues == [issue(name, 7, 11, "schedule", message, hint)]


def test_bad_name() -> None:
    name = "bad_name.yaml"
    loaded = load(name)

    assert loaded.issues == [
        issue(
            name,
            4,
            7,
            "name",
            "string should match pattern '^[a-z][a-z0-9_]{0,62}$'",
            "use lower-case letters, digits and '_', starting with a letter (it becomes a DAG id)",
        )
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("empty.yaml", "invalid/empty.yaml:1:1: file is empty (run 'airflow-bridge init NAME')"),
        (
            "multiple_documents.yaml",
            "invalid/multiple_documents.yaml:11:1: invalid YAML: expected a single document in the stream "
            "but found another document (a spec file holds one YAML document)",
        ),
        (
            "invalid_syntax.yaml",
            "invalid/invalid_syntax.yaml:9:6: invalid YAML: "
            "while parsing a flow mapping did not find expected ',' or '}'",
        ),
        (
            "list_not_mapping.yaml",
            "invalid/list_not_mapping.yaml:1:1: a spec is a mapping of keys (apiVersion, kind, name...) "
            "(run 'airflow-bridge init NAME' for a starter spec)",
        ),
    ],
)
def test_files_that_are_not_one_spec_mapping(name: str, expected: str) -> None:
    assert lines(load(name)) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# nothing but a comment\n", "s.yaml:1:1: file is empty (run 'airflow-bridge init NAME')"),
        ("---\n...\n", "s.yaml:1:1: file holds no spec (run 'airflow-bridge init NAME')"),
        ("null\n", "s.yaml:1:1: file holds no spec (run 'airflow-bridge init NAME')"),
        (
            "just a sentence\n",
            "s.yaml:1:1: a spec is a mapping of keys (apiVersion, kind, name...) "
            "(run 'airflow-bridge init NAME' for a starter spec)",
        ),
        (b"\xff\xfe\x00n\x00a", "s.yaml:1:1: file is not UTF-8 text (invalid start byte)"),
    ],
)
def test_other_non_specs(text: str | bytes, expected: str) -> None:
    assert lines(load_spec_text(text, "/specs/s.yaml", PLAIN, display="s.yaml")) == [expected]


def test_a_missing_file_is_an_issue_too(tmp_path: Path) -> None:
    loaded = load_spec(tmp_path / "gone.yaml", PLAIN, display="gone.yaml")

    assert lines(loaded) == ["gone.yaml:1:1: cannot read file: No such file or directory"]


# --- values that used to escape as exceptions ----------------------------------------------------


def test_impossible_dates_are_issues_not_crashes() -> None:
    name = "bad_date.yaml"
    assert load(name).issues == [
        issue(
            name,
            7,
            13,
            "start_date",
            "'2024-13-45' is not a valid date",
            "dates are written YYYY-MM-DD; quote the value to keep it as text",
        )
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!int abc", "'abc' is not a valid integer"),
        ("!!bool maybe", "'maybe' is not a valid boolean"),
        ("!!float x", "'x' is not a valid number"),
        ("1" * 5000, f"'{'1' * 37}...' is not a valid integer"),
    ],
)
def test_scalars_yaml_cannot_build_are_issues(value: str, message: str) -> None:
    text = (INVALID / "bad_date.yaml").read_text().replace("2024-13-45", value)

    loaded = load_spec_text(text, str(INVALID / "x.yaml"), PLAIN, display="x.yaml")

    assert loaded.issues == [
        SpecIssue("x.yaml", 7, 13, "start_date", message, "fix the value, or quote it to keep it as text")
    ]


NOT_FINITE = "write a number: NaN and infinity are not allowed here"


def test_unusable_values() -> None:
    name = "bad_values.yaml"
    assert load(name).issues == [
        issue(
            name,
            8,
            19,
            "data.training.uri",
            "the URI contains a control character",
            "write the path or URI as plain text",
        ),
        issue(name, 12, 32, "validation.thresholds.accuracy.min", "'.nan' is not a finite number", NOT_FINITE),
        issue(name, 13, 49, "validation.champion.min_improvement", "'.inf' is not a finite number", NOT_FINITE),
    ]


def test_an_unparsable_uri_is_an_issue() -> None:
    name = "bad_uri.yaml"
    assert load(name).issues == [
        issue(name, 8, 19, "data.training.uri", "'s3://[bucket/churn.csv' is not a valid URI (Invalid IPv6 URL)")
    ]


def test_tags_airflow_would_refuse() -> None:
    name = "long_tags.yaml"
    assert load(name).issues == [
        issue(
            name,
            6,
            7,
            "team",
            "team name is 98 characters long, over the 95 that fit a DAG tag",
            "the DAG is tagged 'team:<team>' and Airflow limits tags to 100 characters",
        ),
        issue(name, 7, 15, "tags[1]", "tag is 110 characters long, over Airflow's limit of 100", "shorten it"),
    ]


# --- all errors at once ------------------------------------------------------------------------


def test_all_errors_of_a_file_come_out_at_once() -> None:
    name = "broken_churn.yaml"
    loaded = load(name)

    assert loaded.issues == [
        issue(name, 5, 1, "descripton", "unknown key 'descripton'", "did you mean 'description'?"),
        issue(name, 8, 11, "schedule", "unknown schedule preset '@weeky'", "did you mean '@weekly'?"),
        issue(name, 11, 22, "data.split.test_size", "input should be a valid number, got str '0.2'"),
        issue(name, 14, 14, "model.estimator", "estimator 'os.system' is not on the allow-list", ALLOW_LIST_HINT),
        issue(
            name,
            15,
            41,
            "model.params.password",
            "'password' looks like a secret",
            "secrets live in Airflow connections; reference one with conn_id",
        ),
    ]
    assert len({i.line for i in loaded.issues}) == len(loaded.issues) >= 4
    assert loaded.raw_name == "broken_churn"  # its placeholder DAG keeps the name


def test_issue_format_is_what_editors_and_ci_parse() -> None:
    first = load("broken_churn.yaml").issues[0]

    assert first.format() == "invalid/broken_churn.yaml:5:1: descripton: unknown key 'descripton' " + (
        "(did you mean 'description'?)"
    )
    assert first.to_dict() == {
        "path": "invalid/broken_churn.yaml",
        "line": 5,
        "col": 1,
        "field": "descripton",
        "message": "unknown key 'descripton'",
        "hint": "did you mean 'description'?",
    }
