"""Registering a version in as few round trips as the guarantees allow; soft-deleting one.

Every registration of a model queues on that model's row, and every audit event on the chain's
head row, so the time between taking those locks and committing bounds throughput. The lock is
taken by the statement that allocates the version number (``UPDATE ... RETURNING``, which also
returns the card and the bound policy, so unchanged ones cost no statement), then the audit head is
locked, then one statement writes the version, its audit event and the new head (a data-modifying
CTE on PostgreSQL, built from the tables and ``audit``'s event layout; three short statements on
SQLite). A retried Airflow task hits the run's unique constraint (``ON CONFLICT DO NOTHING``): the
transaction is rolled back, so the number it allocated is given back, and the caller returns the
version the first try created.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.exceptions import (
    ConflictError,
    NotFoundError,
    OwnershipError,
    PolicyViolationError,
    RegistryError,
)
from airflow_bridge.registry import audit, fastpath, policies, trust
from airflow_bridge.registry.events import AuditAction
from airflow_bridge.registry.locks import dialect_insert, live_version_id, lock_model, utcnow
from airflow_bridge.registry.records import ModelCard, ModelVersion, PolicyBinding, RunRef
from airflow_bridge.registry.tables import (
    GOVERNING_PREDICATE,
    aliases,
    audit_events,
    audit_seq,
    model_versions,
    models,
    version_tags,
)

CARD_FIELDS = ("description", "owner", "team", "intended_use", "limitations")
_VERSION_COLUMNS = tuple(c.name for c in model_versions.c if c.name not in ("id", "deleted_at"))


class AlreadyRegistered(Exception):
    """The run already registered a version; raised to roll the new allocation back."""


@dataclass(frozen=True)
class NewVersion:
    """Everything a registration writes, apart from the number the database allocates."""

    model: str
    artifact: ArtifactRef
    estimator: str
    task_kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    validation: dict[str, Any]
    data: dict[str, Any]
    spec_sha256: str
    run: RunRef
    actor: str
    reason: str


def _allocate_statement(next_seq: sa.ColumnElement[Any] | None) -> sa.Update:
    """Take the model's next version number; returns what registration needs of the model row (its card,
    binding and audit-chain head) and, on PostgreSQL, the global ``seq`` of its next event."""
    returned: list[sa.ColumnElement[Any]] = [
        models.c.id,
        models.c.name,
        models.c.latest_version,
        models.c.policy_sha256,
        models.c.policy_source,
        models.c.chain_seq,
        models.c.chain_hash,
        *(models.c[f] for f in CARD_FIELDS),
    ]
    # The predicate exactly as the partial index has it: both databases then read the newest such event
    # from the index in one step (a model's other events, one per version, are never scanned).
    governing = sa.select(sa.func.max(audit_events.c.seq)).where(
        audit_events.c.model == sa.bindparam("model_name"), sa.text(GOVERNING_PREDICATE)
    )
    returned.append(governing.scalar_subquery().label("governing_seq"))  # what governance_checked compares
    if next_seq is not None:
        returned.append(next_seq.label("next_seq"))
    return (
        models.update()
        .where(models.c.name == sa.bindparam("model_name"), models.c.deleted_at.is_(None))
        .values(latest_version=models.c.latest_version + 1)
        .returning(*returned)
    )


# Built once: statement construction is Python work, and it runs while the locks are held.
_ALLOCATE = {"postgresql": _allocate_statement(audit_seq.next_value()), "sqlite": _allocate_statement(None)}


def _pg_write_statement() -> sa.Select[Any]:
    """Version, its audit event and the new head in one round trip, each only if the previous step wrote;
    selects the version's row id, or nothing on a retried run."""
    values: dict[str, Any] = {name: sa.bindparam(f"version_{name}") for name in _VERSION_COLUMNS}
    version = (
        postgresql.insert(model_versions)
        .values(values)
        .on_conflict_do_nothing(constraint="uq_ab_model_versions_run")
        .returning(model_versions.c.id)
        .cte("v")
    )
    event = audit.insert_event_from(version).returning(audit_events.c.seq).cte("e")
    head = audit.advance_head_after(event).cte("h")
    return sa.select(version.c.id).add_cte(event, head)


_PG_WRITE = _pg_write_statement()


def register(
    conn: Connection,
    new: NewVersion,
    *,
    card: ModelCard | None,
    tags: dict[str, str],
    max_versions_per_day: int | None,
    policy: PolicyBinding | None,
) -> ModelVersion:
    """The whole registration, in the caller's transaction; raises ``AlreadyRegistered`` for a retried run.

    A model belongs to the team that first registered it: another team (or a writer naming no team, or a
    policy from another source) is refused under the model's lock, before anything is written.
    """
    model_row = allocate(conn, new.model, now=utcnow())
    check_ownership(conn, new.model, model_row, card, policy)
    now = utcnow()  # read under the lock, so timestamps follow the order changes are applied in
    wrote = update_card(conn, new.model, model_row, card, actor=new.actor, run=new.run, now=now)
    if max_versions_per_day is not None:
        check_quota(conn, new.model, model_row.id, max_versions_per_day, now=now, run=new.run)
    if policy is not None and (policy.sha256, policy.source) != (model_row.policy_sha256, model_row.policy_source):
        wrote |= policies.bind(
            conn, new.model, model_row, policy, actor=new.actor, reason=new.reason, run=new.run, now=now
        )
    number = int(model_row.latest_version)
    head = audit.lock_head(conn, new.model) if wrote else _head_of(conn, model_row)
    version_id, event_hash = write_version(conn, new, int(model_row.id), number, now, head=head)
    # What the row holds once this commits (the next registration may then take the one-statement path);
    # unknown when this registration changed the card or the binding.
    conn.info["ab_known"] = (
        None
        if wrote
        else fastpath.of_row(model_row, latest_version=number, chain_seq=head.seq + 1, chain_hash=event_hash)
    )
    for key, value in tags.items():
        conn.execute(version_tags.insert().values(version_id=version_id, key=key, value=value))
    return as_record(new, number, now, tags)


def _head_of(conn: Connection, model_row: Row[Any]) -> audit.Head:
    """The model's chain head as the allocating statement returned it (no event written since)."""
    if "next_seq" in model_row._mapping:
        next_seq = int(model_row.next_seq)
    else:
        next_seq = int(conn.execute(sa.select(audit.next_seq_column(conn))).scalar_one())
    head_hash = model_row.chain_hash or audit.genesis(model_row.name)
    return audit.Head(model_row.name, int(model_row.chain_seq), head_hash, next_seq)


def allocate(conn: Connection, model: str, *, now: dt.datetime) -> Row[Any]:
    """Lock the model row and take its next version number (creating the model on first use)."""
    statement = _ALLOCATE["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    row = conn.execute(statement, {"model_name": model}).first()
    if row is None:
        conn.execute(
            dialect_insert(conn)(models)
            .values(name=model, latest_version=0, created_at=now, **dict.fromkeys(CARD_FIELDS, ""))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(statement, {"model_name": model}).first()
    if row is None:
        deleted = conn.execute(sa.select(models.c.deleted_at).where(models.c.name == model)).scalar()
        raise RegistryError(f"model '{model}' was deleted on {deleted:%Y-%m-%d}; it takes no changes")
    return row


_GOVERNANCE_CHECKED: dict[tuple[str, str], tuple[tuple[Any, ...], int | None]] = {}
"""(registry, model) → (owner, team, policy binding) this process found vouched for by the chain, and the
newest event that could have changed them then: while both hold, the row need not be checked again."""


def governance_checked(conn: Connection, model: str, model_row: Row[Any]) -> None:
    """Refuse a model row whose owner, team or policy binding the chain does not explain (``trust.model_problem``);
    re-checked only when the row's fields or the events that set them changed since this process checked."""
    key = (fastpath._url(conn.engine), model)
    fields = tuple(model_row._mapping[f] for f in fastpath.GOVERNING)
    newest = model_row.governing_seq  # the newest event that set them, read by the allocating statement
    if _GOVERNANCE_CHECKED.get(key) == (fields, newest):
        return
    trust.require(trust.model_problem(conn, model_row))
    _GOVERNANCE_CHECKED[key] = (fields, newest)


def take_memo(conn: Connection) -> fastpath.Known | None:
    """What this transaction's registration leaves the model row as (call before it commits; None: unknown)."""
    memo: fastpath.Known | None = conn.info.pop("ab_known", None)
    return memo


def check_ownership(
    conn: Connection, model: str, model_row: Row[Any], card: ModelCard | None, policy: PolicyBinding | None
) -> None:
    """Refuse a registration by anyone but the model's team, or under a policy from another source."""
    if int(model_row.latest_version) > 1:  # an existing model: its row must be what the chain recorded
        governance_checked(conn, model, model_row)
    owner_team = model_row.team or ""
    team = card.team if card is not None else ""
    if owner_team and team != owner_team:
        who = f"team '{team}'" if team else "a writer that names no team"
        raise OwnershipError(
            f"model '{model}' belongs to team '{owner_team}' (owner {model_row.owner or '?'}); {who} cannot "
            "register versions of it. Use another model name (registry.model in the spec), or have an approver "
            f"of both teams transfer it: airflow-bridge models transfer {model} --team {team or 'TEAM'} "
            "--policy FILE (docs/governance.md#ownership)"
        )
    if policy is not None:
        refusal = policies.source_refusal(model, model_row, policy)
        if refusal:
            raise OwnershipError(refusal)


def check_quota(conn: Connection, model: str, model_id: int, quota: int, *, now: dt.datetime, run: RunRef) -> None:
    """Refuse a new version beyond ``quota`` in 24 hours; a retried run is not a new version."""
    recent = conn.execute(
        sa.select(sa.func.count())
        .select_from(model_versions)
        .where(model_versions.c.model_id == model_id, model_versions.c.created_at > now - dt.timedelta(days=1))
    ).scalar_one()
    if recent >= quota:
        if run.is_set and _run_version(conn, model_id, run) is not None:
            raise AlreadyRegistered
        raise PolicyViolationError(
            f"quota reached: model '{model}' already has {recent} versions registered in the last 24 hours "
            f"(team policy max_versions_per_day: {quota}); try again later or ask an engineer"
        )


def _run_version(conn: Connection, model_id: int, run: RunRef) -> int | None:
    return conn.execute(
        sa.select(model_versions.c.version).where(
            model_versions.c.model_id == model_id,
            model_versions.c.dag_id == run.dag_id,
            model_versions.c.run_id == run.run_id,
            model_versions.c.task_id == run.task_id,
        )
    ).scalar()


def update_card(
    conn: Connection,
    model: str,
    model_row: Row[Any],
    card: ModelCard | None,
    *,
    actor: str,
    run: RunRef,
    now: dt.datetime,
) -> bool:
    """Apply the non-empty fields of ``card``; an audited change only when something differs (True then)."""
    if card is None:
        return False
    before = {f: getattr(model_row, f) for f in CARD_FIELDS}
    after = {f: getattr(card, f) or before[f] for f in CARD_FIELDS}
    if after == before:
        return False
    conn.execute(models.update().where(models.c.id == model_row.id).values(**after))
    audit.append_event(
        conn,
        actor=actor,
        action=AuditAction.MODEL_CARD_UPDATED,
        now=now,
        model=model,
        run=run,
        before=before,
        after=after,
    )
    return True


def version_created_after(new: NewVersion, row: dict[str, Any]) -> dict[str, Any]:
    """The ``after`` of a ``version_created`` event: the artifact, the metrics and a digest of the whole row."""
    after = {
        "artifact_uri": new.artifact.uri,
        "sha256": new.artifact.sha256,
        "size": new.artifact.size,
        "metrics": new.metrics,
        "row_sha256": trust.version_digest(row),
    }
    if new.artifact.conn_id is not None:  # only then: events written before the field existed keep their layout
        after["conn_id"] = new.artifact.conn_id
    return after


def version_created_event(
    new: NewVersion,
    row: dict[str, Any],
    head: audit.Head,
    now: dt.datetime,
    *,
    key: bytes | None,
    principal: str | None,
) -> dict[str, Any]:
    """The ``version_created`` event of the version ``row`` after ``head`` (both registration paths write it)."""
    return audit.next_event(
        head,
        actor=new.actor,
        action=AuditAction.VERSION_CREATED,
        now=now,
        model=new.model,
        version=row["version"],
        reason=new.reason,
        run=new.run,
        after=version_created_after(new, row),
        principal=principal,
        key=key,
    )


def write_version(
    conn: Connection, new: NewVersion, model_id: int, number: int, now: dt.datetime, *, head: audit.Head
) -> tuple[int, str]:
    """Insert the version, its ``version_created`` event and the model's new chain head; returns the row id
    and the event's hash.

    Raises ``AlreadyRegistered`` when the run already has a version (its unique constraint).
    """
    row = _version_row(new, model_id, number, now)
    key, principal = audit.writer_options(conn)
    event = version_created_event(new, row, head, now, key=key, principal=principal)
    if conn.dialect.name == "postgresql":
        params = {f"version_{name}": value for name, value in row.items()}
        version_id = conn.execute(_PG_WRITE, params | audit.event_params(event)).scalar()
        if version_id is None:
            raise AlreadyRegistered
        return int(version_id), str(event["hash"])
    inserted = conn.execute(
        dialect_insert(conn)(model_versions)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["model_id", "dag_id", "run_id", "task_id"])
        .returning(model_versions.c.id)
    ).scalar()
    if inserted is None:
        raise AlreadyRegistered
    audit.write_event(conn, event)
    return int(inserted), str(event["hash"])


def _version_row(new: NewVersion, model_id: int, number: int, now: dt.datetime) -> dict[str, Any]:
    """The ``ab_model_versions`` row: exactly ``_VERSION_COLUMNS`` (the PostgreSQL statement binds each)."""
    return {
        "model_id": model_id,
        "version": number,
        "artifact_uri": new.artifact.uri,
        "artifact_sha256": new.artifact.sha256,
        "artifact_size": new.artifact.size,
        "artifact_conn_id": new.artifact.conn_id,
        "estimator": new.estimator,
        "task_kind": new.task_kind,
        "params": new.params,
        "metrics": new.metrics,
        "validation": new.validation,
        "data": new.data,
        "spec_sha256": new.spec_sha256,
        "dag_id": new.run.dag_id,
        "run_id": new.run.run_id,
        "task_id": new.run.task_id,
        "created_by": new.actor,
        "created_at": now,
    }


def existing_version(conn: Connection, model: str, run: RunRef) -> int:
    """The version ``run`` registered before (after ``AlreadyRegistered``)."""
    number = conn.execute(
        sa.select(model_versions.c.version)
        .select_from(model_versions.join(models, models.c.id == model_versions.c.model_id))
        .where(
            models.c.name == model,
            model_versions.c.dag_id == run.dag_id,
            model_versions.c.run_id == run.run_id,
            model_versions.c.task_id == run.task_id,
        )
    ).scalar()
    if number is None:  # pragma: no cover - the constraint said it exists
        raise NotFoundError(f"model '{model}' has no version of run {run.run_id}")
    return int(number)


def as_record(new: NewVersion, number: int, now: dt.datetime, tags: dict[str, str]) -> ModelVersion:
    """The registered version, built from what was written (no read-back under the locks)."""
    return ModelVersion(
        model=new.model,
        version=number,
        artifact=new.artifact,
        estimator=new.estimator,
        task_kind=new.task_kind,
        params=new.params,
        metrics=new.metrics,
        validation=new.validation,
        data=new.data,
        spec_sha256=new.spec_sha256,
        run=new.run,
        created_by=new.actor,
        created_at=now,
        tags=dict(tags),
    )


def delete_version(conn: Connection, model: str, version: int, *, actor: str, reason: str) -> None:
    """Soft-delete a version: kept for audit, no longer usable; refused while an alias points at it."""
    model_row = lock_model(conn, model)
    now = utcnow()  # read under the lock
    version_id = live_version_id(conn, model_row, version)
    held = conn.execute(sa.select(aliases.c.alias).where(aliases.c.version_id == version_id)).scalars().all()
    if held:
        raise ConflictError(f"{model} v{version} is behind alias(es) {', '.join(held)}; move them first")
    conn.execute(model_versions.update().where(model_versions.c.id == version_id).values(deleted_at=now))
    audit.append_event(
        conn, actor=actor, action=AuditAction.VERSION_DELETED, now=now, model=model, version=version, reason=reason
    )
