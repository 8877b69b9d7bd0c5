"""The model registry: versions, aliases, deployments and the audit trail, on SQLite or PostgreSQL.

Guarantees come from the database, not from luck: each model row is locked while its versions or
aliases change, so version numbers are unique and increasing under any number of writers; a
registration retried by the same Airflow task returns the version it created; aliases move only
by compare-and-set; every change appends a hash-chained audit event in the same transaction.

:class:`ModelRegistry` owns the engine and the transactions; the work is done by functions of a
connection, by responsibility: ``registration`` (versions), ``aliases`` (moves, deployments,
rollbacks), ``policies``, ``candidates``, ``queries`` (reads), ``approvals`` and ``audit`` (the trail).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from airflow_bridge.exceptions import PolicyViolationError
from airflow_bridge.registry import (
    aliases,
    approvals,
    audit,
    candidates,
    chain,
    fastpath,
    guard,
    policies,
    queries,
    registration,
    trust,
)
from airflow_bridge.registry.aliases import UNSET
from airflow_bridge.registry.engine import create_registry_engine, describe_url, migrate, translate_errors
from airflow_bridge.registry.events import DECISIONS_BY_APPROVERS, NOTES, AuditAction
from airflow_bridge.registry.locks import lock_model, utcnow

if TYPE_CHECKING:
    from airflow_bridge.governance.enforcement import GoverningPolicy
from airflow_bridge.artifacts import ArtifactRef
from airflow_bridge.registry.records import (
    AliasMove,
    AuditEvent,
    Candidate,
    Deployment,
    ModelCard,
    ModelRecord,
    ModelVersion,
    PolicyBinding,
    RunRef,
)


class ModelRegistry:
    """Read and change the registry at ``url`` (any SQLAlchemy URL; the password never reaches logs).

    ``sqlite://`` is a private in-memory registry (one shared connection), handy for unit tests.
    ``audit_key`` (held outside the database) signs every event written and is required on every event
    honoured; ``principal`` is recorded on every event as who really runs this client (``acting_as``).
    """

    def __init__(self, url: str | sa.URL, *, audit_key: bytes | None = None, principal: str | None = None) -> None:
        self.url = url
        self.engine = create_registry_engine(url)
        self.audit_key = audit_key
        self.principal = principal

    def __repr__(self) -> str:
        return f"ModelRegistry({describe_url(self.url)})"

    def _autocommit(self) -> sa.Engine:
        """An engine whose connections stay in autocommit: the one-statement writes (PostgreSQL)."""
        found: sa.Engine | None = self.__dict__.get("_autocommit_engine")
        if found is None:
            found = self.__dict__["_autocommit_engine"] = create_registry_engine(self.url, autocommit=True)
        return found

    def acting_as(self, principal: str | None) -> ModelRegistry:
        """This registry (same engine and key) recording ``principal`` on every event it writes."""
        clone = object.__new__(ModelRegistry)
        clone.__dict__.update(self.__dict__, principal=principal)
        return clone

    @property
    def embedded(self) -> bool:
        """A local SQLite file (one user's home), not a registry shared through a database server."""
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()
        if "_autocommit_engine" in self.__dict__:
            self.__dict__["_autocommit_engine"].dispose()

    @contextlib.contextmanager
    def transaction(self, action: str) -> Iterator[Connection]:
        """One transaction; connection failures surface as retryable ``RegistryUnavailableError``."""
        with translate_errors(self.url, action):
            migrate(self.engine)
            with self.engine.connect() as connection:
                connection.execution_options(
                    **{audit.WRITER_KEY: self.audit_key, audit.WRITER_PRINCIPAL: self.principal}
                )
                transaction = connection.begin()
                try:
                    yield connection
                except BaseException:
                    transaction.rollback()
                    raise
                with translate_errors(self.url, action, committing=True):
                    transaction.commit()

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
            options: dict[str, Any] = {"ab_readonly": True, audit.WRITER_KEY: self.audit_key}
            if self.engine.dialect.name == "postgresql":
                options["isolation_level"] = "REPEATABLE READ"
            with self.engine.connect().execution_options(**options) as connection, connection.begin():
                yield connection

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
        policy: PolicyBinding | None = None,
    ) -> ModelVersion:
        """Record a new version; the same (dag_id, run_id, task_id) always gets the same version.

        ``max_versions_per_day`` is a quota on new versions of this model in the last 24 hours,
        checked under the model's lock (so concurrent writers cannot exceed it). ``policy`` binds the
        model to that team policy in the same transaction (audited, and only if it changed).
        """
        new = registration.NewVersion(
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
        found = fastpath.known(self.engine, model) if fastpath.supports(self.engine) else None
        if fastpath.applies(found, card, policy, tags=bool(tags), quota=max_versions_per_day is not None):
            with translate_errors(self.url, action):
                migrate(self.engine)
            written = fastpath.register(
                self.engine, self._autocommit(), new, key=self.audit_key, principal=self.principal
            )
            if written is not None:
                return registration.as_record(new, written[0], written[1], {})
        try:
            with self.transaction(action) as conn:
                version = registration.register(
                    conn, new, card=card, tags=tags or {}, max_versions_per_day=max_versions_per_day, policy=policy
                )
                memo = registration.take_memo(conn)
            fastpath.remember(self.engine, model, memo)  # committed: what the model row holds now
            return version
        except registration.AlreadyRegistered:
            # A retried task: its first try registered a version; the allocation above was rolled back.
            with self.reading(action) as conn:
                return queries.get_version(conn, model, registration.existing_version(conn, model, new.run))

    def delete_version(self, model: str, version: int, *, actor: str, reason: str) -> None:
        """Soft-delete a version: kept for audit, no longer deployable; refused while an alias points at it."""
        with self.transaction(f"delete {model} v{version}") as conn:
            registration.delete_version(conn, model, version, actor=actor, reason=reason)

    def bind_policy(
        self, model: str, binding: PolicyBinding, *, actor: str, reason: str = "", run: RunRef | None = None
    ) -> bool:
        """Bind ``model`` to a team policy (audited); False if it already was. NotFoundError if unknown;
        ``OwnershipError`` for a policy from another source than the bound one."""
        with self.transaction(f"bind a policy to '{model}'") as conn:
            model_row = lock_model(conn, model)
            return policies.bind(
                conn, model, model_row, binding, actor=actor, reason=reason, run=run or RunRef(), now=utcnow()
            )

    def bound_policy(self, model: str) -> PolicyBinding | None:
        """The team policy ``model`` is bound to, or None."""
        with self.reading(f"read the policy of '{model}'") as conn:
            return policies.bound(conn, model)

    def governing_policy(self, model: str) -> GoverningPolicy:
        """The policy that governs ``model``'s aliases (bound, else configured, else none)."""
        with self.reading(f"read the policy of '{model}'") as conn:
            return guard.governing(conn, model)

    def transfer(
        self, model: str, *, team: str, binding: PolicyBinding, actor: str, reason: str, run: RunRef | None = None
    ) -> None:
        """Give ``model`` to ``team`` under ``binding`` (audited): ``actor`` must approve for both teams."""
        with self.transaction(f"transfer '{model}' to team '{team}'") as conn:
            guard.transfer(conn, model, team=team, binding=binding, actor=actor, reason=reason, run=run or RunRef())

    # -- reads ----------------------------------------------------------------------------------

    def list_models(self, *, include_deleted: bool = False) -> list[ModelRecord]:
        with self.reading("list models") as conn:
            return queries.list_models(conn, include_deleted=include_deleted)

    def get_model(self, name: str) -> ModelRecord:
        with self.reading(f"read model '{name}'") as conn:
            return queries.get_model(conn, name)

    def get_version(self, model: str, version: int) -> ModelVersion:
        with self.reading(f"read {model} v{version}") as conn:
            return queries.get_version(conn, model, version)

    def list_versions(self, model: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        with self.reading(f"list versions of '{model}'") as conn:
            return queries.list_versions(conn, model, include_deleted=include_deleted)

    def alias_version(self, model: str, alias: str) -> ModelVersion | None:
        """The version an alias points at now, or None."""
        with self.reading(f"resolve alias '{alias}' of '{model}'") as conn:
            return queries.alias_version(conn, model, alias)

    def resolve(self, model: str, ref: str | int) -> ModelVersion:
        """A version by number (``7``, ``"v7"``) or by alias (``"production"``)."""
        with self.reading(f"resolve '{ref}' of '{model}'") as conn:
            return queries.resolve(conn, model, ref)

    def alias_history(self, model: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every period each alias pointed at a version, oldest first."""
        with self.reading(f"read alias history of '{model}'") as conn:
            return queries.alias_periods(conn, model, alias)

    def previous_alias_version(self, model: str, alias: str) -> int | None:
        """The version a rollback of ``alias`` goes back to now: rollbacks undo moves, so rolling back
        twice from v8 (after v6 → v7 → v8) reaches v6, not v8 again. Deleted versions are skipped."""
        with self.reading(f"read alias history of '{model}'") as conn:
            return aliases.previous_version(conn, model, alias)

    def deployments(self, model: str) -> list[Deployment]:
        with self.reading(f"list deployments of '{model}'") as conn:
            return queries.model_deployments(conn, model)

    # -- candidates -----------------------------------------------------------------------------

    def record_candidate(self, candidate: Candidate, *, keep_last: int, keep_days: float | None) -> int:
        """Record ``candidate`` (this client's principal on it), then prune its model's unregistered candidates
        outside the retention, in one transaction; the number pruned."""
        found = dataclasses.replace(candidate, principal=self.principal)
        with self.transaction(f"record candidate '{candidate.candidate_id}' of '{candidate.model}'") as conn:
            candidates.record(conn, found)
            return candidates.prune(
                conn, candidate.model, keep_last=keep_last, keep_days=keep_days, now=found.created_at
            )

    def list_candidates(self, model: str, *, limit: int | None = None, offset: int = 0) -> list[Candidate]:
        """``model``'s candidates, newest first, each with the version registered from its run (if any)."""
        with self.reading(f"list candidates of '{model}'") as conn:
            return candidates.list_for(conn, model, limit=limit, offset=offset)

    def get_candidate(self, model: str, candidate_id: str) -> Candidate:
        with self.reading(f"read candidate '{candidate_id}' of '{model}'") as conn:
            return candidates.get(conn, model, candidate_id)

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
        override: bool = False,
    ) -> AliasMove:
        """Point ``alias`` at ``version``; with ``expected``, only if it still points at that version.

        Cleared under the model's lock like every move: a protected alias needs a granted approval the
        chain vouches for, or ``override`` where the governing policy allows it (audited).
        """
        with self.transaction(f"move alias '{alias}' of '{model}'") as conn:
            return aliases.move(
                conn,
                model,
                alias,
                version,
                expected=expected,
                actor=actor,
                reason=reason,
                run=run or RunRef(),
                override=override,
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
        action: str = AuditAction.DEPLOYED,
        override: bool = False,
        rollout_note: dict[str, Any] | None = None,
    ) -> Deployment:
        """Move the alias and record the deployment in one transaction (both happen or neither); cleared
        like ``move_alias``."""
        with self.transaction(f"deploy {model} v{version} to '{alias}'") as conn:
            return aliases.deploy(
                conn,
                model,
                version,
                alias=alias,
                target=target,
                endpoint=endpoint,
                expected=expected,
                actor=actor,
                reason=reason,
                run=run or RunRef(),
                action=action,
                override=override,
                rollout_note=rollout_note,
            )

    def rollback(
        self,
        model: str,
        alias: str,
        *,
        actor: str,
        reason: str = "",
        target: str = "local",
        endpoint: str = "",
        run: RunRef | None = None,
        to_version: int | None = None,
        override: bool = False,
    ) -> Deployment:
        """Move ``alias`` back to the version it pointed at before its last move (see ``previous_alias_version``).

        ``to_version``: the version the caller checked; if the rollback would now go elsewhere, nothing moves.
        """
        with self.transaction(f"roll back alias '{alias}' of '{model}'") as conn:
            return aliases.rollback(
                conn,
                model,
                alias,
                actor=actor,
                reason=reason,
                target=target,
                endpoint=endpoint,
                run=run or RunRef(),
                to_version=to_version,
                override=override,
            )

    # -- the audit trail ------------------------------------------------------------------------

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
        """Append an audit event that changes and grants nothing (``events.NOTES``: refusals, requests).

        Changes are written by the calls that make them (after their checks); approvals by ``record_decision``.
        """
        if action not in NOTES:
            raise PolicyViolationError(
                f"'{action}' is not written with record_event: it is written by the registry call that makes the "
                "change after checking it (record_decision for approvals; deploy, move_alias, rollback for moves)"
            )
        with self.transaction(f"record '{action}' in the audit trail") as conn:
            return _append(conn, action, actor, model, version, alias, reason, run, before, after)

    def record_decision(
        self,
        action: str,
        *,
        actor: str,
        model: str,
        version: int,
        alias: str,
        reason: str,
        run: RunRef | None = None,
        after: Any = None,
    ) -> int:
        """Record an answer to an approval (granted or rejected) by ``actor``, who must be an allowed approver
        under the governing policy (never an author); a grant needs a version the chain vouches for."""
        if action not in DECISIONS_BY_APPROVERS:
            raise PolicyViolationError(f"'{action}' is not an approval decision")
        with self.transaction(f"record '{action}' of {model} v{version}") as conn:
            guard.clear_decision(
                conn, model, version, alias, approver=actor, approve=action == AuditAction.APPROVAL_GRANTED
            )
            return _append(conn, action, actor, model, version, alias, reason, run, None, after)

    def check_move(self, model: str, version: int, alias: str, *, override: bool = False) -> guard.Clearance:
        """What a move of ``alias`` to ``version`` would be cleared by now; raises what the move would raise."""
        with self.reading(f"check a move of '{alias}' of '{model}'") as conn:
            return guard.clear_move(conn, model, version, alias, override=override)

    def trusted_version(self, model: str, ref: str | int) -> ModelVersion:
        """``resolve(model, ref)``, checked against the audit chain: the version row is the one its
        ``version_created`` event recorded and, for an alias, the alias is where its last move put it.
        Use it before anything is unpickled or served (``AuditMismatchError`` otherwise)."""
        with self.reading(f"resolve '{ref}' of '{model}'") as conn:
            found = queries.resolve(conn, model, ref)
            row = guard.model_row(conn, model, lock=False)
            trust.require(trust.version_problem(conn, model, guard.version_row(conn, row.id, model, found.version)))
            if not str(ref).lstrip("v").isdigit():
                trust.require(trust.alias_problem(conn, model, str(ref), found.version))
            return found

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        """Every audit stream's head (the global one, and each model's): what an anchor records."""
        with self.reading("read the audit chain heads") as conn:
            return chain.heads(conn)

    def audit_events(self, *, model: str | None = None, since_seq: int = 0) -> list[AuditEvent]:
        with self.reading("read the audit trail") as conn:
            return audit.events(conn, model=model, since_seq=since_seq)

    def approval_decision(
        self, model: str, version: int, alias: str, *, run_id: str | None = None
    ) -> AuditEvent | None:
        """The newest approval decision recorded for ``model`` v``version`` behind ``alias`` (or None)."""
        with self.reading(f"read approvals of {model} v{version}") as conn:
            return approvals.decision(conn, model, version, alias, run_id=run_id)

    def approval_events(self, model: str, version: int, alias: str) -> list[AuditEvent]:
        """Every approval event (request, answers, refusals) for ``model`` v``version`` behind ``alias``."""
        with self.reading(f"read approvals of {model} v{version}") as conn:
            return approvals.history(conn, model, version, alias)

    def pending_approvals(self, model: str | None = None) -> list[AuditEvent]:
        """Approval requests nobody has closed yet (granted, rejected, timed out, superseded), oldest first."""
        with self.reading("read pending approvals") as conn:
            return approvals.pending(conn, model)

    def verify_audit(self, anchors: Sequence[chain.Heads] = ()) -> chain.ChainReport:
        """Recompute every chain (signatures with the audit key; ``anchors``: heads from write-once storage)."""
        with self.reading("verify the audit trail") as conn:
            return chain.verify_chain(conn, key=self.audit_key, anchors=anchors)

    def reconcile(self) -> list[str]:
        """Every model, version and alias row the audit chain does not explain (``trust.reconcile``)."""
        with self.reading("reconcile the registry with the audit trail") as conn:
            return trust.reconcile(conn)


def _append(  # noqa: PLR0917 - the event's fields, in the order of the event
    conn: Connection,
    action: str,
    actor: str,
    model: str | None,
    version: int | None,
    alias: str | None,
    reason: str,
    run: RunRef | None,
    before: Any,
    after: Any,
) -> int:
    """One audit event in ``conn``'s transaction (``record_event`` and ``record_decision`` after their checks)."""
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
