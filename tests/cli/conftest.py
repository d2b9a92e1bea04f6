"""Fixtures for the black-box command-line tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli._support import TEST_KEY, AgeKey, Sops


@pytest.fixture(scope="session")
def age_keys() -> list[AgeKey]:
    """Three fresh identities made by the real age-keygen."""
    if shutil.which("age-keygen") is None:
        pytest.skip("age-keygen is not installed")
    keys = []
    for _ in range(3):
        out = subprocess.run(
            ["age-keygen"], capture_output=True, check=True, text=True, timeout=30
        ).stdout
        public = next(line for line in out.splitlines() if line.startswith("# public key: "))
        secret = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
        keys.append(AgeKey(public.removeprefix("# public key: "), secret))
    return keys


@pytest.fixture
def sops(sops_bin: str, sops_env: dict[str, str]) -> Sops:
    """The real sops, finding the test identity through SOPS_AGE_KEY_FILE."""
    return Sops(sops_bin, sops_env)


@pytest.fixture
def keyed(age_key_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the test identity available to in-process macula-secrets calls."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key_file))
    return age_key_file


@pytest.fixture
def test_key() -> AgeKey:
    return TEST_KEY
