"""Fixtures shared by the interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._dbengine import ADMIN, ADMIN_PASSWORD
from tests._openbao import Server, need_binary, start_dev
from tests._postgres import Postgres, need_binaries, start_postgres


@pytest.fixture(scope="module")
def bao_dev() -> Iterator[Server]:
    """One in-memory ``bao server -dev`` (KV v2 at ``secret/``) per test module."""
    need_binary()
    with start_dev() as server:
        yield server


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """One PostgreSQL per test module, with the superuser OpenBao's database engine uses."""
    need_binaries()
    with start_postgres() as server:
        server.admin(f"CREATE ROLE {ADMIN} WITH LOGIN SUPERUSER PASSWORD '{ADMIN_PASSWORD}'")
        yield server
