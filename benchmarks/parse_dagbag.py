"""DagBag load of N specs through the factory's loader vs. the same N DAGs written by hand.

Factory side: one loader ``.py`` + N YAML specs (variations of the example specs, data copied into
the folder). Baseline: N Python files, each building the same DAG (same operators, arguments and
DAG arguments; a fingerprint of every DAG is compared between the two bags). Each DagBag load runs
in a fresh subprocess with a throwaway AIRFLOW_HOME; the two sides alternate (AB, BA, ...).

Measured: ``DagBag(dag_folder, safe_mode=True)`` inside the child (the collection only), and the
child's whole wall time. Target: factory / hand-written <= 1.1 (median collection time).

    .venv/bin/python benchmarks/parse_dagbag.py [--n 1000] [--repetitions 9] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

import _benchlib as lib

NAME = "parse_dagbag"
TARGET_RATIO = 1.1
TASKS_PER_DAG = 5  # train, validate, register, approve (the default policy gates production), deploy

FACTORY_BREAKDOWN = {
    "loader module (load_dag_specs)": ("airflow_bridge/factory/dags.py", "load_dag_specs"),
    "  load_specs (YAML + pydantic + checks)": ("airflow_bridge/spec/loader.py", "load_specs"),
    "    load_located (YAML compose + positions)": ("airflow_bridge/spec/yamlsafe.py", "load_located"),
    "    check_experiment": ("airflow_bridge/spec/semantics.py", "check_experiment"),
    "    _normalise (model_copy)": ("airflow_bridge/spec/loader.py", "_normalise"),
    "  build_dag (all DAGs)": ("airflow_bridge/factory/build.py", "build_dag"),
    "    dag_doc": ("airflow_bridge/factory/build.py", "dag_doc"),
    "DagBag.process_file (import + bag)": ("airflow/dag_processing/dagbag.py", "process_file"),
    "DagBag.bag_dag": ("airflow/dag_processing/dagbag.py", "bag_dag"),
    "DAG.validate": ("airflow/sdk/definitions/dag.py", "validate"),
}


def _check(label: str, data: dict[str, Any], n: int) -> list[str]:
    problems = []
    if data["n_dags"] != n:
        problems.append(f"{label}: {data['n_dags']} DAGs, expected {n}")
    if data["n_tasks"] != TASKS_PER_DAG * n:
        problems.append(f"{label}: {data['n_tasks']} tasks, expected {TASKS_PER_DAG * n}")
    if data["import_errors"]:
        first = next(iter(data["import_errors"].items()))
        problems.append(f"{label}: {len(data['import_errors'])} import error(s), first: {first}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of specs / DAGs (default 1000)")
    parser.add_argument("--repetitions", type=int, default=9, help="timed runs per side (>= 3, default 9)")
    parser.add_argument("--profile", action="store_true", help="also profile one run per side with cProfile")
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=4, the check runs timed) into a temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        lib.smoke_mode()
        args.n, args.repetitions = 4, 1
    elif args.repetitions < 3:
        parser.error("--repetitions must be at least 3")
    sources = lib.source_state()

    root = lib.GENERATED_DIR / NAME
    specs, hand = root / "specs", root / "hand_written"
    print(f"generating {args.n} specs in {specs} and {args.n} hand-written DAG files in {hand} ...", flush=True)
    lib.write_spec_folder(specs, args.n)
    lib.write_hand_written_folder(specs, hand)
    home = lib.throwaway_home(NAME)
    envs = {"factory": lib.airflow_env(home, specs), "hand_written": lib.airflow_env(home, hand)}
    folders = {"factory": specs, "hand_written": hand}
    problems: list[str] = []

    try:
        # Warm-up + correctness: both bags hold N DAGs, no import errors, identical DAGs.
        print("warm-up and equivalence check (one run per side, not timed) ...", flush=True)
        checks = {
            side: lib.run_child(["dagbag", str(folders[side]), "--safe-mode", "--fingerprint"], envs[side])
            for side in folders
        }
        for side, run in checks.items():
            problems += _check(side, run.data, args.n)
        f_prints, h_prints = checks["factory"].data["fingerprints"], checks["hand_written"].data["fingerprints"]
        mismatched = sorted(k for k in f_prints.keys() | h_prints.keys() if f_prints.get(k) != h_prints.get(k))
        if mismatched:
            problems.append(f"{len(mismatched)} DAG(s) differ between factory and hand-written, e.g. {mismatched[:3]}")
            print("factory sample:", checks["factory"].data["canonical_sample"], file=sys.stderr)
            print("hand-written sample:", checks["hand_written"].data["canonical_sample"], file=sys.stderr)
        print(f"  equivalent DAGs: {len(f_prints) - len(mismatched)}/{len(f_prints)}", flush=True)

        def case(side: str) -> dict[str, float]:
            run = lib.run_child(["dagbag", str(folders[side]), "--safe-mode"], envs[side])
            problems.extend(_check(side, run.data, args.n))
            return sample(run)

        def sample(run: lib.ChildRun) -> dict[str, float]:
            return {
                "collect_s": run.data["collect_s"],
                "collect_cpu_s": run.data["collect_cpu_s"],
                "collect_gc_s": run.data["collect_gc_s"],
                "wall_s": run.wall_s,
                "cpu_s": run.cpu_s,
                "others_load": run.others_load,
                "import_dagbag_s": run.data["import_dagbag_s"],
                "peak_rss_mb": run.data["peak_rss_mb"],
            }

        if args.smoke:  # the check runs stand in for the timed ones (a smoke run times nothing worth keeping)
            samples = {side: [sample(run)] for side, run in checks.items()}
        else:
            samples = lib.interleaved(
                {"factory": lambda: case("factory"), "hand_written": lambda: case("hand_written")},
                args.repetitions,
                warmup=0,
            )

        profiles: dict[str, Any] = {}
        if args.profile:
            lib.RESULTS_DIR.mkdir(exist_ok=True)
            for side, folder in folders.items():
                out = lib.RESULTS_DIR / f"{NAME}.{side}.prof"
                # No import timeout under the profiler: its overhead would push the single loader file
                # past dagbag_import_timeout (30 s) and lose every DAG (see docs/benchmarks.md).
                env = {**envs[side], "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0"}
                run = lib.run_child(["dagbag", str(folder), "--safe-mode", "--profile", str(out)], env)
                problems.extend(f"profiled run: {p}" for p in _check(side, run.data, args.n))
                profiles[side] = {
                    "file": lib.display(out),
                    "top_cumulative": [r.as_dict() for r in lib.profile_rows(out, sort="cumtime")],
                    "top_self": [r.as_dict() for r in lib.profile_rows(out, sort="tottime")],
                    "top_cumulative_below_import": [
                        r.as_dict() for r in lib.profile_rows(out, sort="cumtime", skip=lib.WRAPPER_FRAMES)
                    ],
                }
                if side == "factory":
                    profiles[side]["breakdown_cumtime_s"] = lib.profile_lookup(out, FACTORY_BREAKDOWN)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    collect = {side: lib.metric(s, "collect_s") for side, s in samples.items()}
    wall = {side: lib.metric(s, "wall_s") for side, s in samples.items()}
    rss = {side: lib.metric(s, "peak_rss_mb") for side, s in samples.items()}
    collect_cpu = {side: lib.metric(s, "collect_cpu_s") for side, s in samples.items()}
    cpu = {side: lib.metric(s, "cpu_s") for side, s in samples.items()}
    gc_time = {side: lib.metric(s, "collect_gc_s") for side, s in samples.items()}
    ratio_collect_cpu = collect_cpu["factory"].median / collect_cpu["hand_written"].median
    ratio_collect = collect["factory"].median / collect["hand_written"].median
    ratio_wall = wall["factory"].median / wall["hand_written"].median
    paired = lib.paired_ratio(samples["factory"], samples["hand_written"], "collect_s")
    passed = ratio_collect <= TARGET_RATIO and not problems
    gc_ratio = gc_time["factory"].median / gc_time["hand_written"].median if gc_time["hand_written"].median else 0.0
    load = {side: lib.metric(s, "others_load") for side, s in samples.items()}
    quiet = {side: lib.quiet_metric(s, "collect_s") for side, s in samples.items()}
    ratio_quiet = (
        quiet["factory"].median / quiet["hand_written"].median if quiet["factory"] and quiet["hand_written"] else None
    )

    print(f"\nDagBag load of N={args.n} DAGs ({args.repetitions} alternating repetitions, medians)")
    lib.print_table(
        ["measure", "hand-written", "factory", "ratio", "target", "result"],
        [
            ["DagBag collection (s)", collect["hand_written"].median, collect["factory"].median,
             ratio_collect, f"<= {TARGET_RATIO}", lib.verdict(passed)],
            ["DagBag collection CPU (s)", collect_cpu["hand_written"].median, collect_cpu["factory"].median,
             ratio_collect_cpu, "-", "-"],
            ["  of which cyclic GC (s)", gc_time["hand_written"].median, gc_time["factory"].median,
             gc_ratio, "-", "-"],
            ["subprocess wall (s)", wall["hand_written"].median, wall["factory"].median, ratio_wall, "-", "-"],
            ["subprocess CPU (s)", cpu["hand_written"].median, cpu["factory"].median,
             cpu["factory"].median / cpu["hand_written"].median, "-", "-"],
            ["per DAG (ms, collection)", 1000 * collect["hand_written"].median / args.n,
             1000 * collect["factory"].median / args.n, ratio_collect, "-", "-"],
            ["peak RSS (MB)", rss["hand_written"].median, rss["factory"].median,
             rss["factory"].median / rss["hand_written"].median, "-", "-"],
        ],
    )  # fmt: skip
    if ratio_quiet is not None and quiet["factory"] and quiet["hand_written"]:
        print(
            f"quiet runs only (other processes < {lib.QUIET_LOAD:.0%} of the CPUs): hand-written "
            f"{quiet['hand_written'].median:.3f} s (n={len(quiet['hand_written'].values)}), factory "
            f"{quiet['factory'].median:.3f} s (n={len(quiet['factory'].values)}), ratio {ratio_quiet:.3f}"
        )
    ratio_min = collect["factory"].minimum / collect["hand_written"].minimum
    ci_low, ci_high = lib.ratio_ci(samples["factory"], samples["hand_written"], "collect_s")
    paired_low, paired_high = lib.median_ci(paired.values)
    print(
        f"collection ratio {ratio_collect:.3f} (95% bootstrap interval {ci_low:.3f} - {ci_high:.3f}); "
        f"paired ratio {paired.median:.3f} (95% interval {paired_low:.3f} - {paired_high:.3f})"
    )
    print(f"ratio of the fastest runs (min / min): {ratio_min:.3f}")
    print(
        f"load from other processes during the runs (median fraction of CPUs): hand-written "
        f"{load['hand_written'].median:.2f}, factory {load['factory'].median:.2f}"
    )
    print(
        f"paired ratio per repetition: median {paired.median:.3f} (min {paired.minimum:.3f}, "
        f"max {paired.maximum:.3f}); spread of collection times: factory {collect['factory'].spread:.1%}, "
        f"hand-written {collect['hand_written'].spread:.1%}"
    )
    for side, prof in profiles.items():
        lib.print_profile(
            f"cProfile, {side}: top 15 by cumulative time",
            [lib.ProfileRow(**r) for r in prof["top_cumulative"]],
        )
        lib.print_profile(
            f"cProfile, {side}: top 15 by cumulative time below the import machinery and DagBag plumbing",
            [lib.ProfileRow(**r) for r in prof["top_cumulative_below_import"]],
        )
        lib.print_profile(f"cProfile, {side}: top 15 by own time", [lib.ProfileRow(**r) for r in prof["top_self"]])
        if "breakdown_cumtime_s" in prof:
            print("\nfactory breakdown (cumulative s under cProfile):")
            lib.print_table(["part", "s"], list(prof["breakdown_cumtime_s"].items()))
    for problem in problems:
        print(f"PROBLEM: {problem}")

    path = lib.write_results(
        NAME,
        {
            "n": args.n,
            "repetitions": args.repetitions,
            "machine": lib.machine_info(),
            "sources": lib.source_note(sources),
            "target": {"metric": "collect_s median ratio factory/hand_written", "max": TARGET_RATIO},
            "passed": passed,
            "ratio_collect": ratio_collect,
            "ratio_collect_paired_median": paired.median,
            "ratio_collect_cpu": ratio_collect_cpu,
            "ratio_collect_quiet_runs": ratio_quiet,
            "ratio_collect_min": ratio_min,
            "ratio_collect_ci95": [ci_low, ci_high],
            "ratio_collect_paired_ci95": [paired_low, paired_high],
            "quiet_load_threshold": lib.QUIET_LOAD,
            "ratio_wall": ratio_wall,
            "equivalent_dags": len(f_prints) - len(mismatched),
            "problems": problems,
            "factory": {
                "collect_s": collect["factory"].as_dict(),
                "collect_cpu_s": collect_cpu["factory"].as_dict(),
                "wall_s": wall["factory"].as_dict(),
                "cpu_s": cpu["factory"].as_dict(),
                "collect_gc_s": gc_time["factory"].as_dict(),
                "others_load": load["factory"].as_dict(),
                "collect_s_quiet_runs": quiet["factory"].as_dict() if quiet["factory"] else None,
                "peak_rss_mb": rss["factory"].as_dict(),
            },
            "hand_written": {
                "collect_s": collect["hand_written"].as_dict(),
                "collect_cpu_s": collect_cpu["hand_written"].as_dict(),
                "wall_s": wall["hand_written"].as_dict(),
                "cpu_s": cpu["hand_written"].as_dict(),
                "collect_gc_s": gc_time["hand_written"].as_dict(),
                "others_load": load["hand_written"].as_dict(),
                "collect_s_quiet_runs": quiet["hand_written"].as_dict() if quiet["hand_written"] else None,
                "peak_rss_mb": rss["hand_written"].as_dict(),
            },
            "samples": samples,
            "profiles": profiles,
        },
    )
    print(f"\nresults: {lib.display(path)}")
    return 0 if passed or (args.smoke and not problems) else 1


if __name__ == "__main__":
    sys.exit(main())
