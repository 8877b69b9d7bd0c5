"""Where a run's code came from: the git commit, read without running git inside a task.

Order: the version of the DAG bundle the task ran from (Airflow 3 ``GitDagBundle`` versions are
commit SHAs), else ``$AIRFLOW_BRIDGE_GIT_COMMIT``, else ``$GIT_COMMIT`` (set them when you bake
specs into an image). ``airflow-bridge run`` sets ``AIRFLOW_BRIDGE_GIT_COMMIT`` from the spec's
checkout. Pure: no Airflow, no OpenLineage.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

ENV_VARS = ("AIRFLOW_BRIDGE_GIT_COMMIT", "GIT_COMMIT")


class GitCommit(NamedTuple):
    sha: str
    source: str  # "dag_bundle:<name>" or "env:<VAR>"


def git_commit(task_instance: Any = None) -> GitCommit | None:
    """The commit of the code behind ``task_instance`` (a RuntimeTaskInstance), or None when unknown."""
    bundle = getattr(task_instance, "bundle_instance", None) if task_instance is not None else None
    version = getattr(bundle, "version", None) if bundle is not None else None
    if version:
        return GitCommit(str(version), f"dag_bundle:{getattr(bundle, 'name', '?')}")
    for name in ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return GitCommit(value, f"env:{name}")
    return None


def checkout_commit(folder: Path) -> str | None:
    """``git rev-parse HEAD`` in ``folder`` (with ``-dirty`` when it has changes), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if head and dirty else head or None
