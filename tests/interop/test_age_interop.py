"""Our age layer against the real age, age-keygen and ssh-keygen (Debian age 1.1.1).

What we wrap, age decrypts; what age encrypts, we unwrap; our identity files
are byte-for-byte what age-keygen writes, and age accepts them.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from macula_secrets.errors import KeySourceError, NoMatchingKeyError
from macula_secrets.keys import age
from tests.conftest import TEST_AGE_PUBLIC, run_sops

pytestmark = pytest.mark.interop

DATA_KEY = bytes(range(100, 132))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def run(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        list(args), input=input, capture_output=True, timeout=30, check=False, env=env
    )


@pytest.fixture
def key_file(tmp_path: Path) -> tuple[Path, age.AgeIdentity]:
    identity = age.generate_identity()
    path = tmp_path / "keys.txt"
    age.write_identity_file(path, identity)
    return path, identity


def test_age_decrypts_our_wrap(key_file: tuple[Path, age.AgeIdentity]) -> None:
    path, identity = key_file
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    result = run(tool("age"), "-d", "-i", str(path), input=enc.encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout == DATA_KEY
    assert result.stderr == b""


def test_we_unwrap_age_output(key_file: tuple[Path, age.AgeIdentity]) -> None:
    _, identity = key_file
    recipient = str(identity.recipient)
    armored = run(tool("age"), "-a", "-r", recipient, input=DATA_KEY)
    assert armored.returncode == 0, armored.stderr
    assert age.unwrap_data_key(armored.stdout.decode("ascii"), [identity]) == DATA_KEY
    binary = run(tool("age"), "-r", recipient, input=DATA_KEY)
    assert binary.returncode == 0, binary.stderr
    assert age.decrypt(binary.stdout, [identity]) == DATA_KEY
    # Several recipients in one file, ours among them.
    other = age.generate_identity()
    many = run(tool("age"), "-a", "-r", str(other.recipient), "-r", recipient, input=DATA_KEY)
    assert age.unwrap_data_key(many.stdout.decode(), [identity]) == DATA_KEY


def test_our_armor_matches_age_armor_layout(key_file: tuple[Path, age.AgeIdentity]) -> None:
    _, identity = key_file
    ours = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    theirs = run(tool("age"), "-a", "-r", str(identity.recipient), input=DATA_KEY).stdout.decode()
    for text in (ours, theirs):
        lines = text.split("\n")
        assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
        assert lines[-2:] == ["-----END AGE ENCRYPTED FILE-----", ""]
        assert {len(line) for line in lines[1:-3]} <= {64}


def test_age_accepts_our_identity_file(key_file: tuple[Path, age.AgeIdentity]) -> None:
    path, identity = key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = run(tool("age-keygen"), "-y", str(path))
    assert public.returncode == 0, public.stderr
    assert public.stdout.decode() == f"{identity.recipient}\n"
    encrypted = run(tool("age"), "-r", str(identity.recipient), input=b"hello")
    decrypted = run(tool("age"), "-d", "-i", str(path), input=encrypted.stdout)
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == b"hello"


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_identity_file_is_byte_identical_to_age_keygen(tmp_path: Path, zone: str) -> None:
    if not Path("/usr/share/zoneinfo", zone).exists() and zone != "UTC":
        pytest.skip(f"time zone {zone} is not installed")
    path = tmp_path / "keys.txt"
    result = run(tool("age-keygen"), "-o", str(path), env={**os.environ, "TZ": zone})
    assert result.returncode == 0, result.stderr
    theirs = path.read_text()
    (identity,) = age.parse_identities(theirs, source=str(path))
    created = datetime.fromisoformat(theirs.splitlines()[0].removeprefix("# created: "))
    assert age.format_identity_file(identity, created=created) == theirs
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_neither_tool_overwrites_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("precious\n")
    result = run(tool("age-keygen"), "-o", str(path))
    assert result.returncode == 1
    assert b"file exists" in result.stderr
    with pytest.raises(KeySourceError, match="already exists"):
        age.write_identity_file(path, age.generate_identity())
    assert path.read_text() == "precious\n"


@pytest.fixture
def ssh_key(tmp_path: Path) -> tuple[Path, str]:
    """An ed25519 key from ssh-keygen, or from cryptography if ssh-keygen is missing."""
    path = tmp_path / "id_ed25519"
    keygen = shutil.which("ssh-keygen")
    if keygen is not None:
        made = run(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "me@host", "-f", str(path))
        assert made.returncode == 0, made.stderr
        return path, Path(f"{path}.pub").read_text().strip()
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return path, public.decode() + " me@host"


def test_ssh_ed25519_round_trip(ssh_key: tuple[Path, str], tmp_path: Path) -> None:
    path, public = ssh_key
    recipient = age.parse_recipient(public)
    assert recipient.text == public
    assert recipient.kind == "ssh-ed25519"
    identity = age.parse_ssh_identity(path.read_bytes(), source=str(path))
    assert identity.recipient == " ".join(public.split()[:2])

    enc = age.wrap_data_key(DATA_KEY, recipient)
    decrypted = run(tool("age"), "-d", "-i", str(path), input=enc.encode())
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == DATA_KEY

    public_file = tmp_path / "recipients.txt"
    public_file.write_text(public + "\n")
    theirs = run(tool("age"), "-a", "-R", str(public_file), input=DATA_KEY)
    assert theirs.returncode == 0, theirs.stderr
    assert age.unwrap_data_key(theirs.stdout.decode(), [identity]) == DATA_KEY


# --- against the real sops ----------------------------------------------------


def _sops_json(sops_bin: str, tmp_path: Path, env: dict[str, str]) -> dict[str, object]:
    plain = tmp_path / "plain.json"
    plain.write_text('{"a": "b"}\n')
    result = run_sops(sops_bin, "encrypt", "--age", TEST_AGE_PUBLIC, str(plain), env=env)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


def test_sops_decrypts_our_enc(sops_bin: str, tmp_path: Path, age_key_file: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home, SOPS_AGE_KEY_FILE=str(age_key_file))
    document = _sops_json(sops_bin, tmp_path, env)
    entry = document["sops"]["age"][0]  # type: ignore[index]
    assert entry["recipient"] == TEST_AGE_PUBLIC
    sources = age.IdentitySources.from_environment(env, home, read_passphrase=None)
    data_key = sources.unwrap_data_key(entry["enc"], recipient=TEST_AGE_PUBLIC)
    assert len(data_key) == 32

    entry["enc"] = age.wrap_data_key(data_key, age.parse_recipient(TEST_AGE_PUBLIC))
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(document))
    result = run_sops(sops_bin, "decrypt", str(ours), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"a": "b"}


def test_no_keys_lists_the_same_locations_as_sops(
    sops_bin: str, tmp_path: Path, age_key_file: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    document = _sops_json(sops_bin, tmp_path, _clean_env(home, SOPS_AGE_KEY_FILE=str(age_key_file)))
    encrypted = tmp_path / "enc.json"
    encrypted.write_text(json.dumps(document))
    result = run_sops(sops_bin, "decrypt", str(encrypted), env=_clean_env(home))
    assert result.returncode == 128
    # sops wraps the error at 60 columns behind "    - | ".
    lines = [line.split("| ", 1)[1] for line in result.stderr.decode().splitlines() if "| " in line]
    theirs = " ".join(lines).split("Did not find keys in ", 1)[1].rstrip(".")

    sources = age.IdentitySources.from_environment(_clean_env(home), home, read_passphrase=None)
    enc = document["sops"]["age"][0]["enc"]  # type: ignore[index]
    with pytest.raises(NoMatchingKeyError) as info:
        sources.unwrap_data_key(enc, recipient=TEST_AGE_PUBLIC)
    assert str(info.value).split("did not find keys in ", 1)[1] == theirs


def test_key_cmd_gets_the_same_recipient_as_from_sops(
    sops_bin: str, tmp_path: Path, age_key_file: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    document = _sops_json(sops_bin, tmp_path, _clean_env(home, SOPS_AGE_KEY_FILE=str(age_key_file)))
    encrypted = tmp_path / "enc.json"
    encrypted.write_text(json.dumps(document))
    log = tmp_path / "log"
    script = tmp_path / "cmd.sh"
    script.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$SOPS_AGE_RECIPIENT\" >> '{log}'\ncat '{age_key_file}'\n"
    )
    script.chmod(0o755)
    env = _clean_env(home, SOPS_AGE_KEY_CMD=str(script))

    result = run_sops(sops_bin, "decrypt", str(encrypted), env=env)
    assert result.returncode == 0, result.stderr
    from_sops = log.read_text()
    log.unlink()
    sources = age.IdentitySources.from_environment(env, home, read_passphrase=None)
    enc = document["sops"]["age"][0]["enc"]  # type: ignore[index]
    assert len(sources.unwrap_data_key(enc, recipient=TEST_AGE_PUBLIC)) == 32
    assert log.read_text() == from_sops == f"{TEST_AGE_PUBLIC}\n"
