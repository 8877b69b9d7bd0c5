"""Compare versions and candidates of one model: parameters, data, metrics with deltas, gates, and what
changed in the data.

Read-only: ``airflow-bridge models compare`` and the Models page call it (text or ``--format json``); the
first one named is the reference every delta is taken against. A candidate (``c-…``, recorded by every
validate, passed or not) compares like a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_bridge.exceptions import RequestError
from airflow_bridge.ml.catalogue import LOWER_IS_BETTER
from airflow_bridge.ml.gates import gates_of

if TYPE_CHECKING:
    from airflow_bridge.registry.records import Candidate, ModelVersion
    from airflow_bridge.registry.store import ModelRegistry

CANDIDATE_PREFIX = "c-"
"""Candidate ids start with it (``c-`` and 10 hex digits); anything else names a version or an alias."""


@dataclass(frozen=True)
class _Entry:
    """A version or a candidate, as the comparison reads it."""

    label: str
    summary: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """Versions side by side; every ``*_delta`` and change is against ``versions[0]``."""

    model: str
    versions: list[dict[str, Any]]
    """Per version or candidate: label (``v3``, ``c-…``), number (None: a candidate never registered), candidate
    id (None: a version), created, by, estimator, aliases, data (uri, sha256, rows), spec and artifact sha256."""
    params: dict[str, list[Any]] = field(default_factory=dict)
    """Each parameter the spec set in any version, one value per version (None: not set there)."""
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    metric_deltas: dict[str, list[float | None]] = field(default_factory=dict)
    """The change from the reference, signed so that positive is better (an error falling is positive)."""
    gates: dict[str, list[bool | None]] = field(default_factory=dict)
    """Each gate's pass/fail per version (None: the version had no such gate)."""
    data_changes: list[dict[str, Any]] = field(default_factory=list)
    """Per later version: columns added and removed, and columns whose role changed, against the reference."""

    @property
    def headers(self) -> list[str]:
        """One column per version: ``v3 (production)``."""
        return [v["label"] + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "") for v in self.versions]

    def rows(self) -> list[tuple[str, list[str]]]:
        """The comparison as labelled rows of text, one cell per version (the CLI and the Models page show them)."""
        found: list[tuple[str, list[str]]] = [
            ("estimator", [str(v["estimator"]).rsplit(".", 1)[-1] for v in self.versions]),
            ("data sha256", [str(v["data"]["sha256"] or "-")[:12] for v in self.versions]),
            ("rows", [str(v["data"]["rows"] or "-") for v in self.versions]),
        ]
        found += [
            (f"params.{name}", ["-" if v is None else str(v) for v in values]) for name, values in self.params.items()
        ]
        for metric, values in self.metrics.items():
            deltas = self.metric_deltas[metric]
            cells = [
                "-" if v is None else f"{v:.4f}" + ("" if i == 0 or d is None else f" ({d:+.4f})")
                for i, (v, d) in enumerate(zip(values, deltas, strict=True))
            ]
            found.append((metric, cells))
        found += [
            (f"gate {name}", ["-" if p is None else ("pass" if p else "FAIL") for p in passed])
            for name, passed in self.gates.items()
        ]
        return found

    def change_lines(self) -> list[str]:
        """What changed in the data of each later version, one line each."""
        lines = []
        for change in self.data_changes:
            parts = ["same data" if change["same_data"] else "other data"]
            parts += [f"added {', '.join(change['columns_added'])}"] if change["columns_added"] else []
            parts += [f"removed {', '.join(change['columns_removed'])}"] if change["columns_removed"] else []
            parts += [f"{c}: {r['from']} → {r['to']}" for c, r in change["roles_changed"].items()]
            lines.append(f"{change['label']}: {'; '.join(parts)}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": self.versions,
            "params": self.params,
            "metrics": self.metrics,
            "metric_deltas": self.metric_deltas,
            "gates": self.gates,
            "data_changes": self.data_changes,
        }


def compare_versions(registry: ModelRegistry, model: str, asked: list[str]) -> Comparison:
    """``asked`` are version numbers, aliases, ``MODEL:VERSION`` (the model must be ``model``) or candidate ids."""
    if len(asked) < 2:
        raise RequestError(f"name two or more versions or candidates of '{model}' to compare (numbers, aliases, c-…)")
    found = [_entry(registry, model, item) for item in asked]
    labels = [v.label for v in found]
    if len(set(labels)) != len(labels):
        raise RequestError(f"{', '.join(map(str, asked))} of '{model}' name the same version twice")
    first = found[0]
    param_names = sorted({name for v in found for name in v.params})
    metric_names = sorted({name for v in found for name in v.metrics})
    passed = [_gates_passed(v.validation) for v in found]
    gate_names = list(dict.fromkeys(name for gates in passed for name in gates))
    metrics = {name: [_number(v.metrics.get(name)) for v in found] for name in metric_names}
    return Comparison(
        model=model,
        versions=[v.summary for v in found],
        params={name: [v.params.get(name) for v in found] for name in param_names},
        metrics=metrics,
        metric_deltas={name: [_delta(name, values[0], value) for value in values] for name, values in metrics.items()},
        gates={name: [gates.get(name) for gates in passed] for name in gate_names},
        data_changes=[_data_changes(first, v) for v in found[1:]],
    )


def _entry(registry: ModelRegistry, model: str, item: str) -> _Entry:
    name, sep, which = item.rpartition(":")
    if (which if sep else item).startswith(CANDIDATE_PREFIX):
        _same_model(model, name, item, sep)
        candidate = registry.get_candidate(model, which if sep else item)
        return _Entry(
            candidate.candidate_id,
            _candidate_summary(candidate),
            candidate.params,
            candidate.metrics,
            candidate.validation,
            candidate.data,
        )
    version = _version(registry, model, item)
    return _Entry(
        f"v{version.version}", _summary(version), version.params, version.metrics, version.validation, version.data
    )


def _same_model(model: str, name: str, item: str, sep: str) -> None:
    if sep and name != model:
        raise RequestError(
            f"'{item}' is a version of '{name}', not of '{model}': compare versions of one model "
            f"(airflow-bridge models compare {model} A B)"
        )


def _version(registry: ModelRegistry, model: str, item: str) -> ModelVersion:
    name, sep, which = item.rpartition(":")
    _same_model(model, name, item, sep)
    version = registry.resolve(model, which if sep else item)
    if version.deleted_at is not None:
        raise RequestError(
            f"{model} v{version.version} was deleted ({version.deleted_at:%Y-%m-%d %H:%M} UTC): its record stays "
            f"in the audit trail ('airflow-bridge models history {model}'), but it is not compared"
        )
    return version


def _gates_passed(validation: dict[str, Any]) -> dict[str, bool]:
    """Each gate's pass/fail, and the champion comparison's as gate ``champion`` when there was one."""
    found = {g.name: g.passed for g in gates_of(validation.get("gates"))}
    champion = validation.get("champion")
    if isinstance(champion, dict) and isinstance(champion.get("passed"), bool):
        found["champion"] = champion["passed"]
    return found


def _candidate_summary(candidate: Candidate) -> dict[str, Any]:
    data = candidate.data
    return {
        "label": candidate.candidate_id,
        "version": candidate.version,
        "candidate": candidate.candidate_id,
        "created_at": candidate.created_at.isoformat(),
        "created_by": candidate.recorded_by,
        "estimator": candidate.estimator,
        "aliases": [],
        "spec_sha256": candidate.spec_sha256,
        "data": {"uri": data.get("uri"), "sha256": data.get("sha256"), "rows": data.get("rows")},
        "artifact_sha256": candidate.artifact_sha256,
    }


def _summary(version: ModelVersion) -> dict[str, Any]:
    data = version.data
    return {
        "label": f"v{version.version}",
        "version": version.version,
        "candidate": None,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "estimator": version.estimator,
        "aliases": list(version.aliases),
        "spec_sha256": version.spec_sha256,
        "data": {"uri": data.get("uri"), "sha256": data.get("sha256"), "rows": data.get("rows")},
        "artifact_sha256": version.artifact.sha256,
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _delta(metric: str, reference: float | None, value: float | None) -> float | None:
    if reference is None or value is None:
        return None
    return reference - value if metric in LOWER_IS_BETTER else value - reference


def _data_changes(reference: _Entry, other: _Entry) -> dict[str, Any]:
    before = dict(reference.data.get("roles") or {})
    after = dict(other.data.get("roles") or {})
    roles = {
        column: {"from": before[column].get("role"), "to": after[column].get("role")}
        for column in sorted(set(before) & set(after))
        if before[column].get("role") != after[column].get("role")
    }
    return {
        "label": other.label,
        "version": other.summary["version"],
        "same_data": reference.data.get("sha256") == other.data.get("sha256"),
        "columns_added": sorted(set(after) - set(before)),
        "columns_removed": sorted(set(before) - set(after)),
        "roles_changed": roles,
    }
