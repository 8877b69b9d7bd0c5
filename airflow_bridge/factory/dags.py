"""The dags-folder entry: one loader file turns every spec in a folder into a DAG.

Each spec is its own unit of failure: a spec that does not validate (or does not build) becomes a
placeholder DAG showing its errors, and every other spec's DAG is built as usual. When a worker
parses the loader to run one task, only that task's DAG is built (``get_parsing_context``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import MutableMapping, Sequence
from typing import Any

from airflow.sdk import DAG, get_parsing_context

from airflow_bridge.factory.build import build_dag
from airflow_bridge.factory.placeholder import build_placeholder_dag, placeholder_dag_id
from airflow_bridge.spec.issues import SpecIssue
from airflow_bridge.spec.loader import LoadedSpec, discover_specs, load_spec, load_specs
from airflow_bridge.spec.semantics import SpecContext

log = logging.getLogger(__name__)


def load_dag_specs(
    namespace: MutableMapping[str, Any] | None = None,
    folder: str | None = None,
    *,
    paths: Sequence[str] | None = None,
    context: SpecContext | None = None,
) -> dict[str, DAG]:
    """Build a DAG per spec under ``folder`` (default: the calling file's folder) into ``namespace``.

    Call it from a file in the dags folder::

        from airflow_bridge.factory import load_dag_specs
        load_dag_specs(globals())
    """
    if folder is None:
        if namespace is None or "__file__" not in namespace:
            raise TypeError("load_dag_specs needs folder= or the loader module's globals()")
        folder = os.path.dirname(os.path.abspath(namespace["__file__"]))
    folder = os.path.abspath(folder)
    context = context or SpecContext.from_environment()
    wanted = get_parsing_context().dag_id
    dags = (_build_one(folder, wanted, paths, context) if wanted else None) or _build_all(folder, paths, context)
    if namespace is not None:
        for dag_id, dag in dags.items():
            namespace[f"dag__{dag_id}"] = dag
    return dags


def _display_root(folder: str) -> str:
    return os.path.dirname(folder)


def _build_all(folder: str, paths: Sequence[str] | None, context: SpecContext) -> dict[str, DAG]:
    files = list(paths) if paths is not None else discover_specs(folder)
    results = load_specs(files, context, relative_to=_display_root(folder))
    valid_names = {r.spec.name for r in results if r.ok and r.spec is not None}
    dags: dict[str, DAG] = {}
    for result in results:
        dag = _dag_for(result, taken=valid_names | set(dags))
        if dag is not None:
            dags[dag.dag_id] = dag
    return dags


def _dag_for(result: LoadedSpec, taken: set[str]) -> DAG | None:
    if result.ok and result.spec is not None:
        try:
            return build_dag(result.spec, source=result.path, spec_sha256=result.sha256)
        except Exception as exc:  # one spec must never take the others down
            log.exception("airflow-bridge: building the DAG of %s failed", result.path)
            issue = SpecIssue(
                result.path,
                1,
                1,
                "",
                f"the DAG could not be built: {exc}",
                "this is likely a bug in airflow-bridge; please report it",
            )
            name = result.spec.name
            result = LoadedSpec(result.path, issues=[issue], raw_name=name, source=result.source)
            taken = taken - {name}
    for issue in result.issues:
        log.warning("airflow-bridge: invalid spec: %s", issue.format())
    try:
        return build_placeholder_dag(
            placeholder_dag_id(result.path, result.raw_name, taken), result.path, result.issues
        )
    except Exception:
        log.exception("airflow-bridge: could not build the placeholder DAG of %s", result.path)
        return None


_NAME_LINE = "^name:[ \\t]*[\"']?{}[\"']?[ \\t]*(#.*)?$"


def _build_one(folder: str, dag_id: str, paths: Sequence[str] | None, context: SpecContext) -> dict[str, DAG] | None:
    """Fast path for workers: build only ``dag_id``; None when it cannot be found cheaply."""
    candidates = [os.path.join(folder, f"{dag_id}{suffix}") for suffix in (".yaml", ".yml")]
    candidates = [c for c in candidates if os.path.isfile(c) and (paths is None or c in paths)]
    if not candidates:
        pattern = re.compile(_NAME_LINE.format(re.escape(dag_id)).encode(), re.MULTILINE)
        candidates = [p for p in (paths if paths is not None else discover_specs(folder)) if _mentions(p, pattern)]
    for path in candidates:
        result = load_spec(path, context, display=os.path.relpath(path, _display_root(folder)))
        if result.ok and result.spec is not None and result.spec.name == dag_id:
            return {dag_id: build_dag(result.spec, source=result.path, spec_sha256=result.sha256)}
    return None


def _mentions(path: str, pattern: re.Pattern[bytes]) -> bool:
    try:
        with open(path, "rb") as handle:
            return pattern.search(handle.read()) is not None
    except OSError:
        return False
