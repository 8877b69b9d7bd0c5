"""Model ownership checked before anything runs: a spec naming another team's model is refused early.

The registry refuses it at ``register`` in any case (under the model's lock). When the registry can be
reached cheaply (a connection or URL in the environment or ``airflow.cfg``, or an existing local home),
``validate`` and the DAG factory read who owns each model (one query, never a migration or a write) and
turn such a spec into an error with its position, so the author learns it at review instead of at run time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from airflow_bridge.issues import SpecIssue
from airflow_bridge.spec.loader import LoadedSpec

_CACHE: dict[str, tuple[float, dict[str, str] | None]] = {}
CACHE_SECONDS = 60.0
"""How long the dag-processor reuses the owners it read (one query per folder parse at most)."""


def reachable_registry(
    conn_id: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    url: str | None = None,
    default_home: bool = True,
) -> str | None:
    """The registry URL ``validate`` or the factory may read without side effects, or None.

    An explicit URL, a connection or URL configured without Airflow's metadata DB, or the local home's
    SQLite file when it already exists (reading never creates it). ``default_home=False`` (the factory, in
    Airflow's processes): only a home named by ``--home`` or ``$AIRFLOW_BRIDGE_HOME``, never ``./.airflow-bridge``.
    """
    from airflow_bridge.config import HOME_ENV
    from airflow_bridge.exceptions import RegistryError
    from airflow_bridge.resolution import resolve_registry

    try:
        resolved = resolve_registry(conn_id, url=url, home=home)
    except RegistryError:  # the spec's connection is defined only in Airflow: register decides
        return None
    if resolved.source.startswith("local home"):
        if not (default_home or home or os.environ.get(HOME_ENV)):
            return None
        path = resolved.value.removeprefix("sqlite:///")
        return resolved.value if Path(path).is_file() else None
    return resolved.value


def model_owners(url: str, *, timeout: float = 3.0, cache: bool = False) -> dict[str, str] | None:
    """Model name → owning team, read in one query; None when the registry cannot be read now."""
    now = time.monotonic()
    if cache and url in _CACHE and now - _CACHE[url][0] < CACHE_SECONDS:
        return _CACHE[url][1]
    owners = _read_owners(url, timeout)
    _CACHE[url] = (now, owners)
    return owners


def _read_owners(url: str, timeout: float) -> dict[str, str] | None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not Path(database).is_file():
            return None
        engine = sa.create_engine(f"sqlite:///file:{database}?mode=ro&uri=true", poolclass=sa.pool.NullPool)
    else:
        args = {"connect_timeout": max(1, int(timeout))} if parsed.get_backend_name() == "postgresql" else {}
        engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args=args)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, team FROM ab_models WHERE deleted_at IS NULL")).all()
    except sa.exc.SQLAlchemyError:
        return None  # unreachable, or not a registry yet: register decides
    finally:
        engine.dispose()
    return {str(name): str(team or "") for name, team in rows}


def check_owners(
    results: Iterable[LoadedSpec],
    *,
    home: str | os.PathLike[str] | None = None,
    url: str | None = None,
    cache: bool = False,
    default_home: bool = True,
) -> list[str]:
    """Refuse each valid spec whose model belongs to another team in its registry (when readable); returns
    the registries that could not be read (ownership is then checked at ``register``)."""
    unread: list[str] = []
    by_registry: dict[str | None, list[LoadedSpec]] = {}
    for result in results:
        if result.ok and result.spec is not None:
            by_registry.setdefault(result.spec.registry.conn_id, []).append(result)
    for conn_id, group in by_registry.items():
        found = reachable_registry(conn_id, home=home, url=url, default_home=default_home)
        owners = model_owners(found, cache=cache) if found else None
        if owners is None:
            if found:
                unread.append(found)
            continue
        refuse_foreign_models(group, owners)
    return unread


def refuse_foreign_models(results: Iterable[LoadedSpec], owners: dict[str, str]) -> None:
    """Turn each valid spec whose model belongs to another team into an invalid one, with the reason."""
    for result in results:
        spec = result.spec
        if spec is None or not result.ok:
            continue
        team = owners.get(spec.registered_model, "")
        if team and team != spec.team:
            line, col = _team_position(result.source or result.path)
            result.issues.append(
                SpecIssue(
                    result.path,
                    line,
                    col,
                    "team",
                    f"model '{spec.registered_model}' belongs to team '{team}' in the registry; team '{spec.team}' "
                    "cannot register versions of it",
                    "choose another model name (registry.model), or have an approver of both teams transfer it: "
                    f"airflow-bridge models transfer {spec.registered_model} --team {spec.team} --policy FILE",
                )
            )
            result.spec = None


_TEAM_LINE = re.compile(r"^team:", re.MULTILINE)


def _team_position(path: str) -> tuple[int, int]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1, 1
    found = _TEAM_LINE.search(text)
    return (text.count("\n", 0, found.start()) + 1, 1) if found else (1, 1)
