"""Env files against the real ``age``: each tool reads what the other wrote.

scripts/test installs Debian's ``age``; without it these tests skip.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from macula_secrets.backends.envfile import EnvFileBackend
from macula_secrets.keys import age
from tests.cli._support import run_cli
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

pytestmark = pytest.mark.interop

AGE = shutil.which("age")
needs_age = pytest.mark.skipif(AGE is None, reason="the age binary is not installed")

TEXT = 'export DB_URL="postgres://app:pw@db/app"\nTOKEN=abc123 # comment\nMULTI="a\nb"\n'
VALUES = {"DB_URL": "postgres://app:pw@db/app", "TOKEN": "abc123", "MULTI": "a\nb"}


def _age(*args: str | Path, input: bytes | None = None) -> bytes:
    assert AGE is not None
    proc = subprocess.run([AGE, *map(str, args)], input=input, capture_output=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@needs_age
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_age_encrypted_file_reads_here(tmp_path: Path, age_key_file: Path, armor: bool) -> None:
    path = tmp_path / "console.env.age"
    _age("-r", TEST_AGE_PUBLIC, *(["-a"] if armor else []), "-o", path, input=TEXT.encode())
    assert path.read_bytes().startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1")
    identity = age.parse_identities(TEST_AGE_SECRET, source="test")
    assert EnvFileBackend(tmp_path, identities=identity).load_all("console") == VALUES
    r = run_cli("envfile", "decrypt", path, env={"SOPS_AGE_KEY_FILE": str(age_key_file)})
    assert r.assert_ok().out == TEXT.encode()
    assert r.err == ""


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh ssh-ed25519 key pair made by ssh-keygen: (private key path, public line)."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    folder = tmp_path_factory.mktemp("ssh")
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)],
                   check=True, capture_output=True, timeout=30)
    return key, (folder / "id_ed25519.pub").read_text().strip()


@needs_age
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
def test_our_file_decrypts_with_age(tmp_path: Path, age_key_file: Path, armor: bool) -> None:
    other = age.generate_identity()
    src = tmp_path / "app.env"
    src.write_text(TEXT)
    out = tmp_path / "app.env.age"
    args = ["envfile", "encrypt", "-r", TEST_AGE_PUBLIC, "-r", str(other.recipient),
            *(["-a"] if armor else []), "-o", out, src]
    run_cli(*args).assert_ok()
    assert out.read_bytes().startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1")
    assert out.stat().st_mode & 0o777 == 0o600
    assert _age("-d", "-i", age_key_file, out) == TEXT.encode()
    # The second recipient works too.
    other_keys = tmp_path / "other.txt"
    other_keys.write_text(age.format_identity_file(other, created=datetime.now(UTC)))
    assert _age("-d", "-i", other_keys, out) == TEXT.encode()


@needs_age
def test_ssh_ed25519_recipient(tmp_path: Path, ssh_key: tuple[Path, str]) -> None:
    key, public = ssh_key
    src = tmp_path / "app.env"
    src.write_text(TEXT)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# the deploy key\n{public}\n\n{TEST_AGE_PUBLIC}\n")
    out = tmp_path / "app.env.age"
    run_cli("envfile", "encrypt", "-R", recipients, "-o", out, src).assert_ok()
    assert _age("-d", "-i", key, out) == TEXT.encode()
    # And back through the backend, finding the ssh key as sops does.
    backend = EnvFileBackend(tmp_path, env={"SOPS_AGE_SSH_PRIVATE_KEY_FILE": str(key)})
    assert backend.load_all("app") == VALUES

