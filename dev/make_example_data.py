"""Write the example datasets as CSV files under dag_specs/data/ and tests/fixtures/data/.

Run once after changing it: ``python dev/make_example_data.py``. The CSVs are committed so that the
examples run offline and read real files, exactly like a user's data. The messy tables come from
packages that ship public-domain data (``pip install palmerpenguins==0.1.6 vega_datasets==0.9.0``);
they are copied byte for byte, mistakes and all (see dag_specs/data/README.md).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from sklearn.datasets import load_breast_cancer, load_diabetes

OUT = Path(__file__).resolve().parent.parent / "dag_specs" / "data"
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "data"


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
    FIXTURES.mkdir(parents=True, exist_ok=True)
    penguins = resources.files("palmerpenguins") / "data"
    shutil.copyfile(str(penguins / "penguins-raw.csv"), OUT / "penguins_raw.csv")
    shutil.copyfile(str(penguins / "penguins.csv"), FIXTURES / "penguins.csv")
    weather = resources.files("vega_datasets") / "_data" / "seattle-weather.csv"
    shutil.copyfile(str(weather), FIXTURES / "seattle_weather.csv")
    print(f"copied the penguin and Seattle weather tables to {OUT} and {FIXTURES}")


if __name__ == "__main__":
    main()
