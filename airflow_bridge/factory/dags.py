"""The dags-folder entry: one loader file turns every spec in a folder into a DAG.

Each spec is its own unit of failure: a spec that does not validate, or whose loading, checking or
building raises anything at all, becomes a placeholder DAG showing its errors, and every other
spec's DAG is built as usual. When a worker parses the loader to run one task, only that task's DAG
is built (``get_parsing_context``). With ``shard=(index, count)`` a loader builds only its shard of
the folder's specs (``airflow_bridge.spec.shards``; written by ``airflow-bridge loaders``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import Counter
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import DAG, get_parsing_context

from airflow_bridge.factory.build import build_dag
from airflow_bridge.factory.placeholder import build_placeholder_dag, placeholder_dag_id
from airflow_bridge.governance.loader import LoadedPolicy, context_for_folder
from airflow_bridge.issues import SpecIssue, failure_issue
from airflow_bridge.spec.loader import LoadedSpec, discover_specs, load_spec, mark_duplicate_names
from airflow_bridge.spec.semantics import SpecContext
from airflow_bridge.spec.shards import Shard, names_elsewhere
from airflow_bridge.spec.yamlsafe import read_bounded

log = logging.getLogger(__name__)


def load_dag_specs(
    namespace: MutableMapping[str, Any] | None = None,
    folder: str | None = None,
    *,
    paths: Sequence[str] | None = None,
    policy: str | None = None,
    shard: Shard | tuple[int, int] | None = None,
) -> dict[str, DAG]:
    """Build a DAG per spec under ``folder`` (default: the calling file's folder) into ``namespace``.

    The team policy is ``policy`` or ``<folder>/_policy.yaml`` when it exists. An invalid policy
    fails closed: every spec becomes a placeholder showing the policy's errors. Call it from a file
    in the dags folder::

        from airflow_bridge.factory import load_dag_specs
        load_dag_specs(globals())

    ``shard=(index, count)`` builds only the specs of shard ``index`` (0-based) of ``count``; a
    worker asking for one DAG gets it from any shard's file, so a run queued before its spec moved
    to another shard still runs.
    """
    setup = _Setup.for_folder(_folder(namespace, folder, "load_dag_specs"), paths, policy, shard)
    wanted = get_parsing_context().dag_id
    dags = (_build_one(setup, wanted) if wanted and setup.policy.ok else None) or _build_all(setup)
    if namespace is not None:
        for dag_id, dag in dags.items():
            namespace[f"dag__{dag_id}"] = dag
    return dags


@dataclass(frozen=True)
class _Setup:
    folder: str
    paths: Sequence[str] | None
    context: SpecContext
    policy: LoadedPolicy
    shard: Shard | None = None

    @classmethod
    def for_folder(
        cls,
        folder: str,
        paths: Sequence[str] | None,
        policy_path: str | None,
        shard: Shard | tuple[int, int] | None = None,
    ) -> _Setup:
        chosen = Shard.of(shard) if shard is not None else None  # a bad shard fails before any work
        context, loaded = context_for_folder(folder, policy_path)
        return cls(folder, paths, context, loaded, chosen)

    @property
    def display_root(self) -> str:
        return os.path.dirname(self.folder)

    def build(self, result: LoadedSpec) -> DAG:
        assert result.spec is not None
        return build_dag(
            result.spec,
            policy=self.policy.policy,
            source=result.path,
            spec_sha256=result.sha256,
            policy_source=self._policy_identity,
        )

    @functools.cached_property
    def _policy_identity(self) -> str | None:
        return self.policy.identity


class InvalidSpecsError(ImportError):
    """Lists a folder's invalid specs; Airflow shows it under Import Errors (see ``report_invalid_specs``)."""


def report_invalid_specs(
    namespace: MutableMapping[str, Any] | None = None,
    folder: str | None = None,
    *,
    paths: Sequence[str] | None = None,
    policy: str | None = None,
    shard: Shard | tuple[int, int] | None = None,
) -> None:
    """Raise ``InvalidSpecsError`` listing every invalid spec under ``folder`` (or its ``shard``), one a line.

    Call it from a second file next to the loader, which builds no DAG (raising there loses nothing),
    so invalid specs appear under Import Errors on Airflow's Home page and DAG list::

        from airflow_bridge.factory import report_invalid_specs
        report_invalid_specs(globals())
    """
    if get_parsing_context().dag_id:
        return  # a worker running a task never parses this file for its DAG
    setup = _Setup.for_folder(_folder(namespace, folder, "report_invalid_specs"), paths, policy, shard)
    invalid = [result for result in _load_results(setup)[0] if not result.ok]
    if not invalid:
        return
    lines = [f"- {issue.format()}" for result in invalid for issue in result.issues]
    where = setup.folder + (f" (shard {setup.shard.index} of {setup.shard.count})" if setup.shard else "")
    raise InvalidSpecsError(
        f"{len(invalid)} invalid airflow-bridge spec(s) in {where}: each is a paused placeholder DAG "
        f"tagged 'invalid-spec' until fixed (check with 'airflow-bridge validate').\n" + "\n".join(lines)
    )


def _folder(namespace: MutableMapping[str, Any] | None, folder: str | None, caller: str) -> str:
    if folder is None:
        if namespace is None or "__file__" not in namespace:
            raise TypeError(f"{caller} needs folder= or the loader module's globals()")
        folder = os.path.dirname(os.path.abspath(namespace["__file__"]))
    return os.path.abspath(folder)


def _load_results(setup: _Setup) -> tuple[list[LoadedSpec], set[str]]:
    """This loader's specs (its shard's, or all) and the names they share with other shards' specs."""
    files = list(setup.paths) if setup.paths is not None else discover_specs(setup.folder)
    mine, others = files, []
    if setup.shard is not None:
        shard = setup.shard
        inside = [shard.holds(f, setup.folder) for f in files]
        mine = [f for f, ok in zip(files, inside, strict=True) if ok]
        others = [f for f, ok in zip(files, inside, strict=True) if not ok]
    root = setup.display_root
    results = [load_spec(path, setup.context, display=os.path.relpath(path, root)) for path in mine]
    # A name another shard's spec also claims belongs to neither (cheap text scan of the others).
    clashes = names_elsewhere(others, {r.raw_name for r in results if r.raw_name})
    stubs = [
        LoadedSpec(os.path.relpath(path, root), raw_name=name, source=path)
        for name, paths in clashes.items()
        for path in paths
    ]
    results = mark_duplicate_names(results + stubs)[: len(results)]
    if not setup.policy.ok:
        for result in results:
            result.issues = [_policy_issue(setup.policy), *setup.policy.issues]
            result.spec = None
    return results, set(clashes)


def _build_all(setup: _Setup) -> dict[str, DAG]:
    results, contested = _load_results(setup)
    from airflow_bridge.actions.model_owners import check_owners

    try:
        check_owners(results, cache=True, default_home=False)  # another team's model: a placeholder
    except Exception:  # the registry is an optional early check: register refuses foreign models anyway
        log.exception("airflow-bridge: could not check model ownership in the registry; register will")
    # Valid specs keep their names; a name two specs share belongs to neither placeholder.
    names = Counter(r.raw_name for r in results if r.raw_name)
    taken = {r.spec.name for r in results if r.ok and r.spec is not None}
    taken |= {name for name, count in names.items() if count > 1} | contested
    dags: dict[str, DAG] = {}
    for result in results:
        dag = _dag_for(setup, result, taken)
        if dag is not None:
            dags[dag.dag_id] = dag
    return dags


def _policy_issue(policy: LoadedPolicy) -> SpecIssue:
    return SpecIssue(
        policy.path or "_policy.yaml",
        1,
        1,
        "",
        f"the team policy {policy.path} is invalid, so no spec in this folder can be governed",
        "engineers: run 'airflow-bridge validate' on the specs folder to see the policy errors",
    )


def _dag_for(setup: _Setup, result: LoadedSpec, taken: set[str]) -> DAG | None:
    if result.ok and result.spec is not None:
        try:
            return setup.build(result)
        except Exception as exc:  # one spec must never take the others down
            log.exception("airflow-bridge: building the DAG of %s failed", result.path)
            issue = failure_issue(result.path, "the DAG could not be built", exc)
            name = result.spec.name
            owner = result.spec.owner
            result = LoadedSpec(result.path, issues=[issue], raw_name=name, raw_owner=owner, source=result.source)
            taken.discard(name)
    if result.error is not None:
        log.error("airflow-bridge: checking %s failed", result.path, exc_info=result.error)
    for issue in result.issues:
        log.warning("airflow-bridge: invalid spec: %s", issue.format())
    try:
        return build_placeholder_dag(
            placeholder_dag_id(result.path, result.raw_name, taken), result.path, result.issues, result.raw_owner
        )
    except Exception:
        log.exception("airflow-bridge: could not build the placeholder DAG of %s", result.path)
        return None


_NAME_LINE = "^name:[ \\t]*[\"']?{}[\"']?[ \\t]*(#.*)?$"


def _build_one(setup: _Setup, dag_id: str) -> dict[str, DAG] | None:
    """Fast path for workers: build only ``dag_id``; None when it cannot be found cheaply."""
    paths = setup.paths
    candidates = [os.path.join(setup.folder, f"{dag_id}{suffix}") for suffix in (".yaml", ".yml")]
    candidates = [c for c in candidates if os.path.isfile(c) and (paths is None or c in paths)]
    if not candidates:
        pattern = re.compile(_NAME_LINE.format(re.escape(dag_id)).encode(), re.MULTILINE)
        pool = paths if paths is not None else discover_specs(setup.folder)
        candidates = [p for p in pool if _mentions(p, pattern)]
        if len(candidates) > 1:
            return None  # two specs claim the name: the full build reports both
    for path in candidates:
        result = load_spec(path, setup.context, display=os.path.relpath(path, setup.display_root))
        if result.ok and result.spec is not None and result.spec.name == dag_id:
            try:
                return {dag_id: setup.build(result)}
            except Exception:  # the full build turns it into a placeholder (and logs why)
                return None
    return None


def _mentions(path: str, pattern: re.Pattern[bytes]) -> bool:
    try:
        raw = read_bounded(path)  # never a FIFO or a 10 GB file: those are placeholders of the full build
    except (OSError, ValueError):
        return False
    return isinstance(raw, bytes) and pattern.search(raw) is not None
