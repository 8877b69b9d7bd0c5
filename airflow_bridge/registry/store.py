"""The model registry: versions, aliases, deployments and the audit trail, on SQLite or PostgreSQL.

Guarantees come from the database, not from luck: each model row is locked while its versions or
aliases change, so version numbers are unique and increasing under any number of writers; a
registration retried by the same Airflow task returns the version it created; aliases move only
by compare-and-set; every change appends a hash-chained audit event in the same transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import ConflictError, NotFoundError, RegistryError
from airflow_bridge.registry import audit, registration
from airflow_bridge.registry.aliases import AliasOperations, utcnow
from airflow_bridge.registry.engine import create_registry_engine, describe_url, migrate, translate_errors
from airflow_bridge.registry.records import ArtifactRef, ModelCard, ModelVersion, RunRef
from airflow_bridge.registry.registration import NewVersion
from airflow_bridge.registry.tables import (
    aliases,
    model_versions,
    models,
    version_tags,
)


class ModelRegistry(AliasOperations):
    """Read and change the registry at ``url`` (any SQLAlchemy URL; the password never reaches logs)."""

    def __init__(self, url: str | sa.URL) -> None:
        self.url = url
        self.engine = create_registry_engine(url)

    def __repr__(self) -> str:
        return f"ModelRegistry({describe_url(self.url)})"

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self, action: str) -> Iterator[Connection]:
        """One transaction; connection failures surface as retryable ``RegistryUnavailableError``."""
        with translate_errors(self.url, action):
            migrate(self.engine)
            with self.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    yield connection
                except BaseException:
                    transaction.rollback()
                    raise
                with translate_errors(self.url, action, committing=True):
                    transaction.commit()

    # -- versions -------------------------------------------------------------------------------

    def register_version(
        self,
        model: str,
        artifact: ArtifactRef,
        *,
        estimator: str = "",
        task_kind: str = "",
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        validation: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        spec_sha256: str = "",
        run: RunRef | None = None,
        actor: str = "airflow",
        reason: str = "",
        card: ModelCard | None = None,
        tags: dict[str, str] | None = None,
        max_versions_per_day: int | None = None,
    ) -> ModelVersion:
        """Record a new version; the same (dag_id, run_id, task_id) always gets the same version.

        ``max_versions_per_day`` is a quota on new versions of this model in the last 24 hours,
        checked under the model's lock (so concurrent writers cannot exceed it).
        """
        new = NewVersion(
            model=model,
            artifact=artifact,
            estimator=estimator,
            task_kind=task_kind,
            params=params or {},
            metrics=metrics or {},
            validation=validation or {},
            data=data or {},
            spec_sha256=spec_sha256,
            run=run or RunRef(),
            actor=actor,
            reason=reason,
        )
        action = f"register a version of '{model}'"
        try:
            with self.transaction(action) as conn:
                model_row = registration.allocate(conn, model, now=utcnow())
                now = utcnow()  # read under the lock, so timestamps follow the order changes are applied in
                registration.update_card(conn, model, model_row, card, actor=actor, run=new.run, now=now)
                if max_versions_per_day is not None:
                    registration.check_quota(conn, model, model_row.id, max_versions_per_day, now=now, run=new.run)
                number = int(model_row.latest_version)
                version_id = registration.write_version(conn, new, int(model_row.id), number, now)
                registration.add_tags(conn, version_id, tags or {})
                return registration.as_record(new, number, now, tags or {})
        except registration.AlreadyRegistered:
            # A retried task: its first try registered a version; the allocation above was rolled back.
            with self.reading(action) as conn:
                return self._version(conn, model, registration.existing_version(conn, model, new.run))

    def set_tag(
        self,
        model: str,
        version: int,
        key: str,
        value: str | None,
        *,
        actor: str,
        reason: str = "",
        run: RunRef | None = None,
    ) -> None:
        """Set (or with ``value=None`` remove) a tag on a version."""
        with self.transaction(f"tag {model} v{version}") as conn:
            model_row = self._lock_model(conn, model, now=utcnow())
            now = utcnow()  # read under the lock
            version_id = self._version_id(conn, model_row, version)
            old = conn.execute(
                sa.select(version_tags.c.value).where(
                    version_tags.c.version_id == version_id, version_tags.c.key == key
                )
            ).scalar()
            if old == value:
                return
            conn.execute(
                version_tags.delete().where(version_tags.c.version_id == version_id, version_tags.c.key == key)
            )
            if value is not None:
                conn.execute(version_tags.insert().values(version_id=version_id, key=key, value=value))
            audit.append_event(
                conn,
                actor=actor,
                action="tag_changed",
                now=now,
                model=model,
                version=version,
                reason=reason,
                run=run,
                before={key: old},
                after={key: value},
            )

    def delete_version(self, model: str, version: int, *, actor: str, reason: str) -> None:
        """Soft-delete a version: kept for audit, no longer deployable; refused while an alias points at it."""
        with self.transaction(f"delete {model} v{version}") as conn:
            model_row = self._lock_model(conn, model, now=utcnow())
            now = utcnow()  # read under the lock
            version_id = self._version_id(conn, model_row, version)
            held = conn.execute(sa.select(aliases.c.alias).where(aliases.c.version_id == version_id)).scalars().all()
            if held:
                raise ConflictError(f"{model} v{version} is behind alias(es) {', '.join(held)}; move them first")
            conn.execute(model_versions.update().where(model_versions.c.id == version_id).values(deleted_at=now))
            audit.append_event(
                conn,
                actor=actor,
                action="version_deleted",
                now=now,
                model=model,
                version=version,
                reason=reason,
            )

    def update_card(self, model: str, card: ModelCard, *, actor: str, run: RunRef | None = None) -> None:
        with self.transaction(f"update the model card of '{model}'") as conn:
            model_row = self._lock_model(conn, model, now=utcnow())
            now = utcnow()  # read under the lock
            registration.update_card(conn, model, model_row, card, actor=actor, run=run or RunRef(), now=now)

    # -- internals ------------------------------------------------------------------------------

    def _lock_model(self, conn: Connection, model: str, *, now: dt.datetime, create: bool = False) -> Row[Any]:
        if create:
            insert = registration.dialect_insert(conn)(models).values(
                name=model,
                latest_version=0,
                description="",
                owner="",
                team="",
                intended_use="",
                limitations="",
                created_at=now,
            )
            conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
        row = conn.execute(sa.select(models).where(models.c.name == model).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"model '{model}' is not in the registry")
        if row.deleted_at is not None:
            raise RegistryError(f"model '{model}' was deleted on {row.deleted_at:%Y-%m-%d}; it takes no changes")
        return row

    def _version_id(self, conn: Connection, model_row: Row[Any], version: int) -> int:
        row = conn.execute(
            sa.select(model_versions.c.id, model_versions.c.deleted_at).where(
                model_versions.c.model_id == model_row.id, model_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFoundError(f"model '{model_row.name}' has no version {version}")
        if row.deleted_at is not None:
            raise RegistryError(f"{model_row.name} v{version} was deleted; it cannot be used")
        return int(row.id)
