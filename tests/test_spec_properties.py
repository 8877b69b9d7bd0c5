"""Property-based tests of spec loading: whatever the input, the outcome is a spec or positioned issues.

Valid specs are generated as data, dumped to YAML in several styles, then mutated: keys dropped or
misspelt, values retyped, YAML fragments and raw bytes inserted, text truncated, tags added, lines
duplicated. The properties:

* every input yields either a valid spec that builds (and validates as) an Airflow DAG, or at least
  one issue, each inside the file; nothing ever raises;
* a bad spec in a folder never changes the DAGs built from the other specs in it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_bridge.cli.schema import experiment_schema
from airflow_bridge.factory.build import build_dag
from airflow_bridge.factory.dags import load_dag_specs
from airflow_bridge.factory.placeholder import INVALID_TAG
from airflow_bridge.governance.policy import BUILTIN_PARAM_CAPS
from airflow_bridge.ml.catalogue import (
    DEFAULT_ESTIMATORS,
    METRIC_RANGES,
    METRICS,
    PROBABILITY_METRICS,
    lacks_probabilities,
)
from airflow_bridge.spec import API_VERSION, LoadedSpec, SpecContext, load_spec
from airflow_bridge.spec.models import SCHEDULE_PRESETS
from airflow_bridge.spec.params import builtin_table

PLAIN = SpecContext()
COMMON = settings(
    deadline=None,
    database=None,  # keep no example database in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TASKS = {"train", "validate", "register"}  # and "deploy" when the spec deploys

# --- valid specs -------------------------------------------------------------------------------

WORD = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
PROSE = st.text(alphabet=string.ascii_letters + string.digits + " .,'()\n", max_size=80)
CRONS = ("0 6 * * 1", "*/15 * * * *", "0 0 1 * *", "30 2 * * MON-FRI", "0 0 L * *", "5 4 * * sun")
URIS = ("data/train.csv", "train.csv", "./data/t.parquet", "sub/dir/x.pq", "file:train.csv")
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False),
    WORD,
)


def bound(metric: str) -> st.SearchStrategy[float]:
    """A gate bound the metric can reach (validate refuses f1 >= 1.01 or mae <= -1)."""
    low, high = METRIC_RANGES[metric]
    return st.floats(-1e3 if low is None else low, 1e3 if high is None else high, allow_nan=False)


@st.composite
def thresholds(draw: st.DrawFn, metric_names: tuple[str, ...]) -> dict[str, Any]:
    result = {}
    for metric in draw(st.lists(st.sampled_from(metric_names), unique=True, max_size=3)):
        low, high = sorted([draw(bound(metric)), draw(bound(metric))])
        result[metric] = draw(st.sampled_from([{"min": low}, {"max": high}, {"min": low, "max": high}]))
    return result


def accepted_values(constraint: tuple[Any, ...]) -> st.SearchStrategy[Any] | None:
    """Values an estimator parameter accepts, per the committed table (None: none a test can write)."""
    kind = constraint[0]
    if kind == "hidden":
        return accepted_values(constraint[1])
    if kind in ("int", "real", "float"):
        _, low, high, closed = constraint
        low = -(10**6) if low is None else low
        high = 10**6 if high is None else high
        if kind == "int":
            return st.integers(low + (closed not in ("left", "both")), high - (closed not in ("right", "both")))
        return st.floats(
            low,
            high,
            exclude_min=closed not in ("left", "both"),
            exclude_max=closed not in ("right", "both"),
            allow_nan=False,
        )
    simple: dict[str, st.SearchStrategy[Any]] = {"bool": st.booleans(), "none": st.none()}
    if kind in ("str", "options"):
        return st.sampled_from(constraint[1])
    return simple.get(kind)


@st.composite
def estimator_params(draw: st.DrawFn, estimator: str) -> dict[str, Any]:
    table = builtin_table(estimator)
    assert table is not None
    result = {}
    for name in draw(st.lists(st.sampled_from(sorted(table)), unique=True, max_size=4)):
        choices = [s for c in table[name] if (s := accepted_values(c)) is not None]
        if choices:
            value = draw(st.one_of(choices))
            cap = BUILTIN_PARAM_CAPS.get(name)  # above it, a spec is refused (no team policy raises it here)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            result[name] = type(value)(cap) if cap is not None and is_number and value > cap else value
    return result


@st.composite
def spec_dicts(draw: st.DrawFn, name: str | None = None) -> dict[str, Any]:
    """A valid spec as plain data, with optional sections present or not."""
    estimator = draw(st.sampled_from(sorted(DEFAULT_ESTIMATORS)))
    metric_names = METRICS[DEFAULT_ESTIMATORS[estimator]]
    maybe = st.booleans()
    spec: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "name": name or draw(NAME),
        "owner": draw(WORD),
        "team": draw(WORD),
    }
    if draw(maybe):
        spec["description"] = draw(PROSE)
    if draw(maybe):
        spec["schedule"] = draw(st.sampled_from([None, *SCHEDULE_PRESETS, *CRONS]))
    if draw(maybe):
        spec["start_date"] = draw(st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)))
    if draw(maybe):
        spec["tags"] = draw(st.lists(WORD, max_size=3))
    target = draw(WORD)
    training: dict[str, Any] = {"uri": draw(st.sampled_from(URIS)), "target": target}
    if draw(maybe):
        training["features"] = draw(st.lists(WORD.filter(lambda w: w != target), min_size=1, max_size=4))
    if draw(maybe):
        training["format"] = draw(st.sampled_from(["csv", "parquet"]))
    data: dict[str, Any] = {"training": training}
    if draw(maybe):
        data["split"] = {
            "test_size": draw(st.floats(0.05, 0.95)),
            "seed": draw(st.integers(0, 2**31 - 1)),
            "stratify": draw(maybe),
        }
    if draw(maybe):
        data["checks"] = {
            "min_rows": draw(st.integers(1, 10**6)),
            "required_columns": draw(st.lists(WORD, max_size=3)),
            "max_null_fraction": draw(st.floats(0, 1)),
        }
    spec["data"] = data
    model: dict[str, Any] = {"estimator": estimator}
    if draw(maybe):
        model["params"] = draw(estimator_params(estimator))
    spec["model"] = model
    if lacks_probabilities(estimator, model.get("params", {})):  # roc_auc, log_loss gates would never pass
        metric_names = tuple(m for m in metric_names if m not in PROBABILITY_METRICS)
    if draw(maybe):
        spec["training"] = {
            "compute": "local",
            "timeout_minutes": draw(st.integers(1, 7 * 24 * 60)),
            "retries": draw(st.integers(0, 10)),
        }
    if draw(maybe):
        validation: dict[str, Any] = {"thresholds": draw(thresholds(metric_names))}
        if draw(maybe):
            metric = draw(st.sampled_from(metric_names))
            low, high = METRIC_RANGES[metric]
            margin = st.floats(-1e3, 1e3 if low is None or high is None else high - low, allow_nan=False)
            validation["champion"] = {"metric": metric, "min_improvement": draw(margin)}
        spec["validation"] = validation
    if draw(maybe):
        spec["registry"] = {
            "model": draw(NAME),
            "conn_id": draw(st.from_regex(r"[a-z][a-z0-9_.\-]{0,20}", fullmatch=True)),
        }
    if draw(maybe):
        spec["deployment"] = {
            "target": "local",
            "alias": draw(NAME),
            "approval": draw(st.sampled_from(["policy", "required"])),
        }
    return spec


@st.composite
def dumped(draw: st.DrawFn, spec: dict[str, Any]) -> bytes:
    """The spec as YAML text, in block, flow or mixed style."""
    text = yaml.safe_dump(
        spec,
        sort_keys=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None, True])),
        width=draw(st.sampled_from([40, 80, 10**6])),
        allow_unicode=True,
    )
    if draw(st.booleans()):
        text = "# yaml-language-server: $schema=../schemas/experiment-v1.json\n" + text
    return text.encode()


# --- mutations ---------------------------------------------------------------------------------


def key_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every key of every mapping in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from key_paths(item, (*prefix, index))


def parent_of(spec: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def typo(draw: st.DrawFn, word: str) -> str:
    i = draw(st.integers(0, max(len(word) - 1, 0)))
    kind = draw(st.sampled_from(["drop", "double", "swap", "upper", "letter"]))
    if kind == "drop" and len(word) > 1:
        return word[:i] + word[i + 1 :]
    if kind == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "upper":
        return word[:i] + word[i:].capitalize()
    if kind == "letter":
        return word[:i] + draw(st.sampled_from(string.ascii_lowercase)) + word[i:]
    return word[:i] + word[i] * 2 + word[i + 1 :] if word else "x"


OTHER_VALUES = st.one_of(
    JSON_SCALAR,
    st.just(""),
    st.lists(JSON_SCALAR, max_size=2),
    st.dictionaries(WORD, JSON_SCALAR, max_size=2),
    st.floats(),  # nan and inf too
    st.integers(),
    st.text(max_size=20),
    st.dates(),
)


@st.composite
def mutate_data(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    paths = list(key_paths(spec))
    path = draw(st.sampled_from(paths))
    parent = parent_of(spec, path)
    kind = draw(st.sampled_from(["drop", "rename", "retype", "stringify"]))
    if kind == "drop":
        del parent[path[-1]]
    elif kind == "rename":
        parent[draw(typo(str(path[-1])))] = parent.pop(path[-1])
    elif kind == "retype":
        parent[path[-1]] = draw(OTHER_VALUES)
    else:  # "0.2" for 0.2, "1000" for 1000 ...
        parent[path[-1]] = str(parent[path[-1]])
    return spec


FRAGMENTS = (
    "x: !!python/object/apply:os.system ['echo pwned']",
    "x: !!python/name:builtins.eval",
    "x: !!python/object/new:dict {}",
    "!!python/object:os.system",
    "x: &a [*a]",
    "<<: {owner: mallory}",
    "? [a, b]\n: c",
    "x: *undefined",
    "---",
    "...",
    "%YAML 1.1",
    "{",
    "]",
    "- item",
    "\t- tab",
    "x: !!binary aGVsbG8=",
    "x: !!set {a, b}",
    "x: !!omap [a: 1]",
    "x: !!timestamp 2024-13-45",
    "start_date: 2024-02-30",
    "x: !!int abc",
    "x: !!bool maybe",
    "x: !!float .",
    "x: " + "9" * 5000,
    "x: " + "[" * 40 + "]" * 40,
    "x: " + "{a: " * 40 + "1" + "}" * 40,
    "x: " + "[" * 1200 + "]" * 1200,
    "lol: &l [l, l, l, l, l, l, l, l, l, l]\nlol2: &m [*l, *l, *l, *l, *l, *l, *l, *l, *l, *l]\n"
    "lol3: &n [*m, *m, *m, *m, *m, *m, *m, *m, *m, *m]\nlol4: [*n, *n, *n, *n, *n, *n, *n, *n, *n, *n]",
    'x: "\\x00"',
    'x: "\\ud800"',
    "x: 'unterminated",
    'x: "unterminated',
    "x: |\n  block\n text",
    "password: hunter2",
    "conn_id: postgres://u:p@h/db",
    "uri: /etc/passwd",
    "uri: ../../secret.csv",
    "uri: s3://bucket/x.csv",
    "uri: 's3://[bad/x.csv'",
    "schedule: 99 99 * * *",
    "tags: [" + "t" * 150 + "]",
    "estimator: os.system",
    "token: ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    "key: AKIAIOSFODNN7EXAMPLE",
    "é: ü",
    "\ufeff",
    "&a a: 1",
    "1: 2",
    "null: 3",
    "[1, 2]: x",
    "x: !custom {}",
    "x: !<tag:example.com,2000:app/foo> bar",
    "  nested: 1",
    "    deeper: [1, 2",
)
TAGS = tuple(
    f"{tag} "
    for tag in (
        "!!python/object/apply:os.system",
        "!!python/name:os.system",
        "!!str",
        "!!int",
        "!!float",
        "!!bool",
        "!!null",
        "!!timestamp",
        "!!binary",
        "!!map",
        "!!seq",
        "!custom",
        "&anchor",
        "*alias",
    )
)
SYNTAX = b":-[]{}#&*!|>'\"%@`,? \t\n\r\x00\x7f"


@st.composite
def mutate_text(draw: st.DrawFn, text: bytes) -> bytes:
    lines = text.split(b"\n")
    kind = draw(
        st.sampled_from(["fragment", "text", "bytes", "truncate", "tag", "duplicate", "char", "indent", "swap"])
    )
    line = draw(st.integers(0, len(lines) - 1))
    offset = draw(st.integers(0, len(text)))
    if kind in ("fragment", "text"):
        fragment = draw(st.sampled_from(FRAGMENTS)) if kind == "fragment" else draw(st.text(max_size=30))
        indent = draw(st.sampled_from(["", "  ", "    ", "\t"]))
        lines.insert(line, (indent + fragment).encode())
    elif kind == "bytes":
        return text[:offset] + draw(st.binary(min_size=1, max_size=8)) + text[offset:]
    elif kind == "truncate":
        return text[:offset]
    elif kind == "tag":
        spots = [i for i in range(len(text) - 1) if text[i : i + 2] in (b": ", b"- ")]
        if not spots:
            return text
        spot = draw(st.sampled_from(spots)) + 2
        return text[:spot] + draw(st.sampled_from(TAGS)).encode() + text[spot:]
    elif kind == "duplicate":  # a key line twice: a duplicate key
        lines.insert(line, lines[line])
    elif kind == "char":
        if not text:
            return text
        index = min(offset, len(text) - 1)
        return text[:index] + bytes([draw(st.sampled_from(SYNTAX))]) + text[index + 1 :]
    elif kind == "indent":
        lines[line] = draw(st.sampled_from([b" ", b"  ", b"\t"])) + lines[line]
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[line], lines[other] = lines[other], lines[line]
    return b"\n".join(lines)


@st.composite
def mutated_specs(draw: st.DrawFn, name: str | None = None) -> bytes:
    """A generated spec after 0-2 data mutations and 0-2 text mutations (at least one in all)."""
    spec = draw(spec_dicts(name))
    data_mutations = draw(st.integers(0, 2))
    text_mutations = draw(st.integers(0 if data_mutations else 1, 2))
    for _ in range(data_mutations):
        spec = draw(mutate_data(spec))
    text = draw(dumped(spec))
    for _ in range(text_mutations):
        text = draw(mutate_text(text))
    return text


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ab-spec-props-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def assert_outcome(raw: bytes, loaded: LoadedSpec) -> None:
    """A valid spec that builds a DAG Airflow accepts, or issues that point inside the file."""
    if loaded.ok:
        assert loaded.spec is not None
        dag = build_dag(loaded.spec, source=loaded.path, spec_sha256=loaded.sha256)
        dag.validate()  # what the DagBag checks before accepting a DAG (the schedule, ...)
        assert dag.dag_id == loaded.spec.name
        assert set(dag.task_ids) >= TASKS
        assert ("deploy" in dag.task_ids) == (loaded.spec.deployment is not None)
        return
    assert loaded.spec is None
    assert loaded.issues, "an invalid spec must say why"
    rows = LINE_BREAK.split(raw.decode("utf-8", errors="replace"))  # the last row follows the last break
    line_count = len(rows) - (rows[-1] == "")
    for issue in loaded.issues:
        where = issue.format()
        assert 1 <= issue.line <= line_count + 1, where  # +1: the end of a file without a final newline
        assert issue.col >= 1, where
        if issue.line <= len(rows):
            assert issue.col <= len(rows[issue.line - 1]) + 1, where
        assert issue.message.strip(), where
        assert where.startswith(f"{loaded.path}:{issue.line}:{issue.col}: ")


LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""What YAML counts as a line break (editors agree)."""


def json_data(spec: dict[str, Any]) -> Any:
    return json.loads(json.dumps(spec, default=str))


# --- properties --------------------------------------------------------------------------------


@settings(COMMON, max_examples=60)
@given(spec=spec_dicts(), style=st.data())
def test_generated_specs_are_valid_and_build(spec: dict[str, Any], style: st.DataObject, workdir: Path) -> None:
    raw = style.draw(dumped(spec))
    path = workdir / "valid.yaml"
    path.write_bytes(raw)

    loaded = load_spec(path, PLAIN)

    assert loaded.ok, [i.format() for i in loaded.issues]
    assert_outcome(raw, loaded)
    # the JSON schema editors use accepts every spec the loader accepts
    jsonschema.Draft202012Validator(experiment_schema()).validate(json_data(spec))


@settings(COMMON, max_examples=150)
@given(raw=mutated_specs())
def test_any_input_yields_a_spec_or_positioned_issues(raw: bytes, workdir: Path) -> None:
    path = workdir / "mutated.yaml"
    path.write_bytes(raw)

    loaded = load_spec(path, PLAIN)

    assert_outcome(raw, loaded)


@settings(COMMON, max_examples=40)
@given(
    names=st.lists(NAME.map(lambda n: f"spec_{n}"), min_size=2, max_size=3, unique=True),
    data=st.data(),
)
def test_a_bad_spec_never_changes_the_other_dags(names: list[str], data: st.DataObject, workdir: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        for name in names:
            spec = data.draw(spec_dicts(name))
            spec.pop("deployment", None)  # deploying may need approvers from a team policy; not the point here
            if "model" in spec.get("registry", {}):  # two specs registering one model are both invalid (by design)
                spec["registry"]["model"] = f"{name}_model"
            (folder / f"{name}.yaml").write_bytes(data.draw(dumped(spec)))
        before = dag_shapes(load_dag_specs(None, folder=str(folder)))
        assert set(before) == set(names)
        assert all(INVALID_TAG not in tags for _, tags in before.values())

        bad = folder / data.draw(st.sampled_from(["bad.yaml", "aaa_bad.yaml", "zzz_bad.yml", "mutant_spec.yaml"]))
        bad.write_bytes(data.draw(mutated_specs(name="mutant_spec")))
        after = dag_shapes(load_dag_specs(None, folder=str(folder)))
        clash = load_spec(bad, PLAIN).raw_name

        for name in names:
            if name == clash:  # the mutant took a valid spec's name: both are reported, neither builds
                assert INVALID_TAG in after[name][1]
            else:
                assert after[name] == before[name]
        assert len(after) == len(names) + (clash not in names)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dag_shapes(dags: dict[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    return {dag_id: (sorted(dag.task_ids), sorted(dag.tags)) for dag_id, dag in dags.items()}


def test_mutations_reach_every_kind_of_issue(workdir: Path) -> None:
    """The fuzzing above is only as good as its inputs: check a sample hits the main failure classes."""
    seen: set[str] = set()

    @settings(COMMON, max_examples=250, derandomize=True)
    @given(raw=mutated_specs())
    def collect(raw: bytes) -> None:
        loaded = load_bytes(workdir, raw)
        for issue in loaded.issues:
            seen.add(classify(issue.message))

    collect()
    assert {"yaml", "unknown key", "missing", "type", "tag", "duplicate"} <= seen, seen


def load_bytes(workdir: Path, raw: bytes) -> LoadedSpec:
    path = workdir / "sample.yaml"
    path.write_bytes(raw)
    return load_spec(path, PLAIN)


def classify(message: str) -> str:
    for needle, label in (
        ("invalid YAML", "yaml"),
        ("unknown key", "unknown key"),
        ("is missing", "missing"),
        ("input should be", "type"),
        ("YAML tag", "tag"),
        ("duplicate key", "duplicate"),
    ):
        if needle in message:
            return label
    return "other"
