"""``airflow-bridge run`` accounts for the wall time a user waits: its JSON ``timings`` add up.

Two runs of the diabetes example in one home: the first migrates the metadata DB, the second is a
user's next run (the migration check is then one row compared with the revision saved in the home).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, cli

pytestmark = pytest.mark.slow
DIABETES = "diabetes_progression.yaml"
PARTS = ("start_up", "metadata_database", "dag_build", "airflow_setup", "tear_down")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("timed")
    shutil.copy(EXAMPLES / DIABETES, base / DIABETES)
    shutil.copy(EXAMPLES / "_policy.yaml", base / "_policy.yaml")
    shutil.copytree(EXAMPLES / "data", base / "data")
    home = base / "home"
    timed: list[tuple[float, subprocess.CompletedProcess[str]]] = []
    for _ in range(2):
        start = time.perf_counter()
        done = cli("run", DIABETES, "--home", home, "--format", "json", cwd=base)
        timed.append((time.perf_counter() - start, done))
    return {"home": home, "runs": timed}


def test_the_parts_of_a_run_add_up_to_the_wall_time(runs: dict[str, Any]) -> None:
    for wall, done in runs["runs"]:
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout)
        timings = summary["timings"]
        assert set(timings["tasks"]) == {"train", "validate", "register", "deploy"}
        parts = [timings[part] for part in PARTS] + list(timings["tasks"].values())
        assert all(seconds >= 0 for seconds in parts), timings
        assert sum(parts) == pytest.approx(timings["total"], abs=0.01)
        # The total runs from the process start to the summary: only the interpreter's exit is missing.
        assert wall - max(0.5, 0.05 * wall) <= timings["total"] <= wall + 0.05, (wall, timings)
        saved = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
        assert saved["timings"]["total"] == pytest.approx(timings["total"], abs=0.01)


def test_the_metadata_db_revision_is_remembered_for_the_next_run(runs: dict[str, Any]) -> None:
    home: Path = runs["home"]
    stamp = json.loads((home / "airflow-db-head.json").read_text())
    with sqlite3.connect(home / "airflow.db") as db:
        revisions = sorted(row[0] for row in db.execute("SELECT version_num FROM alembic_version"))
    assert stamp["heads"] == revisions
    assert stamp["airflow"]
