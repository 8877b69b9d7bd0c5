"""Where a version's report lives: its artifacts and the record kept in the version's ``validation`` JSON.

The record is ``{"html": ref, "pngs": {name: ref}, "summary": key_figures}`` under the key ``"report"``,
each ref ``{uri, sha256, size, conn_id}``, so readers verify checksums like every other artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.report.inputs import ModelReport, ReportError

if TYPE_CHECKING:
    from airflow_bridge.artifacts import ArtifactStore

REPORT_KEY = "report"


@dataclass(frozen=True)
class StoredReport:
    """The report's artifacts: the HTML page and its figures by file name."""

    html: ArtifactRef
    pngs: dict[str, ArtifactRef]


def store_report(report: ModelReport, store: ArtifactStore, folder: str) -> dict[str, Any]:
    """Write the page and the PNGs (write-once, content-addressed) and return the record to keep under
    ``validation["report"]``."""
    html = store.put(report.html_bytes, folder, ".html")
    pngs = {name: asdict(store.put(data, folder, ".png")) for name, data in sorted(report.pngs.items())}
    return {"html": asdict(html), "pngs": pngs, "summary": report.key_figures}


def stored_report(validation: Mapping[str, Any] | None, label: str) -> StoredReport | None:
    """The report record of a version's ``validation`` JSON, or None when the version has none."""
    record = (validation or {}).get(REPORT_KEY)
    if not record:
        return None
    try:
        return StoredReport(
            html=_ref(record["html"]),
            pngs={str(name): _ref(ref) for name, ref in (record.get("pngs") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(
            f"the report record of {label} is malformed ({type(exc).__name__}: {exc}); expected "
            "{'html': {uri, sha256, size, conn_id}, 'pngs': {name: {...}}}"
        ) from None


def _ref(value: Mapping[str, Any]) -> ArtifactRef:
    return ArtifactRef(str(value["uri"]), str(value["sha256"]), int(value["size"]), value.get("conn_id"))
