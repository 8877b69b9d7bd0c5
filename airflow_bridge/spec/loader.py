"""Load spec files into :class:`Experiment` objects, or into every issue the file has.

Loading never raises for one spec's sake: a file yields a spec or a list of positioned issues, even
when a check fails unexpectedly, so one broken spec cannot hide the others. Nothing here imports
Airflow.
"""

from __future__ import annotations

import hashlib
import os
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_bridge.issues import SpecIssue, did_you_mean, failure_issue, percent_hint
from airflow_bridge.spec.issues import hint_comment_keys
from airflow_bridge.spec.models import NAME_PATTERN, Experiment
from airflow_bridge.spec.numbers import number_findings
from airflow_bridge.spec.params import builtin_table, names_value
from airflow_bridge.spec.semantics import (
    Finding,
    SpecContext,
    check_experiment,
    may_hold_secrets,
    resolve_data_uri,
    scan_for_secrets,
)
from airflow_bridge.spec.yamlsafe import LocatedDocument, Path, YamlProblem, load_located, read_bounded

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
    error: BaseException | None = field(default=None, repr=False, compare=False)
    """The unexpected exception that stopped checking this spec (logged by the DAG factory), if any."""

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
        raw = read_bounded(real)
    except (OSError, ValueError) as exc:  # ValueError: a path the OS cannot take (a NUL byte)
        reason = getattr(exc, "strerror", None) or str(exc)
        return LoadedSpec(display, issues=[SpecIssue(display, 1, 1, "", f"cannot read file: {reason}")])
    if isinstance(raw, YamlProblem):  # too large, or not a regular file: never read in full
        issue = SpecIssue(display, 1, 1, "", raw.message, raw.hint)
        return LoadedSpec(display, issues=[issue], source=real)
    return load_spec_text(raw, real, context, display=display)


def load_spec_text(
    text: str | bytes, path: str = "<spec>", context: SpecContext | None = None, *, display: str | None = None
) -> LoadedSpec:
    """Load a spec from text; ``path`` resolves relative data paths, ``display`` names it in messages.

    Never raises for one spec's sake: an unexpected exception in any step (a bug in a check, a
    RecursionError, a MemoryError) becomes an issue of this spec, so the other specs are unaffected.
    """
    context = context or SpecContext.from_environment()
    raw = text.encode("utf-8") if isinstance(text, str) else text
    result = LoadedSpec(display or path, sha256=hashlib.sha256(raw).hexdigest(), source=path)
    step = _Step()
    try:
        _load_into(result, raw, context, step)
        if result.issues and b" #" in raw:
            result.issues = hint_comment_keys(result.issues, raw.decode("utf-8", errors="replace"))
    except Exception as exc:  # whatever goes wrong, it costs this spec only
        result.spec = None
        result.error = exc
        result.issues.append(failure_issue(result.path, f"could not finish {step.doing}", exc))
        result.issues.sort()
    return result


class _Step:
    """What loading a spec was doing, for the message when it fails unexpectedly."""

    doing = "reading the spec's YAML"


def _load_into(result: LoadedSpec, raw: bytes, context: SpecContext, step: _Step) -> None:
    """``load_spec_text``'s work: fills ``result`` with the spec or its issues."""
    path = result.path
    doc = load_located(raw)
    for problem in doc.problems:
        position = problem.position
        result.issues.append(
            SpecIssue(path, position.line, position.col, dotted_path(problem.path), problem.message, problem.hint)
        )
    if isinstance(doc.data, dict) and isinstance(doc.data.get("name"), str):
        result.raw_name = doc.data["name"]  # readable despite YAML problems elsewhere: keeps the DAG id
    if isinstance(doc.data, dict) and isinstance(doc.data.get("owner"), str) and doc.data["owner"].strip():
        result.raw_owner = doc.data["owner"].strip()
    if doc.data is None and not result.issues:
        result.issues.append(SpecIssue(path, 1, 1, "", "file holds no spec", "run 'airflow-bridge init NAME'"))
    if result.issues:
        return
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
        return
    step.doing = "checking the spec's numbers"
    for finding_path, message, hint in number_findings(doc, _params_taking(doc.data)):
        position = doc.position_of(finding_path)
        result.issues.append(SpecIssue(path, position.line, position.col, dotted_path(finding_path), message, hint))
    step.doing = "looking for secrets in the spec"
    text = raw.decode("utf-8", errors="replace")
    findings = list(scan_for_secrets(doc.data)) if may_hold_secrets(text) else []
    step.doing = "validating the spec"
    try:
        spec = Experiment.model_validate(doc.data, context=context.validation_context())
    except ValidationError as exc:
        numbers = {issue.field for issue in result.issues}  # reported more clearly than pydantic does
        result.issues.extend(i for i in pydantic_issues(exc, doc, path) if i.field not in numbers)
    else:
        if not result.issues:  # out-of-range numbers: like validation errors, no further checks
            _check_valid(result, spec, doc, context, findings=findings, step=step)
    flagged = {issue.field for issue in result.issues}
    for finding_path, message, hint in findings:
        dotted = dotted_path(finding_path)
        if dotted in flagged:
            continue  # already reported more precisely by validation
        position = doc.position_of(finding_path)
        result.issues.append(SpecIssue(path, position.line, position.col, dotted, message, hint))
    result.issues.sort()
    if result.issues:
        result.spec = None


def _check_valid(
    result: LoadedSpec,
    spec: Experiment,
    doc: LocatedDocument,
    context: SpecContext,
    *,
    findings: list[Finding],
    step: _Step,
) -> None:
    """The checks of a structurally valid spec: cross-field, data (``validate``), notes and the team policy's."""
    path = result.path
    step.doing = "checking the spec"
    spec_dir = os.path.dirname(os.path.abspath(result.source))
    noted: list[Finding] = []
    findings.extend(check_experiment(spec, spec_dir, context, noted))
    for note_check in context.notes:
        noted.extend(note_check(spec))
    for finding_path, message, hint in noted:
        position = doc.position_of(finding_path)
        result.warnings.append(SpecIssue(path, position.line, position.col, dotted_path(finding_path), message, hint))
    step.doing = "checking the spec against the team policy"
    for extra_check in context.checks:
        findings.extend(extra_check(spec))
    step.doing = "completing the spec"
    result.spec = _normalise(spec, spec_dir, context)


def _params_taking(data: dict[str, Any]) -> Callable[[Path, float], bool]:
    """Which non-finite ``model.params`` values the (built-in) estimator explicitly takes, e.g. ``.inf``."""

    def allows(where: Path, value: float) -> bool:
        model = data.get("model")
        estimator = model.get("estimator") if isinstance(model, dict) else None
        if len(where) != 3 or where[:2] != ("model", "params") or not isinstance(estimator, str):
            return False
        table = builtin_table(estimator)
        return table is not None and names_value(table.get(str(where[2]), ()), value)

    return allows


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
        raw = read_bounded(path)
        doc = load_located(raw if isinstance(raw, bytes) else b"")
    except Exception:  # only a position: never worth failing for
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


def dotted_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def pydantic_issues(
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
            elif kind == "less_than" and loc[-1] == "test_size":
                hint = percent_hint(error.get("input"))
        issues.append(SpecIssue(path, position.line, position.col, dotted_path(where), message, hint))
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
