"""``airflow-bridge loaders``: lay a specs folder out as N shard loader files; ``validate``'s parse-time estimate.

Never imports Airflow. Only files it wrote (name pattern and marker line) are ever replaced or removed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from airflow_bridge.cli.common import console, fail
from airflow_bridge.spec import shards

LOADER = '''{marker} (shard {index} of {count}); rewrite with it, do not edit.
"""airflow-bridge loader, shard {index} of {count}: builds the DAGs of this folder's specs in this shard."""

from airflow_bridge.factory import load_dag_specs

load_dag_specs(globals(), shard=({index}, {count}))
'''
SPEC_ERRORS = '''{marker} (shard {index} of {count}); rewrite with it, do not edit.
"""airflow-bridge: lists the invalid specs of shard {index} of {count} under Airflow's Import Errors (builds no DAG)."""

from airflow_bridge.factory import report_invalid_specs

report_invalid_specs(globals(), shard=({index}, {count}))
'''
_LOADS = re.compile(r"\b(load_dag_specs|report_invalid_specs)\(")


def loaders(
    folder: Annotated[Path, typer.Argument(help="The specs folder (Airflow's dags folder or inside it).")],
    count: Annotated[
        str,
        typer.Option(
            "--shards",
            help=f"Number of loader files, or 'auto' (at most {shards.SPECS_PER_SHARD} specs per file).",
        ),
    ] = "auto",
) -> None:
    """Write N loader files into FOLDER, each building a stable share of its specs (and listing its invalid ones).

    A spec's shard depends only on its file's path, so adding or removing specs never moves others.
    Shard files written before with another N are removed; no other file is touched.
    """
    from airflow_bridge.spec.loader import discover_specs

    if not folder.is_dir():
        raise fail(f"{folder}: no such folder", code=2)
    specs = discover_specs(folder)
    n = _count(count, len(specs), folder)
    foreign = _other_loaders(folder)
    if foreign:
        raise fail(
            f"{', '.join(map(str, foreign))} also load(s) this folder's specs: with the shard files every DAG "
            "would be built twice. Remove or move it first (the shard files replace it); nothing was written",
            code=1,
        )
    wanted: dict[Path, str] = {}
    for index in range(n):
        dags_file, errors_file = shards.shard_file_names(index, n)
        values = {"marker": shards.MARKER, "index": index, "count": n}
        wanted[folder / dags_file] = LOADER.format(**values)
        wanted[folder / errors_file] = SPEC_ERRORS.format(**values)
    stale = [p for p in shards.written_shard_files(folder) if p not in wanted]
    try:
        for path, text in wanted.items():
            if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
                continue  # unchanged: no needless re-parse by the dag-processor
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # a dag-processor never reads a half-written file
        for path in stale:
            path.unlink()
    except OSError as exc:
        raise fail(f"cannot write the loader files in {folder}: {exc.strerror or exc}") from None
    sizes = [len(s) for s in shards.assign(specs, str(folder), n)]
    console.print(
        f"wrote {n} loader file(s) and {n} spec-errors file(s) in {folder}: {len(specs)} specs, "
        f"{min(sizes)} to {max(sizes)} per shard" + (f"; removed {len(stale)} stale shard file(s)" if stale else ""),
        markup=False,
    )


def _count(value: str, spec_count: int, folder: Path) -> int:
    if value == "auto":
        if spec_count == 0:
            raise fail(f"{folder}: no spec files (*.yaml, *.yml) to shard; nothing was written", code=2)
        return shards.auto_count(spec_count)
    if not re.fullmatch(r"[0-9]+", value.strip()):
        raise fail(f"--shards must be a whole number or 'auto', not '{value}'", code=2)
    n = int(value)
    if n < 1:
        raise fail("--shards must be at least 1 (one loader file holds every spec); nothing was written", code=2)
    if n > spec_count:
        raise fail(
            f"--shards {n} is more than the {spec_count} spec(s) in {folder}: some loader files would build "
            f"nothing; use at most {spec_count} (or 'auto'); nothing was written",
            code=2,
        )
    return n


def _other_loaders(folder: Path) -> list[Path]:
    """Python files in ``folder`` that load specs and were not written by this command."""
    ours = set(shards.written_shard_files(folder))
    found = []
    for path in sorted(folder.glob("*.py")):
        if path in ours or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _LOADS.search(text) and "folder=" not in text:
            found.append(path)
    return found


def parse_time_warnings(folders: list[Path]) -> list[str]:
    """Warnings for loader files whose estimated parse time nears ``dagbag_import_timeout``.

    Estimate: the specs one file builds times ``BUILD_SECONDS_PER_SPEC``; a warning above a third of the
    timeout (``AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT``, else Airflow's 30 s default).
    """
    from airflow_bridge.spec.loader import discover_specs

    timeout = _import_timeout()
    warnings = []
    for folder in folders:
        specs = discover_specs(folder)
        count = shards.shard_count_in(folder)
        largest = max(len(s) for s in shards.assign(specs, str(folder), count or 1)) if specs else 0
        estimate = largest * shards.BUILD_SECONDS_PER_SPEC
        if estimate <= timeout / 3:
            continue
        where = f"its largest shard of {count}" if count else "its one loader file"
        warnings.append(
            f"{folder}: {where} builds {largest} specs, an estimated {estimate:.1f} s of parsing "
            f"(dagbag_import_timeout {timeout:g} s); lay it out in more loader files: "
            f"airflow-bridge loaders {folder} --shards auto"
        )
    return warnings


def _import_timeout() -> float:
    raw = os.environ.get("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return shards.DEFAULT_IMPORT_TIMEOUT
    return value if value > 0 else shards.DEFAULT_IMPORT_TIMEOUT
