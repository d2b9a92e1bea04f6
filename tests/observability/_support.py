"""A real server on 127.0.0.1 (plain HTTP) whose home has a config.toml with audit sinks,
and the collectors the tests bind for them (real sockets, no mocks)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from macula_secrets import Secrets
from macula_secrets.server.run import ServeOptions, Serving, prepare, start_in_thread
from tests.server.conftest import ROOT, FakeTokens

__all__ = ["ROOT", "Collector", "Datagrams", "Server", "serve"]


@dataclass
class Server:
    serving: Serving
    host: str
    port: int

    def call(self, method: str, path: str, body: object = None, *, token: str | None = ROOT
             ) -> tuple[int, bytes]:
        """One request on a fresh connection: ``(status, raw body)``."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        headers = {"X-Vault-Token": token} if token else {}
        data = json.dumps(body) if body is not None else None
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def put(self, app: str, key: str, value: str) -> int:
        return self.call("POST", f"/v1/secret/data/macula/{app}/{key}",
                         {"data": {"value": value}})[0]

    def read(self, app: str, key: str) -> tuple[int, bytes]:
        return self.call("GET", f"/v1/secret/data/macula/{app}/{key}")

    def audit_lines(self) -> list[bytes]:
        with open(self.serving.audit.path, "rb") as f:
            return f.read().splitlines(keepends=True)


@contextlib.contextmanager
def serve(home: Path, sinks_toml: str = "", **options: object) -> Iterator[Server]:
    """Serve a fresh store in ``home`` with ``sinks_toml`` as its config.toml."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(sinks_toml)
    secrets = Secrets.open(home=home, source="none", env={})
    serving = prepare(ServeOptions(address="127.0.0.1:0", tls_disable=True,
                                   **options),  # type: ignore[arg-type]
                      secrets=secrets, authenticator=FakeTokens(), out=lambda _line: None)
    thread = start_in_thread(serving)
    host, port = serving.url.removeprefix("http://").rsplit(":", 1)
    try:
        yield Server(serving, host, int(port))
    finally:
        serving.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server did not shut down"


class Collector:
    """A Unix stream listener that keeps every byte its clients send (a log collector)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = bytearray()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def lines(self, at_least: int = 0) -> list[bytes]:
        """The lines received, once there are ``at_least`` of them (the sender's write
        returned before this thread read it)."""
        for _ in range(1000):
            with self._lock:
                found = bytes(self.data).splitlines(keepends=True)
            if len(found) >= at_least:
                return found
            time.sleep(0.01)
        return found

    def close(self) -> None:
        """Stop listening and drop every connection (the collector went away)."""
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class Datagrams:
    """A bound Unix datagram socket read by a thread (a syslog or journald socket the
    test owns: a Unix datagram sender blocks once the reader's small queue is full)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                self.seen.append(self.sock.recv(1 << 20))
            except OSError:
                return

    def drain(self, at_least: int = 0) -> list[bytes]:
        for _ in range(1000):
            if len(self.seen) >= at_least:
                break
            time.sleep(0.01)
        return list(self.seen)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
