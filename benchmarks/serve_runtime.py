"""What each of the serving processes' two settings (``airflow_bridge/serving/runtime.py``) buys, alone and
together, against a process without them: one-row ``predict`` calls of the breast-cancer example's model.

Each setting is process-wide, so each configuration runs in a child process of its own; rounds alternate
the configurations (forward, then backward) and every child times the same calls: the request's table
built as ``serve`` builds it (a frame from the row's columns) and the artifact's ``predict``, with the
garbage collector counting what it does. Configurations:

- **default**: a Python process as it starts (pandas' PyArrow string storage, the collector walking
  the whole heap);
- **frozen heap**: :func:`~airflow_bridge.serving.runtime.settle` after loading;
- **python strings**: :func:`~airflow_bridge.serving.runtime.use_python_strings`;
- **serve** (both): what ``airflow-bridge serve``'s processes run with.

    .venv/bin/python benchmarks/serve_runtime.py [--rounds 4] [--calls 300] [--smoke]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _benchlib
from _benchlib import REPO_ROOT, display, machine_info, print_table, source_note, source_state, write_results

CONFIGS = ("default", "frozen heap", "python strings", "serve")


def _child(artifact: str, config: str, calls: int, row: dict[str, Any]) -> dict[str, Any]:
    """Time ``calls`` one-row predictions in this process, set up as ``config`` says."""
    import pandas as pd

    from airflow_bridge.artifacts import load_model
    from airflow_bridge.serving.runtime import settle, use_python_strings

    if config in ("python strings", "serve"):
        use_python_strings()
    model = load_model(Path(artifact).read_bytes())
    if config in ("frozen heap", "serve"):
        settle()
    columns = {name: [value] for name, value in row.items()}
    for _ in range(20):
        model.predict(pd.DataFrame(columns))
    collections = [0, 0, 0]
    paused: list[float] = []
    started = [0.0]

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections[info["generation"]] += 1
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            paused.append(time.perf_counter() - started[0])

    gc.callbacks.append(count)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(pd.DataFrame(columns))
        seconds.append(time.perf_counter() - start)
    gc.callbacks.remove(count)
    ordered = sorted(seconds)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(seconds) * 1000,
        "full_collections": collections[2],
        "full_collection_ms": statistics.fmean(paused) * 1000 if paused else 0.0,
        "tracked_objects": len(gc.get_objects()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating the configurations' order")
    parser.add_argument("--calls", type=int, default=300, help="timed predictions per child")
    parser.add_argument("--smoke", action="store_true", help="tiny run into a temp folder")
    parser.add_argument("--child", nargs=4, metavar=("ARTIFACT", "CONFIG", "CALLS", "ROW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        artifact, config, calls, row = args.child
        print(json.dumps(_child(artifact, config, int(calls), json.loads(row))))
        return
    if args.smoke:
        _benchlib.smoke_mode()
        args.rounds, args.calls = 1, 5
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from serve_examples import register_example  # the tests' example registration

    started = source_state()
    folder = Path(tempfile.mkdtemp(prefix="airflow-bridge-bench-runtime-"))
    samples: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    try:
        logging.getLogger("airflow_bridge").setLevel(logging.WARNING)  # the training action's column report
        example = register_example("breast_cancer_classifier", folder)
        row = json.dumps(json.loads(example.rows.head(1).to_json(orient="records"))[0])
        for round_ in range(args.rounds):
            for config in CONFIGS if round_ % 2 == 0 else CONFIGS[::-1]:
                command = [sys.executable, __file__, "--child", example.artifact_path, config, str(args.calls), row]
                done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                samples[config].append(figures)
                print(
                    f"  round {round_ + 1}/{args.rounds} {config:15} p50 {figures['p50_ms']:6.2f} ms  "
                    f"p99 {figures['p99_ms']:6.1f} ms  mean {figures['mean_ms']:6.2f} ms  "
                    f"{figures['full_collections']} full collections of {figures['full_collection_ms']:.0f} ms",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def median(config: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[config])

    rows = []
    for config in CONFIGS:
        ratios = [s["p50_ms"] / d["p50_ms"] for s, d in zip(samples[config], samples["default"], strict=True)]
        rows.append(
            [
                config,
                median(config, "p50_ms"),
                statistics.median(ratios),
                median(config, "p99_ms"),
                median(config, "mean_ms"),
                median(config, "full_collections"),
                median(config, "full_collection_ms"),
                median(config, "tracked_objects"),
            ]
        )
    print()
    print_table(
        [
            *("configuration", "p50 ms", "p50 / default (paired)", "p99 ms", "mean ms"),
            *("full collections", "ms each", "tracked objects"),
        ],
        rows,
    )
    out = write_results(
        "serve_runtime",
        {
            "rounds": args.rounds,
            "calls_per_child": args.calls,
            "samples": samples,
            "machine": machine_info(),
            "source": source_note(started),
        },
    )
    print(f"\nwrote {display(out)}")


if __name__ == "__main__":
    main()
