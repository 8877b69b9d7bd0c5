"""the bound policy's source, the audit event's principal and signature

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 16:30:00.000000

``ab_models.policy_source`` is backfilled from the newest ``policy_bound`` event of each model (the
source it was bound from). Events written before keep ``principal`` and ``signature`` empty; their
hashes do not change (an empty principal is not hashed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects (nullable, no constraint): SQLite does not copy these tables.
    with op.batch_alter_table("ab_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_source", sa.Text(), nullable=True))
    with op.batch_alter_table("ab_audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal", sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column("signature", sa.String(length=64), nullable=True))
    _backfill_policy_source(op.get_bind())


def downgrade() -> None:
    op.drop_column("ab_audit_events", "signature")
    op.drop_column("ab_audit_events", "principal")
    op.drop_column("ab_models", "policy_source")


def _backfill_policy_source(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    events = sa.Table("ab_audit_events", meta, autoload_with=conn)
    models = sa.Table("ab_models", meta, autoload_with=conn)
    rows = conn.execute(
        sa.select(events.c.model, events.c.after).where(events.c.action == "policy_bound").order_by(events.c.seq)
    ).all()
    newest: dict[str, str] = {}
    for row in rows:
        after = row.after or {}
        if row.model and isinstance(after, dict) and after.get("source"):
            newest[row.model] = str(after["source"])
    for model, source in newest.items():
        conn.execute(models.update().where(models.c.name == model).values(policy_source=source))
