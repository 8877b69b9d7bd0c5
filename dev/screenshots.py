"""Regenerate the UI screenshots in docs/img/*.png from a real Airflow: ``.venv/bin/python dev/screenshots.py``.

Needs Debian's Chromium (``apt-get install -y chromium``) and the ``screenshots`` extra
(``websocket-client``: the script drives Chromium over its DevTools protocol, no driver needed).

It runs its own dev stack (``dev/stack`` with ``AB_STACK_NAME=docs``, port 28280, Redis DB 4; another
name, port and Redis URL with ``$AB_SCREENSHOTS_STACK``, ``$AB_SCREENSHOTS_PORT`` and ``$AB_SCREENSHOTS_REDIS``,
e.g. for two checkouts on one machine), so it never touches your ``dev`` stack or ``dag_specs/``: the dags
folder is a copy of ``dag_specs/`` in
``.stack/<name>-dags/`` plus one broken spec (``fraud_detector.yaml``). If that stack is already running
it is used as is and left running; otherwise it is started fresh (its own databases) and stopped at the
end (``--keep`` leaves it running). Through the REST API v2 it then un-pauses and triggers
``breast_cancer_classifier`` twice: the first run's approval is answered *Approve* by dana (the run
deploys), the second *Reject* by erin (``approve`` fails, the run is red). Each page is loaded with the
user's JWT in the ``_token`` cookie, like the Airflow UI after a login, at 1400x900.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "img"
NAME = os.environ.get("AB_SCREENSHOTS_STACK", "docs")
PORT = int(os.environ.get("AB_SCREENSHOTS_PORT", "28280"))
URL = f"http://127.0.0.1:{PORT}"
DAGS = REPO / ".stack" / f"{NAME}-dags"
STACK_ENV = {
    "AB_STACK_NAME": NAME,
    "AB_STACK_PORT": str(PORT),
    "AB_STACK_REDIS": os.environ.get("AB_SCREENSHOTS_REDIS", "redis://127.0.0.1:6379/4"),
    "AB_STACK_DAGS_FOLDER": str(DAGS),
}
DAG = "breast_cancer_classifier"
MODEL = "breast_cancer"
SEARCH = "breast_cancer_search"
"""Run twice: the second run's candidate (the same seeded search) fails the champion gate and stays a candidate."""
WIDTH, HEIGHT = 1400, 900
BROKEN_SPEC = """\
# Broken on purpose (dev/screenshots.py): a typo in the estimator and an unknown threshold key.
apiVersion: airflow-bridge/v1
kind: Experiment
name: fraud_detector
description: Flag fraudulent card transactions.
owner: alice
team: oncology
schedule: "@daily"
data:
  training:
    uri: data/transactions.csv
    target: is_fraud
model:
  estimator: sklearn.ensemble.RandomForestClasifier
validation:
  thresholds:
    accuracy: {minimum: 0.9}
"""


def say(message: str) -> None:
    print(f"screenshots: {message}", flush=True)


# --- the dev stack ---------------------------------------------------------------------------------


def stack(*args: str, check: bool = True) -> int:
    env = {**os.environ, **STACK_ENV}
    return subprocess.run([str(REPO / "dev" / "stack"), *args], env=env, check=check).returncode


def stack_running() -> bool:
    pids = REPO / ".stack" / NAME / "pids"
    return pids.is_dir() and any(pids.glob("*.pid"))


def prepare_dags() -> None:
    """A copy of dag_specs/ (refreshed) with one broken spec added."""
    if DAGS.exists():
        shutil.rmtree(DAGS)
    shutil.copytree(REPO / "dag_specs", DAGS, ignore=shutil.ignore_patterns("__pycache__"))
    (DAGS / "fraud_detector.yaml").write_text(BROKEN_SPEC)


# --- REST API v2 -----------------------------------------------------------------------------------


def http(method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    request = urllib.request.Request(
        URL + path, method=method, data=None if body is None else json.dumps(body).encode()
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def login(user: str) -> str:
    passwords = json.loads((REPO / ".stack" / NAME / "airflow" / "simple_auth_manager_passwords.json").read_text())
    return str(http("POST", "/auth/token", body={"username": user, "password": passwords[user]})["access_token"])


def wait(what: str, check: Any, timeout: float = 600, every: float = 3) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.HTTPError, urllib.error.URLError, KeyError):
            result = check()
            if result:
                return result
        time.sleep(every)
    sys.exit(f"screenshots: timed out waiting for {what}")


def task_state(token: str, run_id: str, task: str) -> str | None:
    return http("GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task}", token).get("state")


def run_state(token: str, run_id: str) -> str:
    return str(http("GET", f"/api/v2/dags/{DAG}/dagRuns/{quote(run_id, safe='')}", token)["state"])


def next_run(token: str, skip: set[str]) -> str:
    """The newest unfinished run not in ``skip`` (un-pausing starts a scheduled one), else a new one.

    The newest, because an approval of an older version is refused once a newer one is registered.
    """
    runs = http("GET", f"/api/v2/dags/{DAG}/dagRuns?order_by=-run_after&limit=100", token)["dag_runs"]
    for run in runs:
        if run["state"] in {"queued", "running"} and run["dag_run_id"] not in skip:
            say(f"using {DAG} run {run['dag_run_id']}")
            return str(run["dag_run_id"])
    run = http("POST", f"/api/v2/dags/{DAG}/dagRuns", token, {"logical_date": None})
    say(f"triggered {DAG} run {run['dag_run_id']}")
    return str(run["dag_run_id"])


def run_search_twice(token: str) -> None:
    """Two runs of the search example, one after the other: v1 goes live as staging, then a failed candidate."""
    wait(f"DAG {SEARCH} parsed", lambda: http("GET", f"/api/v2/dags/{SEARCH}", token))
    http("PATCH", f"/api/v2/dags/{SEARCH}", token, {"is_paused": False})
    for _ in range(2):
        run = http("POST", f"/api/v2/dags/{SEARCH}/dagRuns", token, {"logical_date": None})["dag_run_id"]
        say(f"{SEARCH} {run}: {search_run_done(token, run)}")


def search_run_done(token: str, run: str) -> str:
    path = f"/api/v2/dags/{SEARCH}/dagRuns/{quote(run, safe='')}"
    found = wait(
        f"{SEARCH} {run} finished", lambda: (s := http("GET", path, token)["state"]) in {"success", "failed"} and s
    )
    return str(found)


def wait_for_approval(token: str, run_id: str) -> None:
    say(f"waiting for {run_id} to reach approve (train, validate, register first)")

    def waiting() -> bool:
        state = task_state(token, run_id, "approve")
        if run_state(token, run_id) == "failed":
            sys.exit(f"screenshots: run {run_id} failed before approve; see .stack/{NAME}/logs/")
        return state in {"deferred", "awaiting_input"}

    wait(f"{run_id} approve deferred", waiting)


def answer(token: str, run_id: str, option: str) -> None:
    path = f"/api/v2/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"
    http("PATCH", path, token, {"chosen_options": [option], "params_input": {}})
    say(f"answered {option} on {run_id}")


def wait_run_done(token: str, run_id: str) -> str:
    state = wait(f"{run_id} finished", lambda: (s := run_state(token, run_id)) in {"success", "failed"} and s)
    say(f"{run_id}: {state}")
    return str(state)


# --- Chromium over the DevTools protocol ------------------------------------------------------------


class Browser:
    """One headless Chromium tab, driven over CDP (websocket-client)."""

    def __init__(self) -> None:
        import websocket

        self.profile = tempfile.mkdtemp(prefix="ab-screenshots-")
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            sys.exit("screenshots: no chromium on PATH (apt-get install -y chromium)")
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ]
        self.process = subprocess.Popen(
            [binary, *flags, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        port_file = Path(self.profile) / "DevToolsActivePort"
        wait("Chromium's DevTools port", lambda: port_file.exists() and port_file.read_text().strip(), 60, 0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def as_user(self, token: str) -> None:
        """Log in the way the UI does after /auth/login: the JWT in the ``_token`` cookie."""
        self.send("Network.clearBrowserCookies")
        self.send("Network.setCookie", name="_token", value=token, url=URL + "/", path="/")

    def colour_mode(self, mode: str) -> None:
        """Airflow's colour mode for the next pages: the UI (and the Models page) read localStorage 'theme'."""
        self.send("Page.navigate", url=URL + "/api/v2/version")
        time.sleep(1)
        self.evaluate(f"localStorage.setItem('theme', {json.dumps(mode)})")

    def shoot(
        self,
        name: str,
        path: str,
        expect: list[str],
        *,
        settle: float = 2.0,
        clicks: tuple[tuple[str, list[str]], ...] = (),
    ) -> None:
        """Open ``path``, wait until every ``expect`` text shows (and no spinner), save docs/img/NAME.png.

        ``clicks``: in turn, (text of a button to click once the page is ready, texts to wait for after it).
        """
        self.send("Page.navigate", url=URL + path)
        # Plugin pages embedded by the UI are in an iframe: look at its text too.
        text = (
            "(() => { let t = document.body ? document.body.innerText : '';"
            " for (const f of document.querySelectorAll('iframe')) {"
            "  try { t += f.contentDocument.body.innerText; } catch (e) {} } return t; })()"
        )
        spinner = (
            "[...document.querySelectorAll('.chakra-spinner, .chakra-skeleton')]"
            ".filter(e => e.getClientRects().length).length"
        )

        waiting_for = list(expect)

        def ready() -> bool:
            body = str(self.evaluate(text) or "")
            if "Sign in" in body or ("Login" in body and "password" in body.lower()):
                sys.exit(f"screenshots: {name}: the page shows a login form (token not accepted)")
            return all(e in body for e in waiting_for) and not self.evaluate(spinner)

        wait(f"{name} ({path}) to show {expect}", ready, timeout=90, every=1)
        for label, after in clicks:
            waiting_for[:] = after
            found = self.evaluate(
                "(() => { const b = [...document.querySelectorAll('button, a, [role=button]')]"
                f".find(e => e.innerText && e.innerText.includes({json.dumps(label)}) && e.getClientRects().length);"
                " if (!b) return null; b.scrollIntoView(); const r = b.getBoundingClientRect();"
                " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            )
            if found:  # a real mouse click: the UI's components listen to pointer events, not .click()
                x, y = found
                for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                    self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
            if not found:
                sys.exit(f"screenshots: {name}: no button '{label}' on {path}")
            wait(f"{name} after clicking '{label}' to show {after}", ready, timeout=60, every=1)
        time.sleep(settle)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{name}.png").write_bytes(base64.b64decode(data))
        say(f"docs/img/{name}.png  <- {path}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


# --- the scenario ----------------------------------------------------------------------------------


def scenario() -> None:
    admin, alice, dana, erin = (login(u) for u in ("admin", "alice", "dana", "erin"))
    wait(f"DAG {DAG} parsed", lambda: http("GET", f"/api/v2/dags/{DAG}", admin))
    wait("the fraud_detector placeholder", lambda: http("GET", "/api/v2/dags/fraud_detector", admin))
    http("PATCH", f"/api/v2/dags/{DAG}", alice, {"is_paused": False})

    approved = next_run(alice, set())
    wait_for_approval(admin, approved)
    with browser() as b:
        b.as_user(dana)
        b.shoot("required-actions", "/required_actions", [DAG, "approve"])
        b.shoot(
            "approval-form",
            f"/dags/{DAG}/runs/{quote(approved, safe='')}/tasks/approve/required_actions",
            ["Approve", "Reject", "Comment", "Triggered by"],
        )
    answer(dana, approved, "Approve")
    wait_run_done(admin, approved)

    rejected = next_run(alice, {approved})
    wait_for_approval(admin, rejected)
    answer(erin, rejected, "Reject")
    wait_run_done(admin, rejected)
    run_search_twice(alice)

    with browser() as b:
        b.as_user(admin)
        b.shoot("dag-list", "/dags", [DAG, "fraud_detector", "diabetes_progression"])
        b.shoot("run-rejected", f"/dags/{DAG}/runs/{quote(rejected, safe='')}", ["approve", "deploy"])
        b.shoot(
            "run-deployed",
            f"/dags/{DAG}/runs/{quote(approved, safe='')}/tasks/deploy/details",
            ["Extra Links", "Model version", "Model report", "Serving endpoint"],
        )
        b.shoot("invalid-spec", "/dags/fraud_detector", ["fraud_detector", "spec_error"])
        b.shoot(
            "import-errors",
            "/",
            ["Dag Import Error"],
            clicks=(
                ("Dag Import Error", ["airflow_bridge_spec_errors.py"]),
                ("airflow_bridge_spec_errors.py", ["fraud_detector.yaml"]),
            ),
        )
        b.as_user(alice)
        model_page = f"/airflow-bridge/models/{MODEL}"
        for mode, suffix in (("light", ""), ("dark", "-dark")):
            b.colour_mode(mode)
            b.shoot(f"models{suffix}", "/plugin/airflow-bridge-models", [MODEL, "production", "Pending approvals"])
            b.shoot(f"model{suffix}", model_page, [MODEL, "production", "Status", "rejected by erin", "roc_auc"])
        b.colour_mode("light")
        b.shoot("model-confirm", f"{model_page}/promote?version=3&alias=production", ["production: v2 → v3"])
        b.shoot("model-report", f"{model_page}/versions/1/report", [MODEL])
        b.shoot("compare", f"{model_page}/compare?v=production&v=3", ["v2 (production)", "gate "])
        b.shoot(
            "model-candidates",
            f"/airflow-bridge/models/{SEARCH}#candidates",
            ["Candidates that did not become a version", "failed gate", "vs staging"],
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave a stack this script started running")
    args = parser.parse_args(argv)
    started = not stack_running()
    if started:
        prepare_dags()
        say(f"starting a fresh dev stack '{NAME}' on {URL} (dags folder {DAGS})")
        stack("start", "--fresh")
    else:
        say(f"using the running dev stack '{NAME}' on {URL}")
    try:
        scenario()
    finally:
        if started and not args.keep:
            stack("stop", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
