"""Check OpenLineage events offline: the RunEvent against the OpenLineage spec, every facet against its schema.

Facets are resolved by their ``_schemaURL``: standard facets against the spec's facet files, ours
against ``airflow_bridge/lineage/schemas``, anything else against the base facet it names. The spec
files (``OpenLineage.json`` and ``facets/*.json`` from the OpenLineage repository) are read from a
folder: nothing is fetched. Needs ``jsonschema`` and ``referencing`` (both come with Airflow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_bridge.lineage import SCHEMA_DIR

RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def schema_registry(spec_dir: Path, extra_dirs: tuple[Path, ...] = (SCHEMA_DIR,)) -> Any:
    """A ``referencing.Registry`` of every schema in ``spec_dir`` (and its ``facets``) and ``extra_dirs``."""
    from referencing import Registry, Resource

    files = [spec_dir / "OpenLineage.json", *sorted((spec_dir / "facets").glob("*.json"))]
    for folder in extra_dirs:
        files += sorted(folder.glob("*.json"))
    resources = []
    for path in files:
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, key, facet)`` for every facet of a run event: run, job, inputs and outputs."""
    yield from ((f"run.{k}", k, v) for k, v in (event.get("run", {}).get("facets") or {}).items())
    yield from ((f"job.{k}", k, v) for k, v in (event.get("job", {}).get("facets") or {}).items())
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or []:
            label = f"{side}[{dataset.get('namespace')}:{dataset.get('name')}]"
            for group in ("facets", "inputFacets", "outputFacets"):
                yield from ((f"{label}.{k}", k, v) for k, v in (dataset.get(group) or {}).items())


def event_errors(event: dict[str, Any], registry: Any) -> list[str]:
    """Every schema violation of ``event`` (a RunEvent as JSON); empty when it is valid."""
    from jsonschema import Draft202012Validator
    from referencing.exceptions import Unresolvable

    def check(schema_url: str, instance: Any, where: str) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": schema_url}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        try:
            return [f"{where}: {e.message} (at {e.json_path})" for e in validator.iter_errors(instance)]
        except Unresolvable as exc:
            return [f"{where}: schema {schema_url} is not known ({exc})"]

    errors = check(RUN_EVENT, event, "event")
    for where, key, facet in facets_of(event):
        url = facet.get("_schemaURL") if isinstance(facet, dict) else None
        if not url:
            errors.append(f"{where}: facet has no _schemaURL")
            continue
        errors += check(url, facet, where)
        if key.startswith("airflowBridge_"):
            document = registry.contents(url.split("#", 1)[0])
            if key not in document.get("properties", {}):
                errors.append(f"{where}: key {key!r} is not the one its schema {url} defines")
    return errors
