"""Helpers shared by the access, audit-chain and load tests: a server over a real token store."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from macula_secrets import Secrets
from macula_secrets.audit import AuditLog
from macula_secrets.server.run import ServeOptions, Serving, prepare, start_in_thread
from macula_secrets.server.tokens import TokenStore


class Clock:
    """Unix time plus an offset the test moves (the token store's injectable clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class TokenServer:
    serving: Serving
    host: str
    port: int
    home: Path
    tokens: TokenStore
    clock: Clock

    @property
    def audit_path(self) -> str:
        return self.serving.audit.path


def start_token_server(home: Path) -> Iterator[TokenServer]:
    """Plain HTTP on 127.0.0.1 over a fresh store, authenticated by a real TokenStore."""
    secrets = Secrets.open(home=home, source="none", env={})
    clock = Clock()
    tokens = TokenStore.from_home(str(home), audit=AuditLog(str(home / "audit.log")),
                                  clock=clock)
    serving = prepare(ServeOptions(address="127.0.0.1:0", tls_disable=True), secrets=secrets,
                      authenticator=tokens, out=lambda _line: None)
    thread = start_in_thread(serving)
    host, port = serving.url.removeprefix("http://").rsplit(":", 1)
    try:
        yield TokenServer(serving, host, int(port), home, tokens, clock)
    finally:
        serving.stop()
        thread.join(timeout=15)
        tokens.close()
        assert not thread.is_alive(), "the server did not shut down"


def call(host: str, port: int, method: str, path: str, body: bytes | str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, raw body)."""
    conn = http.client.HTTPConnection(host, port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def as_json(raw: bytes) -> object:
    return json.loads(raw) if raw else None


@contextlib.contextmanager
def serve_process(home: Path, *args: str, timeout: float = 30.0
                  ) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """``macula-secrets serve`` as a process on ``127.0.0.1:0``: ``(process, url, stderr)``.

    The URL is read from its ``macula: serving URL`` line; stderr keeps being
    read into the list, so the server never blocks on a full pipe. The
    environment is this one without ``MACULA_SECRETS_*``, with the given home.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACULA_SECRETS_")}
    env["MACULA_SECRETS_HOME"] = str(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "macula_secrets", "serve", "--address", "127.0.0.1:0", *args],
        env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    drain: threading.Thread | None = None
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("macula: serving "):
                url = line.split()[2]
        assert url is not None, "".join(seen)
        drain = threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True)
        drain.start()
        yield proc, url, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)
        if drain is not None:
            drain.join(timeout=10)
        proc.stderr.close()


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (``serve --unix-socket``)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)
