"""Fixtures of the TUI tests: a node's home with fixed data, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macula_secrets import Secrets
from macula_secrets.tui.model import Browser

DB_URL = "postgres://canary-db-7f3a@db/console"
PEM = "-----BEGIN KEY-----\nline-one\nline-two\n-----END KEY-----"


@pytest.fixture
def env(node_env: dict[str, str]) -> dict[str, str]:
    return node_env


@pytest.fixture
def filled(env: dict[str, str]) -> dict[str, str]:
    """The home with two apps of the default tenant and one of tenant acme."""
    with Secrets.open(env=env) as s:
        s.put("console", "database_url", DB_URL)
        s.put("console", "pem", PEM)
        s.put("billing", "stripe_key", "sk_test_canary")
        s.with_tenant("acme").put("web", "token", "acme-token-1")
    return env


@pytest.fixture
def browser(filled: dict[str, str]) -> Iterator[Browser]:
    b = Browser(Secrets.open(env=filled))
    yield b
    b.close()


@pytest.fixture
def anyio_backend() -> str:
    """Textual runs on asyncio; anyio's pytest plugin runs the async tests."""
    return "asyncio"
