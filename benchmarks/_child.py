"""Child process of the benchmarks: one measurement in a fresh interpreter, one JSON line on stdout.

Modes::

    _child.py dagbag FOLDER_OR_FILE [--safe-mode] [--worker BUNDLE_PATH] [--fingerprint] [--profile OUT]
    _child.py validate-inproc FOLDER

``dagbag`` times ``DagBag(...)`` (the collection only; importing ``DagBag`` is timed separately).
With ``--worker`` it builds the bag like a task worker does (``safe_mode=False``,
``load_op_links=False``, a bundle path). ``validate-inproc`` runs the CLI's validate command in
this process and reports whether any ``airflow`` module got imported.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


class _GcTimer:
    """Time spent in the cyclic garbage collector (all generations) and the number of collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.collections[info["generation"]] += 1


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timetable(timetable: Any) -> Any:
    try:
        return timetable.serialize()
    except Exception:
        return getattr(timetable, "description", None)


def _canonical_dag(dag: Any) -> dict[str, Any]:
    """What must be equal between a factory DAG and its hand-written twin."""
    tasks = []
    for task in sorted(dag.tasks, key=lambda t: t.task_id):
        params = [
            p.name
            for p in inspect.signature(type(task).__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        attrs = {name: repr(getattr(task, name, "<unset>")) for name in params}
        attrs.update(
            {
                name: repr(getattr(task, name, None))
                for name in ("owner", "retries", "retry_delay", "execution_timeout", "doc_md", "pool")
            }
        )
        tasks.append(
            {
                "task_id": task.task_id,
                "class": f"{type(task).__module__}.{type(task).__qualname__}",
                "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids),
                "attrs": attrs,
            }
        )
    return {
        "dag_id": dag.dag_id,
        "description": dag.description,
        "doc_md": dag.doc_md,
        "schedule": repr(getattr(dag, "schedule", None)),
        "timetable": repr(_timetable(dag.timetable)),
        "timetable_type": type(dag.timetable).__name__,
        "start_date": repr(dag.start_date),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "default_args": repr(sorted(dag.default_args.items())),
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "tasks": tasks,
    }


def _dagbag(args: argparse.Namespace) -> dict[str, Any]:
    t_import = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    t_collect = time.perf_counter()
    cpu_collect = time.process_time()
    gc_timer = _GcTimer()
    gc.callbacks.append(gc_timer)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if args.worker:
        bag = DagBag(
            dag_folder=args.path,
            safe_mode=False,
            load_op_links=False,
            bundle_path=args.worker,
            bundle_name="bench",
        )
    else:
        bag = DagBag(dag_folder=args.path, safe_mode=args.safe_mode)
    t_done = time.perf_counter()
    cpu_done = time.process_time()
    gc.callbacks.remove(gc_timer)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    out: dict[str, Any] = {
        "startup_s": t_import - _T0,
        "import_dagbag_s": t_collect - t_import,
        "collect_s": t_done - t_collect,
        "collect_cpu_s": cpu_done - cpu_collect,
        "process_cpu_s": cpu_done,
        "collect_gc_s": gc_timer.seconds,
        "collect_gc_collections": gc_timer.collections,
        "in_process_s": t_done - _T0,
        "n_dags": len(bag.dags),
        "n_tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "dag_ids_sample": sorted(bag.dags)[:3],
        "import_errors": {k: v[-1500:] for k, v in bag.import_errors.items()},
        "peak_rss_mb": _peak_rss_mb(),
        "n_modules": len(sys.modules),
    }
    if args.expect_task:
        dag_id, _, task_id = args.expect_task.partition(".")
        dag = bag.dags.get(dag_id)
        out["found_task"] = bool(dag is not None and task_id in dag.task_dict)
    if args.fingerprint:
        canon = {dag_id: _canonical_dag(dag) for dag_id, dag in bag.dags.items()}
        out["fingerprints"] = {
            dag_id: hashlib.sha256(json.dumps(c, sort_keys=True, default=repr).encode()).hexdigest()
            for dag_id, c in canon.items()
        }
        out["canonical_sample"] = {dag_id: canon[dag_id] for dag_id in sorted(canon)[:2]}
    return out


def _validate_inproc(args: argparse.Namespace) -> dict[str, Any]:
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    from airflow_bridge.cli.main import app

    imported = time.perf_counter()
    code: Any = 0
    try:
        code = app(["validate", args.path], standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
    done = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    loaded = sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow."))
    return {
        "exit_code": code,
        "import_cli_s": imported - start,
        "validate_s": done - imported,
        "airflow_loaded": bool(loaded),
        "airflow_modules": loaded[:20],
        "n_modules": len(sys.modules),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["dagbag", "validate-inproc"])
    parser.add_argument("path")
    parser.add_argument("--safe-mode", action="store_true")
    parser.add_argument("--worker", metavar="BUNDLE_PATH")
    parser.add_argument("--fingerprint", action="store_true")
    parser.add_argument("--profile", metavar="OUT")
    parser.add_argument("--expect-task", metavar="DAG_ID.TASK_ID")
    args = parser.parse_args()
    result = _dagbag(args) if args.mode == "dagbag" else _validate_inproc(args)
    sys.stdout.write("\n" + json.dumps(result, default=repr) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
