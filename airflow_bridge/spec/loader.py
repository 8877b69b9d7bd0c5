"""Load spec files into :class:`Experiment` objects, or into every issue the file has.

Loading never raises for bad input: a file yields a spec or a list of positioned issues, so one
broken spec cannot hide the others. Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
import os
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_bridge.spec.issues import SpecIssue, did_you_mean
from airflow_bridge.spec.models import NAME_PATTERN, Experiment
from airflow_bridge.spec.semantics import (
    Finding,
    SpecContext,
    check_experiment,
    may_hold_secrets,
    resolve_data_uri,
    scan_for_secrets,
)
from airflow_bridge.spec.yamlsafe import MAX_SPEC_BYTES, LocatedDocument, Path, load_located

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedSpec:
    """The outcome of loading one file: a valid spec, or the issues that stop it."""

    path: str
    spec: Experiment | None = None
    issues: list[SpecIssue] = field(default_factory=list)
    sha256: str = ""
    raw_name: str | None = None
    """The ``name`` field as written, when readable; names placeholder DAGs of broken specs."""
    raw_owner: str | None = None
    """The ``owner`` field as written, when readable; owns the placeholder DAG of a broken spec."""
    source: str = ""
    """The real file path (``path`` is the one shown to users)."""
    warnings: list[SpecIssue] = field(default_factory=list)
    """Notes that do not make the spec invalid (e.g. an empty column in the data, which training skips)."""

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.issues


def discover_specs(folder: str | os.PathLike[str]) -> list[str]:
    """Spec files under ``folder``, sorted; files starting with '_' or '.' (policy, drafts) are skipped."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found.extend(
            os.path.join(root, name)
            for name in files
            if name.endswith(SPEC_SUFFIXES) and not name.startswith((".", "_"))
        )
    return sorted(found)


def load_spec(
    path: str | os.PathLike[str], context: SpecContext | None = None, *, display: str | None = None
) -> LoadedSpec:
    """Load one spec file; I/O errors become issues too. ``display`` is the path shown in messages."""
    real = os.fspath(path)
    display = display or real
    try:
        size = os.path.getsize(real)
        if size > MAX_SPEC_BYTES:
            raw: bytes = b"x" * (MAX_SPEC_BYTES + 1)  # reported by the YAML layer without reading it all
            loaded = load_spec_text(raw, real, context, display=display)
            loaded.issues[0] = _replace_message(loaded.issues[0], size)
            return loaded
        with open(real, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        return LoadedSpec(display, issues=[SpecIssue(display, 1, 1, "", f"cannot read file: {exc.strerror}")])
    return load_spec_text(raw, real, context, display=display)


def _replace_message(issue: SpecIssue, size: int) -> SpecIssue:
    message = f"file is {size} bytes, over the {MAX_SPEC_BYTES}-byte limit"
    return SpecIssue(issue.path, issue.line, issue.col, issue.field, message, issue.hint)


def load_spec_text(
    text: str | bytes, path: str = "<spec>", context: SpecContext | None = None, *, display: str | None = None
) -> LoadedSpec:
    """Load a spec from text; ``path`` resolves relative data paths, ``display`` names it in messages."""
    context = context or SpecContext.from_environment()
    raw = text.encode("utf-8") if isinstance(text, str) else text
    source_path = path
    path = display or path
    result = LoadedSpec(path, sha256=hashlib.sha256(raw).hexdigest(), source=source_path)
    doc = load_located(raw)
    for problem in doc.problems:
        result.issues.append(
            SpecIssue(
                path,
                problem.position.line,
                problem.position.col,
                _dotted(problem.path),
                problem.message,
                problem.hint,
            )
        )
    if isinstance(doc.data, dict) and isinstance(doc.data.get("name"), str):
        result.raw_name = doc.data["name"]  # readable despite YAML problems elsewhere: keeps the DAG id
    if isinstance(doc.data, dict) and isinstance(doc.data.get("owner"), str) and doc.data["owner"].strip():
        result.raw_owner = doc.data["owner"].strip()
    if doc.data is None and not result.issues:
        result.issues.append(SpecIssue(path, 1, 1, "", "file holds no spec", "run 'airflow-bridge init NAME'"))
    if result.issues:
        return result
    if not isinstance(doc.data, dict):
        result.issues.append(
            SpecIssue(
                path,
                1,
                1,
                "",
                "a spec is a mapping of keys (apiVersion, kind, name...)",
                "run 'airflow-bridge init NAME' for a starter spec",
            )
        )
        return result
    text = raw.decode("utf-8", errors="replace")
    findings = list(scan_for_secrets(doc.data)) if may_hold_secrets(text) else []
    try:
        spec = Experiment.model_validate(doc.data, context=context.validation_context())
    except ValidationError as exc:
        result.issues.extend(_pydantic_issues(exc, doc, path))
    else:
        spec_dir = os.path.dirname(os.path.abspath(source_path))
        noted: list[Finding] = []
        findings.extend(check_experiment(spec, spec_dir, context, noted))
        for note_check in context.notes:
            noted.extend(note_check(spec))
        for finding_path, message, hint in noted:
            position = doc.position_of(finding_path)
            result.warnings.append(SpecIssue(path, position.line, position.col, _dotted(finding_path), message, hint))
        for extra_check in context.checks:
            findings.extend(extra_check(spec))
        result.spec = _normalise(spec, spec_dir, context)
    flagged = {issue.field for issue in result.issues}
    for finding_path, message, hint in findings:
        dotted = _dotted(finding_path)
        if dotted in flagged:
            continue  # already reported more precisely by validation
        position = doc.position_of(finding_path)
        result.issues.append(SpecIssue(path, position.line, position.col, dotted, message, hint))
    result.issues.sort()
    if result.issues:
        result.spec = None
    return result


def load_specs(
    paths: Iterable[str], context: SpecContext | None = None, *, relative_to: str | None = None
) -> list[LoadedSpec]:
    """Load several files; two specs with one name are both reported and neither builds.

    With ``relative_to``, messages show paths relative to that folder.
    """
    context = context or SpecContext.from_environment()
    results = [
        load_spec(path, context, display=os.path.relpath(path, relative_to) if relative_to else None) for path in paths
    ]
    return mark_duplicate_names(results)


def mark_duplicate_names(results: list[LoadedSpec]) -> list[LoadedSpec]:
    """Two specs with one name, or registering one model: both get an issue and neither builds."""
    by_model: dict[str, list[LoadedSpec]] = {}
    for result in results:
        if result.spec is not None:
            by_model.setdefault(result.spec.registered_model, []).append(result)
    by_name: dict[str, list[LoadedSpec]] = {}
    for result in results:
        if result.raw_name:
            by_name.setdefault(result.raw_name, []).append(result)
    for name, clashing in by_name.items():
        if len(clashing) > 1:
            _mark(clashing, ("name",), f"name '{name}' is also used by {{others}}", "give each spec a unique name")
    for model, clashing in by_model.items():
        if len(clashing) > 1 and len({r.raw_name for r in clashing}) > 1:  # one name: reported above
            _mark(
                clashing,
                ("registry", "model"),
                f"model '{model}' is also registered by {{others}}: the two DAGs would overwrite each "
                "other's model card and aliases",
                "give each spec its own registry.model; it defaults to the spec's name",
                at=True,
            )
    return results


def _mark(clashing: list[LoadedSpec], field: tuple[str, ...], message: str, hint: str, *, at: bool = False) -> None:
    """Add the clash to each spec at its own position, naming the other specs (``at``: with their positions)."""
    where = {id(r): _position(r.source or r.path, field) for r in clashing}
    for result in clashing:
        others = ", ".join(
            other.path + (":{}:{}".format(*where[id(other)]) if at else "") for other in clashing if other is not result
        )
        line, col = where[id(result)]
        result.issues.append(SpecIssue(result.path, line, col, ".".join(field), message.format(others=others), hint))
        result.issues.sort()
        result.spec = None


def _position(path: str, field: tuple[str, ...]) -> tuple[int, int]:
    """Where ``field`` is written in the file (its nearest written parent; ``name`` when absent)."""
    try:
        with open(path, "rb") as handle:
            doc = load_located(handle.read(MAX_SPEC_BYTES + 1))
    except OSError:
        return (1, 1)
    data = doc.data if isinstance(doc.data, dict) else {}
    registry = data.get("registry")
    if field == ("registry", "model") and not (isinstance(registry, dict) and "model" in registry):
        field = ("name",)
    position = doc.position_of(field)
    return (position.line, position.col)


def _normalise(spec: Experiment, spec_dir: str, context: SpecContext) -> Experiment:
    """Fill what the spec implies: absolute data URI and the task kind."""
    training = spec.data.training
    data = spec.data.model_copy(
        update={"training": training.model_copy(update={"uri": resolve_data_uri(training.uri, spec_dir)})}
    )
    kind = spec.task_kind if spec.model.task else context.estimators.get(spec.model.estimator, spec.task_kind)
    model = spec.model.model_copy(update={"task": kind})
    return spec.model_copy(update={"data": data, "model": model})


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _pydantic_issues(
    exc: ValidationError, doc: LocatedDocument, path: str, root: type[BaseModel] = Experiment
) -> list[SpecIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(error["loc"])
        kind = error["type"]
        ctx = error.get("ctx") or {}
        hint: str | None = ctx.get("hint")
        if kind == "missing":
            where: Path = (*_known_prefix(loc[:-1], doc), loc[-1])
            position = doc.position_of(where[:-1])
            message = f"required key '{loc[-1]}' is missing"
        elif kind == "extra_forbidden":
            where = _known_prefix(loc, doc)
            position = doc.position_of(where, prefer_key=True)
            message = f"unknown key '{loc[-1]}'"
            allowed = allowed_keys(loc[:-1], root)
            hint = did_you_mean(str(loc[-1]), allowed) or (
                f"allowed keys: {', '.join(sorted(allowed))}" if allowed else None
            )
        else:
            where = _known_prefix(loc, doc)
            position = doc.position_of(where)
            message = _message(error)
            if kind == "literal_error":
                choices = [c.strip("' ") for c in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
                hint = did_you_mean(str(error.get("input")), choices)
            elif kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
                hint = "use lower-case letters, digits and '_', starting with a letter (it becomes a DAG id)"
        issues.append(SpecIssue(path, position.line, position.col, _dotted(where), message, hint))
    return issues


def _known_prefix(loc: Sequence[str | int], doc: LocatedDocument) -> Path:
    """The part of a pydantic location that names real document nodes (drops 'function-after[...]' etc.)."""
    known: list[str | int] = []
    for part in loc:
        candidate = (*known, part)
        if doc.locates(candidate):
            known.append(part)
        elif not (isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})):
            break
    return tuple(known)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "bridge":
        return str(error["msg"])
    msg = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg[0].lower()}{msg[1:]}, got {type(error.get('input')).__name__} {error.get('input')!r}"
    return msg[0].lower() + msg[1:]


def allowed_keys(loc: Sequence[str | int], root: type[BaseModel] = Experiment) -> set[str]:
    """Keys allowed in the mapping at ``loc`` of a spec (or policy), for 'did you mean' hints."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field_info = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field_info is None:
                return set()
            current = field_info.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return set()
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return {f.alias or n for n, f in current.model_fields.items()}
    return set()


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation
