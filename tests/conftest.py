"""Test set-up: a real, isolated Airflow (SQLite metadata DB) per test worker.

Airflow reads its configuration once, at import, so the environment is set here, before any test
module imports Airflow. Each xdist worker gets its own AIRFLOW_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, standard, write_loader
from tests.pgproxy import database, proxy  # noqa: F401 - fixtures for the registry-outage tests

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix=f"ab-airflow-{_WORKER}-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
    }
)
for name in ("AIRFLOW_BRIDGE_HOME", "AIRFLOW_BRIDGE_REGISTRY_URL", "AIRFLOW_BRIDGE_DATA_ROOTS"):
    os.environ.pop(name, None)

# OpenLineage stays off in this process (Airflow loads its listener once per process); lineage runs go
# through `airflow-bridge run` in a child process. The spec files validate the events they write.


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for this worker."""
    from airflow.utils import db

    db.upgradedb()
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def ol_registry() -> Any:
    """A ``referencing.Registry`` of the OpenLineage spec and airflow-bridge's facet schemas (offline)."""
    from airflow_bridge.lineage.validation import schema_registry

    return schema_registry(standard("openlineage-spec"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database: SQLite in the test's folder, then a fresh PostgreSQL database
    (``-m "not postgres"`` skips those). Test modules that need another registry define their own."""
    from tests.registry_workers import registry_database

    with registry_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def registry(registry_url: str) -> Iterator[Any]:
    """A ``ModelRegistry`` on ``registry_url``, disposed after the test."""
    from airflow_bridge.registry import ModelRegistry

    opened = ModelRegistry(registry_url)
    yield opened
    opened.dispose()


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh embedded registry and artifact store for one test, wired in through a real connection."""
    registry_path = tmp_path / "registry.db"
    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MODEL_REGISTRY_DEFAULT",
        json.dumps({"conn_type": "model_registry", "schema": str(registry_path), "extra": {"backend": "sqlite"}}),
    )
    monkeypatch.setenv("AIRFLOW__AIRFLOW_BRIDGE__ARTIFACT_ROOT", f"file://{artifacts}")
    return {"url": f"sqlite:///{registry_path}", "artifacts": artifacts, "path": registry_path}


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A folder with copies of the example specs and their data, safe to edit."""
    target = tmp_path / "specs"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


@pytest.fixture
def run_spec_dag(airflow_db: Path) -> Iterator[Any]:
    """Run a spec's DAG with the real ``dag.test()``; returns (dag, dag_run)."""

    def run(spec_path: Path, **test_kwargs: Any) -> tuple[Any, Any]:
        from airflow.dag_processing.dagbag import DagBag

        from airflow_bridge.spec.loader import load_spec

        loaded = load_spec(spec_path)
        assert loaded.ok, [i.format() for i in loaded.issues]
        assert loaded.spec is not None
        bag = DagBag(dag_folder=str(write_loader([spec_path])))
        dag = bag.dags[loaded.spec.name]
        return dag, dag.test(**test_kwargs)

    yield run


@pytest.fixture
def run_answered(run_spec_dag: Any) -> Iterator[Any]:
    """Run a spec's DAG with ``dag.test()`` while a responder answers its approval requests as approvers do
    (``answers`` in order; ``on_waiting`` acts on each open request instead); returns (dag, dag_run, responder).
    The DAG id is the spec file's name unless ``dag_id`` says otherwise."""
    from airflow_bridge.cli.respond import Responder

    def run(
        spec_path: Path, answers: Any = (), *, on_waiting: Any = None, dag_id: str | None = None
    ) -> tuple[Any, Any, Any]:
        responder = Responder(dag_id or spec_path.stem, list(answers), on_waiting=on_waiting, poll_seconds=0.2)
        responder.start()
        try:
            dag, dag_run = run_spec_dag(spec_path)
        finally:
            responder.stop()
            responder.join(timeout=10)
        return dag, dag_run, responder

    yield run


@pytest.fixture
def run_python_dag(airflow_db: Path) -> Iterator[Any]:
    """Write an engineer's Python DAG file into the dags folder and run it with ``dag.test()``."""

    def run(source: str, dag_id: str, **test_kwargs: Any) -> tuple[Any, Any]:
        from airflow.dag_processing.dagbag import DagBag

        for old in DAGS_FOLDER.glob("*.py"):
            old.unlink()
        path = DAGS_FOLDER / f"{dag_id}.py"
        path.write_text(source)
        bag = DagBag(dag_folder=str(path))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags[dag_id]
        return dag, dag.test(**test_kwargs)

    yield run
