"""Read side of the registry: models, versions, aliases, history and the audit trail."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.exceptions import NotFoundError
from airflow_bridge.registry import audit
from airflow_bridge.registry.engine import migrate, translate_errors
from airflow_bridge.registry.records import (
    ArtifactRef,
    AuditEvent,
    Deployment,
    ModelCard,
    ModelRecord,
    ModelVersion,
    RunRef,
)
from airflow_bridge.registry.tables import (
    alias_history,
    aliases,
    audit_events,
    deployments,
    model_versions,
    models,
    version_tags,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


ALIAS_MOVES = ("alias_moved", "deployed", "promoted", "rolled_back")
APPROVAL_DECISIONS = ("approval_granted", "approval_rejected", "approval_refused", "approval_timed_out")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else audit.as_utc(value)


class RegistryQueries:
    """Read-only operations; mixed into :class:`ModelRegistry`."""

    url: Any
    engine: Engine

    @contextlib.contextmanager
    def reading(self, action: str) -> Iterator[Connection]:
        """A read-only transaction that sees one snapshot for all its statements.

        SQLite's read transactions already do; PostgreSQL's default READ COMMITTED gives every statement
        its own, so a multi-statement read (verifying the audit chain against its head, a version with its
        tags) could mix states from before and after a concurrent write. Read-only REPEATABLE READ
        transactions never fail with serialization errors.
        """
        with translate_errors(self.url, action):
            migrate(self.engine)
            options: dict[str, Any] = {"ab_readonly": True}
            if self.engine.dialect.name == "postgresql":
                options["isolation_level"] = "REPEATABLE READ"
            with self.engine.connect().execution_options(**options) as connection, connection.begin():
                yield connection

    def list_models(self, *, include_deleted: bool = False) -> list[ModelRecord]:
        with self.reading("list models") as conn:
            query = sa.select(models).order_by(models.c.name)
            if not include_deleted:
                query = query.where(models.c.deleted_at.is_(None))
            alias_rows = conn.execute(
                sa.select(aliases.c.model_id, aliases.c.alias, model_versions.c.version).select_from(
                    aliases.join(model_versions, aliases.c.version_id == model_versions.c.id)
                )
            ).all()
            by_model: dict[int, dict[str, int]] = {}
            for row in alias_rows:
                by_model.setdefault(row.model_id, {})[row.alias] = row.version
            return [self._model_record(row, by_model.get(row.id, {})) for row in conn.execute(query)]

    def get_model(self, name: str) -> ModelRecord:
        with self.reading(f"read model '{name}'") as conn:
            row = conn.execute(sa.select(models).where(models.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"model '{name}' is not in the registry")
            alias_rows = conn.execute(
                sa.select(aliases.c.alias, model_versions.c.version)
                .select_from(aliases.join(model_versions, aliases.c.version_id == model_versions.c.id))
                .where(aliases.c.model_id == row.id)
            ).all()
            return self._model_record(row, {a.alias: a.version for a in alias_rows})

    def get_version(self, model: str, version: int) -> ModelVersion:
        with self.reading(f"read {model} v{version}") as conn:
            return self._version(conn, model, version)

    def list_versions(self, model: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        with self.reading(f"list versions of '{model}'") as conn:
            query = (
                sa.select(model_versions.c.version)
                .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
                .where(models.c.name == model)
                .order_by(model_versions.c.version)
            )
            if not include_deleted:
                query = query.where(model_versions.c.deleted_at.is_(None))
            numbers = conn.execute(query).scalars().all()
            if not numbers and conn.execute(sa.select(models.c.id).where(models.c.name == model)).first() is None:
                raise NotFoundError(f"model '{model}' is not in the registry")
            return [self._version(conn, model, n) for n in numbers]

    def alias_version(self, model: str, alias: str) -> ModelVersion | None:
        """The version an alias points at now, or None."""
        with self.reading(f"resolve alias '{alias}' of '{model}'") as conn:
            number = conn.execute(
                sa.select(model_versions.c.version)
                .select_from(
                    aliases.join(models, models.c.id == aliases.c.model_id).join(
                        model_versions, model_versions.c.id == aliases.c.version_id
                    )
                )
                .where(models.c.name == model, aliases.c.alias == alias)
            ).scalar()
            return None if number is None else self._version(conn, model, number)

    def resolve(self, model: str, ref: str | int) -> ModelVersion:
        """A version by number (``7``, ``"v7"``) or by alias (``"production"``)."""
        text = str(ref)
        if text.lstrip("v").isdigit():
            return self.get_version(model, int(text.lstrip("v")))
        found = self.alias_version(model, text)
        if found is None:
            raise NotFoundError(f"model '{model}' has no alias '{text}'")
        return found

    def alias_history(self, model: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every period each alias pointed at a version, oldest first."""
        with self.reading(f"read alias history of '{model}'") as conn:
            query = (
                sa.select(
                    alias_history.c.alias,
                    model_versions.c.version,
                    alias_history.c.valid_from,
                    alias_history.c.valid_to,
                )
                .select_from(
                    alias_history.join(models, models.c.id == alias_history.c.model_id).join(
                        model_versions, model_versions.c.id == alias_history.c.version_id
                    )
                )
                .where(models.c.name == model)
                .order_by(alias_history.c.valid_from, alias_history.c.id)
            )
            if alias:
                query = query.where(alias_history.c.alias == alias)
            return [
                {
                    "alias": r.alias,
                    "version": r.version,
                    "valid_from": _aware(r.valid_from),
                    "valid_to": _aware(r.valid_to),
                }
                for r in conn.execute(query)
            ]

    def previous_alias_version(self, model: str, alias: str) -> int | None:
        """The version a rollback of ``alias`` goes back to: rollbacks undo moves, so rolling back
        twice from v8 (after v6 → v7 → v8) reaches v6, not v8 again. Deleted versions are skipped."""
        stack: list[int] = []
        for event in self.audit_events(model=model):
            if event.alias != alias or event.action not in ALIAS_MOVES:
                continue
            target = (event.after or {}).get("version")
            if event.action == "rolled_back":
                if stack:
                    stack.pop()
                if target is not None and (not stack or stack[-1] != target):
                    stack.append(target)
            elif target is not None:
                stack.append(target)
        if not stack:
            return None
        live = {v.version for v in self.list_versions(model)}
        current = stack[-1]
        return next((int(v) for v in reversed(stack[:-1]) if v != current and v in live), None)

    def live_at(self, model: str, alias: str, when: dt.datetime) -> ModelVersion | None:
        """The version ``alias`` pointed at, at time ``when`` ('what was live when')."""
        when = _aware(when) or when
        for period in self.alias_history(model, alias):
            end = period["valid_to"]
            if period["valid_from"] <= when and (end is None or when < end):
                return self.get_version(model, period["version"])
        return None

    def deployments(self, model: str) -> list[Deployment]:
        with self.reading(f"list deployments of '{model}'") as conn:
            rows = conn.execute(
                sa.select(deployments, model_versions.c.version)
                .select_from(
                    deployments.join(models, models.c.id == deployments.c.model_id).join(
                        model_versions, model_versions.c.id == deployments.c.version_id
                    )
                )
                .where(models.c.name == model)
                .order_by(deployments.c.id)
            ).all()
            return [
                Deployment(
                    model,
                    r.version,
                    r.alias,
                    r.target,
                    r.endpoint,
                    r.action,
                    RunRef(r.dag_id, r.run_id, r.task_id),
                    r.actor,
                    _aware(r.created_at) or r.created_at,
                )
                for r in rows
            ]

    def audit_events(self, *, model: str | None = None, since_seq: int = 0) -> list[AuditEvent]:
        with self.reading("read the audit trail") as conn:
            query = sa.select(audit_events).where(audit_events.c.seq > since_seq).order_by(audit_events.c.seq)
            if model:
                query = query.where(audit_events.c.model == model)
            return [audit.to_event(row) for row in conn.execute(query)]

    def approval_decision(
        self, model: str, version: int, alias: str, *, run_id: str | None = None
    ) -> AuditEvent | None:
        """The newest approval decision recorded for ``model`` v``version`` behind ``alias`` (or None)."""
        with self.reading(f"read approvals of {model} v{version}") as conn:
            query = (
                sa.select(audit_events)
                .where(
                    audit_events.c.model == model,
                    audit_events.c.version == version,
                    audit_events.c.alias == alias,
                    audit_events.c.action.in_(APPROVAL_DECISIONS),
                )
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            )
            if run_id:
                query = query.where(audit_events.c.run_id == run_id)
            row = conn.execute(query).first()
            return audit.to_event(row) if row else None

    def verify_audit(self) -> audit.ChainReport:
        with self.reading("verify the audit trail") as conn:
            return audit.verify_chain(conn)

    # -- shared helpers -------------------------------------------------------------------------

    def _version(self, conn: Connection, model: str, version: int) -> ModelVersion:
        row = conn.execute(
            sa.select(model_versions, models.c.name)
            .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
            .where(models.c.name == model, model_versions.c.version == version)
        ).first()
        if row is None:
            raise NotFoundError(f"model '{model}' has no version {version}")
        tags = dict(
            conn.execute(
                sa.select(version_tags.c.key, version_tags.c.value).where(version_tags.c.version_id == row.id)
            ).all()
        )
        held = (
            conn.execute(sa.select(aliases.c.alias).where(aliases.c.version_id == row.id).order_by(aliases.c.alias))
            .scalars()
            .all()
        )
        return ModelVersion(
            model=model,
            version=row.version,
            artifact=ArtifactRef(row.artifact_uri, row.artifact_sha256, int(row.artifact_size)),
            estimator=row.estimator,
            task_kind=row.task_kind,
            params=row.params,
            metrics=row.metrics,
            validation=row.validation,
            data=row.data,
            spec_sha256=row.spec_sha256,
            run=RunRef(row.dag_id, row.run_id, row.task_id),
            created_by=row.created_by,
            created_at=_aware(row.created_at) or row.created_at,
            tags=tags,
            aliases=tuple(held),
            deleted_at=_aware(row.deleted_at),
        )

    @staticmethod
    def _model_record(row: Any, alias_map: dict[str, int]) -> ModelRecord:
        card = ModelCard(row.description, row.owner, row.team, row.intended_use, row.limitations)
        return ModelRecord(
            row.name,
            row.latest_version,
            card,
            _aware(row.created_at) or row.created_at,
            alias_map,
            _aware(row.deleted_at),
        )
