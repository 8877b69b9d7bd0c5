"""Every script in benchmarks/ still runs (``--smoke``: tiny sizes, results in a temp folder).

A smoke run proves the benchmark works on the code as it is, not that it meets its target; the
recorded results in benchmarks/results/ are never touched. Two scripts run at a time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
HELPER_PREFIXES = ("_", "registry_worker_")  # modules the benchmarks import or start, not benchmarks
SLOW_ENV = "BENCH_SMOKE_SLOW"
# Longest first, so that the two lanes finish together.
ORDER = (
    "local_run",
    "serve_load",
    "worker_parse",
    "shards",
    "parse_dagbag",
    "permutation",
    "validate_cli",
    "artifact_dump",
)


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _has_commit(rev: str) -> bool:
    command = ["git", "-C", str(REPO), "cat-file", "-e", f"{rev}^{{commit}}"]
    found = subprocess.run(command, check=False, capture_output=True)
    return found.returncode == 0


def _skipped() -> dict[str, str]:
    """Benchmarks the smoke test leaves out here, with the reason."""
    reasons = {}
    if not os.environ.get(SLOW_ENV):
        reasons["local_run"] = (
            f"one example's run plus its bare dag.test() baseline take ~30 s, over the smoke budget; "
            f"{SLOW_ENV}=1 includes it (or: python benchmarks/local_run.py --smoke)"
        )
    reasons["shards_stack"] = (
        "starts a whole dev/stack of its own (minutes); tests/test_stack.py runs the stack on a sharded "
        "dags folder instead"
    )
    if not _postgres_up():
        reasons["registry_throughput"] = "needs PostgreSQL on 127.0.0.1:5432 (started by the CI machine)"
    if not _has_commit("8844a26"):
        reasons["serve_load"] = "its baseline server is read from commit 8844a26 (a shallow clone lacks it)"
    return reasons


def _run(name: str, env: dict[str, str]) -> tuple[str, int, str]:
    args = ["--smoke"]
    if name == "run_all":  # the summary of the smoke results written by the others
        args.append("--summary-only")
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        check=False,
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return name, proc.returncode, (proc.stdout + proc.stderr)[-3000:]


def test_every_benchmark_runs_at_its_tiny_size(tmp_path: Path) -> None:
    scripts = sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith(HELPER_PREFIXES))
    skipped = _skipped()
    wanted = [n for n in (*ORDER, *sorted(set(scripts) - set(ORDER))) if n in scripts and n not in skipped]
    assert {"parse_dagbag", "worker_parse", "validate_cli", "run_all"} <= set(wanted), wanted
    recorded = {p: p.read_bytes() for p in (BENCH / "results").iterdir() if p.is_file()}
    env = {**os.environ, "BENCH_SMOKE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda name: _run(name, env), [n for n in wanted if n != "run_all"]))
    if "run_all" in wanted:
        outcomes.append(_run("run_all", env))

    failed = [f"--- {name} exited {code}:\n{output}" for name, code, output in outcomes if code != 0]
    assert not failed, "\n".join(failed)
    for name in set(wanted) - {"run_all", "artifact_dump", "permutation"}:
        assert (tmp_path / "results" / f"{name}.json").exists(), f"{name} --smoke wrote no results in the temp folder"
    assert {p: p.read_bytes() for p in (BENCH / "results").iterdir() if p.is_file()} == recorded
    shutil.rmtree(tmp_path / "generated", ignore_errors=True)
    for name, reason in skipped.items():  # shown in pytest's warnings summary
        warnings.warn(f"benchmark smoke test left out {name}.py: {reason}", stacklevel=1)
