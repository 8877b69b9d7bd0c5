"""``AnchorAuditOperator``: anchor the audit chain in write-once storage, on a schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_bridge.operators._common import final_on_user_error, open_registry

if TYPE_CHECKING:
    from airflow.sdk import Context


class AnchorAuditOperator(BaseOperator):
    """Write the registry's audit-chain head (sequence number, hash, time) where the database cannot reach.

    ``uri``: ``s3://bucket/prefix`` (a bucket with Object Lock; objects are kept in compliance mode for
    ``retain_days``) or a folder of read-only files; default ``[airflow_bridge] audit_anchor_uri``.
    ``audit verify --anchors URI`` then proves nothing before the newest anchor was rewritten or truncated.
    Deployments anchor after every alias move too; the schedule covers everything else (approvals, versions).
    """

    template_fields: Sequence[str] = ("uri",)
    ui_color = "#eaf2f8"

    def __init__(
        self,
        *,
        uri: str | None = None,
        conn_id: str | None = None,
        registry_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        self.conn_id = conn_id
        self.registry_conn_id = registry_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_bridge.actions.anchoring import anchor

        with final_on_user_error():
            written = anchor(open_registry(self.registry_conn_id), self.uri, self.conn_id)
        self.log.info("anchored the audit chain at seq %d (hash %s) in %s", written.seq, written.hash, written.location)
        return {"seq": written.seq, "hash": written.hash, "location": written.location}
