"""Regenerate ``docs/img/report-warnings.png``: a leaky table's model report with its warnings box at the top.

``.venv/bin/python dev/report_screenshot.py`` (needs Debian's Chromium: ``apt-get install -y chromium``).

The table is the breast-cancer example sorted by its target, with a row-number column ``Position #``
that the spec keeps as ``numeric`` (by default it would be ignored as a row number). The script does
what a user would: ``airflow-bridge run`` in a scratch home (SQLite, local files; the version goes to
``staging``, which nobody has to approve), then ``models report``, and photographs the page with
headless Chromium. Nothing outside a temporary folder and ``docs/img/`` is touched.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("airflow-bridge")
OUT = REPO / "docs" / "img" / "report-warnings.png"
SPEC = """\
apiVersion: airflow-bridge/v1
kind: Experiment
name: leaky_breast_cancer
description: The breast-cancer table as a lab export sorted by diagnosis, with its row numbers.
owner: alice
team: oncology
data:
  training:
    uri: data/leaky.csv
    target: malignant
  columns:
    "Position #": numeric
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 50}
validation:
  thresholds:
    roc_auc: {min: 0.9}
deployment:
  alias: staging
"""


def _leaky_table(source: Path, out: Path) -> None:
    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.sort(key=lambda row: row["malignant"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["Position #", *rows[0]])
        writer.writeheader()
        for number, row in enumerate(rows, start=1):
            writer.writerow({"Position #": number, **row})


def _run(*args: str | Path) -> None:
    done = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"airflow-bridge {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default: {OUT.relative_to(REPO)})")
    parser.add_argument("--height", type=int, default=1100, help="Height of the shot in pixels.")
    options = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="ab-report-shot-") as scratch:
        folder = Path(scratch)
        shutil.copy(REPO / "dag_specs" / "_policy.yaml", folder / "_policy.yaml")
        _leaky_table(REPO / "dag_specs" / "data" / "breast_cancer.csv", folder / "data" / "leaky.csv")
        spec = folder / "leaky_breast_cancer.yaml"
        spec.write_text(SPEC)
        home = folder / "home"
        print("airflow-bridge run (about 15 s)...", flush=True)
        _run("run", spec, "--home", home)
        page = folder / "report" / "report.html"
        _run("models", "report", "leaky_breast_cancer", "--home", home, "--out", page)
        options.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size=1200,{options.height}",
                f"--screenshot={options.out}",
                page.as_uri(),
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
