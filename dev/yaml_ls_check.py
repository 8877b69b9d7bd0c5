"""Open YAML files in the real YAML language server (what VS Code's YAML extension runs) and print
what an editor would show: its diagnostics and, with --complete, its completions at a position.

A development check, not part of CI (it needs Node.js). Install the server once, then run:

    npm install --prefix /tmp/yls yaml-language-server@2
    .venv/bin/python dev/yaml_ls_check.py --server /tmp/yls/node_modules/.bin/yaml-language-server \\
        dag_specs/*.yaml
    .venv/bin/python dev/yaml_ls_check.py --server ... --complete 9:2 dag_specs/breast_cancer_classifier.yaml

Each file is checked against the schema its ``# yaml-language-server: $schema=...`` modeline names.
Exit 0 when no file has an error, 1 otherwise, 2 when the server cannot run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SETTINGS = {"yaml": {"validate": True, "completion": True, "hover": True, "schemaStore": {"enable": False}}}
SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}


class Server:
    """A yaml-language-server process spoken to over stdio (JSON-RPC with Content-Length headers)."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while line := self.proc.stdout.readline().strip():
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if not length:
            raise RuntimeError("the language server closed its output")
        message: dict[str, Any] = json.loads(self.proc.stdout.read(length))
        return message

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.handle(self.read())
            if message.get("id") == self.next_id and "method" not in message:
                return message.get("result")

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer the server's own requests (configuration, registrations) and keep its diagnostics."""
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif method and "id" in message:
            items = message.get("params", {}).get("items", [])
            result: Any = [SETTINGS.get(i.get("section", ""), SETTINGS) for i in items] if items else None
            self.send({"id": message["id"], "result": result})
        return message

    def wait_for_diagnostics(self, uri: str, seconds: float = 10.0) -> list[dict[str, Any]]:
        """The server publishes after it has loaded the schema; an empty first report may be early."""
        deadline = time.monotonic() + seconds
        self.diagnostics.pop(uri, None)
        # A round trip (a harmless request) gives the server time to validate and publish.
        while time.monotonic() < deadline:
            self.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
            if uri in self.diagnostics:
                time.sleep(0.3)  # a second report (after the schema loads) replaces the first
                self.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
                return self.diagnostics[uri]
            time.sleep(0.1)
        raise TimeoutError(f"no diagnostics for {uri} within {seconds}s")

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=5)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--server", default="yaml-language-server", help="the server's executable")
    parser.add_argument("--complete", metavar="LINE:COL", help="also list completions at this 1-based position")
    args = parser.parse_args()
    executable = shutil.which(args.server)
    if executable is None:
        print(f"error: {args.server} not found; install it with: npm install --prefix DIR yaml-language-server")
        return 2
    server = Server([executable, "--stdio"])
    root = Path.cwd().resolve().as_uri()
    server.request("initialize", {"processId": None, "rootUri": root, "capabilities": {}})
    server.notify("initialized", {})
    server.notify("workspace/didChangeConfiguration", {"settings": SETTINGS})
    errors = 0
    try:
        for path in args.files:
            uri = path.resolve().as_uri()
            text = path.read_text(encoding="utf-8")
            server.notify(
                "textDocument/didOpen",
                {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
            )
            found = server.wait_for_diagnostics(uri)
            print(f"{path}: {len(found)} diagnostic(s)")
            for item in found:
                start = item["range"]["start"]
                severity = SEVERITY.get(item.get("severity", 1), "error")
                errors += severity == "error"
                print(f"  {path}:{start['line'] + 1}:{start['character'] + 1}: {severity}: {item['message']}")
            if args.complete:
                line, col = (int(n) - 1 for n in args.complete.split(":"))
                result = server.request(
                    "textDocument/completion",
                    {"textDocument": {"uri": uri}, "position": {"line": line, "character": col}},
                )
                items = result.get("items", []) if isinstance(result, dict) else result or []
                print(f"  completions at {args.complete}: {', '.join(sorted(i['label'] for i in items))}")
    finally:
        server.close()
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
