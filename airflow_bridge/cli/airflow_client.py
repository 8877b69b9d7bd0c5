"""The CLI as a client of Airflow's API server: ``login``, and changes made as the user Airflow knows.

On a shared registry (PostgreSQL), the CLI does not act on a name it is given: approvals and moves go to
the Models API of the Airflow API server (``/airflow-bridge/api``) with the caller's Airflow token, and
the auth manager says who they are. ``airflow-bridge login`` gets a token from Airflow's ``/auth/token``
and keeps it in ``~/.config/airflow-bridge/credentials.json`` (mode 0600); ``AIRFLOW_BRIDGE_AIRFLOW_TOKEN``
overrides it. The URL comes from ``--airflow-url``, ``$AIRFLOW_BRIDGE_AIRFLOW_URL``,
``[airflow_bridge] airflow_url`` or the one saved by ``login``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated, Any

import typer

from airflow_bridge.exceptions import BridgeError, RequestError

URL_ENV = "AIRFLOW_BRIDGE_AIRFLOW_URL"
TOKEN_ENV = "AIRFLOW_BRIDGE_AIRFLOW_TOKEN"
CREDENTIALS_ENV = "AIRFLOW_BRIDGE_CREDENTIALS"
API_PREFIX = "/airflow-bridge/api"

airflow_url_option = Annotated[
    str | None,
    typer.Option(
        "--airflow-url",
        help=f"Airflow API server to act through (a shared registry needs it) [env {URL_ENV}; "
        "[airflow_bridge] airflow_url; the URL saved by 'airflow-bridge login']",
    ),
]


class AirflowRequestError(BridgeError):
    """The Airflow API server refused or could not answer a request (the message says why and what to do)."""


def credentials_path() -> Path:
    explicit = os.environ.get(CREDENTIALS_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "airflow-bridge" / "credentials.json"


def _saved() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def configured_url(explicit: str | None = None, *, saved: bool = True) -> str | None:
    """The Airflow URL to act through: ``--airflow-url`` → environment → config → (``saved``) the login's."""
    from airflow_bridge.config import bridge_config

    found = explicit or os.environ.get(URL_ENV) or bridge_config("airflow_url")
    if not found and saved:
        urls = list(_saved())
        found = urls[0] if len(urls) == 1 else None
    return found.rstrip("/") if found else None


def token_for(url: str) -> str:
    token = os.environ.get(TOKEN_ENV) or (_saved().get(url) or {}).get("token")
    if not token:
        raise AirflowRequestError(f"not logged in to {url}: run 'airflow-bridge login --airflow-url {url}' first")
    return str(token)


def save_token(url: str, user: str, token: str) -> Path:
    """Keep the token for ``url`` (mode 0600: it is a credential)."""
    import datetime as dt

    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _saved()
    data[url] = {"user": user, "token": token, "saved_at": dt.datetime.now(dt.UTC).isoformat()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


def request(url: str, method: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
    """One call to the Airflow API server; errors become ``AirflowRequestError`` with the server's reason."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=httpx.Timeout(30, read=900))
    except httpx.HTTPError as exc:
        raise AirflowRequestError(f"cannot reach Airflow at {url}: {exc}; nothing changed") from None
    if reply.status_code < 300:
        return reply.json() if reply.content else None
    detail = _detail(reply)
    if reply.status_code == 401:
        raise AirflowRequestError(
            f"Airflow at {url} did not accept your token ({detail}): it expired or was revoked; run "
            f"'airflow-bridge login --airflow-url {url}' again"
        )
    if reply.status_code == 422:
        raise RequestError(f"Airflow at {url} refused the request: {detail}")
    raise AirflowRequestError(f"Airflow at {url} answered {reply.status_code}: {detail}")


def _detail(reply: Any) -> str:
    try:
        data = reply.json()
    except ValueError:
        return reply.text[:500] or reply.reason_phrase
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail if isinstance(d, dict)
        )
    return str(detail)


def api(url: str, method: str, path: str, body: Any = None) -> Any:
    """A Models API call as the logged-in user."""
    return request(url, method, f"{API_PREFIX}{path}", token=token_for(url), body=body)


def login(
    airflow_url: Annotated[str | None, typer.Option("--airflow-url", help="The Airflow API server's URL.")] = None,
    username: Annotated[str | None, typer.Option("--username", "-u", help="Your Airflow user name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (scripts).")
    ] = False,
) -> None:
    """Log in to Airflow: keep a token so changes on a shared registry are made as you (docs/governance.md)."""
    import getpass
    import sys

    from airflow_bridge.cli.common import console, fail

    url = configured_url(airflow_url)
    if url is None:
        raise fail("which Airflow? pass --airflow-url URL (e.g. http://127.0.0.1:8080)", code=2)
    user = username or typer.prompt("Airflow user")
    secret = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"Password for {user}: ")
    try:
        reply = request(url, "POST", "/auth/token", body={"username": user, "password": secret})
        token = str((reply or {}).get("access_token") or "")
        if not token:
            raise AirflowRequestError(f"Airflow at {url} gave no token")
        who = request(url, "GET", f"{API_PREFIX}/whoami", token=token)
    except BridgeError as exc:
        raise fail(f"cannot log in to {url}: {exc}") from None
    path = save_token(url, str(who["user"]), token)
    console.print(f"logged in to {url} as [bold]{who['user']}[/]; token kept in {path} (mode 0600)")
