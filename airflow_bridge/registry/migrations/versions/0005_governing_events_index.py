"""a partial index of the events that set a model's governance (owner, team, policy binding)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 19:00:00.000000

Every registration reads the newest such event of its model, under the model's lock, to know whether
the row's governance was checked already. Without this index that read scanned every event of the
model (one per version): 1 ms at 5,000 versions, growing with each one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airflow_bridge.registry.tables import GOVERNING_PREDICATE

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("ab_audit_events")}
    if "ix_ab_audit_events_governing" not in indexes:
        op.create_index(
            "ix_ab_audit_events_governing",
            "ab_audit_events",
            ["model", "seq"],
            postgresql_where=sa.text(GOVERNING_PREDICATE),
            sqlite_where=sa.text(GOVERNING_PREDICATE),
        )


def downgrade() -> None:
    op.drop_index("ix_ab_audit_events_governing", table_name="ab_audit_events")
