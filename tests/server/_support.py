"""Helpers shared by the access, audit-chain and load tests: a server over a real token store."""

from __future__ import annotations

import http.client
import json
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
