"""Model reports: one self-contained HTML page per model version, its figures as PNGs, and a short
Markdown summary for approval requests. See docs/report.md.

Importing this package is cheap: scikit-learn, pandas and matplotlib are imported when a report is built.
"""

from __future__ import annotations

from airflow_bridge.report.build import build_report
from airflow_bridge.report.inputs import ModelReport, ReportError, ReportInputs
from airflow_bridge.report.storage import REPORT_KEY, StoredReport, store_report, stored_report
from airflow_bridge.report.summary import summary_markdown

__all__ = [
    "REPORT_KEY",
    "ModelReport",
    "ReportError",
    "ReportInputs",
    "StoredReport",
    "build_report",
    "store_report",
    "stored_report",
    "summary_markdown",
]
