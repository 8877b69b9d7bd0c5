"""Checks that need more than one field or the spec's location: metrics per task kind, gates that can
never pass, estimator parameters, data roots, compute tiers, a scan for secrets pasted anywhere in
the file, and (for ``validate``) the training data itself."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from airflow_bridge.issues import did_you_mean
from airflow_bridge.ml.catalogue import (
    DEFAULT_ESTIMATORS,
    LOWER_IS_BETTER,
    METRIC_RANGES,
    METRICS,
    PROBABILITY_METRICS,
    TaskKind,
    lacks_probabilities,
)
from airflow_bridge.spec.models import Experiment
from airflow_bridge.spec.params import builtin_table, check_params, check_space

Finding = tuple[tuple[str | int, ...], str, str | None]
"""(path in the document, message, hint)."""

REMOTE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "webhdfs", "sftp", "ftp")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
TAG_MAX_LEN = 100
"""Airflow refuses longer DAG tags; the factory tags each DAG with the spec's tags and 'team:<team>'."""

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"AKIA[0-9A-Z]{16}"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"), "a GitHub token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+"), "a JSON Web Token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "a URI with a password"),
)
_ANY_SECRET = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in _SECRET_PATTERNS))
# Literal fragments every token pattern starts with / every secret-named key contains: plain
# substring tests (fast) decide whether the regular expressions need to run at all.
_TOKEN_MARKERS = ("AKIA", "gh", "github_pat_", "xox", "sk-", "eyJ", "-----BEGIN")
_SECRET_KEY_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "accesskey",
    "access_key",
    "credential",
)
_SECRET_KEY_TEXT = re.compile(
    r"(password|passwd|secret|token|api_?key|access_?key|credentials?)['\"]?\s*:", re.IGNORECASE
)
_SECRET_KEYS = re.compile(r"(password|passwd|secret|token|api_?key|access_?key|credentials?)$", re.IGNORECASE)


@dataclass(frozen=True)
class SpecContext:
    """What engineers allow (team policy and deployment settings); the defaults are safe and local.

    ``data_roots`` lists folders and URI prefixes that training data may come from; a spec's own
    folder is always allowed.
    """

    estimators: dict[str, TaskKind] = field(default_factory=dict)
    data_roots: tuple[str, ...] = ()
    compute_tiers: tuple[str, ...] = ("local",)
    checks: tuple[Callable[[Experiment], Iterable[Finding]], ...] = ()
    """More checks of a valid spec (the team policy's), each yielding findings."""
    notes: tuple[Callable[[Experiment], Iterable[Finding]], ...] = ()
    """Checks whose findings are warnings: they block nothing (e.g. no team policy in reach)."""
    read_data: bool = False
    """Also check the spec against its local training data (``validate``; see :mod:`.datacheck`)."""
    policy: Any = None
    """The team policy (``governance.Policy``), for the checks of deployment targets that own keys of it."""

    @classmethod
    def from_environment(cls) -> SpecContext:
        roots = os.environ.get("AIRFLOW_BRIDGE_DATA_ROOTS", "")
        return cls(data_roots=tuple(r for r in roots.split(",") if r.strip()))

    def validation_context(self) -> dict[str, Any]:
        return {"estimators": self.estimators}


def check_experiment(
    spec: Experiment, spec_dir: str, context: SpecContext, warnings: list[Finding] | None = None
) -> Iterator[Finding]:
    """Every cross-field problem of a structurally valid spec; notes that block nothing go to ``warnings``."""
    kind = (
        spec.model.task or context.estimators.get(spec.model.estimator) or DEFAULT_ESTIMATORS.get(spec.model.estimator)
    )
    if kind is None:
        yield (
            ("model", "estimator"),
            f"cannot tell whether '{spec.model.estimator}' classifies or regresses",
            "add 'task: classification' or 'task: regression' under model",
        )
    else:
        metrics = METRICS[kind]
        named: list[tuple[tuple[str, ...], str, str]] = [
            (("validation", "thresholds", m), m, "") for m in spec.validation.thresholds
        ]
        if spec.validation.champion:
            named.append((("validation", "champion", "metric"), spec.validation.champion.metric, ""))
        if spec.validation.baseline:
            why = ", so the baseline gate could never be computed"
            named.append((("validation", "baseline", "metric"), spec.validation.baseline.metric, why))
        for where, metric, why in named:
            if metric not in metrics:
                yield (
                    where,
                    f"'{metric}' is not a {kind} metric{why}",
                    did_you_mean(metric, metrics) or f"choose from {', '.join(metrics)}",
                )
    for index, tag in enumerate(spec.tags):
        if len(tag) > TAG_MAX_LEN:
            yield (
                ("tags", index),
                f"tag is {len(tag)} characters long, over Airflow's limit of {TAG_MAX_LEN}",
                "shorten it",
            )
    if len(f"team:{spec.team}") > TAG_MAX_LEN:
        yield (
            ("team",),
            f"team name is {len(spec.team)} characters long, over the {TAG_MAX_LEN - len('team:')} that fit a DAG tag",
            f"the DAG is tagged 'team:<team>' and Airflow limits tags to {TAG_MAX_LEN} characters",
        )
    training = spec.data.training
    if training.features is not None and training.target in training.features:
        yield (
            ("data", "training", "features"),
            f"the target '{training.target}' is also listed as a feature",
            "remove it from features",
        )
    if spec.training.compute not in context.compute_tiers:
        yield (
            ("training", "compute"),
            f"unknown compute tier '{spec.training.compute}'",
            did_you_mean(spec.training.compute, context.compute_tiers)
            or f"tiers defined in the team policy: {', '.join(context.compute_tiers)}",
        )
    yield from check_deployment(spec, context)
    table = builtin_table(spec.model.estimator)
    if table is not None:
        yield from check_params(spec.model.estimator, spec.model.params, table)
    yield from _check_search(spec, kind, table)
    if spec.model.search is not None and warnings is not None and not _optuna_installed():
        from airflow_bridge.ml.search import missing_optuna

        warnings.append((("model", "search"), missing_optuna(), "validate checked the search; training needs it"))
    yield from _check_gates(spec, kind)
    uri_problems = list(_check_data_uri(training.uri, training.format, training.conn_id, spec_dir, context))
    yield from uri_problems
    if context.read_data:
        from airflow_bridge.spec import datacheck

        try:
            if table is None:
                yield from datacheck.check_imported_params(spec.model.estimator, spec.model.params)
            path = datacheck.local_data_path(resolve_data_uri(training.uri, spec_dir))
            if path is not None and not uri_problems:
                yield from datacheck.check_data(spec, path, kind, [] if warnings is None else warnings)
        except Exception as exc:  # a reader or check failing on this spec's data: its issue only
            yield (
                ("data", "training", "uri"),
                f"could not check the training data: {type(exc).__name__}: {str(exc)[:300]}",
                "the other specs are not affected; 'airflow-bridge validate --no-data' skips this check",
            )


def check_deployment(spec: Experiment, context: SpecContext) -> Iterator[Finding]:
    """The deployment names an installed target, with settings it takes and its own checks passed."""
    deployment = spec.deployment
    if deployment is None:
        return
    from airflow_bridge.spec.targets import installed_targets, parse_settings

    installed = installed_targets()
    plugin = installed.usable.get(deployment.target)
    if plugin is None:
        hint = did_you_mean(deployment.target, list(installed.usable))
        yield (("deployment", "target"), installed.refusal(deployment.target), hint)
        return
    settings, problems = parse_settings(plugin, deployment.settings)
    yield from problems
    if settings is not None:
        yield from plugin.check_spec(spec, settings, context)


def configured_artifact_root() -> str | None:
    """The artifact root configured for this installation (None: not configured, the local default)."""
    from airflow_bridge.config import ARTIFACT_ROOT_ENV, bridge_config

    return bridge_config("artifact_root") or os.environ.get(ARTIFACT_ROOT_ENV) or None


def _optuna_installed() -> bool:
    """Whether Optuna is importable here, found without importing it."""
    from importlib.util import find_spec

    return find_spec("optuna") is not None


def _check_search(spec: Experiment, kind: TaskKind | None, table: Any) -> Iterator[Finding]:
    """``model.search``: a space the estimator takes, a metric of the task it computes, a budget within the timeout."""
    search = spec.model.search
    if search is None:
        return
    if table is not None:
        yield from check_space(spec.model.estimator, search.space, spec.model.params, table)
    where = ("model", "search", "metric")
    if kind is not None and search.metric not in METRICS[kind]:
        yield (
            where,
            f"'{search.metric}' is not a {kind} metric, so the search has nothing to optimise",
            did_you_mean(search.metric, METRICS[kind]) or f"choose from {', '.join(METRICS[kind])}",
        )
    elif search.metric in PROBABILITY_METRICS:
        hint = lacks_probabilities(spec.model.estimator, dict(spec.model.params))
        if hint is not None:
            name = spec.model.estimator.rsplit(".", 1)[-1]
            yield where, f"{name} gives no probabilities here, so {search.metric} cannot be optimised", hint
    minutes = search.budget.minutes
    if minutes is not None and minutes > spec.training.timeout_minutes:
        yield (
            ("model", "search", "budget", "minutes"),
            f"the search may run {minutes:g} minutes but the train task times out after "
            f"{spec.training.timeout_minutes} (training.timeout_minutes)",
            "lower the budget or raise training.timeout_minutes (the final fit also needs time)",
        )


def _check_gates(spec: Experiment, kind: TaskKind | None) -> Iterator[Finding]:
    """Thresholds and champion margins that no model can meet (f1 >= 1.01, mae <= -1)."""
    for metric, threshold in spec.validation.thresholds.items():
        if kind is not None and metric not in METRICS[kind]:
            continue  # reported as a metric the task does not have
        low, high = METRIC_RANGES.get(metric, (None, None))
        where = ("validation", "thresholds", metric)
        if threshold.min is not None and high is not None and threshold.min > high:
            yield (
                (*where, "min"),
                f"{metric} is at most {high:g}, so min: {threshold.min:g} can never pass",
                f"use a min of at most {high:g}",
            )
        if threshold.max is not None and low is not None and threshold.max < low:
            yield (
                (*where, "max"),
                f"{metric} is never below {low:g}, so max: {threshold.max:g} can never pass",
                f"use a max of at least {low:g}" + (f", e.g. max: {-threshold.max:g}" if low == 0 else ""),
            )
        if metric in LOWER_IS_BETTER and threshold.min is not None and threshold.min < 0:
            yield (
                (*where, "min"),
                f"{metric} is never negative, so min: {threshold.min:g} always passes",
                f"{metric} measures error, lower is better: bound it from above, e.g. max: {-threshold.min:g}",
            )
    yield from _probability_gates(spec)
    champion = spec.validation.champion
    if champion is not None and (kind is None or champion.metric in METRICS[kind]):
        low, high = METRIC_RANGES.get(champion.metric, (None, None))
        if low is not None and high is not None and champion.min_improvement > high - low:
            yield (
                ("validation", "champion", "min_improvement"),
                f"{champion.metric} lies between {low:g} and {high:g}, so an improvement of "
                f"{champion.min_improvement:g} can never be reached",
                "use a small margin such as 0.01, or 0.0 to accept a model as good as the live one",
            )


def _probability_gates(spec: Experiment) -> Iterator[Finding]:
    """Gates on roc_auc or log_loss for a classifier that cannot give probabilities: they never pass."""
    hint = lacks_probabilities(spec.model.estimator, dict(spec.model.params))
    if hint is None:
        return
    name = spec.model.estimator.rsplit(".", 1)[1]
    gated = [("validation", "thresholds", m) for m in spec.validation.thresholds if m in PROBABILITY_METRICS]
    champion = spec.validation.champion
    if champion is not None and champion.metric in PROBABILITY_METRICS:
        gated.append(("validation", "champion", "metric"))
    baseline = spec.validation.baseline
    if baseline is not None and baseline.metric in PROBABILITY_METRICS:
        gated.append(("validation", "baseline", "metric"))
    for where in gated:
        metric = where[2] if where[1] == "thresholds" else getattr(spec.validation, str(where[1])).metric
        message = f"{name} gives no probabilities here, so {metric} is never computed and this gate never passes"
        yield where, message, hint


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
    """Roots repeat for every spec of a folder; resolve their symlinks once per process."""
    return os.path.realpath(root)


@functools.lru_cache(maxsize=4096)
def resolve_data_uri(uri: str, spec_dir: str) -> str:
    """Absolute URI of a data location: relative paths are relative to the spec's folder."""
    scheme = urlsplit(uri).scheme
    if scheme and scheme != "file" and len(scheme) > 1:  # 'C:' is a drive, not a scheme
        return uri
    path = urlsplit(uri).path if scheme == "file" else uri
    if not os.path.isabs(path):
        path = os.path.join(spec_dir, path)
    return "file://" + os.path.realpath(path)


def _check_data_uri(
    uri: str, fmt: str | None, conn_id: str | None, spec_dir: str, context: SpecContext
) -> Iterator[Finding]:
    path = ("data", "training", "uri")
    parts = urlsplit(uri)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:
        if parts.scheme not in REMOTE_SCHEMES:
            yield (
                path,
                f"unsupported URI scheme '{parts.scheme}'",
                f"use a path, file://, or one of {', '.join(REMOTE_SCHEMES)}",
            )
            return
        if not any(uri.startswith(root.rstrip("/") + "/") for root in context.data_roots if "://" in root):
            yield (
                path,
                f"'{uri}' is outside the allowed data roots",
                "engineers list allowed buckets/prefixes in the team policy (data_roots)",
            )
    else:
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            yield (
                path,
                f"'{uri}' has a host part '{parts.netloc}'",
                "write file:///absolute/path, or a path relative to the spec file",
            )
            return
        resolved = resolve_data_uri(uri, spec_dir)[len("file://") :]
        local_roots = [spec_dir, *(r for r in context.data_roots if "://" not in r)]
        if not any(_is_within(resolved, root) for root in local_roots):
            yield (
                path,
                f"'{uri}' is outside the allowed data roots",
                "keep data next to the spec, or ask engineers to add its folder to data_roots",
            )
        if conn_id:
            yield (
                ("data", "training", "conn_id"),
                "a local path does not use a connection",
                "remove conn_id",
            )
    if fmt is None and PurePosixPath(parts.path or uri).suffix.lower() not in FORMATS:
        remote = parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1
        local = None if remote else resolve_data_uri(uri, spec_dir)[len("file://") :]
        if local is not None and not os.path.exists(local):  # a mistyped name (.cvs): "not found" is the news
            from airflow_bridge.spec.datacheck import not_found

            missing = not_found(local, uri)
            yield (path, missing.message, missing.hint)
            return
        yield (
            path,
            "cannot infer the file format from the extension",
            "add 'format: csv' or 'format: parquet'",
        )


def _is_within(path: str, root: str) -> bool:
    root_real = _real_root(root)
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


def may_hold_secrets(text: str) -> bool:
    """Cheap test on the raw file: False means ``scan_for_secrets`` cannot find anything.

    A token or secret-named key shows in the text as written; only escapes (``\\x41``) could hide
    one from this test, so any backslash sends the document to the full scan.
    """
    if "\\" in text:
        return True
    lowered = text.lower()
    if any(word in lowered for word in _SECRET_KEY_WORDS) and _SECRET_KEY_TEXT.search(text):
        return True
    markers = any(marker in text for marker in _TOKEN_MARKERS) or ("@" in text and "://" in text)
    return markers and bool(_ANY_SECRET.search(text))


def scan_for_secrets(data: Any, path: tuple[str | int, ...] = ()) -> Iterator[Finding]:
    """Secrets pasted into a spec: known token shapes anywhere, and any value under a secret-named key."""
    if isinstance(data, dict):
        for key, value in data.items():
            if _SECRET_KEYS.search(str(key)) and isinstance(value, str | int) and value not in ("", None):
                yield (
                    (*path, key),
                    f"'{key}' looks like a secret",
                    "secrets live in Airflow connections; reference one with conn_id",
                )
                continue
            yield from scan_for_secrets(value, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from scan_for_secrets(item, (*path, index))
    elif isinstance(data, str) and _ANY_SECRET.search(data):  # one search for the common, clean case
        for pattern, what in _SECRET_PATTERNS:
            if pattern.search(data):
                yield (
                    path,
                    f"value looks like {what}",
                    "remove it and rotate it; secrets live in Airflow connections, referenced by conn_id",
                )
                return
