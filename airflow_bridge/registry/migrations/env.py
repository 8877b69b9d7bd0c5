"""Alembic environment of the registry: runs on the connection the registry hands over."""

from __future__ import annotations

from alembic import context

from airflow_bridge.registry.engine import VERSION_TABLE
from airflow_bridge.registry.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
