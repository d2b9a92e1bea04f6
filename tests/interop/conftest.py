"""Fixtures shared by the interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._openbao import Server, need_binary, start_dev


@pytest.fixture(scope="module")
def bao_dev() -> Iterator[Server]:
    """One in-memory ``bao server -dev`` (KV v2 at ``secret/``) per test module."""
    need_binary()
    with start_dev() as server:
        yield server
