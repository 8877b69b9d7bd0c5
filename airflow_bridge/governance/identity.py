"""Where a team policy lives, as the registry records it: the identity that decides who may rebind a model.

A model's binding names its policy's source. Only a policy from the same source rebinds it, so the
source must be stable where it matters and distinct between teams' folders:

- inside Airflow's dags folder: the path relative to that folder (``oncology/_policy.yaml``), the same on
  the dag-processor, every worker and every container whatever the mount point;
- elsewhere (local runs): the path relative to its repository (the folder holding ``.git``), else absolute.
"""

from __future__ import annotations

import os
from pathlib import Path


def dags_folder() -> Path | None:
    """Airflow's ``[core] dags_folder`` (environment, then ``airflow.cfg``), read without importing Airflow."""
    from airflow_bridge.config import airflow_cfg_value, airflow_home

    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or airflow_cfg_value("core", "dags_folder")
    if configured:
        return Path(os.path.expandvars(os.path.expanduser(configured))).resolve()
    default = Path(airflow_home()) / "dags"
    return default.resolve() if default.is_dir() else None


def policy_identity(path: str | os.PathLike[str]) -> str:
    """The source a binding of the policy file at ``path`` records (see the module docstring)."""
    real = Path(path).resolve()
    dags = dags_folder()
    if dags is not None and real.is_relative_to(dags):
        return real.relative_to(dags).as_posix()
    for parent in real.parents:
        if (parent / ".git").exists():
            return real.relative_to(parent).as_posix()
    return str(real)
