"""The bearer token of ``serve``: from an Airflow connection's password or ``$AIRFLOW_BRIDGE_SERVE_TOKEN``.

The connection is read from ``AIRFLOW_CONN_<ID>`` (JSON or URI) as every CLI entry point reads
connections, without importing Airflow. The check itself is in :class:`~.limits.RequestGuard`.
"""

from __future__ import annotations

import os

from airflow_bridge.exceptions import BridgeError

TOKEN_ENV = "AIRFLOW_BRIDGE_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 16


def serve_token(conn_id: str | None = None) -> str | None:
    """The token requests must present, or None (no authentication): ``conn_id``'s password when given,
    else ``$AIRFLOW_BRIDGE_SERVE_TOKEN``. Too short a token is refused rather than used."""
    from airflow_bridge.resolution import env_connection

    if conn_id:
        fields = env_connection(conn_id)
        if fields is None:
            raise BridgeError(
                f"connection '{conn_id}' (--token-conn-id) is not defined: set AIRFLOW_CONN_{conn_id.upper()} "
                "in this process's environment; its password is the token"
            )
        token = fields.get("password") or ""
        source = f"the password of connection '{conn_id}'"
        if not token:
            raise BridgeError(f"connection '{conn_id}' (--token-conn-id) has no password: it holds the token")
    else:
        token = os.environ.get(TOKEN_ENV, "")
        source = f"${TOKEN_ENV}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
        raise BridgeError(
            f"the serving token ({source}) must be at least {MIN_TOKEN_LENGTH} characters without surrounding "
            "spaces; e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token
