"""Run every benchmark (each in its own process, one after the other) and print a summary.

    .venv/bin/python benchmarks/run_all.py [--only parse_dagbag ...] [--profile] [--n 1000] [--smoke]

Exit status 0 when every target is met. Results: benchmarks/results/<name>.json and summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import _benchlib as lib

BENCHMARKS = ("parse_dagbag", "worker_parse", "validate_cli")


def _rows(name: str, result: dict[str, Any]) -> list[list[Any]]:
    """Summary rows: benchmark, measure, baseline, candidate, ratio, target, result."""
    verdict = lib.verdict(bool(result.get("passed")))
    if name == "parse_dagbag":
        hand, fac = result["hand_written"]["collect_s"]["median"], result["factory"]["collect_s"]["median"]
        return [
            [name, f"DagBag collect, N={result['n']} (s)", hand, fac, result["ratio_collect"], "<= 1.1", verdict],
            [name, "  95% interval of that ratio", "-", "-",
             "{:.2f}-{:.2f}".format(*result.get("ratio_collect_ci95", [0, 0])), "-", "-"],
            [name, "DagBag collect CPU (s)", result["hand_written"]["collect_cpu_s"]["median"],
             result["factory"]["collect_cpu_s"]["median"], result["ratio_collect_cpu"], "-", "-"],
            [name, "subprocess wall (s)", result["hand_written"]["wall_s"]["median"],
             result["factory"]["wall_s"]["median"], result["ratio_wall"], "-", "-"],
        ]  # fmt: skip
    if name == "worker_parse":
        cases, n = result["cases"], result["n"]
        fast1, fastn = cases["fast N=1"]["collect_s"]["median"], cases[f"fast N={n}"]["collect_s"]["median"]
        fb1, fbn = cases["fallback N=1"]["collect_s"]["median"], cases[f"fallback N={n}"]["collect_s"]["median"]
        return [
            [name, f"worker parse, fast path, N={n} vs 1 (s)", fast1, fastn, result["ratio_fast"], "<= 1.5", verdict],
            [name, f"worker parse, fallback scan, N={n} vs 1 (s)", fb1, fbn, result["ratio_fallback"], "(info)", "-"],
            [
                name,
                "worker subprocess wall, fast, N vs 1 (s)",
                cases["fast N=1"]["wall_s"]["median"],
                cases[f"fast N={n}"]["wall_s"]["median"],
                cases[f"fast N={n}"]["wall_s"]["median"] / cases["fast N=1"]["wall_s"]["median"],
                "-",
                "-",
            ],
        ]
    if name == "validate_cli":
        wall = result["wall_s"]["median"]
        return [
            [name, f"validate N={result['n']} wall (s)", result["wall_one_s"]["median"], wall, "-", "< 2 s", verdict],
            [name, "per spec (ms): wall / N", "-", result["per_spec_ms"], "-", "-", "-"],
            [name, "per spec (ms): (wall N - wall 1) / (N - 1)", "-", result["marginal_per_spec_ms"], "-", "-", "-"],
            [name, f"validate N={result['n']} CPU (s)", result["cpu_one_s"]["median"], result["cpu_s"]["median"],
             "-", "-", "-"],
            [name, "Airflow imported", "-", result["airflow_imported_in_process"], "-", "False",
             lib.verdict(not result["airflow_imported_in_process"])],
        ]  # fmt: skip
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--profile", action="store_true", help="pass --profile to every benchmark")
    parser.add_argument("--n", type=int, help="override N (default: each benchmark's own, 1000)")
    parser.add_argument("--repetitions", type=int, help="override the repetitions of every benchmark")
    parser.add_argument("--summary-only", action="store_true", help="print the summary of the last results only")
    parser.add_argument("--smoke", action="store_true", help="every benchmark at its tiny size, into a temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        lib.smoke_mode()  # $BENCH_SMOKE_DIR: the benchmarks started below write there too

    selected = args.only or list(BENCHMARKS)
    extra: list[str] = []
    if args.smoke:
        extra.append("--smoke")
    if args.profile:
        extra.append("--profile")
    if args.n:
        extra += ["--n", str(args.n)]
    if args.repetitions:
        extra += ["--repetitions", str(args.repetitions)]

    status: dict[str, int] = {}
    durations: dict[str, float] = {}
    for name in [] if args.summary_only else selected:
        print(f"\n=== {name} {' '.join(extra)} ===", flush=True)
        start = time.perf_counter()
        status[name] = subprocess.run([lib.PYTHON, str(lib.BENCH_DIR / f"{name}.py"), *extra], check=False).returncode
        durations[name] = time.perf_counter() - start

    rows: list[list[Any]] = []
    for name in selected:
        path = lib.RESULTS_DIR / f"{name}.json"
        if not path.exists():
            rows.append([name, "no results", "-", "-", "-", "-", "ERROR"])
            status[name] = 1
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        rows.extend(_rows(name, result))
        if args.summary_only:
            status[name] = 0 if result.get("passed") else 1
            durations[name] = 0.0
            print(f"{name}: results of {result.get('timestamp')}")

    print("\n=== summary ===")
    lib.print_table(["benchmark", "measure", "baseline", "candidate", "ratio", "target", "result"], rows)
    machine = lib.machine_info()
    print(
        f"\nmachine: {machine['nproc']} CPUs, Python {machine['python']}, Airflow {machine['airflow']}, "
        f"load average {machine['load_average']}"
    )
    for name in selected:
        print(f"{name}: exit {status[name]}, {durations.get(name, 0.0):.0f} s")
    lib.write_results(
        "summary",
        {"machine": machine, "exit_status": status, "durations_s": durations, "rows": rows},
    )
    if args.smoke:  # targets are not judged: a benchmark that ran and wrote its results is fine
        ran = all(code == 0 for name, code in status.items() if name in durations and not args.summary_only)
        return 0 if ran and all((lib.RESULTS_DIR / f"{name}.json").exists() for name in selected) else 1
    return 0 if all(code == 0 for code in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
