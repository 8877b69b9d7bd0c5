"""``airflow-bridge validate <folder>`` on N specs: wall time, per-spec cost, and no Airflow import.

Runs the installed console script in a fresh subprocess (N specs and, for the start-up cost, one
spec; alternating), checks it exits 0, and in separate runs checks that Airflow is never imported:
once in-process (the typer app with ``standalone_mode=False``, then ``sys.modules``) and once with
``python -X importtime``.

Target: median wall time for N=1000 specs < 2 s.

    .venv/bin/python benchmarks/validate_cli.py [--n 1000] [--repetitions 7] [--profile]
"""

from __future__ import annotations

import argparse
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
    airflow = [n for n, _ in imports if n == "airflow" or n.startswith("airflow.")]
    top = sorted((i for i in imports if "." not in i[0]), key=lambda i: i[1], reverse=True)[:10]
    return top, airflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of specs (default 1000)")
    parser.add_argument("--repetitions", type=int, default=7, help="timed runs per case (>= 3, default 7)")
    parser.add_argument("--profile", action="store_true", help="also profile one N-spec run with cProfile")
    args = parser.parse_args(argv)
    if args.repetitions < 3:
        parser.error("--repetitions must be at least 3")
    sources = lib.source_state()
    if not CLI.exists():
        parser.error(f"console script not found: {CLI}")

    root = lib.GENERATED_DIR / NAME
    big, one = root / f"specs_{args.n}", root / "specs_1"
    print(f"generating {args.n} specs in {big} ...", flush=True)
    lib.write_spec_folder(big, args.n)
    lib.write_spec_folder(one, 1)
    home = lib.throwaway_home(NAME)
    env = lib.airflow_env(home, big)
    problems: list[str] = []

    def case(folder: Path, count: int) -> dict[str, float]:
        wall, cpu, others, output, code = lib.run_command([str(CLI), "validate", str(folder)], env)
        if code != 0:
            problems.append(f"validate {folder.name} exited {code}: {output[-800:]}")
        shown = output.count("✓")
        if shown != count:
            problems.append(f"validate {folder.name}: {shown} valid specs reported, expected {count}")
        return {"wall_s": wall, "cpu_s": cpu, "others_load": others}

    profile: dict[str, Any] = {}
    try:
        samples = lib.interleaved(
            {f"N={args.n}": lambda: case(big, args.n), "N=1": lambda: case(one, 1)}, args.repetitions
        )
        inproc = lib.run_child(["validate-inproc", str(big)], env).data
        if inproc["airflow_loaded"]:
            problems.append(f"validate imported Airflow: {inproc['airflow_modules']}")
        if inproc["exit_code"] not in (0, None):
            problems.append(f"in-process validate exit code {inproc['exit_code']}")
        top_imports, airflow_imports = _importtime(big, env)
        if airflow_imports:
            problems.append(f"-X importtime shows Airflow imports: {airflow_imports[:5]}")
        if args.profile:
            lib.RESULTS_DIR.mkdir(exist_ok=True)
            out = lib.RESULTS_DIR / f"{NAME}.prof"
            lib.run_child(["validate-inproc", str(big), "--profile", str(out)], env)
            profile = {
                "file": str(out.relative_to(lib.REPO_ROOT)),
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

    wall_big, wall_one = lib.metric(samples[f"N={args.n}"], "wall_s"), lib.metric(samples["N=1"], "wall_s")
    cpu_big, cpu_one = lib.metric(samples[f"N={args.n}"], "cpu_s"), lib.metric(samples["N=1"], "cpu_s")
    load_big = lib.metric(samples[f"N={args.n}"], "others_load")
    quiet_big = lib.quiet_metric(samples[f"N={args.n}"], "wall_s")
    per_spec_ms = 1000 * wall_big.median / args.n
    marginal_ms = 1000 * (wall_big.median - wall_one.median) / max(args.n - 1, 1)
    passed = wall_big.median < TARGET_SECONDS and not problems

    print(f"\nairflow-bridge validate, {args.repetitions} alternating repetitions, medians")
    lib.print_table(
        ["case", "wall s", "min", "max", "CPU s", "target", "result"],
        [
            [f"N={args.n} specs", wall_big.median, wall_big.minimum, wall_big.maximum, cpu_big.median,
             f"< {TARGET_SECONDS}", lib.verdict(passed)],
            ["N=1 spec (start-up)", wall_one.median, wall_one.minimum, wall_one.maximum, cpu_one.median, "-", "-"],
        ],
    )  # fmt: skip
    if quiet_big is not None:
        print(
            f"quiet runs only (others < {lib.QUIET_LOAD:.0%} of the CPUs): median {quiet_big.median:.3f} s "
            f"(n={len(quiet_big.values)}); load from other processes during N={args.n} runs: {load_big.median:.2f}"
        )
    print(f"per spec: {per_spec_ms:.2f} ms (wall / N), marginal {marginal_ms:.2f} ms ((wall N - wall 1) / (N - 1))")
    print(
        f"Airflow imported: in-process check {inproc['airflow_loaded']}, -X importtime {bool(airflow_imports)} "
        f"(in-process: CLI import {inproc['import_cli_s']:.3f} s, validate {inproc['validate_s']:.3f} s, "
        f"{inproc['n_modules']} modules loaded)"
    )
    print("\nslowest top-level imports (-X importtime, cumulative s):")
    lib.print_table(["module", "s"], top_imports)
    if profile:
        lib.print_profile(
            "cProfile (in-process): top 15 by cumulative time below the CLI framework",
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
            "target": {"metric": "median wall s of 'airflow-bridge validate' on N specs", "max_exclusive": 2.0},
            "passed": passed,
            "wall_s": wall_big.as_dict(),
            "wall_one_s": wall_one.as_dict(),
            "cpu_s": cpu_big.as_dict(),
            "cpu_one_s": cpu_one.as_dict(),
            "others_load": load_big.as_dict(),
            "wall_s_quiet_runs": quiet_big.as_dict() if quiet_big else None,
            "per_spec_ms": per_spec_ms,
            "marginal_per_spec_ms": marginal_ms,
            "airflow_imported_in_process": inproc["airflow_loaded"],
            "airflow_imported_importtime": bool(airflow_imports),
            "in_process_validate_s": inproc["validate_s"],
            "top_imports_s": top_imports,
            "problems": sorted(set(problems)),
            "samples": samples,
            "profile": profile,
        },
    )
    print(f"\nresults: {path.relative_to(lib.REPO_ROOT)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
