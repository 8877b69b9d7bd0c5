"""Alias moves, deployments and rollbacks: compare-and-set under the model's row lock, always audited."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import ConflictError, NotFoundError
from airflow_bridge.registry import audit
from airflow_bridge.registry.queries import RegistryQueries
from airflow_bridge.registry.records import AliasMove, Deployment, RunRef
from airflow_bridge.registry.tables import alias_history, aliases, deployments, model_versions


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AliasOperations(RegistryQueries):
    """Base of :class:`ModelRegistry`, which provides the transaction and locking helpers."""

    def transaction(self, action: str) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def _lock_model(self, conn: Connection, model: str, *, now: dt.datetime, create: bool = False) -> Row[Any]:
        raise NotImplementedError

    def _version_id(self, conn: Connection, model_row: Row[Any], version: int) -> int:
        raise NotImplementedError

    # -- aliases and deployments ----------------------------------------------------------------

    def move_alias(
        self,
        model: str,
        alias: str,
        version: int,
        *,
        expected: int | None = UNSET,
        actor: str,
        reason: str = "",
        run: RunRef | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; with ``expected``, only if it still points at that version."""
        with self.transaction(f"move alias '{alias}' of '{model}'") as conn:
            return self._move_alias(
                conn,
                model,
                alias,
                version,
                expected=expected,
                actor=actor,
                reason=reason,
                run=run or RunRef(),
                action="alias_moved",
            )

    def deploy(
        self,
        model: str,
        version: int,
        *,
        alias: str,
        target: str,
        endpoint: str = "",
        expected: int | None = UNSET,
        actor: str,
        reason: str = "",
        run: RunRef | None = None,
        action: str = "deployed",
    ) -> Deployment:
        """Move the alias and record the deployment in one transaction (both happen or neither)."""
        run = run or RunRef()
        with self.transaction(f"deploy {model} v{version} to '{alias}'") as conn:
            move = self._move_alias(
                conn,
                model,
                alias,
                version,
                expected=expected,
                actor=actor,
                reason=reason,
                run=run,
                action=action,
            )
            now = utcnow()
            model_row = self._lock_model(conn, model, now=now)
            conn.execute(
                deployments.insert().values(
                    model_id=model_row.id,
                    version_id=self._version_id(conn, model_row, version),
                    alias=alias,
                    target=target,
                    endpoint=endpoint,
                    action=action,
                    dag_id=run.dag_id,
                    run_id=run.run_id,
                    task_id=run.task_id,
                    actor=actor,
                    created_at=now,
                )
            )
            return Deployment(model, move.version, alias, target, endpoint, action, run, actor, now)

    def rollback(
        self,
        model: str,
        alias: str,
        *,
        actor: str,
        reason: str = "",
        target: str = "local",
        run: RunRef | None = None,
    ) -> Deployment:
        """Move ``alias`` back to the version it pointed at before the current one."""
        current = self.alias_version(model, alias)
        if current is None:
            raise NotFoundError(f"alias '{alias}' of model '{model}' points at no version; nothing to roll back")
        previous = self.previous_alias_version(model, alias)
        if previous is None:
            raise NotFoundError(f"alias '{alias}' of model '{model}' has no earlier version to roll back to")
        return self.deploy(
            model,
            previous,
            alias=alias,
            target=target,
            expected=current.version,
            actor=actor,
            reason=reason or f"rollback from v{current.version}",
            run=run,
            action="rolled_back",
        )

    def record_event(
        self,
        action: str,
        *,
        actor: str,
        model: str | None = None,
        version: int | None = None,
        alias: str | None = None,
        reason: str = "",
        run: RunRef | None = None,
        before: Any = None,
        after: Any = None,
    ) -> int:
        """Append an audit event that is not itself a registry change (approvals, refusals)."""
        with self.transaction(f"record '{action}' in the audit trail") as conn:
            return audit.append_event(
                conn,
                actor=actor,
                action=action,
                now=utcnow(),
                model=model,
                version=version,
                alias=alias,
                reason=reason,
                run=run,
                before=before,
                after=after,
            )

    def _move_alias(
        self,
        conn: Connection,
        model: str,
        alias: str,
        version: int,
        *,
        expected: int | None,
        actor: str,
        reason: str,
        run: RunRef,
        action: str,
    ) -> AliasMove:
        model_row = self._lock_model(conn, model, now=utcnow())
        version_id = self._version_id(conn, model_row, version)
        current = conn.execute(
            sa.select(model_versions.c.version)
            .select_from(aliases.join(model_versions, aliases.c.version_id == model_versions.c.id))
            .where(aliases.c.model_id == model_row.id, aliases.c.alias == alias)
        ).scalar()
        if expected is not UNSET and current != expected:
            now_at = f"v{current}" if current is not None else "no version"
            wanted = f"v{expected}" if expected is not None else "no version"
            raise ConflictError(
                f"alias '{alias}' of model '{model}' points at {now_at}, not {wanted}: it was moved "
                f"concurrently; reload and decide again"
            )
        if current == version:
            return AliasMove(model, alias, current, version)
        # The clock is read under the model lock and never goes behind the open period's start (clock
        # steps, skew between hosts): periods stay ordered as the moves were applied and never overlap.
        now = utcnow()
        opened = conn.execute(
            sa.select(sa.func.max(alias_history.c.valid_from)).where(
                alias_history.c.model_id == model_row.id,
                alias_history.c.alias == alias,
                alias_history.c.valid_to.is_(None),
            )
        ).scalar()
        if opened is not None:
            now = max(now, audit.as_utc(opened))
        if current is None:
            conn.execute(
                aliases.insert().values(model_id=model_row.id, alias=alias, version_id=version_id, updated_at=now)
            )
        else:
            conn.execute(
                aliases.update()
                .where(aliases.c.model_id == model_row.id, aliases.c.alias == alias)
                .values(version_id=version_id, updated_at=now)
            )
        conn.execute(
            alias_history.update()
            .where(
                alias_history.c.model_id == model_row.id,
                alias_history.c.alias == alias,
                alias_history.c.valid_to.is_(None),
            )
            .values(valid_to=now)
        )
        conn.execute(
            alias_history.insert().values(model_id=model_row.id, alias=alias, version_id=version_id, valid_from=now)
        )
        audit.append_event(
            conn,
            actor=actor,
            action=action,
            now=now,
            model=model,
            version=version,
            alias=alias,
            reason=reason,
            run=run,
            before={"version": current},
            after={"version": version},
        )
        return AliasMove(model, alias, current, version)
