"""What a worker pays to parse the loader before running one task, with 1 vs. N specs in the folder.

A worker re-parses the DAG file of the task it runs, with the parsing context set
(``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` / ``_TASK_ID``); the loader then builds only that DAG. Each
measurement is a fresh subprocess that builds a DagBag from the single loader file the way the task
runner does (``safe_mode=False``, ``load_op_links=False``, a bundle path), timed inside the child
around ``DagBag(...)``; the child's whole wall time is reported too. Cases alternate in order.

* fast path: the wanted spec is ``<dag_id>.yaml`` (found by name);
* fallback: the wanted spec's file name differs from its DAG id (the loader scans the folder).

Target: parse time with N=1000 specs / with N=1 spec <= 1.5 (fast path).

    .venv/bin/python benchmarks/worker_parse.py [--n 1000] [--repetitions 11] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import _benchlib as lib

NAME = "worker_parse"
TARGET_RATIO = 1.5
TASK_ID = "train"

BREAKDOWN = {
    "import airflow_bridge.factory (modules)": ("airflow_bridge/factory/__init__.py", "<module>"),
    "load_dag_specs": ("airflow_bridge/factory/dags.py", "load_dag_specs"),
    "  team policy / context (context_for_folder)": ("airflow_bridge/governance/loader.py", "context_for_folder"),
    "  _build_one (worker fast path)": ("airflow_bridge/factory/dags.py", "_build_one"),
    "    discover_specs (fallback scan)": ("airflow_bridge/spec/loader.py", "discover_specs"),
    "    _mentions (fallback scan: read + regex)": ("airflow_bridge/factory/dags.py", "_mentions"),
    "    load_spec": ("airflow_bridge/spec/loader.py", "load_spec"),
    "    build_dag": ("airflow_bridge/factory/build.py", "build_dag"),
    "  _build_all (not expected here)": ("airflow_bridge/factory/dags.py", "_build_all"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="specs in the large folder (default 1000)")
    parser.add_argument("--repetitions", type=int, default=11, help="timed runs per case (>= 3, default 11)")
    parser.add_argument("--profile", action="store_true", help="also profile the N-spec cases with cProfile")
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=4, 1 repetition) into a temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        lib.smoke_mode()
        args.n, args.repetitions = 4, 1
    elif args.repetitions < 3:
        parser.error("--repetitions must be at least 3")
    sources = lib.source_state()

    wanted = args.n // 2
    dag_id = lib.spec_name(wanted)
    root = lib.GENERATED_DIR / NAME
    folders: dict[str, Path] = {
        "fast N=1": root / "fast_1",
        f"fast N={args.n}": root / f"fast_{args.n}",
        "fallback N=1": root / "fallback_1",
        f"fallback N={args.n}": root / f"fallback_{args.n}",
    }
    print(f"generating folders under {root} (wanted DAG: {dag_id}) ...", flush=True)
    lib.write_spec_folder(folders["fast N=1"], 1, only=[wanted])
    lib.write_spec_folder(folders[f"fast N={args.n}"], args.n)
    lib.write_spec_folder(folders["fallback N=1"], 1, only=[wanted], mismatched_file_names=True)
    lib.write_spec_folder(folders[f"fallback N={args.n}"], args.n, mismatched_file_names=True)
    context = {"_AIRFLOW_PARSING_CONTEXT_DAG_ID": dag_id, "_AIRFLOW_PARSING_CONTEXT_TASK_ID": TASK_ID}
    home = lib.throwaway_home(NAME)
    problems: list[str] = []

    def child_args(case: str, *extra: str) -> list[str]:
        folder = folders[case]
        return [
            "dagbag",
            str(folder / "airflow_bridge_dags.py"),
            "--worker",
            str(folder),
            "--expect-task",
            f"{dag_id}.{TASK_ID}",
            *extra,
        ]

    envs = {case: lib.airflow_env(home, folder, context) for case, folder in folders.items()}

    def case_fn(case: str) -> dict[str, float]:
        run = lib.run_child(child_args(case), envs[case])
        data = run.data
        if not data.get("found_task"):
            problems.append(f"{case}: task {dag_id}.{TASK_ID} not found (DAGs: {data['dag_ids_sample']})")
        if data["n_dags"] != 1:
            problems.append(f"{case}: built {data['n_dags']} DAGs, expected only the wanted one")
        if data["import_errors"]:
            problems.append(f"{case}: import errors {data['import_errors']}")
        return {
            "collect_s": data["collect_s"],
            "collect_cpu_s": data["collect_cpu_s"],
            "wall_s": run.wall_s,
            "cpu_s": run.cpu_s,
            "others_load": run.others_load,
            "peak_rss_mb": data["peak_rss_mb"],
        }

    profiles: dict[str, Any] = {}
    try:
        samples = lib.interleaved({case: (lambda c=case: case_fn(c)) for case in folders}, args.repetitions)
        if args.profile:
            lib.RESULTS_DIR.mkdir(exist_ok=True)
            for case in (f"fast N={args.n}", f"fallback N={args.n}", "fast N=1"):
                out = lib.RESULTS_DIR / f"{NAME}.{case.replace(' ', '_').replace('=', '')}.prof"
                env = {**envs[case], "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0"}  # profiler overhead
                lib.run_child(child_args(case, "--profile", str(out)), env)
                profiles[case] = {
                    "file": lib.display(out),
                    "top_cumulative": [r.as_dict() for r in lib.profile_rows(out, sort="cumtime")],
                    "top_self": [r.as_dict() for r in lib.profile_rows(out, sort="tottime")],
                    "top_cumulative_below_import": [
                        r.as_dict() for r in lib.profile_rows(out, sort="cumtime", skip=lib.WRAPPER_FRAMES)
                    ],
                    "breakdown_cumtime_s": lib.profile_lookup(out, BREAKDOWN),
                }
    finally:
        shutil.rmtree(home, ignore_errors=True)

    collect = {case: lib.metric(s, "collect_s") for case, s in samples.items()}
    wall = {case: lib.metric(s, "wall_s") for case, s in samples.items()}
    cpu = {case: lib.metric(s, "collect_cpu_s") for case, s in samples.items()}
    big_fast, big_fallback = f"fast N={args.n}", f"fallback N={args.n}"
    ratio_fast = collect[big_fast].median / collect["fast N=1"].median
    ratio_fallback = collect[big_fallback].median / collect["fallback N=1"].median
    ratio_fallback_vs_fast1 = collect[big_fallback].median / collect["fast N=1"].median
    paired_fast = lib.paired_ratio(samples[big_fast], samples["fast N=1"], "collect_s")
    passed = ratio_fast <= TARGET_RATIO and not problems
    load = {case: lib.metric(s, "others_load") for case, s in samples.items()}
    quiet = {case: lib.quiet_metric(s, "collect_s") for case, s in samples.items()}
    quiet_big, quiet_one = quiet[big_fast], quiet["fast N=1"]
    ratio_fast_quiet = quiet_big.median / quiet_one.median if quiet_big and quiet_one else None

    print(f"\nWorker parse of the loader for one task ({dag_id}.{TASK_ID}), {args.repetitions} repetitions, medians")
    lib.print_table(
        ["case", "parse s (in child)", "min", "max", "parse CPU s", "subprocess wall s"],
        [
            [c, collect[c].median, collect[c].minimum, collect[c].maximum, cpu[c].median, wall[c].median]
            for c in folders
        ],
    )
    print()

    def ratio_row(label: str, num: str, den: str, target: str, result: str) -> list[Any]:
        return [
            label,
            collect[num].median / collect[den].median,
            cpu[num].median / cpu[den].median,
            wall[num].median / wall[den].median,
            1000 * (collect[num].median - collect[den].median),
            target,
            result,
        ]

    fallback_result = "PASS" if ratio_fallback <= TARGET_RATIO else f"over {TARGET_RATIO}"
    lib.print_table(
        ["ratio", "parse", "parse CPU", "wall", "extra parse ms", "target", "result"],
        [
            ratio_row(f"fast: N={args.n} / N=1", big_fast, "fast N=1", f"<= {TARGET_RATIO}", lib.verdict(passed)),
            ratio_row(f"fallback: N={args.n} / N=1", big_fallback, "fallback N=1", "(info)", fallback_result),
            ratio_row(f"fallback N={args.n} / fast N=1", big_fallback, "fast N=1", "(info)", "-"),
        ],
    )
    ci_low, ci_high = lib.ratio_ci(samples[big_fast], samples["fast N=1"], "collect_s")
    paired_low, paired_high = lib.median_ci(paired_fast.values)
    print(
        f"fast ratio {ratio_fast:.3f} (95% bootstrap interval {ci_low:.3f} - {ci_high:.3f}); "
        f"paired {paired_fast.median:.3f} (95% interval {paired_low:.3f} - {paired_high:.3f})"
    )
    if ratio_fast_quiet is not None:
        print(f"fast ratio over quiet runs only (others < {lib.QUIET_LOAD:.0%} of the CPUs): {ratio_fast_quiet:.3f}")
    print(
        "load from other processes (median fraction of CPUs): "
        + ", ".join(f"{case} {load[case].median:.2f}" for case in folders)
    )
    print(
        f"paired fast ratio per repetition: median {paired_fast.median:.3f} "
        f"(min {paired_fast.minimum:.3f}, max {paired_fast.maximum:.3f})"
    )
    for case, prof in profiles.items():
        lib.print_profile(
            f"cProfile, {case}: top 15 by cumulative time below the import machinery and DagBag plumbing",
            [lib.ProfileRow(**r) for r in prof["top_cumulative_below_import"]],
        )
    if profiles:
        print("\nbreakdown (cumulative s under cProfile; 0 = not called):")
        lib.print_table(
            ["part", *profiles],
            [[part, *(prof["breakdown_cumtime_s"][part] for prof in profiles.values())] for part in BREAKDOWN],
        )
    for problem in sorted(set(problems)):
        print(f"PROBLEM: {problem}")

    path = lib.write_results(
        NAME,
        {
            "n": args.n,
            "dag_id": dag_id,
            "task_id": TASK_ID,
            "repetitions": args.repetitions,
            "machine": lib.machine_info(),
            "sources": lib.source_note(sources),
            "target": {"metric": "collect_s median ratio fast N/N=1", "max": TARGET_RATIO},
            "passed": passed,
            "ratio_fast": ratio_fast,
            "ratio_fast_paired_median": paired_fast.median,
            "ratio_fast_quiet_runs": ratio_fast_quiet,
            "ratio_fast_ci95": [ci_low, ci_high],
            "ratio_fast_paired_ci95": [paired_low, paired_high],
            "quiet_load_threshold": lib.QUIET_LOAD,
            "ratio_fallback": ratio_fallback,
            "ratio_fallback_vs_fast_1": ratio_fallback_vs_fast1,
            "problems": sorted(set(problems)),
            "cases": {
                c: {
                    "collect_s": collect[c].as_dict(),
                    "collect_cpu_s": cpu[c].as_dict(),
                    "wall_s": wall[c].as_dict(),
                    "others_load": load[c].as_dict(),
                }
                for c in folders
            },
            "samples": samples,
            "profiles": profiles,
        },
    )
    print(f"\nresults: {lib.display(path)}")
    return 0 if passed or (args.smoke and not problems) else 1


if __name__ == "__main__":
    sys.exit(main())
