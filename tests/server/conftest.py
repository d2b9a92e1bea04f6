"""A real server on 127.0.0.1 (uvicorn in a background thread) over a throwaway store.

Tokens come from a tiny in-test authenticator, so these tests do not depend
on the token store: ``root`` may do everything in every tenant, ``reader``
may read and list the app ``console`` only, ``web`` may write ``web``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.server.auth import CAPABILITIES, Identity, Rule
from macula_secrets.server.run import ServeOptions, Serving, prepare, start_in_thread

ROOT = "s.root-token-for-tests"
READER = "s.reader-token-for-tests"
WEB = "s.web-token-for-tests"


class FakeTokens:
    """Three fixed tokens; ``lookup`` counts calls so tests can see it was asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.tokens = {
            ROOT: Identity("acc-root", "root", rules=(Rule(CAPABILITIES, tenant="*"),)),
            READER: Identity("acc-reader", "reader",
                             rules=(Rule(frozenset({"read", "list"}), app="console"),)),
            WEB: Identity("acc-web", "web", rules=(Rule(frozenset(
                {"read", "list", "create", "update", "delete"}), app="web"),)),
        }

    def lookup(self, token: str) -> Identity | None:
        self.calls += 1
        return self.tokens.get(token)


@dataclass
class Running:
    serving: Serving
    url: str
    home: Path
    cert: str | None
    secrets: Secrets

    @property
    def audit_path(self) -> str:
        return self.serving.audit.path


def _start(home: Path, options: ServeOptions) -> Iterator[Running]:
    secrets = Secrets.open(home=home, source="none", env={})
    serving = prepare(options, secrets=secrets, authenticator=FakeTokens(), out=lambda _l: None)
    thread = start_in_thread(serving)
    try:
        yield Running(serving, serving.url, home, serving.cert, secrets)
    finally:
        serving.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "the server did not shut down"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """A TLS server with its self-signed certificate (made in <home>/server-tls/)."""
    yield from _start(tmp_path / "home", ServeOptions(address="127.0.0.1:0"))


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[Running]:
    """Plain HTTP on loopback, for raw-socket tests of paths and bodies."""
    yield from _start(tmp_path / "home", ServeOptions(address="127.0.0.1:0", tls_disable=True))


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[Running]:
    sock = tmp_path / "s.sock"
    yield from _start(tmp_path / "home", ServeOptions(unix_socket=str(sock)))


def home_of(running: Running) -> str:
    return os.fspath(running.home)
