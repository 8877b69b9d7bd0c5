"""Every script in benchmarks/ still runs (``--smoke``: tiny sizes, results in a temp folder).

A smoke run proves the benchmark works on the code as it is, not that it meets its target; the
recorded results in benchmarks/results/ are never touched. One test per script, so pytest-xdist
spreads them over its workers. ``run_all.py --summary-only`` reads the results of three of them: they
run in one module-scoped temp folder, at most once each, so the summary's test (collected after them)
finds them there on the same worker, or runs them itself on another one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
HELPER_PREFIXES = ("_", "registry_worker_")  # modules the benchmarks import or start, not benchmarks
SLOW_ENV = "BENCH_SMOKE_SLOW"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith(HELPER_PREFIXES))
SUMMARISED = ("parse_dagbag", "worker_parse", "validate_cli")  # run_all.py's benchmarks: its summary reads these
NO_RESULTS = ("run_all", "artifact_dump", "permutation")  # print a table, write no results/<name>.json
# Longest first, so that xdist hands the long ones out early; run_all (the summary) after what it summarises.
ORDER = (
    "local_run",
    "worker_parse",
    "parse_dagbag",
    "serve_load",
    "shards",
    "validate_cli",
    "registry_throughput",
    "permutation",
    "artifact_dump",
)


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


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
    return reasons


def _params() -> list[str]:
    """Every script once (the same list on every xdist worker), run_all last."""
    return [n for n in (*ORDER, *sorted(set(SCRIPTS) - set(ORDER) - {"run_all"}), "run_all") if n in SCRIPTS]


def _recorded() -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (BENCH / "results").iterdir() if p.is_file()}


class Smoke:
    """One temp folder for this module's smoke runs; each script runs at most once in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {**os.environ, "BENCH_SMOKE_DIR": str(folder), "PYTHONPATH": str(REPO)}
        self.outcomes: dict[str, tuple[int, str]] = {}

    def run(self, name: str) -> tuple[int, str]:
        if name not in self.outcomes:
            args = ["--smoke"]
            if name == "run_all":  # the summary of the smoke results written by the others
                args.append("--summary-only")
            proc = subprocess.run(
                [sys.executable, str(BENCH / f"{name}.py"), *args],
                check=False,
                cwd=BENCH,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            self.outcomes[name] = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
        return self.outcomes[name]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smoke]:
    folder = tmp_path_factory.mktemp("bench-smoke")
    yield Smoke(folder)
    shutil.rmtree(folder / "generated", ignore_errors=True)


def test_run_alls_benchmarks_are_never_left_out() -> None:
    wanted = set(SCRIPTS) - set(_skipped())
    assert {*SUMMARISED, "run_all"} <= wanted, sorted(wanted)


@pytest.mark.parametrize("name", _params())
def test_every_benchmark_runs_at_its_tiny_size(name: str, smoke: Smoke) -> None:
    reason = _skipped().get(name)
    if reason:  # shown in pytest's warnings summary, and as the skip's reason
        warnings.warn(f"benchmark smoke test left out {name}.py: {reason}", stacklevel=1)
        pytest.skip(reason)
    recorded = _recorded()
    needed = SUMMARISED if name == "run_all" else ()
    for before in needed:  # normally already run on this worker (collected before run_all): then cached
        code, output = smoke.run(before)
        assert code == 0, f"--- {before} exited {code}:\n{output}"

    code, output = smoke.run(name)

    assert code == 0, f"--- {name} exited {code}:\n{output}"
    if name not in NO_RESULTS:
        written = smoke.folder / "results" / f"{name}.json"
        assert written.exists(), f"{name} --smoke wrote no results in the temp folder"
    assert _recorded() == recorded
