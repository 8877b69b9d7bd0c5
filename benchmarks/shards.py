"""Sharded loading at scale: N specs laid out by ``airflow-bridge loaders``, each file parsed on its own.

Generates N specs (``_benchlib.write_spec_folder``), runs ``airflow-bridge loaders FOLDER --shards
auto``, then loads EACH loader and spec-errors file in its own fresh process as the dag-processor
does (``DagBag(dag_folder=<that file>, safe_mode=True)``; throwaway AIRFLOW_HOME). Checks: every DAG
present exactly once over all files, no import error, and the slowest file's parse time (the
``DagBag`` collection, what ``dagbag_import_timeout`` bounds) under a third of the 30 s default.
With ``--single`` it also loads the one unsharded loader of the same folder, for comparison.

    .venv/bin/python benchmarks/shards.py [--n 10000] [--shards auto] [--single] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _benchlib as lib

NAME = "shards"
DEFAULT_TIMEOUT_S = 30.0
TARGET_S = DEFAULT_TIMEOUT_S / 3
CLI = [lib.PYTHON, "-m", "airflow_bridge.cli.main"]


def _child(path: str) -> None:
    """In the child: DagBag of one file, one JSON line with every DAG id and the import errors."""
    from airflow.dag_processing.dagbag import DagBag

    start = time.perf_counter()
    bag = DagBag(dag_folder=path, safe_mode=True)
    collect = time.perf_counter() - start
    errors = {k: v[-800:] for k, v in bag.import_errors.items()}
    print(json.dumps({"collect_s": collect, "dag_ids": sorted(bag.dags), "import_errors": errors}))


def _load(path: Path, home: Path, folder: Path) -> dict[str, Any]:
    env = lib.airflow_env(home, folder)
    start = time.perf_counter()
    proc = subprocess.run(
        [lib.PYTHON, __file__, "--child", str(path)], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{path.name}: child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"file": path.name, "wall_s": wall, **json.loads(lines[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--shards", default="auto")
    parser.add_argument("--single", action="store_true", help="also load the unsharded loader (slow at 10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=4, 1 shard) into a temp folder")
    args = parser.parse_args()
    if args.smoke:
        lib.smoke_mode()
        args.n, args.shards, args.single = 4, "1", False
    start_state = lib.source_state()
    folder = lib.GENERATED_DIR / f"shards_{args.n}"
    t0 = time.perf_counter()
    names = lib.write_spec_folder(folder, args.n)
    generate_s = time.perf_counter() - t0
    single_loader = folder / "airflow_bridge_dags.py"
    single_text = single_loader.read_text(encoding="utf-8")
    single_loader.unlink()  # the shard files replace it ('loaders' refuses a folder that keeps it)
    t0 = time.perf_counter()
    laid = subprocess.run(
        [*CLI, "loaders", str(folder), "--shards", args.shards], check=False, capture_output=True, text=True
    )
    layout_s = time.perf_counter() - t0
    print(laid.stdout.strip() or laid.stderr.strip())
    if laid.returncode != 0:
        return 1
    files = sorted(folder.glob("airflow_bridge_*_shard_*.py"))
    home = lib.throwaway_home(NAME)
    try:
        rows = []
        for path in files:
            row = _load(path, home, folder)
            rows.append(row)
            print(
                f"  {row['file']}: {len(row['dag_ids'])} DAGs, collect {row['collect_s']:.2f} s, "
                f"process {row['wall_s']:.2f} s, import errors {len(row['import_errors'])}",
                flush=True,
            )
        single = None
        if args.single:
            for path in files:
                path.unlink()
            single_loader.write_text(single_text, encoding="utf-8")
            single = _load(single_loader, home, folder)
            print(f"  single loader: {len(single['dag_ids'])} DAGs, collect {single['collect_s']:.2f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    counts = Counter(dag_id for row in rows for dag_id in row["dag_ids"])
    loaders = [r for r in rows if r["file"].startswith("airflow_bridge_dags_")]
    errors_files = [r for r in rows if r["file"].startswith("airflow_bridge_spec_errors_")]
    slowest = max(rows, key=lambda r: r["collect_s"])
    checks = {
        "every DAG present": set(counts) == set(names),
        "each exactly once": all(c == 1 for c in counts.values()),
        "no import error": not any(r["import_errors"] for r in rows),
        f"slowest file < {TARGET_S:g} s": slowest["collect_s"] < TARGET_S,
    }
    lib.print_table(
        ["measure", "value"],
        [
            ["specs", args.n],
            ["loader files (+ as many spec-errors files)", len(loaders)],
            [
                "DAGs per loader file (min-max)",
                f"{min(len(r['dag_ids']) for r in loaders)}-{max(len(r['dag_ids']) for r in loaders)}",
            ],
            ["slowest loader file, DagBag collect", f"{max(r['collect_s'] for r in loaders):.2f} s"],
            ["median loader file, DagBag collect", f"{lib.summarize([r['collect_s'] for r in loaders]).median:.2f} s"],
            ["slowest spec-errors file, DagBag collect", f"{max(r['collect_s'] for r in errors_files):.2f} s"],
            ["slowest file's whole process (Airflow import incl.)", f"{max(r['wall_s'] for r in rows):.2f} s"],
            ["all files one after the other, collect", f"{sum(r['collect_s'] for r in rows):.1f} s"],
            ["single unsharded loader, collect", f"{single['collect_s']:.2f} s" if single else "(not run)"],
            ["generate specs / lay out (CLI)", f"{generate_s:.1f} s / {layout_s:.2f} s"],
        ],
    )
    for label, ok in checks.items():
        print(f"{lib.verdict(ok)}  {label}")
    lib.write_results(
        NAME,
        {
            "n": args.n,
            "shards": len(loaders),
            "machine": lib.machine_info(),
            "checks": checks,
            "files": [{k: v for k, v in r.items() if k != "dag_ids"} | {"n_dags": len(r["dag_ids"])} for r in rows],
            "single": {k: v for k, v in single.items() if k != "dag_ids"} | {"n_dags": len(single["dag_ids"])}
            if single
            else None,
            "source": lib.source_note(start_state),
        },
    )
    judged = {k: v for k, v in checks.items() if not (args.smoke and k.startswith("slowest"))}
    return 0 if all(judged.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        sys.exit(main())
