"""Deployment targets are plug-ins: the installed ones, found through the ``airflow_bridge.targets`` entry points.

A target package exposes one object under that entry-point group; the entry point's name is the
target's name (``deployment.target`` in a spec, ``--target`` on the command line). At parse time
(``validate``, the DAG factory) only its spec side is used: the keys it owns under ``deployment:``
(``settings``, a pydantic model) and its checks of a spec (``check_spec``). The deploy, promote and
rollback actions drive the same object at run time (:class:`airflow_bridge.targets.Target`).

Discovery runs once per process. A broken plug-in costs only the specs that name it: a target that
fails to import, does not have a target's shape, or whose name two packages claim is listed in
``broken`` with the reason; a spec naming it gets that reason as its error, and the other targets
keep working. ``local`` and ``kserve`` are airflow-bridge's own entry points; they are also known by
module path, so a source checkout that was never installed still has them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel, ValidationError

from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.issues import did_you_mean

if TYPE_CHECKING:
    from airflow_bridge.spec.models import Experiment
    from airflow_bridge.spec.semantics import Finding, SpecContext

ENTRY_POINT_GROUP = "airflow_bridge.targets"
DEPLOYMENT_KEYS = ("target", "alias", "approval")
"""The keys of ``deployment:`` every target shares; a target's own settings may not reuse them."""
BUILTIN = {"local": "airflow_bridge.serving.target:target", "kserve": "airflow_bridge.kserve.target:target"}
_RUN_TIME = ("apply", "wait", "trigger", "restore")


class TargetPlugin(Protocol):
    """What a target declares for specs; the run-time half is :class:`airflow_bridge.targets.Target`."""

    name: str
    settings: type[BaseModel]
    """The keys this target owns under ``deployment:`` (strict, unknown keys forbidden)."""
    docs: str
    """Where its documentation is (a path in the repository or a URL), shown in errors."""

    def check_spec(self, spec: Experiment, settings: Any, context: SpecContext) -> Iterable[Finding]:
        """Problems of a spec deploying to this target (the team policy's tiers, storage it needs)."""


class UnknownTargetError(PolicyViolationError):
    """A target that is not installed, or one that is but cannot be used (the reason says why)."""


@dataclass(frozen=True)
class InstalledTargets:
    """The usable targets by name, and the broken ones with why each cannot be used."""

    usable: Mapping[str, TargetPlugin]
    broken: Mapping[str, str]

    @property
    def names(self) -> list[str]:
        return sorted({*self.usable, *self.broken})

    def get(self, name: str) -> TargetPlugin:
        """The target called ``name``; an unknown or broken one raises with what can be used instead."""
        plugin = self.usable.get(name)
        if plugin is not None:
            return plugin
        hint = did_you_mean(name, list(self.usable))
        raise UnknownTargetError(self.refusal(name) + (f" ({hint})" if hint else ""))

    def refusal(self, name: str) -> str:
        """Why ``name`` cannot be used, naming what can."""
        available = ", ".join(sorted(self.usable)) or "none"
        if name in self.broken:
            return f"{self.broken[name]}; usable targets: {available}"
        return f"unknown deployment target '{name}'; available: {available}"


@functools.cache
def installed_targets() -> InstalledTargets:
    """The targets of this process's environment (entry points are read once)."""
    return discover(entry_points(group=ENTRY_POINT_GROUP))


def discover(found: Iterable[EntryPoint]) -> InstalledTargets:
    """Load each target's entry point; conflicts and failures become ``broken`` entries, never exceptions."""
    claims: dict[str, dict[str, str]] = {name: {value: "airflow-bridge"} for name, value in BUILTIN.items()}
    for point in found:
        claims.setdefault(point.name, {}).setdefault(point.value, _distribution(point))
    usable: dict[str, TargetPlugin] = {}
    broken: dict[str, str] = {}
    for name, values in sorted(claims.items()):
        if len(values) > 1:
            who = "; ".join(f"{value} from {dist}" for value, dist in sorted(values.items()))
            broken[name] = f"deployment target '{name}' is claimed by {len(values)} installed packages ({who})"
            broken[name] += ": uninstall all but one"
            continue
        (value,) = values
        try:
            usable[name] = _load(name, value)
        except Exception as exc:  # a broken plug-in: the specs naming it say why, the others work
            broken[name] = f"deployment target '{name}' ({value}) could not be loaded: {type(exc).__name__}: {exc}"
    return InstalledTargets(usable, broken)


def _load(name: str, value: str) -> TargetPlugin:
    plugin: Any = EntryPoint(name, value, ENTRY_POINT_GROUP).load()
    if isinstance(plugin, type):
        plugin = plugin()
    if getattr(plugin, "name", None) != name:
        raise TypeError(f"the object's name is {getattr(plugin, 'name', None)!r}, not {name!r} as its entry point says")
    settings = getattr(plugin, "settings", None)
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise TypeError("it has no 'settings' pydantic model (the keys it owns under 'deployment:')")
    shared = sorted(set(settings.model_fields) & set(DEPLOYMENT_KEYS))
    if shared:
        raise TypeError(f"its settings reuse keys every target shares: {', '.join(shared)}")
    missing = [m for m in ("check_spec", *_RUN_TIME) if not callable(getattr(plugin, m, None))]
    if missing:
        raise TypeError(f"it lacks {', '.join(missing)} (see docs/targets.md, 'Writing a target')")
    return cast("TargetPlugin", plugin)


def _distribution(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return str(getattr(dist, "name", None) or "an unnamed package")


def parse_settings(plugin: TargetPlugin, raw: Mapping[str, Any]) -> tuple[BaseModel | None, list[Finding]]:
    """``raw`` read as ``plugin``'s settings, or the problems: each with its key and a hint."""
    try:
        return plugin.settings.model_validate(dict(raw)), []
    except ValidationError as exc:
        return None, list(_settings_findings(plugin, exc))


def _settings_findings(plugin: TargetPlugin, error: ValidationError) -> Iterator[Finding]:
    own = list(plugin.settings.model_fields)
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            owners = [t for t, other in installed_targets().usable.items() if key in other.settings.model_fields]
            if owners:
                message = f"'{key}' is a setting of target {' or '.join(map(repr, owners))}, not '{plugin.name}'"
                yield (("deployment", *loc), message, f"use target '{owners[0]}' or remove '{key}'")
                continue
            takes = f"it takes {', '.join(own)}" if own else "it takes no settings"
            hint = did_you_mean(key, [*DEPLOYMENT_KEYS, *own]) or f"{takes} ({plugin.docs})"
            yield (("deployment", *loc), f"'{key}' is not a setting of target '{plugin.name}'", hint)
        else:
            yield (("deployment", *loc), f"target '{plugin.name}': {item['msg']}", None)


def settings_refusal(plugin: TargetPlugin, raw: Mapping[str, Any]) -> tuple[BaseModel | None, str]:
    """``parse_settings`` for a door that refuses with one message (the gate)."""
    settings, findings = parse_settings(plugin, raw)
    return settings, "; ".join(
        f"{'.'.join(map(str, where[1:]))}: {message}" + (f" ({hint})" if hint else "")
        for where, message, hint in findings
    )
