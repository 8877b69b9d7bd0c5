"""What one client may cost the server: body size, read time, requests in flight, header bytes.

Uvicorn has no request-read timeout (``timeout_keep_alive`` only closes idle connections between
requests) and its ``limit_concurrency`` counts connections, so a few hundred half-sent requests would
also turn ``/health`` away. Hence two guards here:

- :class:`RequestGuard`, an ASGI middleware in front of the application: bearer token, declared
  body size, requests in flight (``/health`` is never counted nor refused), then the body read
  whole within ``read_timeout`` and at most ``max_body_bytes`` (408, 413), before any route runs.
- :func:`guarded_protocol`, uvicorn's HTTP protocol with a deadline and a size cap on the request
  headers, so a client that never finishes its headers (slowloris) is dropped too.

Every refusal is a short JSON ``{"detail": ...}`` and closes the connection (the rest of the body is
never read).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_ERROR_BYTES = 2048
"""No error body is longer than this, whatever the input."""
OPEN_PATHS = frozenset({"/health"})
"""Never counted against the in-flight limit, never behind the token: a probe must always get through."""


@dataclass(frozen=True)
class ServeLimits:
    """The limits of one server; every field is a ``serve`` option (docs/serving.md has the table)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000
    read_timeout: float = 15.0
    """Seconds for the request headers to arrive, then again for the body."""
    max_in_flight: int = 64
    """Requests being read, queued or predicted at once (``/health`` excluded); more get 503."""
    max_connections: int = 512
    """Uvicorn's ``limit_concurrency``: beyond this many open connections every request gets 503."""
    keep_alive: int = 5
    predict_threads: int = 4
    """Threads that read bodies over 16 KiB and write answers of over 200 rows (and predict when batching is off)."""
    max_header_bytes: int = 64 * 1024


def error_body(detail: str) -> bytes:
    """``{"detail": detail}`` as JSON of at most ``MAX_ERROR_BYTES``, cut with an ellipsis if need be."""
    text = "".join(c if c.isprintable() else " " for c in detail)
    body = json.dumps({"detail": text}).encode()
    while len(body) > MAX_ERROR_BYTES:
        text = text[: len(text) * 3 // 4]
        body = json.dumps({"detail": text + "…"}).encode()
    return body


async def send_error(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A complete JSON error response that closes the connection."""
    body = error_body(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Gone(Exception):
    """The client disconnected while sending its body: nothing to answer."""


class RequestGuard:
    """ASGI middleware: token, body size, read deadline and in-flight limit before the application runs."""

    def __init__(self, app: ASGIApp, limits: ServeLimits, token: str | None = None) -> None:
        self.app = app
        self.limits = limits
        self.token = token.encode() if token else None
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # later duplicates win; content-length duplicates are refused by the parser
        if self.token is not None and not self._authorized(headers.get(b"authorization", b"")):
            await send_error(
                send,
                401,
                "this server needs 'Authorization: Bearer <token>' (the token of --token-conn-id or "
                "AIRFLOW_BRIDGE_SERVE_TOKEN)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, 400, "Content-Length is not a number")
                return
            if len(declared) > 15 or int(declared) > self.limits.max_body_bytes:
                size = f"{int(declared)} bytes" if len(declared) <= 15 else "over 10**15 bytes"
                await send_error(send, 413, self._too_large(size))
                return
        if self.in_flight >= self.limits.max_in_flight:
            await send_error(
                send,
                503,
                f"busy: {self.in_flight} requests in progress (--max-in-flight); retry shortly",
                [(b"retry-after", b"1")],
            )
            return
        self.in_flight += 1
        try:
            try:
                body = await self._read_body(receive)
            except _Refused as refused:
                await send_error(send, refused.status, refused.detail)
                return
            except _Gone:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    def _authorized(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        assert self.token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)

    def _too_large(self, size: str) -> str:
        return (
            f"the body is {size}; this server takes at most {self.limits.max_body_bytes} bytes "
            "(--max-body-bytes): send fewer rows per request"
        )

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, within ``read_timeout`` and ``max_body_bytes`` (chunked bodies are counted too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.read_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise _Refused(
                    408,
                    f"the body did not arrive within {self.limits.read_timeout:g} s (--read-timeout); "
                    f"{size} bytes came",
                ) from None
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise _Refused(413, self._too_large(f"over {self.limits.max_body_bytes} bytes"))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the application the body already read, then defers to the server's."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def guarded_protocol(limits: ServeLimits) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP protocol (httptools or h11, as uvicorn picks) with a header deadline and size cap.

    From the connection's start, and again after each response, the next request's headers must
    arrive within ``read_timeout`` and ``max_header_bytes``; otherwise the client gets 408 (431) and
    the connection is closed. An idle keep-alive connection is still closed by uvicorn's own timer.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    timeout_408 = _raw_response(
        408, f"the request headers did not arrive within {limits.read_timeout:g} s (--read-timeout)"
    )
    too_big_431 = _raw_response(431, f"the request headers exceed {limits.max_header_bytes} bytes")

    class HeaderDeadline(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _armed_cycle: Any = None
        _deadline: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_headers():
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    self._refuse(too_big_431)

        def _awaiting_headers(self) -> bool:
            """No request's headers have completed since the deadline was armed."""
            armed = self._armed_cycle
            return bool(self.cycle is armed and (armed is None or armed.response_complete))

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._header_bytes = 0
            self._deadline = self.loop.call_later(limits.read_timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if self._awaiting_headers():
                self._refuse(timeout_408 if self._header_bytes else b"")

        def _refuse(self, response: bytes) -> None:
            self._disarm()
            if not self.transport.is_closing():
                if response:
                    self.transport.write(response)
                self.transport.close()

    return HeaderDeadline


def _raw_response(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 error response, written on the transport before any request was parsed."""
    reasons = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
    body = error_body(detail)
    head = (
        f"HTTP/1.1 {status} {reasons[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
