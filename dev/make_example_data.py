"""Write the example datasets (shipped with scikit-learn) as CSV files under dag_specs/data/.

Run once after changing it: ``python dev/make_example_data.py``. The CSVs are committed so that the
examples run offline and read real files, exactly like a user's data.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_breast_cancer, load_diabetes

OUT = Path(__file__).resolve().parent.parent / "dag_specs" / "data"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cancer = load_breast_cancer(as_frame=True).frame
    cancer.columns = [c.replace(" ", "_") for c in cancer.columns]
    cancer = cancer.rename(columns={"target": "malignant"})
    cancer["malignant"] = 1 - cancer["malignant"]  # sklearn codes benign as 1
    cancer.round(6).to_csv(OUT / "breast_cancer.csv", index=False)
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    diabetes = diabetes.rename(columns={"target": "progression"})
    diabetes.to_csv(OUT / "diabetes.csv", index=False)
    print(f"wrote {len(cancer)} + {len(diabetes)} rows to {OUT}")


if __name__ == "__main__":
    main()
