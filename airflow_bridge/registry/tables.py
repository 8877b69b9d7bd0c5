"""Registry schema (SQLAlchemy Core). Alembic migrations create it; a test keeps the two equal.

Table names carry the ``ab_`` prefix so the registry can share a database with Airflow's own
metadata without clashing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from airflow_bridge.registry.events import GOVERNING_ACTIONS

GOVERNING_PREDICATE = "action IN (" + ", ".join(f"'{action.value}'" for action in GOVERNING_ACTIONS) + ")"
"""The events that set a model's governance (owner, team, policy binding), as SQL for a partial index."""

metadata = MetaData()

SCHEMA_REVISION = "0006"
"""The alembic revision this schema is (in-memory registries are created from it directly)."""

models = Table(
    "ab_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("latest_version", Integer, nullable=False, default=0),
    Column("description", Text, nullable=False, default=""),
    Column("owner", String(250), nullable=False, default=""),
    Column("team", String(250), nullable=False, default=""),
    Column("intended_use", Text, nullable=False, default=""),
    Column("limitations", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("policy_sha256", String(64), nullable=True),
    # Where the bound policy lives (its identity; see governance.identity): another source cannot rebind it.
    Column("policy_source", Text, nullable=True),
    # The head of the model's own audit chain (its newest event's stream_seq and hash): writes to different
    # models never wait for each other, and the model row they already lock is the chain's lock.
    Column("chain_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("chain_hash", String(64), nullable=True),
)

policies = Table(
    "ab_policies",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("source", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "ab_model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("ab_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("estimator", String(250), nullable=False, default=""),
    Column("task_kind", String(32), nullable=False, default=""),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("validation", JSON, nullable=False),
    Column("data", JSON, nullable=False),
    Column("spec_sha256", String(64), nullable=False, default=""),
    Column("dag_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Column("task_id", String(250), nullable=True),
    Column("created_by", String(250), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("artifact_conn_id", String(250), nullable=True),
    UniqueConstraint("model_id", "version", name="uq_ab_model_versions_version"),
    UniqueConstraint("model_id", "dag_id", "run_id", "task_id", name="uq_ab_model_versions_run"),
)

version_tags = Table(
    "ab_version_tags",
    metadata,
    Column("version_id", Integer, ForeignKey("ab_model_versions.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

aliases = Table(
    "ab_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("ab_models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", Integer, ForeignKey("ab_model_versions.id"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alias_history = Table(
    "ab_alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("ab_models.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version_id", Integer, ForeignKey("ab_model_versions.id"), nullable=True),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True), nullable=True),
    # The period this one replaced by a move; a rollback's period inherits the undo of the period it
    # returned to, so rolling back again undoes the move before that (see aliases.py).
    Column("undo_id", Integer, ForeignKey("ab_alias_history.id", name="fk_ab_alias_history_undo"), nullable=True),
    Index("ix_ab_alias_history_lookup", "model_id", "alias", "valid_from"),
)

deployments = Table(
    "ab_deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("ab_models.id"), nullable=False),
    Column("version_id", Integer, ForeignKey("ab_model_versions.id"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("endpoint", Text, nullable=False, default=""),
    Column("action", String(32), nullable=False),
    Column("dag_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Column("task_id", String(250), nullable=True),
    Column("actor", String(250), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit_events = Table(
    "ab_audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("action", String(64), nullable=False),
    Column("model", String(64), nullable=True),
    Column("version", Integer, nullable=True),
    Column("alias", String(64), nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("dag_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Column("task_id", String(250), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Who really ran the writer (``os:<user>`` for the embedded CLI, ``airflow:<user>`` through the API
    # server) when the actor is a name given by the caller; hashed only when set, so older rows keep theirs.
    Column("principal", String(250), nullable=True),
    # HMAC-SHA256 of ``hash`` with the audit key held outside the database (None: no key configured).
    Column("signature", String(64), nullable=True),
    # The chain the event belongs to: its model's ('' for events of no model, and every event written
    # before per-model chains), and its position there (gap-free; ``seq`` only orders events globally).
    Column("stream", String(64), nullable=False, default="", server_default=text("''")),
    Column("stream_seq", BigInteger, nullable=True),
    Index("ix_ab_audit_events_model", "model", "seq"),
    Index(
        "ix_ab_audit_events_governing",
        "model",
        "seq",
        postgresql_where=text(GOVERNING_PREDICATE),
        sqlite_where=text(GOVERNING_PREDICATE),
    ),
    UniqueConstraint("stream", "stream_seq", name="uq_ab_audit_events_stream"),
)

audit_seq = Sequence("ab_audit_seq", metadata=metadata)
"""Global order of events on PostgreSQL (SQLite's writers are serialised and take MAX(seq) + 1)."""

audit_head = Table(
    "ab_audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)


candidates = Table(
    "ab_candidates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # ``c-`` and 10 hex digits of the model and the Airflow run: a retried validate records the same one.
    Column("candidate_id", String(32), nullable=False, unique=True),
    # The model's name, not a key of ab_models: a candidate that fails its gates may precede any version.
    Column("model", String(64), nullable=False),
    Column("dag_id", String(250), nullable=True),
    Column("run_id", String(250), nullable=True),
    Column("task_id", String(250), nullable=True),
    Column("spec_sha256", String(64), nullable=False, default=""),
    Column("estimator", String(250), nullable=False, default=""),
    Column("task_kind", String(32), nullable=False, default=""),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("validation", JSON, nullable=False),
    Column("data", JSON, nullable=False),
    Column("search", JSON, nullable=True),
    Column("artifact_uri", Text, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("recorded_by", String(250), nullable=False, default=""),
    Column("principal", String(250), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_ab_candidates_model", "model", "created_at"),
    Index("ix_ab_candidates_passed", "model", "passed", "created_at"),
)
"""Every trained candidate with its gates, whether or not it became a version (``airflow-bridge models
candidates``); a version is the candidate of the same model and run. Failed ones are pruned under the policy's
retention."""
