"""Anchoring the audit chain outside the database, and verifying the registry against it.

``anchor`` writes the chain head (sequence number, hash, time) to write-once storage (an S3 bucket with
Object Lock in compliance mode, or a folder of read-only files): ``audit anchor``, the ``AnchorAuditOperator``
on a schedule, and every alias move when ``[airflow_bridge] audit_anchor_uri`` is set. ``verify`` proves
that nothing before the newest anchor was rewritten or truncated, checks signatures with the audit key,
and lists every registry row the chain does not explain.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_bridge.exceptions import BridgeError

if TYPE_CHECKING:
    from airflow_bridge.registry.anchors import Anchor
    from airflow_bridge.registry.chain import ChainReport
    from airflow_bridge.registry.store import ModelRegistry

log = logging.getLogger(__name__)
URI_KEY, CONN_KEY = "audit_anchor_uri", "audit_anchor_conn_id"
"""``[airflow_bridge]`` settings: where moves and the schedule anchor the chain, and the connection to use."""


def configured_anchors() -> tuple[str | None, str | None]:
    """(URI, connection id) of ``[airflow_bridge] audit_anchor_uri`` / ``audit_anchor_conn_id``."""
    from airflow_bridge.config import bridge_config

    return bridge_config(URI_KEY), bridge_config(CONN_KEY)


def anchor(registry: ModelRegistry, uri: str | None = None, conn_id: str | None = None) -> Anchor:
    """Write the chain head to ``uri`` (default: the configured one); never overwrites an anchor."""
    from airflow_bridge.registry.anchors import of_heads, write_anchor
    from airflow_bridge.registry.engine import describe_url

    configured_uri, configured_conn = configured_anchors()
    target = uri or configured_uri
    if not target:
        raise BridgeError(
            "where to anchor? pass --to URI (s3://bucket/prefix with Object Lock, or a folder), or set "
            f"[airflow_bridge] {URI_KEY} (AIRFLOW__AIRFLOW_BRIDGE__{URI_KEY.upper()})"
        )
    heads = registry.chain_heads()
    now = dt.datetime.now(dt.UTC)
    return write_anchor(target, of_heads(heads, now, describe_url(registry.url)), conn_id=conn_id or configured_conn)


def anchor_after_move(registry: ModelRegistry) -> Anchor | None:
    """Anchor the chain after an alias moved, when anchoring is configured; a failure is logged, not raised:
    the move is done, and the next anchor (the schedule's) covers it."""
    uri, conn_id = configured_anchors()
    if not uri:
        return None
    try:
        return anchor(registry, uri, conn_id)
    except Exception as exc:
        log.error(
            "could not anchor the audit chain at %s after the move (the schedule's next anchor covers it): %s", uri, exc
        )
        return None


@dataclass(frozen=True)
class Verdict:
    """``audit verify``: the chain (with anchors and signatures), and the rows it does not explain."""

    chain: ChainReport
    anchors: list[Anchor] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    foreign: int = 0
    """Anchors found at the URI that belong to another registry (not used)."""

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.unexplained


def verify(registry: ModelRegistry, uri: str | None = None, conn_id: str | None = None) -> Verdict:
    """Verify the chain against the anchors at ``uri`` (if any) and reconcile the registry's rows with it."""
    from airflow_bridge.registry.anchors import read_anchors
    from airflow_bridge.registry.engine import describe_url

    found: list[Anchor] = read_anchors(uri, conn_id=conn_id) if uri else []
    mine = describe_url(registry.url)
    ours = [a for a in found if a.registry == mine]
    report = registry.verify_audit(anchors=[a.covered for a in ours])
    if uri and not ours:
        from airflow_bridge.exceptions import RequestError

        raise RequestError(f"no anchor of this registry ({mine}) at {uri}: nothing to verify against")
    return Verdict(report, ours, registry.reconcile(), len(found) - len(ours))
