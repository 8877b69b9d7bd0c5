"""A small OpenLineage HTTP endpoint for the dev stack: appends each event to a JSON-lines file."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EVENTS = Path(os.environ.get("AB_LINEAGE_SINK_FILE", "lineage-events.jsonl"))
PORT = int(os.environ.get("AB_LINEAGE_SINK_PORT", "5000"))


class Sink(BaseHTTPRequestHandler):
    """POST /api/v1/lineage stores the event; GET /health answers ok."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with EVENTS.open("a") as out:
            out.write(json.dumps(event) + "\n")
        self.send_response(201)
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: the events file is the log
        return


if __name__ == "__main__":
    EVENTS.parent.mkdir(parents=True, exist_ok=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Sink).serve_forever()
