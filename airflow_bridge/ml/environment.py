"""What besides the spec and the data can make a rerun differ: library versions, platform, thread counts.

Recorded with every training result and registered version (``data.environment``), so two versions whose
metrics differ although spec and data did not can be told apart by their environment (docs/spec.md,
"Reproducibility"). Only names and numbers are kept: no file paths, host names or user names.
"""

from __future__ import annotations

import os
import platform
from typing import Any

PACKAGES = ("airflow-bridge", "scikit-learn", "skrub", "numpy", "pandas", "scipy", "joblib", "threadpoolctl")
"""The distributions whose versions decide what a pipeline computes and how its pickle looks."""
_THREADPOOL_KEYS = {
    "user_api": "api",
    "internal_api": "library",
    "prefix": "file_prefix",
    "version": "version",
    "num_threads": "threads",
    "threading_layer": "threading_layer",
}


def training_environment(estimator: str = "") -> dict[str, Any]:
    """Python, platform, CPUs, package versions (and the estimator's own package) and native thread pools.

    Call it after fitting: the thread pools (OpenMP, BLAS) are listed once their libraries are loaded.
    """
    packages = {name: _version(name) for name in PACKAGES}
    top = estimator.split(".", 1)[0]
    if top and top not in ("sklearn", "skrub"):  # e.g. lightgbm, xgboost, catboost from the allow-list
        packages[top] = _version(top)
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": packages,
        "threadpools": _threadpools(),
    }


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _threadpools() -> list[dict[str, Any]]:
    """The native thread pools loaded in this process (threadpoolctl, which scikit-learn depends on), by
    API, library, version and thread count; without the libraries' file paths. Duplicates are merged."""
    from threadpoolctl import threadpool_info

    pools: list[dict[str, Any]] = []
    for info in threadpool_info():
        pool = {ours: info[theirs] for theirs, ours in _THREADPOOL_KEYS.items() if theirs in info}
        if pool not in pools:
            pools.append(pool)
    return sorted(pools, key=lambda p: (str(p.get("api")), str(p.get("library")), str(p.get("version"))))
