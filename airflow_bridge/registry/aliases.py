"""Alias moves, deployments and rollbacks: compare-and-set under the model's row lock, always audited.

Every move is cleared by ``guard.clear_move`` under that lock first: a protected alias moves only to a
version with a granted approval the chain vouches for (or an override the policy allows, audited).

Each time an alias points somewhere new, a period opens in ``ab_alias_history``. A move records in
the new period's ``undo_id`` the period it closed; a rollback returns to the period found by
following ``undo_id`` from the current one (skipping deleted versions and the current version) and
inherits that period's ``undo_id``. So rollbacks undo moves instead of toggling: after v6 → v7 → v8,
rolling back twice reaches v7, then v6. Finding the target reads a few rows by primary key; the
audit trail is never replayed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from airflow_bridge.exceptions import ConflictError, NotFoundError
from airflow_bridge.registry import audit, guard
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.locks import live_version_id, lock_model, utcnow
from airflow_bridge.registry.records import AliasMove, Deployment, RunRef
from airflow_bridge.registry.tables import alias_history, aliases, deployments, model_versions, models


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""``expected`` not given: move the alias whatever it points at."""


def move(
    conn: Connection,
    model: str,
    alias: str,
    version: int,
    *,
    expected: int | None = UNSET,
    actor: str,
    reason: str,
    run: RunRef,
    action: str = AuditAction.ALIAS_MOVED,
    override: bool = False,
) -> AliasMove:
    """Point ``alias`` at ``version``; with ``expected``, only if it still points at that version."""
    model_row, version_id = _cleared(
        conn, model, version, alias, override=override, actor=actor, reason=reason, run=run, action=action
    )
    return _move(
        conn,
        model_row,
        alias,
        version,
        version_id,
        expected=expected,
        actor=actor,
        reason=reason,
        run=run,
        action=action,
    )


def deploy(
    conn: Connection,
    model: str,
    version: int,
    *,
    alias: str,
    target: str,
    endpoint: str,
    expected: int | None,
    actor: str,
    reason: str,
    run: RunRef,
    action: str,
    override: bool = False,
    rollout_note: dict[str, Any] | None = None,
) -> Deployment:
    """Move the alias and record the deployment, in the caller's transaction.

    ``rollout_note``: what changed on the target; when the alias already pointed at ``version`` (a canary
    promoted to all traffic) it is recorded as the move's event, so the change is still audited.
    """
    model_row, version_id = _cleared(
        conn, model, version, alias, override=override, actor=actor, reason=reason, run=run, action=action
    )
    move = _move(
        conn,
        model_row,
        alias,
        version,
        version_id,
        expected=expected,
        actor=actor,
        reason=reason,
        run=run,
        action=action,
    )
    if rollout_note is not None and move.previous_version == version:
        audit.append_event(
            conn,
            actor=actor,
            action=action,
            now=utcnow(),
            model=model,
            version=version,
            alias=alias,
            reason=reason,
            run=run,
            before={"version": version},
            after={"version": version, **rollout_note},
        )
    return _record_deployment(
        conn, model_row, move, version_id, target=target, endpoint=endpoint, action=action, run=run, actor=actor
    )


def rollback(
    conn: Connection,
    model: str,
    alias: str,
    *,
    actor: str,
    reason: str,
    target: str,
    endpoint: str,
    run: RunRef,
    to_version: int | None = None,
    override: bool = False,
) -> Deployment:
    """Move ``alias`` back to the version it pointed at before its last move, and record the deployment.

    The target is found under the model's lock, so a concurrent move cannot slip in between. With
    ``to_version`` (the version the caller checked), the rollback happens only if that is still the
    target; otherwise nothing moves (``ConflictError``).
    """
    model_row = lock_model(conn, model)
    current = _open_period(conn, model_row.id, alias)
    if current is None or current.version is None:
        raise NotFoundError(f"alias '{alias}' of model '{model}' points at no version; nothing to roll back")
    back = _undo_target(conn, current.undo_id, current.version)
    if back is None:
        raise NotFoundError(f"alias '{alias}' of model '{model}' has no earlier version to roll back to")
    if to_version is not None and int(back.version) != to_version:
        raise ConflictError(
            f"the rollback of '{alias}' of {model} was checked for v{to_version}, but it would now go back to "
            f"v{back.version} (a version was deleted or the alias moved meanwhile); nothing moved: reload and "
            "decide again"
        )
    action = AuditAction.ROLLED_BACK
    _cleared(
        conn, model, int(back.version), alias, override=override, actor=actor, reason=reason, run=run, action=action
    )
    move = _move(
        conn,
        model_row,
        alias,
        back.version,
        back.version_id,
        expected=current.version,
        actor=actor,
        reason=reason or f"rollback from v{current.version}",
        run=run,
        action=action,
        undo_id=back.undo_id,
    )
    return _record_deployment(
        conn, model_row, move, back.version_id, target=target, endpoint=endpoint, action=action, run=run, actor=actor
    )


def previous_version(conn: Connection, model: str, alias: str) -> int | None:
    """The version a rollback of ``alias`` would go back to now (None if there is none)."""
    model_id = conn.execute(sa.select(models.c.id).where(models.c.name == model)).scalar()
    current = None if model_id is None else _open_period(conn, model_id, alias)
    if current is None or current.version is None:
        return None
    back = _undo_target(conn, current.undo_id, current.version)
    return None if back is None else int(back.version)


# -- internals ----------------------------------------------------------------------------------


def _cleared(
    conn: Connection,
    model: str,
    version: int,
    alias: str,
    *,
    override: bool,
    actor: str,
    reason: str,
    run: RunRef,
    action: str,
) -> tuple[Row[Any], int]:
    """Lock the model, clear the move (``guard.clear_move``) and record an override; (model row, version id)."""
    model_row = lock_model(conn, model)
    version_id = live_version_id(conn, model_row, version)
    clearance = guard.clear_move(conn, model, version, alias, override=override)
    guard.record_override(
        conn,
        clearance,
        model=model,
        version=version,
        alias=alias,
        actor=actor,
        reason=reason,
        run=run,
        now=utcnow(),
        action=action,
    )
    return model_row, version_id


_PERIOD: sa.Select[Any] = sa.select(
    alias_history.c.id,
    alias_history.c.undo_id,
    alias_history.c.version_id,
    alias_history.c.valid_from,
    model_versions.c.version,
    model_versions.c.deleted_at,
).select_from(alias_history.outerjoin(model_versions, model_versions.c.id == alias_history.c.version_id))


def _open_period(conn: Connection, model_id: int, alias: str) -> Row[Any] | None:
    return conn.execute(
        _PERIOD.where(
            alias_history.c.model_id == model_id,
            alias_history.c.alias == alias,
            alias_history.c.valid_to.is_(None),
        )
        .order_by(alias_history.c.valid_from.desc(), alias_history.c.id.desc())
        .limit(1)
    ).first()


def _undo_target(conn: Connection, undo_id: int | None, current: int) -> Row[Any] | None:
    """The first period along the undo pointers whose version is usable and not ``current``."""
    while undo_id is not None:
        period = conn.execute(_PERIOD.where(alias_history.c.id == undo_id)).first()
        if period is None:
            return None
        if period.version is not None and period.version != current and period.deleted_at is None:
            return period
        undo_id = period.undo_id  # always an older period: the walk ends
    return None


def _move(
    conn: Connection,
    model_row: Row[Any],
    alias: str,
    version: int,
    version_id: int,
    *,
    expected: int | None,
    actor: str,
    reason: str,
    run: RunRef,
    action: str,
    undo_id: int | None = UNSET,
) -> AliasMove:
    """The move itself, under the model lock; ``undo_id`` UNSET means 'undo to the period this closes'."""
    model = model_row.name
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
    opened = _open_period(conn, model_row.id, alias)
    if opened is not None:
        now = max(now, audit.as_utc(opened.valid_from))
    if undo_id is UNSET:
        undo_id = None if opened is None else opened.id
    if current is None:
        conn.execute(aliases.insert().values(model_id=model_row.id, alias=alias, version_id=version_id, updated_at=now))
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
        alias_history.insert().values(
            model_id=model_row.id, alias=alias, version_id=version_id, valid_from=now, undo_id=undo_id
        )
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


def _record_deployment(
    conn: Connection,
    model_row: Row[Any],
    move: AliasMove,
    version_id: int,
    *,
    target: str,
    endpoint: str,
    action: str,
    run: RunRef,
    actor: str,
) -> Deployment:
    """The deployment row of a move (or of a re-deploy of the version the alias already points at)."""
    now = utcnow()
    conn.execute(
        deployments.insert().values(
            model_id=model_row.id,
            version_id=version_id,
            alias=move.alias,
            target=target,
            endpoint=endpoint,
            action=str(action),
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=run.task_id,
            actor=actor,
            created_at=now,
        )
    )
    return Deployment(move.model, move.version, move.alias, target, endpoint, str(action), run, actor, now)
