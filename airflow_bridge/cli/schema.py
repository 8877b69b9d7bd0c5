"""JSON Schemas of experiment specs and the team policy, generated from the pydantic models.

Editors (the YAML language server behind VS Code's YAML extension, JetBrains IDEs) complete and
check files through them, so each schema also carries the models' checks that JSON Schema can
express: a threshold needs a bound, metric names per task kind, connection ids, schedules,
credentials in URIs, dotted estimator names. Checks it cannot express (files on disk, the team
policy's tiers and members, ``min <= max``) stay with ``airflow-bridge validate``.

The generated files are committed twice, kept equal by a test: ``schemas/`` for the repository's
own specs and ``airflow_bridge/schemas/`` as package data, which ``init`` copies next to specs
written outside a checkout (see :func:`schema_reference`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_bridge.exceptions import BridgeError
from airflow_bridge.ml.catalogue import KNOWN_ESTIMATORS, METRICS
from airflow_bridge.spec.models import CONN_ID_PATTERN, NAME_PATTERN, SCHEDULE_PRESETS, Experiment
from airflow_bridge.spec.semantics import TAG_MAX_LEN

SCHEMA_KINDS = ("experiment", "policy")
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FOLDER = "schemas"
"""Where schemas live: ``schemas/`` at a repository's root, ``airflow_bridge/schemas/`` in the package."""

_CRON_FIELD = r"[0-9*/,A-Za-z?LW#-]+"  # models._CRON_FIELD, written for ECMA-262 regexes as editors run them
_SCHEDULE = rf"^(@({'|'.join(p[1:] for p in SCHEDULE_PRESETS)})|\s*{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}\s*)$"
_NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"
_NO_CREDENTIALS = r"^(?!(?:(?!://)[\s\S])*://[^/]*@)"  # nothing like 'user:password@' after the first '://'


def schema_filename(kind: str) -> str:
    """``experiment-v1.json`` or ``policy-v1.json``."""
    return f"{kind}-v1.json"


def schema_id(kind: str) -> str:
    """The schema's ``$id``: an identifier, not an address (nothing is served there)."""
    return f"urn:airflow-bridge:schema:{kind}-v1"


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check spec files."""
    schema = Experiment.model_json_schema(by_alias=True, mode="validation")
    defs = schema["$defs"]
    defs["ModelSection"]["properties"]["estimator"]["examples"] = sorted(KNOWN_ESTIMATORS)
    _pattern(defs["TrainingData"]["properties"]["uri"], _NO_CONTROL_CHARS, "the URI contains a control character")
    defs["TrainingData"]["properties"]["uri"]["allOf"] = [
        {
            "pattern": _NO_CREDENTIALS,
            "patternErrorMessage": "the URI carries credentials: remove 'user:password@' and reference an "
            "Airflow connection with conn_id",
        }
    ]
    for section in ("TrainingData", "RegistrySection"):
        _pattern(
            _string(defs[section]["properties"]["conn_id"]),
            CONN_ID_PATTERN.pattern,
            "not a connection id: use letters, digits, '_', '.' and '-' (credentials belong in the "
            "Airflow connection, not here)",
        )
    props = schema["properties"]
    _pattern(
        _string(props["schedule"]),
        _SCHEDULE,
        f"a cron expression of 5 fields (e.g. '0 6 * * 1') or a preset: {', '.join(SCHEDULE_PRESETS)}",
    )
    _string(props["schedule"])["examples"] = list(SCHEDULE_PRESETS)
    props["tags"]["items"]["maxLength"] = TAG_MAX_LEN
    props["team"]["maxLength"] = TAG_MAX_LEN - len("team:")
    defs["Training"]["properties"]["compute"]["examples"] = ["local"]
    defs["Threshold"]["anyOf"] = [  # the message sits on each branch: on the object it would hide every other error
        {
            "required": [bound],
            "properties": {bound: {"type": "number"}},
            "errorMessage": "a threshold needs 'min', 'max' or both, for example {min: 0.8}",
        }
        for bound in ("min", "max")
    ]
    all_metrics = [m for kind in METRICS.values() for m in kind]
    thresholds = defs["Validation"]["properties"]["thresholds"]
    thresholds["properties"] = {metric: thresholds["additionalProperties"] for metric in all_metrics}  # completion
    thresholds["additionalProperties"] = False
    defs["Champion"]["properties"]["metric"]["enum"] = all_metrics
    schema["allOf"] = [_metrics_of_task_kind(kind, metrics) for kind, metrics in METRICS.items()]
    _deployment_targets(defs["Deployment"], defs)
    return _document("experiment", schema)


def _deployment_targets(deployment: dict[str, Any], defs: dict[str, Any]) -> None:
    """Each installed target's schema fragment: the keys it owns under ``deployment:`` once it is named."""
    from airflow_bridge.spec.targets import DEPLOYMENT_KEYS, installed_targets

    usable = installed_targets().usable
    deployment["properties"]["target"]["examples"] = sorted(usable)
    deployment["allOf"] = []
    for name, plugin in sorted(usable.items()):
        fragment = plugin.settings.model_json_schema(by_alias=True, mode="validation")
        defs.update(fragment.pop("$defs", {}))
        own = list(fragment.get("properties", {}))
        deployment["allOf"].append(
            {
                "if": {"properties": {"target": {"const": name}}},
                "then": {
                    "properties": fragment.get("properties", {}),
                    "propertyNames": {
                        "enum": [*DEPLOYMENT_KEYS, *own],
                        "errorMessage": f"target '{name}' takes " + (", ".join(own) or "no settings of its own"),
                    },
                },
            }
        )


def _metrics_of_task_kind(kind: str, metrics: tuple[str, ...]) -> dict[str, Any]:
    """Gates and champion name only metrics of the task kind: ``model.task``, else the estimator's."""
    estimators = sorted(name for name, task in KNOWN_ESTIMATORS.items() if task == kind)
    is_kind = {
        "anyOf": [
            {"required": ["task"], "properties": {"task": {"const": kind}}},
            {"required": ["estimator"], "properties": {"task": {"type": "null"}, "estimator": {"enum": estimators}}},
        ]
    }
    message = f"not a {kind} metric: use one of {', '.join(metrics)}"
    return {
        "if": {"required": ["model"], "properties": {"model": is_kind}},
        "then": {
            "properties": {
                "validation": {
                    "properties": {
                        "thresholds": {"propertyNames": {"enum": list(metrics), "errorMessage": message}},
                        "champion": {"properties": {"metric": {"enum": list(metrics), "errorMessage": message}}},
                    }
                }
            }
        },
    }


def policy_schema() -> dict[str, Any]:
    """The JSON Schema editors use to complete and check the team policy (``_policy.yaml``)."""
    from airflow_bridge.governance.policy import DOTTED_NAME, FORBIDDEN_MODULES, Policy

    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    defs = schema["$defs"]
    schema["properties"]["estimators"]["propertyNames"] = {
        "allOf": [
            {"pattern": DOTTED_NAME.pattern, "patternErrorMessage": "a dotted class name, e.g. xgboost.XGBClassifier"},
            {
                "pattern": rf"^(?!({'|'.join(FORBIDDEN_MODULES)})\.)",
                "patternErrorMessage": "not an estimator: only estimator classes may be allow-listed",
            },
        ]
    }
    team = defs["TeamPolicy"]["properties"]
    aliases = _array(team["approval_required_for"])["items"]
    _pattern(aliases, NAME_PATTERN, "an alias name: lower-case letters, digits and '_'")
    _array(team["allowed_estimators"])["items"]["examples"] = sorted(KNOWN_ESTIMATORS)
    _array(team["allowed_compute"])["items"]["examples"] = ["local"]
    return _document("policy", schema)


def schema_for(kind: str) -> dict[str, Any]:
    """The schema of ``kind`` (one of :data:`SCHEMA_KINDS`)."""
    if kind == "experiment":
        return experiment_schema()
    if kind == "policy":
        return policy_schema()
    raise BridgeError(f"unknown schema '{kind}': choose {' or '.join(SCHEMA_KINDS)}")


def schema_text(kind: str) -> str:
    """The schema as committed and packaged: sorted keys, two-space indent, final newline."""
    return json.dumps(schema_for(kind), indent=2, sort_keys=True) + "\n"


def packaged_schema_text(kind: str) -> str:
    """The schema shipped in the installed package (equal to :func:`schema_text`; a test checks it)."""
    return resources.files("airflow_bridge").joinpath(SCHEMA_FOLDER, schema_filename(kind)).read_text("utf-8")


@dataclass(frozen=True)
class SchemaReference:
    """What a ``# yaml-language-server: $schema=...`` modeline in ``folder`` should say."""

    path: str
    """Relative to the YAML file, with '/' separators (the language server resolves it from the file's folder)."""
    file: Path
    written: tuple[Path, ...] = ()
    """Schema files copied from the package to make the reference resolve."""
    stale: bool = False
    """The schema found differs from this version's (an older copy): editors may check against old rules."""


def find_schema(folder: str | os.PathLike[str], kind: str) -> Path | None:
    """The nearest ``schemas/<kind>-v1.json`` in ``folder`` or one of its parents (a checkout's, or a copy)."""
    here = Path(os.path.abspath(folder))  # not resolve(): editors see the path as written, symlinks included
    for parent in (here, *here.parents):
        candidate = parent / SCHEMA_FOLDER / schema_filename(kind)
        if candidate.is_file():
            return candidate
    return None


def schema_reference(folder: str | os.PathLike[str], kind: str) -> SchemaReference:
    """A modeline target that resolves to an existing schema file wherever ``folder`` is.

    Inside a checkout (or any project) with a ``schemas/`` folder above ``folder``, that one,
    relative. Elsewhere the package's schemas are copied to ``folder/schemas/`` (never
    overwriting a file) and referenced as ``schemas/<kind>-v1.json``: a relative path keeps
    working when the folder is committed, moved or opened on another machine, which an absolute
    path into one machine's site-packages would not.
    """
    found = find_schema(folder, kind)
    written: list[Path] = []
    if found is None:
        target_dir = Path(folder) / SCHEMA_FOLDER
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            for each in SCHEMA_KINDS:
                target = target_dir / schema_filename(each)
                if not target.exists():
                    target.write_text(packaged_schema_text(each), encoding="utf-8")
                    written.append(target)
        except OSError as exc:
            raise BridgeError(
                f"cannot write the editor schema to {target_dir}: {exc.strerror}; "
                "make the folder writable or pass --dir to write the spec elsewhere"
            ) from None
        found = target_dir / schema_filename(kind)
    relative = Path(os.path.relpath(found, os.path.abspath(folder))).as_posix()
    stale = not written and found.read_text(encoding="utf-8") != packaged_schema_text(kind)
    return SchemaReference(relative, found, tuple(written), stale)


def _document(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": schema_id(kind),
        "$comment": f"Generated from the pydantic models by 'airflow-bridge schema {kind}'; do not edit.",
        **schema,
    }


def _string(prop: dict[str, Any]) -> dict[str, Any]:
    """The string branch of an optional (``anyOf`` with null) property, or the property itself."""
    return next(b for b in prop.get("anyOf", [prop]) if b.get("type") == "string")


def _array(prop: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in prop.get("anyOf", [prop]) if b.get("type") == "array")


def _pattern(target: dict[str, Any], pattern: str, message: str) -> None:
    """A pattern, and the message editors show instead of the raw regular expression."""
    target["pattern"] = pattern
    target["patternErrorMessage"] = message
