"""Shared test helpers (not fixtures): paths, the shared data folder, the dags-folder loader, the CLI.

Test modules import these from here, never from each other or from conftest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "dag_specs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
POSTGRES_URL = os.environ.get("AIRFLOW_BRIDGE_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
CLI = Path(sys.executable).with_name("airflow-bridge")


def dags_folder() -> Path:
    """The dags folder conftest set up for this test worker."""
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


STANDARDS = FIXTURES / "standards"
"""Official schemas the tests check objects against, copied into the repository with their sources and
licences (README.md in each folder): the OpenLineage spec and KServe's InferenceService CRD."""


def standard(name: str) -> Path:
    """A folder of ``tests/fixtures/standards`` (the tests need nothing outside the repository)."""
    folder = STANDARDS / name
    if not folder.is_dir():  # pragma: no cover - a broken checkout
        pytest.fail(f"{folder} is missing from the checkout")
    return folder


def write_loader(spec_paths: list[Path], name: str = "specs_under_test") -> Path:
    """Replace the dags folder's content with one loader for ``spec_paths`` (dag.test() parses the bundle)."""
    for old in dags_folder().glob("*.py"):
        old.unlink()
    folder = spec_paths[0].parent
    loader = dags_folder() / f"{name}.py"
    loader.write_text(
        "from airflow_bridge.factory import load_dag_specs\n"
        f"load_dag_specs(globals(), folder={str(folder)!r}, paths={[str(p) for p in spec_paths]!r})\n"
    )
    return loader


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}


def cli_env() -> dict[str, str]:
    """The environment of a user's shell: no airflow-bridge or test-only settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_BRIDGE_", "AIRFLOW_CONN_"))}
    env["COLUMNS"] = "200"
    return env


def cli(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``airflow-bridge ARGS`` in its own process, as a user runs it."""
    return subprocess.run(
        [str(CLI), *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
