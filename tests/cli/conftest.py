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


@pytest.fixture
def store_env(tmp_path: Path, age_key_file: Path) -> dict[str, str]:
    """A private home and secrets folder; the test identity for the sops files."""
    (tmp_path / "secrets").mkdir()
    return {
        "MACULA_SECRETS_HOME": str(tmp_path / "home"),
        "MACULA_SECRETS_DIR": str(tmp_path / "secrets"),
        "MACULA_SECRETS_CONFIG": "",
        "MACULA_SECRETS_TENANT": "",
        "MACULA_SECRETS_SOURCE": "",
        "SOPS_AGE_KEY_FILE": str(age_key_file),
    }
