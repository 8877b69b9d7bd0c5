"""Writing and reading a model artifact: ``dump_model`` (C pickler + zlib) against ``joblib.dump``.

The baseline is what ``dump_model`` did before: ``joblib.dump(model, compress=3)``. Both sides write the
same fitted pipelines of the three example tables, in one process that imported dill first (as an
Airflow task process does), alternating repetitions; medians; ratio = candidate / baseline (lower is
faster or smaller). Reading is ``joblib.load`` on each side's bytes (what ``load_model`` and KServe's
sklearn server do). The last column says whether the artifact refers to dill (it must not).

    .venv/bin/python benchmarks/artifact_dump.py [--repetitions 21] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import Any

import dill  # noqa: F401 - imported before joblib, as in an Airflow task process
import joblib
from permutation import CASES, _prepare

from airflow_bridge.artifacts import dump_model


def _baseline(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def _timed(action: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=21)
    parser.add_argument("--smoke", action="store_true", help="tiny run (one table, 1 repetition)")
    args = parser.parse_args()
    cases = {"diabetes": CASES["diabetes"]} if args.smoke else CASES
    if args.smoke:
        args.repetitions = 1
    print("| case | write joblib.dump | write dump_model | ratio | read ratio | size joblib / ours | refers to dill |")
    print("|---|---|---|---|---|---|---|")
    for name, (path, target, estimator) in cases.items():
        model = _prepare(path, target, estimator)[0]
        writes: dict[str, list[float]] = {"base": [], "ours": []}
        reads: dict[str, list[float]] = {"base": [], "ours": []}
        blobs: dict[str, bytes] = {}
        for _ in range(args.repetitions):
            for side, write in (("base", _baseline), ("ours", dump_model)):
                seconds, blobs[side] = _timed(write, model)
                writes[side].append(seconds)
                reads[side].append(_timed(joblib.load, io.BytesIO(blobs[side]))[0])
        base, ours = statistics.median(writes["base"]), statistics.median(writes["ours"])
        read = statistics.median(reads["ours"]) / statistics.median(reads["base"])
        dill_refs = {side: b"dill" in _pickle_text(blob) for side, blob in blobs.items()}
        print(
            f"| {name} | {base * 1000:.1f} ms | {ours * 1000:.1f} ms | **{ours / base:.2f}** | {read:.2f} | "
            f"{len(blobs['base'])} / {len(blobs['ours'])} B | joblib: {'yes' if dill_refs['base'] else 'no'}, "
            f"ours: {'yes' if dill_refs['ours'] else 'no'} |"
        )


def _pickle_text(blob: bytes) -> bytes:
    import zlib

    return zlib.decompressobj().decompress(blob)


if __name__ == "__main__":
    main()
