"""``airflow-bridge validate <folder>`` on N specs: wall time, per-spec cost, and no Airflow import.

Runs the installed console script in a fresh subprocess, alternating five cases: N specs and one spec
(the start-up cost) with ``--no-data`` (static checks only), the same two reading the training data
(the default; the N specs share the two example CSV files), and N specs that each read their own
copy of the example CSV (the worst case for the per-file cache). Each must exit 0. Separate runs
check that validate, reading data, never imports Airflow or scikit-learn: once in-process (the typer
app with ``standalone_mode=False``, then ``sys.modules``) and once with ``python -X importtime``.

Target: median wall time for N=1000 specs with ``--no-data`` < 2 s. Reading data is measured, not gated.

    .venv/bin/python benchmarks/validate_cli.py [--n 1000] [--repetitions 7] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import _benchlib as lib

NAME = "validate_cli"
TARGET_SECONDS = 2.0
CLI = Path(sys.executable).with_name("airflow-bridge")

_PYDANTIC_VALIDATE = "<method 'validate_python' of 'pydantic_core._pydantic_core.SchemaValidator' objects>"
BREAKDOWN = {
    "validate command": ("airflow_bridge/cli/spec_cmds.py", "validate"),
    "  load_specs_governed": ("airflow_bridge/governance/loader.py", "load_specs_governed"),
    "    find_policy (per spec)": ("airflow_bridge/governance/loader.py", "find_policy"),
    "    spec_context (per spec)": ("airflow_bridge/governance/loader.py", "spec_context"),
    "    load_spec": ("airflow_bridge/spec/loader.py", "load_spec"),
    "      load_located (YAML + positions)": ("airflow_bridge/spec/yamlsafe.py", "load_located"),
    "        yaml.compose": ("yaml/__init__.py", "compose"),
    "      scan_for_secrets": ("airflow_bridge/spec/semantics.py", "scan_for_secrets"),
    "      pydantic validate_python": (
        "",
        "<method 'validate_python' of 'pydantic_core._pydantic_core.SchemaValidator' objects>",
    ),
    "        Experiment._schedule (croniter)": ("airflow_bridge/spec/models.py", "_schedule"),
    "      check_experiment": ("airflow_bridge/spec/semantics.py", "check_experiment"),
    "      _normalise": ("airflow_bridge/spec/loader.py", "_normalise"),
    "  rich console.print": ("rich/console.py", "print"),
}


def _importtime(folder: Path, env: dict[str, str]) -> tuple[list[tuple[str, float]], list[str]]:
    """Top imports by cumulative time, and any airflow modules, from ``python -X importtime``."""
    import subprocess

    proc = subprocess.run(
        [lib.PYTHON, "-X", "importtime", "-m", "airflow_bridge.cli.main", "validate", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    imports: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|", 2)
        imports.append((name.strip(), int(cumulative) / 1e6))
    banned = [n for n, _ in imports if n.split(".")[0] in ("airflow", "sklearn")]
    top = sorted((i for i in imports if "." not in i[0]), key=lambda i: i[1], reverse=True)[:10]
    return top, banned


def _own_data_copies(folder: Path) -> None:
    """Point every spec of ``folder`` at its own copy of its CSV (data/own/<spec>.csv)."""
    own = folder / "data" / "own"
    own.mkdir()
    for spec in sorted(folder.glob("*.yaml")):
        text = spec.read_text(encoding="utf-8")
        match = re.search(r"uri: data/(\w+\.csv)", text)
        if match is None:
            raise RuntimeError(f"no data/<file>.csv uri in {spec}")
        shutil.copyfile(folder / "data" / match.group(1), own / f"{spec.stem}.csv")
        spec.write_text(text.replace(match.group(0), f"uri: data/own/{spec.stem}.csv"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of specs (default 1000)")
    parser.add_argument("--repetitions", type=int, default=7, help="timed runs per case (>= 3, default 7)")
    parser.add_argument("--profile", action="store_true", help="also profile one N-spec run with cProfile")
    parser.add_argument("--smoke", action="store_true", help="tiny run (N=4, 1 repetition) into a temp folder")
    args = parser.parse_args(argv)
    if args.smoke:
        lib.smoke_mode()
        args.n, args.repetitions = 4, 1
    elif args.repetitions < 3:
        parser.error("--repetitions must be at least 3")
    sources = lib.source_state()
    if not CLI.exists():
        parser.error(f"console script not found: {CLI}")

    root = lib.GENERATED_DIR / NAME
    big, one, own = root / f"specs_{args.n}", root / "specs_1", root / f"specs_{args.n}_own_data"
    print(f"generating {args.n} specs in {big} and {own} ...", flush=True)
    lib.write_spec_folder(big, args.n)
    lib.write_spec_folder(one, 1)
    lib.write_spec_folder(own, args.n)
    _own_data_copies(own)
    home = lib.throwaway_home(NAME)
    env = lib.airflow_env(home, big)
    problems: list[str] = []

    def case(folder: Path, count: int, *flags: str) -> dict[str, float]:
        wall, cpu, others, output, code = lib.run_command([str(CLI), "validate", *flags, str(folder)], env)
        if code != 0:
            problems.append(f"validate {' '.join(flags)} {folder.name} exited {code}: {output[-800:]}")
        shown = output.count("✓")
        if shown != count:
            problems.append(f"validate {' '.join(flags)} {folder.name}: {shown} valid specs reported, expected {count}")
        return {"wall_s": wall, "cpu_s": cpu, "others_load": others}

    n_static, one_static = f"N={args.n} --no-data", "N=1 --no-data"
    n_data, one_data, n_own = f"N={args.n} data", "N=1 data", f"N={args.n} own data"
    profile: dict[str, Any] = {}
    try:
        samples = lib.interleaved(
            {
                n_static: lambda: case(big, args.n, "--no-data"),
                one_static: lambda: case(one, 1, "--no-data"),
                n_data: lambda: case(big, args.n),
                one_data: lambda: case(one, 1),
                n_own: lambda: case(own, args.n),
            },
            args.repetitions,
        )
        inproc = lib.run_child(["validate-inproc", str(big)], env).data  # reads data: the default
        if inproc["airflow_loaded"]:
            problems.append(f"validate imported Airflow: {inproc['airflow_modules']}")
        if inproc["exit_code"] not in (0, None):
            problems.append(f"in-process validate exit code {inproc['exit_code']}")
        top_imports, banned_imports = _importtime(big, env)
        if banned_imports:
            problems.append(f"-X importtime shows Airflow or scikit-learn imports: {banned_imports[:5]}")
        if args.profile:
            lib.RESULTS_DIR.mkdir(exist_ok=True)
            out = lib.RESULTS_DIR / f"{NAME}.prof"
            lib.run_child(["validate-inproc", str(big), "--profile", str(out)], env)
            profile = {
                "file": lib.display(out),
                "top_cumulative": [r.as_dict() for r in lib.profile_rows(out, sort="cumtime")],
                "top_self": [r.as_dict() for r in lib.profile_rows(out, sort="tottime")],
                "top_cumulative_below_cli": [
                    r.as_dict()
                    for r in lib.profile_rows(out, sort="cumtime", skip=(*lib.WRAPPER_FRAMES, "typer/", "_child.py"))
                ],
                "breakdown_cumtime_s": lib.profile_lookup(out, BREAKDOWN),
            }
    finally:
        shutil.rmtree(home, ignore_errors=True)

    wall = {name: lib.metric(runs, "wall_s") for name, runs in samples.items()}
    cpu = {name: lib.metric(runs, "cpu_s") for name, runs in samples.items()}
    wall_big, wall_one, cpu_big, cpu_one = wall[n_static], wall[one_static], cpu[n_static], cpu[one_static]
    load_big = lib.metric(samples[n_static], "others_load")
    quiet_big = lib.quiet_metric(samples[n_static], "wall_s")
    per_spec_ms = 1000 * wall_big.median / args.n
    marginal_ms = 1000 * (wall_big.median - wall_one.median) / max(args.n - 1, 1)
    data_cost = {
        "start_up_s": wall[one_data].median - wall_one.median,
        "shared_files_s": wall[n_data].median - wall_big.median,
        "own_file_each_s": wall[n_own].median - wall_big.median,
        "own_file_each_per_spec_ms": 1000 * (wall[n_own].median - wall[n_data].median) / args.n,
    }
    passed = wall_big.median < TARGET_SECONDS and not problems

    print(f"\nairflow-bridge validate, {args.repetitions} alternating repetitions, medians")
    lib.print_table(
        ["case", "wall s", "min", "max", "CPU s", "target", "result"],
        [
            [f"N={args.n} specs, --no-data", wall_big.median, wall_big.minimum, wall_big.maximum, cpu_big.median,
             f"< {TARGET_SECONDS}", lib.verdict(passed)],
            ["N=1 spec, --no-data (start-up)", wall_one.median, wall_one.minimum, wall_one.maximum, cpu_one.median,
             "-", "-"],
            [f"N={args.n} specs, reading data (2 shared CSVs)", wall[n_data].median, wall[n_data].minimum,
             wall[n_data].maximum, cpu[n_data].median, "(info)", "-"],
            ["N=1 spec, reading data", wall[one_data].median, wall[one_data].minimum, wall[one_data].maximum,
             cpu[one_data].median, "(info)", "-"],
            [f"N={args.n} specs, reading data (own CSV each)", wall[n_own].median, wall[n_own].minimum,
             wall[n_own].maximum, cpu[n_own].median, "(info)", "-"],
        ],
    )  # fmt: skip
    if quiet_big is not None:
        print(
            f"quiet runs only (others < {lib.QUIET_LOAD:.0%} of the CPUs): median {quiet_big.median:.3f} s "
            f"(n={len(quiet_big.values)}); load from other processes during N={args.n} runs: {load_big.median:.2f}"
        )
    print(f"per spec: {per_spec_ms:.2f} ms (wall / N), marginal {marginal_ms:.2f} ms ((wall N - wall 1) / (N - 1))")
    print(
        f"reading data costs: start-up +{data_cost['start_up_s']:.3f} s (pandas), N={args.n} sharing 2 files "
        f"+{data_cost['shared_files_s']:.3f} s, each spec its own file +{data_cost['own_file_each_s']:.3f} s "
        f"({data_cost['own_file_each_per_spec_ms']:.2f} ms per extra file)"
    )
    print(
        f"Airflow imported: in-process check {inproc['airflow_loaded']}; Airflow or scikit-learn in -X importtime: "
        f"{bool(banned_imports)} (in-process, reading data: CLI import {inproc['import_cli_s']:.3f} s, "
        f"validate {inproc['validate_s']:.3f} s, {inproc['n_modules']} modules loaded)"
    )
    print("\nslowest top-level imports (-X importtime, reading data, cumulative s):")
    lib.print_table(["module", "s"], top_imports)
    if profile:
        lib.print_profile(
            "cProfile (in-process, reading data): top 15 by cumulative time below the CLI framework",
            [lib.ProfileRow(**r) for r in profile["top_cumulative_below_cli"]],
        )
        lib.print_profile("cProfile: top 15 by own time", [lib.ProfileRow(**r) for r in profile["top_self"]])
        print("\nbreakdown (cumulative s under cProfile; 0 = not called):")
        lib.print_table(["part", "s"], list(profile["breakdown_cumtime_s"].items()))
    for problem in sorted(set(problems)):
        print(f"PROBLEM: {problem}")

    path = lib.write_results(
        NAME,
        {
            "n": args.n,
            "repetitions": args.repetitions,
            "machine": lib.machine_info(),
            "sources": lib.source_note(sources),
            "target": {
                "metric": "median wall s of 'airflow-bridge validate --no-data' on N specs",
                "max_exclusive": TARGET_SECONDS,
            },
            "passed": passed,
            "wall_s": wall_big.as_dict(),
            "wall_one_s": wall_one.as_dict(),
            "cpu_s": cpu_big.as_dict(),
            "cpu_one_s": cpu_one.as_dict(),
            "others_load": load_big.as_dict(),
            "wall_s_quiet_runs": quiet_big.as_dict() if quiet_big else None,
            "per_spec_ms": per_spec_ms,
            "marginal_per_spec_ms": marginal_ms,
            "reading_data": {
                "wall_s_shared_files": wall[n_data].as_dict(),
                "wall_one_s": wall[one_data].as_dict(),
                "wall_s_own_file_each": wall[n_own].as_dict(),
                "cpu_s_shared_files": cpu[n_data].as_dict(),
                "cpu_s_own_file_each": cpu[n_own].as_dict(),
                **data_cost,
            },
            "airflow_imported_in_process": inproc["airflow_loaded"],
            "airflow_or_sklearn_imported_importtime": bool(banned_imports),
            "in_process_validate_s": inproc["validate_s"],
            "top_imports_s": top_imports,
            "problems": sorted(set(problems)),
            "samples": samples,
            "profile": profile,
        },
    )
    print(f"\nresults: {lib.display(path)}")
    return 0 if passed or (args.smoke and not problems) else 1


if __name__ == "__main__":
    sys.exit(main())
