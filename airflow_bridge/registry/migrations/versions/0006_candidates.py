"""candidates: every trained candidate with its gates, whether or not it became a version

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:00:00.000000

A candidate is recorded by the validate task, passed or failed; the version registered from the same
run is that candidate's version. Nothing else changes, so the downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "ab_candidates" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "ab_candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("candidate_id", sa.String(32), nullable=False, unique=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("task_id", sa.String(250), nullable=True),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("estimator", sa.String(250), nullable=False),
        sa.Column("task_kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("validation", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("search", sa.JSON, nullable=True),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("recorded_by", sa.String(250), nullable=False),
        sa.Column("principal", sa.String(250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ab_candidates_model", "ab_candidates", ["model", "created_at"])
    op.create_index("ix_ab_candidates_passed", "ab_candidates", ["model", "passed", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ab_candidates_passed", table_name="ab_candidates")
    op.drop_index("ix_ab_candidates_model", table_name="ab_candidates")
    op.drop_table("ab_candidates")
