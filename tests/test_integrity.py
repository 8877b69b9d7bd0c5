"""Nothing left behind, nothing unmarked: `airflow-bridge gc` and `models check` on a real artifact folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_bridge.artifacts import ArtifactStore
from airflow_bridge.registry import ModelRegistry
from tests.helpers import cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A local home with one registered version (its model artifact) and what runs leave behind."""
    home = tmp_path / "home"
    registry = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")
    store = ArtifactStore(f"file://{home / 'airflow_bridge' / 'artifacts'}")
    registry.register_version("churn", store.put(b"model bytes", "models/churn", ".joblib"), actor="alice")
    store.put(b"held-out rows of a finished run", "holdout/churn", ".parquet")  # no version refers to it
    store.put(b"a model a failed run never registered", "models/churn", ".joblib")
    old = time.time() - 3 * 24 * 3600
    for path in (home / "airflow_bridge" / "artifacts").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    store.put(b"a run that is still going", "holdout/churn", ".parquet")  # fresh: kept by the grace period
    registry.dispose()
    return home


def _killed_mid_write(home: Path) -> Path:
    """A writer SIGKILLed while it writes an artifact: its partial file stays behind."""
    root = home / "airflow_bridge" / "artifacts"
    code = (
        "import os, sys, time\n"
        "from airflow_bridge.artifacts import ArtifactStore\n"
        "os.replace = lambda *a: (print('writing', flush=True), time.sleep(60))\n"
        f"ArtifactStore({str(root)!r}).put(b'x' * 1_000_000, 'models/churn', '.joblib')\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [partial] = root.rglob(".partial-*")
    return partial


def test_gc_finds_partial_and_unreferenced_files_and_deletes_only_when_asked(home: Path) -> None:
    partial = _killed_mid_write(home)
    dry = cli("gc", "--home", home, "--grace-hours", "24", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    found = json.loads(dry.stdout)
    assert found["applied"] is False
    assert found["kept_recent"] == 1  # the run still going
    assert len(found["unreferenced"]) == 2 and all("churn" in u for u in found["unreferenced"])
    assert found["partial"] == [], "the partial file is younger than the grace period"
    assert partial.exists()

    applied = cli("gc", "--home", home, "--grace-hours", "0", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "deleted 1 partial file(s) and 3 unreferenced artifact(s)" in applied.stdout
    assert not partial.exists()
    registry = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")
    kept = registry.get_version("churn", 1).artifact
    assert Path(kept.uri.removeprefix("file://")).read_bytes() == b"model bytes", "a registered artifact stays"
    assert cli("models", "check", "--home", home).returncode == 0


def test_models_check_marks_a_version_whose_artifact_vanished_or_changed(home: Path) -> None:
    registry = ModelRegistry(f"sqlite:///{home / 'airflow_bridge' / 'registry.db'}")
    path = Path(registry.get_version("churn", 1).artifact.uri.removeprefix("file://"))
    path.chmod(0o644)
    path.write_bytes(b"model bytez")  # same size, other bytes: only --deep reads them
    assert cli("models", "check", "--home", home).returncode == 0
    deep = cli("models", "check", "--home", home, "--deep")
    assert deep.returncode == 1 and "churn v1" in deep.stdout and "was modified after registration" in deep.stdout
    path.unlink()
    shallow = cli("models", "check", "churn", "--home", home)
    assert shallow.returncode == 1 and "missing: it was deleted after registration" in shallow.stdout
    served = cli("serve", "churn", "--home", home, "--alias", "live")
    assert served.returncode == 1 and "Traceback" not in served.stderr
