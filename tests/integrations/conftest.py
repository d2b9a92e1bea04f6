"""Fixtures for the integration tests: an isolated store + secrets folder, and the CLI.

Like tests/unit/test_rotation.py, "another process" is a real one: the CLI
run with the same environment.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from macula_secrets import Secrets, _default


@pytest.fixture
def env(node_env: dict[str, str]) -> dict[str, str]:
    return node_env


@pytest.fixture
def secrets(env: dict[str, str]) -> Iterator[Secrets]:
    with Secrets.open(env=env) as s:
        yield s


@pytest.fixture
def shared(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Secrets]:
    """The process-wide default ``Secrets`` (what ``config.secret`` reads), on ``env``."""
    for name, value in env.items():
        if name.startswith(("MACULA_SECRETS_", "SOPS_")):
            monkeypatch.setenv(name, value)
    _default.reset()
    try:
        yield _default.default()
    finally:
        _default.reset()


def cli(env: dict[str, str], *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``macula-secrets ARGS`` in another process."""
    return subprocess.run([sys.executable, "-m", "macula_secrets", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)
