"""The Models page with 10,000 versions of one model against the same pages with 10 versions.

Two SQLite registries are built with the real ``register_version`` and ``record_candidate`` (every version
has its candidate, and 100 more candidates failed a gate; every version has its audit event
and the hash chains verify; only the build runs with ``PRAGMA synchronous=OFF``, which nothing timed
uses): one model with N=10,000 versions and one with 10, each with ``staging`` on a middle version and
an approval granted. Then, in one process, FastAPI's ``TestClient`` asks the plugin's app for each page,
alternating the two registries (10 / 10k / 10 / ...) after one untimed warm-up each; medians. The page
is the whole request: routing, the registry reads, the HTML. Airflow's login check is replaced by a
fixed reader (it does not depend on the registry, and needs Airflow's metadata database).

    .venv/bin/python benchmarks/models_page.py [--n 10000] [--repetitions 9] [--smoke]

Figures: docs/benchmarks.md ("Models page"). Target: every page under 0.25 s at N=10,000 (the ratio
to 10 versions is reported, and what remains proportional to N is named there), except the hash-chain
verification, which reads every event by design and runs only when asked.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _benchlib as lib

sys.path.insert(0, str(lib.REPO_ROOT))

MODEL = "churn"
SMALL = 10
TARGET_SECONDS = 0.25
UNBOUNDED = ("verify the hash chains",)
"""Pages that read every event by design (timed, not judged): the check is asked for, never on a view."""


FAILED = 100
"""Candidates that failed a gate (never registered) beside the versions: the policy's default keep_last."""


def candidate(number: int, run: Any, gates: list[dict[str, Any]], *, passed: bool) -> Any:
    """The candidate validate records for a run (every version has one; failed ones are never registered)."""
    import datetime as dt

    from airflow_bridge.actions.candidates import candidate_id
    from airflow_bridge.registry.records import Candidate

    return Candidate(
        candidate_id=candidate_id(MODEL, run),
        model=MODEL,
        run=run,
        spec_sha256="f" * 64,
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        task_kind="classification",
        params={"max_iter": 100 + number % 50},
        metrics={g["name"]: g["value"] for g in gates},
        validation={"gates": gates},
        data={"uri": "file:///data/churn.csv", "sha256": "0" * 64, "rows": 5000},
        artifact_sha256="0" * 64,
        artifact_uri=f"file:///artifacts/{number}.joblib",
        passed=passed,
        recorded_by="alice",
        created_at=dt.datetime.now(dt.UTC),
    )


def build(path: Path, versions: int) -> Any:
    """A registry at ``path`` with ``versions`` versions of MODEL (reused when already built)."""
    import sqlalchemy as sa

    from airflow_bridge.actions import approval
    from airflow_bridge.artifacts import ArtifactStore
    from airflow_bridge.registry import ModelCard, ModelRegistry, RunRef

    done = path.with_suffix(".done")
    registry = ModelRegistry(f"sqlite:///{path}")
    if done.exists() and done.read_text() == f"{versions} with candidates":
        return registry
    path.unlink(missing_ok=True)
    registry = ModelRegistry(f"sqlite:///{path}")

    @sa.event.listens_for(registry.engine, "connect")
    def _no_fsync(dbapi: Any, _record: Any) -> None:  # the build only: 10,000 commits
        cursor = dbapi.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    registry.engine.dispose()
    store = ArtifactStore(f"file://{path.parent / 'artifacts'}")
    started = time.perf_counter()
    for number in range(1, versions + 1):
        auc = 0.9 + (number * 37 % 100) / 1000
        gates = [
            {"name": "roc_auc", "kind": "metric", "value": auc, "min": 0.9, "max": None, "passed": True},
            {"name": "f1", "kind": "metric", "value": auc - 0.05, "min": 0.8, "max": None, "passed": True},
        ]
        run = RunRef(f"{MODEL}_dag", f"scheduled__{number:06d}", "register")
        registry.record_candidate(candidate(number, run, gates, passed=True), keep_last=FAILED, keep_days=None)
        registry.register_version(
            MODEL,
            store.put(f"model {number}".encode(), f"models/{MODEL}", ".joblib"),
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            metrics={"roc_auc": auc, "f1": auc - 0.05, "accuracy": auc - 0.02},
            validation={"gates": gates},
            data={"uri": "file:///data/churn.csv", "sha256": "0" * 64, "rows": 5000},
            params={"max_iter": 100 + number % 50},
            run=run,
            actor="alice",
            card=ModelCard(owner="alice", team="growth", description="Customers likely to leave."),
        )
        if number % 1000 == 0:
            print(f"  built {number:,} versions in {time.perf_counter() - started:.0f} s", flush=True)
    for number in range(1, min(FAILED, versions) + 1):  # candidates that failed a gate, never registered
        run = RunRef(f"{MODEL}_dag", f"manual__{number:06d}", "validate")
        failed = [{"name": "roc_auc", "kind": "metric", "value": 0.85, "min": 0.9, "max": None, "passed": False}]
        registry.record_candidate(candidate(number, run, failed, passed=False), keep_last=FAILED, keep_days=None)
    middle = max(1, versions // 2)
    registry.move_alias(MODEL, "staging", middle, actor="alice", reason="benchmark")
    approval.request_approval(
        registry, model=MODEL, version=versions, alias="production", requested_by="alice", approvers=["dana"]
    )
    registry.engine.dispose()
    done.write_text(f"{versions} with candidates")
    return ModelRegistry(f"sqlite:///{path}")


def client_for(registry: Any) -> Any:
    from fastapi.testclient import TestClient

    from airflow_bridge.plugin import app as plugin_app

    class Reader:
        def get_name(self) -> str:
            return "bench"

    app = plugin_app.create_app()
    app.dependency_overrides[plugin_app._reader] = Reader
    client = TestClient(app)
    client.registry = registry  # type: ignore[attr-defined]
    return client


def pages(n: int, per_page: int) -> dict[str, str]:
    last = max(1, -(-n // per_page))
    return {
        "model page 1": f"/models/{MODEL}",
        "model last page": f"/models/{MODEL}?page={last}",
        "model sorted by roc_auc": f"/models/{MODEL}?sort=metric:roc_auc&desc=1",
        "index": "/models/",
        "compare v1, vN": f"/models/{MODEL}/compare?v=1&v={n}",
        "audit trail of the model": f"/audit?model={MODEL}",
        "verify the hash chains": "/audit?verify=1",
    }


def timed(client: Any, path: str) -> float:
    from airflow_bridge.plugin import app as plugin_app

    plugin_app.registry = lambda: client.registry  # the registry this side reads
    started = time.perf_counter()
    response = client.get(path)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{path}: {response.status_code} {response.text[:500]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=30, one repetition)")
    args = parser.parse_args()
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.smoke:
        lib.smoke_mode()
        args.n, args.repetitions = 30, 1
    folder = lib.GENERATED_DIR / "models_page"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building registries: {SMALL} and {args.n:,} versions of '{MODEL}' (reused when built before)")
    sides = {
        SMALL: client_for(build(folder / f"registry-{SMALL}.db", SMALL)),
        args.n: client_for(build(folder / f"registry-{args.n}.db", args.n)),
    }
    per_page = 50
    asked = {size: pages(size, per_page) for size in sides}
    times: dict[str, dict[int, list[float]]] = {name: {size: [] for size in sides} for name in asked[SMALL]}
    for name in times:
        for size, client in sides.items():
            timed(client, asked[size][name])  # warm-up
        for _ in range(args.repetitions):
            for size, client in sides.items():
                times[name][size].append(timed(client, asked[size][name]))
    rows = []
    print(f"\n| page | {SMALL} versions | {args.n:,} versions | ratio |")
    print("|---|---|---|---|")
    for name, by_size in times.items():
        small, big = statistics.median(by_size[SMALL]), statistics.median(by_size[args.n])
        ratio = big / small
        rows.append({"page": name, "small_s": small, "large_s": big, "ratio": ratio, "path": asked[args.n][name]})
        print(f"| {name} | {small * 1000:.1f} ms | {big * 1000:.1f} ms | {ratio:.2f} |")
    missed = [r["page"] for r in rows if r["page"] not in UNBOUNDED and r["large_s"] > TARGET_SECONDS]
    lib.write_results(
        "models_page",
        {
            "n": args.n,
            "small": SMALL,
            "repetitions": args.repetitions,
            "per_page": per_page,
            "pages": rows,
            "target": f"each page at N versions < {TARGET_SECONDS} s (except {', '.join(UNBOUNDED)})",
            "missed": missed,
        },
    )
    print("\ntarget met" if not missed else f"\ntarget missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
