"""policies bound to models, the artifact's connection, alias undo pointers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:12:00.000000

``ab_alias_history.undo_id`` is backfilled from the audit trail: every alias move appended one event,
in the order the periods were opened, so replaying those events once gives each period the period a
rollback from it returns to (see ``airflow_bridge/registry/aliases.py``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Spelled out, not imported: a migration must keep doing what it did when the code around it changes.
_MOVES = ("alias_moved", "deployed", "promoted", "rolled_back")


def upgrade() -> None:
    op.create_table(
        "ab_policies",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    # Plain ADD COLUMN on both dialects (nullable, no constraint): SQLite does not copy these tables.
    with op.batch_alter_table("ab_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("policy_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("ab_model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artifact_conn_id", sa.String(length=250), nullable=True))
    # A foreign key needs a table copy on SQLite; nothing references ab_alias_history, so that is safe.
    with op.batch_alter_table("ab_alias_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("undo_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_ab_alias_history_undo", "ab_alias_history", ["undo_id"], ["id"])
    _backfill_undo(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("ab_alias_history", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ab_alias_history_undo", type_="foreignkey")
        batch_op.drop_column("undo_id")
    # Plain DROP COLUMN (SQLite >= 3.35): a table copy would drop tables other tables' rows reference.
    op.drop_column("ab_model_versions", "artifact_conn_id")
    op.drop_column("ab_models", "policy_sha256")
    op.drop_table("ab_policies")


def _backfill_undo(conn: sa.Connection) -> None:
    history = sa.table(
        "ab_alias_history",
        sa.column("id", sa.Integer),
        sa.column("model_id", sa.Integer),
        sa.column("alias", sa.String),
        sa.column("version_id", sa.Integer),
        sa.column("undo_id", sa.Integer),
    )
    versions = sa.table("ab_model_versions", sa.column("id", sa.Integer), sa.column("version", sa.Integer))
    models = sa.table("ab_models", sa.column("id", sa.Integer), sa.column("name", sa.String))
    events = sa.table(
        "ab_audit_events",
        sa.column("seq", sa.BigInteger),
        sa.column("action", sa.String),
        sa.column("model", sa.String),
        sa.column("alias", sa.String),
        sa.column("after", sa.JSON),
    )
    periods: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in conn.execute(
        sa.select(history.c.id, history.c.alias, models.c.name, versions.c.version)
        .select_from(
            history.join(models, models.c.id == history.c.model_id).outerjoin(
                versions, versions.c.id == history.c.version_id
            )
        )
        .order_by(history.c.id)
    ):
        periods[(row.name, row.alias)].append(row)
    moves: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in conn.execute(
        sa.select(events.c.action, events.c.model, events.c.alias, events.c.after)
        .where(events.c.action.in_(_MOVES), events.c.alias.is_not(None))
        .order_by(events.c.seq)
    ):
        moves[(row.model, row.alias)].append(row)
    updates = []
    for key, rows in periods.items():
        actions = moves.get(key, [])
        if len(actions) != len(rows):  # not one event per period: treat every move as a plain move
            actions = [None] * len(rows)
        undo: dict[int, int | None] = {}
        by_id = {row.id: row for row in rows}
        previous: int | None = None
        for row, event in zip(rows, actions, strict=True):
            undo[row.id] = previous
            if event is not None and event.action == "rolled_back" and previous is not None:
                target = (event.after or {}).get("version")
                found = undo[previous]
                while found is not None and by_id[found].version != target:
                    found = undo[found]
                if found is not None:
                    undo[row.id] = undo[found]
            previous = row.id
        updates += [{"row_id": row_id, "undo": value} for row_id, value in undo.items() if value is not None]
    if updates:
        conn.execute(
            history.update().where(history.c.id == sa.bindparam("row_id")).values(undo_id=sa.bindparam("undo")),
            updates,
        )
