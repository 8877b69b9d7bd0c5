"""per-model audit chains: each model's events chain on their own, its head on the model row

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 18:00:00.000000

Events written before keep their place in the one global chain (stream '', ``stream_seq`` = ``seq``);
their hashes do not change. New events of a model chain from the model's own genesis, so writes to
different models never share a lock. On PostgreSQL a sequence gives new events their global ``seq``.

The downgrade keeps the new columns (an older airflow-bridge ignores them): dropping them would leave
every per-model event unverifiable, since its hash covers its stream and position. An upgrade after it
adds only what is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    have = {t: {c["name"] for c in inspector.get_columns(t)} for t in ("ab_models", "ab_audit_events")}
    if "chain_seq" not in have["ab_models"]:
        with op.batch_alter_table("ab_models", schema=None) as batch_op:
            batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=False, server_default="0"))
            batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))
    if "stream" not in have["ab_audit_events"]:
        with op.batch_alter_table("ab_audit_events", schema=None) as batch_op:
            batch_op.add_column(sa.Column("stream", sa.String(length=64), nullable=False, server_default=sa.text("''")))
            batch_op.add_column(sa.Column("stream_seq", sa.BigInteger(), nullable=True))
    conn.execute(sa.text("UPDATE ab_audit_events SET stream_seq = seq WHERE stream_seq IS NULL AND stream = ''"))
    constraints = {c["name"] for c in sa.inspect(conn).get_unique_constraints("ab_audit_events")}
    if "uq_ab_audit_events_stream" not in constraints:
        with op.batch_alter_table("ab_audit_events", schema=None) as batch_op:  # a copy on SQLite: no FK points here
            batch_op.create_unique_constraint("uq_ab_audit_events_stream", ["stream", "stream_seq"])
    if conn.dialect.name == "postgresql":
        start = conn.execute(sa.text("SELECT COALESCE(MAX(seq), 0) + 1 FROM ab_audit_events")).scalar_one()
        conn.execute(sa.text(f"CREATE SEQUENCE IF NOT EXISTS ab_audit_seq START WITH {int(start)}"))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("DROP SEQUENCE IF EXISTS ab_audit_seq"))
