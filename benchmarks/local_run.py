"""``airflow-bridge run SPEC`` against a bare ``dag.test()`` of the same work, per example spec.

Candidate: ``airflow-bridge run SPEC --home H --format json`` (``--approve-as dana`` for the breast
cancer example), in a home prepared once (metadata DB migrated, one run done): a user's second run.
Its JSON ``timings`` give the breakdown (start-up, metadata DB, DAG build, Airflow run set-up, each
task, tear-down). Baseline: ``_local_run_baseline.py`` as a fresh process, five plain
``PythonOperator``s doing the same work (read the CSV, fit the product's pipeline on the same columns,
score on the same held-out split, write the model file and a result file) under ``dag.test()`` on
its own already-migrated SQLite DB. Cases alternate; medians; the ratio is the median of the paired
per-repetition ratios. Also times commands that run no task, ``validate SPEC`` (with and without
reading the data) and ``models list``, against a bare ``python -c pass``.

Target: run / baseline <= 1.2 for every example; validate and models list well under a second (< 1 s).

    .venv/bin/python benchmarks/local_run.py [--specs breast_cancer_classifier ...] [--repetitions 5] [--smoke]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _benchlib as lib

NAME = "local_run"
TARGET_RATIO = 1.2
TARGET_CLI_SECONDS = 1.0
CLI = Path(sys.executable).with_name("airflow-bridge")
BASELINE = lib.BENCH_DIR / "_local_run_baseline.py"
SPECS = {
    "breast_cancer_classifier": ["--approve-as", "dana"],
    "diabetes_progression": [],
    "penguin_species": [],
}
PARTS = ("start_up", "metadata_database", "dag_build", "airflow_setup", "tasks", "tear_down")


def _env() -> dict[str, str]:
    """The caller's environment without Airflow settings (each side sets its own)."""
    env = lib.airflow_env(Path("/nonexistent"), Path("/nonexistent"))
    for key in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__LOGGING__LOGGING_LEVEL"):
        env.pop(key, None)
    return env


def _baseline_env(home: Path, spec: Path) -> dict[str, str]:
    return {
        **_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "BASELINE_SPEC": str(spec),
        "BASELINE_WORK": str(home / "work"),
    }


def _prepare_baseline(home: Path, spec: Path) -> list[str]:
    """Migrate the baseline's metadata DB and put its DAG file in its dags folder; the command to run."""
    (home / "dags").mkdir(parents=True)
    dag_file = home / "dags" / "baseline_dag.py"
    shutil.copyfile(BASELINE, dag_file)
    code = "from airflow.utils import db; db.upgradedb()"
    done = subprocess.run(
        [lib.PYTHON, "-c", code], env=_baseline_env(home, spec), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrating the baseline DB failed:\n{done.stderr[-3000:]}")
    return [lib.PYTHON, str(dag_file)]


def _run_case(
    command: list[str],
    env: dict[str, str],
    problems: list[str],
    label: str,
    timings: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """One timed run; ``run``'s JSON timings (if any) are appended to ``timings``."""
    wall, cpu, others, proc = lib._timed_run(command, env, 900)
    sample = {"wall_s": wall, "cpu_s": cpu, "others_load": others}
    if proc.returncode != 0:
        problems.append(f"{label} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    if "--format" in command:
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            problems.append(f"{label}: no JSON summary: {proc.stdout[-400:]} {proc.stderr[-800:]}")
            return sample
        if summary.get("state") != "success":
            problems.append(f"{label}: state {summary.get('state')}: {summary.get('errors')}")
        reported = summary.get("timings") or {}
        sample["reported_total_s"] = reported.get("total", 0.0)
        if timings is not None:
            timings.append(reported)
    return sample


def _parts(reported: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each part of ``run``'s own breakdown (tasks: their sum, and each task)."""
    found: dict[str, list[float]] = {}
    for timings in reported:
        for part in PARTS:
            value = sum(timings.get("tasks", {}).values()) if part == "tasks" else timings.get(part, 0.0)
            found.setdefault(part, []).append(value)
        for task, value in (timings.get("tasks") or {}).items():
            found.setdefault(f"  task {task}", []).append(value)
        found.setdefault("total (reported)", []).append(timings.get("total", 0.0))
    return {part: statistics.median(values) for part, values in found.items()}


def _cli_cases(home: Path, spec: Path, env: dict[str, str], problems: list[str]) -> dict[str, Any]:
    """Commands that run no task: validate one spec, models list, and a bare interpreter for scale."""
    cases = {
        "python -c pass": [lib.PYTHON, "-c", "pass"],
        "airflow-bridge validate SPEC": [str(CLI), "validate", str(spec)],
        "airflow-bridge validate --no-data SPEC": [str(CLI), "validate", "--no-data", str(spec)],
        "airflow-bridge models list": [str(CLI), "models", "list", "--home", str(home)],
    }
    samples = lib.interleaved(
        {name: functools.partial(_run_case, command, env, problems, name) for name, command in cases.items()},
        1 if lib.SMOKE else 9,
        label="cli ",
    )
    return {name: lib.metric(values, "wall_s").as_dict() for name, values in samples.items()}


def _previous(measured: list[str], *, keep_cli: bool) -> dict[str, Any]:
    """The last results of the examples not measured now (and of the commands, unless measured now).

    Lets one example be measured again in a quiet moment without losing the others; each example
    carries its own ``measured_at``.
    """
    path = lib.RESULTS_DIR / f"{NAME}.json"
    try:
        last = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"examples": {}, "cli": {}}
    examples = {name: r for name, r in last.get("examples", {}).items() if name not in measured}
    for name, r in examples.items():
        r.setdefault("measured_at", last.get("timestamp"))
        print(f"{name}: kept from {r['measured_at']} (not measured now)")
    return {"examples": examples, "cli": last.get("cli_wall_s", {}) if keep_cli else {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", nargs="+", choices=sorted(SPECS), default=sorted(SPECS), help="examples to run")
    parser.add_argument("--repetitions", type=int, default=5, help="timed runs per case (>= 3, default 5)")
    parser.add_argument("--no-cli", action="store_true", help="skip the validate / models list timings")
    parser.add_argument("--smoke", action="store_true", help="tiny run (one example, 1 repetition) into a temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        lib.smoke_mode()
        args.specs, args.repetitions = ["diabetes_progression"], 1
    elif args.repetitions < 3:
        parser.error("--repetitions must be at least 3")
    sources = lib.source_state()
    env = _env()
    root = lib.throwaway_home(NAME)
    problems: list[str] = []
    results: dict[str, Any] = {}
    cli: dict[str, Any] = {}
    try:
        for name in args.specs:
            spec = lib.EXAMPLES_DIR / f"{name}.yaml"
            home, base_home = root / name / "run", root / name / "baseline"
            run_command = [str(CLI), "run", str(spec), "--home", str(home), *SPECS[name], "--format", "json"]
            base_command = _prepare_baseline(base_home, spec)
            base_env = _baseline_env(base_home, spec)
            print(f"\n{name}: first run of each side (migrates the run's metadata DB), then alternating", flush=True)
            reported: list[dict[str, Any]] = []
            samples = lib.interleaved(
                {
                    "run": functools.partial(_run_case, run_command, env, problems, f"run {name}", reported),
                    "baseline": functools.partial(_run_case, base_command, base_env, problems, f"baseline {name}"),
                },
                args.repetitions,
                label=f"{name} ",
            )
            reported = reported[0 if lib.SMOKE else 1 :]  # the first run (warm-up) migrated the metadata DB
            unaccounted = [s["wall_s"] - s["reported_total_s"] for s in samples["run"]]
            ratio = lib.paired_ratio(samples["run"], samples["baseline"], "wall_s")
            results[name] = {
                "run_wall_s": lib.metric(samples["run"], "wall_s").as_dict(),
                "baseline_wall_s": lib.metric(samples["baseline"], "wall_s").as_dict(),
                "run_cpu_s": lib.metric(samples["run"], "cpu_s").as_dict(),
                "baseline_cpu_s": lib.metric(samples["baseline"], "cpu_s").as_dict(),
                "others_load": lib.metric(samples["run"] + samples["baseline"], "others_load").as_dict(),
                "ratio_wall": ratio.median,
                "ratio_wall_paired": ratio.as_dict(),
                "ratio_wall_ci95": lib.median_ci(ratio.values),
                "ratio_cpu": lib.paired_ratio(samples["run"], samples["baseline"], "cpu_s").median,
                "breakdown_s": _parts(reported),
                "unaccounted_s": statistics.median(unaccounted),
                "timings": reported,
                "passed": ratio.median <= TARGET_RATIO,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "samples": samples,
            }
            if not args.no_cli and not cli:
                cli = _cli_cases(home, spec, env, problems)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    kept = _previous(args.specs, keep_cli=not cli)
    results = {name: kept["examples"].get(name) or results[name] for name in sorted({*results, *kept["examples"]})}
    cli = cli or kept["cli"]

    print(f"\nairflow-bridge run vs bare dag.test() of the same work, {args.repetitions} alternating repetitions")
    lib.print_table(
        ["example", "run s", "baseline s", "ratio", "95% CI", "CPU ratio", "others' load", "target", "result"],
        [
            [name, r["run_wall_s"]["median"], r["baseline_wall_s"]["median"], r["ratio_wall"],
             "{:.2f}-{:.2f}".format(*r["ratio_wall_ci95"]), r["ratio_cpu"], r["others_load"]["median"],
             f"<= {TARGET_RATIO}", lib.verdict(r["passed"])]
            for name, r in results.items()
        ],
    )  # fmt: skip
    print("\nwhere run's wall time goes (medians of its JSON timings, s; wall - reported total = unaccounted)")
    names = list(results)
    parts = list(dict.fromkeys(p for r in results.values() for p in r["breakdown_s"]))
    lib.print_table(
        ["part", *names],
        [[part, *(results[n]["breakdown_s"].get(part, 0.0) for n in names)] for part in parts]
        + [["unaccounted", *(results[n]["unaccounted_s"] for n in names)]],
    )
    cli_passed = True
    if cli:
        print("\ncommands that run no task (wall s, medians of 9)")
        rows = []
        for case, stats in cli.items():
            ok = case.startswith("python") or stats["median"] < TARGET_CLI_SECONDS
            cli_passed &= ok
            target = "-" if case.startswith("python") else f"< {TARGET_CLI_SECONDS}"
            rows.append([case, stats["median"], stats["min"], stats["max"], target, lib.verdict(ok)])
        lib.print_table(["command", "median", "min", "max", "target", "result"], rows)
    for problem in sorted(set(problems)):
        print(f"PROBLEM: {problem}")
    passed = all(r["passed"] for r in results.values()) and cli_passed and not problems
    path = lib.write_results(
        NAME,
        {
            "repetitions": args.repetitions,
            "machine": lib.machine_info(),
            "sources": lib.source_note(sources),
            "target": {"ratio_wall_max": TARGET_RATIO, "cli_wall_max_exclusive": TARGET_CLI_SECONDS},
            "passed": passed,
            "examples": results,
            "cli_wall_s": cli,
            "problems": sorted(set(problems)),
        },
    )
    print(f"\nresults: {lib.display(path)}")
    return 0 if passed or (args.smoke and not problems) else 1


if __name__ == "__main__":
    sys.exit(main())
