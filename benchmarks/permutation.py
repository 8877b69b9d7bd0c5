"""Permutation importance of the model report: stacked predictions against scikit-learn's loop.

Both sides score the same fitted pipeline on the same held-out rows with the same number of repeats;
the baseline is ``sklearn.inspection.permutation_importance`` (one ``predict`` per shuffled copy, what
the report used before), the candidate ``airflow_bridge.report.evaluation.permutation`` (the shuffled
copies stacked and predicted in a few calls). Alternating repetitions in one process; medians; the
ratio is candidate / baseline (lower is faster). Also checks that both give the same importances (the
row orders are drawn as scikit-learn draws them).

    .venv/bin/python benchmarks/permutation.py [--repetitions 7] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "breast_cancer": ("dag_specs/data/breast_cancer.csv", "malignant", "sklearn.ensemble.RandomForestClassifier"),
    "diabetes": ("dag_specs/data/diabetes.csv", "progression", "sklearn.linear_model.Ridge"),
    "penguins_raw": ("dag_specs/data/penguins_raw.csv", "Species", "sklearn.ensemble.HistGradientBoostingClassifier"),
}


def _prepare(path: str, target: str, estimator: str) -> tuple[Any, Any, Any, str]:
    import pandas as pd

    from airflow_bridge.ml import data as data_io
    from airflow_bridge.ml.catalogue import DEFAULT_ESTIMATORS
    from airflow_bridge.ml.columns import feature_columns, infer_roles
    from airflow_bridge.ml.estimator import build_estimator, build_model_pipeline

    frame = pd.read_csv(REPO / path)
    frame = frame[frame[target].notna()]
    roles = infer_roles(frame, target, None, {})
    features = feature_columns(roles)
    kind = DEFAULT_ESTIMATORS[estimator]
    train, test = data_io.split(
        frame, target, features, test_size=0.25, seed=42, stratify=kind == "classification", estimator=estimator
    )
    model = build_model_pipeline(build_estimator(estimator, {}, seed=42), roles)
    model.fit(train[features], train[target])
    return model, test[features], test[target], kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="tiny run (one table, 1 repetition)")
    args = parser.parse_args()
    cases = {"diabetes": CASES["diabetes"]} if args.smoke else CASES
    if args.smoke:
        args.repetitions = 1
    from sklearn.inspection import permutation_importance

    from airflow_bridge.report.evaluation import permutation

    print("| case | held-out rows x columns | repeats | scikit-learn loop | stacked | ratio | same importances |")
    print("|---|---|---|---|---|---|---|")
    for name, (path, target, estimator) in cases.items():
        model, features, labels, kind = _prepare(path, target, estimator)
        ours = permutation(model, features, labels, kind)
        scoring = "accuracy" if kind == "classification" else "r2"
        base_times, our_times = [], []
        theirs: Any = None
        for _ in range(args.repetitions):
            start = time.perf_counter()
            theirs = permutation_importance(
                model, features, labels, scoring=scoring, n_repeats=ours.repeats, random_state=0, n_jobs=1
            )
            base_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            permutation(model, features, labels, kind)
            our_times.append(time.perf_counter() - start)
        columns = [str(c) for c in features.columns]
        by_name = {f["feature"]: f["importance"] for f in ours.features}
        same = all(abs(by_name[c] - theirs.importances_mean[i]) < 1e-9 for i, c in enumerate(columns))
        base, cand = statistics.median(base_times), statistics.median(our_times)
        print(
            f"| {name} | {len(features)} x {len(columns)} | {ours.repeats} | {base:.3f} s | {cand:.3f} s | "
            f"**{cand / base:.2f}** | {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
