"""A TCP proxy in front of the shared PostgreSQL server that tests bring down or cut, and its fixtures."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.registry_workers import POSTGRES_URL, create_pg_database, drop_pg_database

PASSWORD = "s3cret"


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be brought down and up, or cut every live connection."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.drop_replies = False  # swallow what the server sends (a reply lost on the way back)
        self.frozen = threading.Event()  # set: nothing passes either way, nothing is closed (a network blackhole)

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        listener.settimeout(0.05)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut the live ones."""
        listener, self._listener = self._listener, None
        if self._accepting is not None:
            self._accepting.join()
        if listener is not None:
            listener.close()
        self.cut()

    def cut(self) -> None:
        """Drop every live connection, both sides, as a network failure would."""
        with self._lock:
            pairs, self._pairs = list(self._pairs), set()
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.upstream)
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(client, server, pair, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair, True), daemon=True).start()

    def freeze(self) -> None:
        """Stop forwarding in both directions without closing anything: the client goes silent."""
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def _pump(self, source: socket.socket, target: socket.socket, pair: Any, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                if not (replies and self.drop_replies):
                    target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            source.close()


@pytest.fixture
def database() -> Iterator[str]:
    try:
        name = create_pg_database("ab_unavail")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    try:
        yield name
    finally:
        drop_pg_database(name)


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    upstream = sa.make_url(POSTGRES_URL)
    proxy = CuttableProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    proxy.up()
    yield proxy
    proxy.down()
