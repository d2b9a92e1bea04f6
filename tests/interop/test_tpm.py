"""TpmSealer against a real TPM 2.0 simulator (swtpm) through the real tpm2-tools.

One swtpm serves the whole module (a second one plays "another machine").
These tests fail, rather than skip, when swtpm or tpm2-tools are missing:
scripts/test installs both.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from macula_secrets.errors import ConfigError, KeySourceError
from macula_secrets.keys.tpm import TpmSealer, parse_pcrs
from tests._swtpm import Swtpm, _free_port_pair, missing_tools, start_swtpm

pytestmark = pytest.mark.interop

AGE_IDENTITY = b"AGE-SECRET-KEY-1QS99S5UY4P3ZSUYXXM5QSZCVM8UKUXAF0SVJJ8EC3GHMY832Y60S302LXW"


def _start() -> Iterator[Swtpm]:
    missing = missing_tools()
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; run scripts/test, which "
                    "apt-installs swtpm and tpm2-tools")
    with start_swtpm() as tpm:
        yield tpm


@pytest.fixture(scope="module")
def tpm() -> Iterator[Swtpm]:
    yield from _start()


@pytest.fixture(scope="module")
def other_tpm() -> Iterator[Swtpm]:
    yield from _start()


def extend(tpm: Swtpm, pcr: int) -> None:
    digest = secrets.token_hex(32)
    result = tpm.run("tpm2_pcrextend", f"{pcr}:sha256={digest}")
    assert result.returncode == 0, result.stderr.decode()


def assert_no_secret(text: str | None, secret: bytes) -> None:
    if text is None:
        return
    for form in (secret.hex(), base64.b64encode(secret).decode()):
        assert form not in text
    if secret.isascii():
        assert secret.decode() not in text


# Round trips.


@pytest.mark.parametrize("secret", [secrets.token_bytes(32), AGE_IDENTITY],
                         ids=["master-key", "age-identity"])
def test_seal_unseal_round_trip(tpm: Swtpm, secret: bytes) -> None:
    sealer = TpmSealer(tcti=tpm.tcti)
    blob = sealer.seal(secret)
    assert sealer.unseal(blob) == secret
    assert TpmSealer(tcti=tpm.tcti).unseal(blob) == secret  # a new sealer, same TPM
    assert sealer.kind == "tpm"
    assert sealer.description == f"TPM at {tpm.tcti}"


def test_blob_is_versioned_json_without_the_secret(tpm: Swtpm) -> None:
    secret = secrets.token_bytes(32)
    blob = TpmSealer(tcti=tpm.tcti, pcrs="sha256:7").seal(secret)
    record = json.loads(blob)
    assert record["format"] == "macula-tpm-seal"
    assert record["version"] == 1
    assert record["pcrs"] == "sha256:7"
    assert set(record) == {"format", "version", "parent", "primary", "pcrs", "public", "private"}
    assert secret not in blob
    assert_no_secret(blob.decode(), secret)


def test_sealing_twice_gives_different_blobs(tpm: Swtpm) -> None:
    sealer = TpmSealer(tcti=tpm.tcti)
    secret = secrets.token_bytes(32)
    first, second = sealer.seal(secret), sealer.seal(secret)
    assert first != second
    assert sealer.unseal(first) == sealer.unseal(second) == secret


def test_secret_size_limits() -> None:
    sealer = TpmSealer(tcti="swtpm:host=127.0.0.1,port=1")
    with pytest.raises(ValueError, match="1 to 128 bytes"):
        sealer.seal(b"")
    with pytest.raises(ValueError, match="1 to 128 bytes"):
        sealer.seal(b"x" * 129)


# Another TPM, PCRs.


def test_another_tpm_cannot_unseal(tpm: Swtpm, other_tpm: Swtpm) -> None:
    secret = secrets.token_bytes(32)
    blob = TpmSealer(tcti=tpm.tcti).seal(secret)
    with pytest.raises(KeySourceError, match="sealed by another TPM") as info:
        TpmSealer(tcti=other_tpm.tcti).unseal(blob)
    assert other_tpm.tcti in str(info.value)
    assert_no_secret(str(info.value), secret)
    assert_no_secret(info.value.hint, secret)


def test_another_tpm_refuses_to_load_the_object(tpm: Swtpm, other_tpm: Swtpm) -> None:
    """Without the primary fingerprint the other TPM itself refuses: an integrity failure."""
    blob = json.loads(TpmSealer(tcti=tpm.tcti).seal(secrets.token_bytes(32)))
    other_primary = _primary_fingerprint(other_tpm)
    blob["primary"] = other_primary
    with pytest.raises(KeySourceError, match="integrity check failed"):
        TpmSealer(tcti=other_tpm.tcti).unseal(json.dumps(blob).encode())


def _primary_fingerprint(tpm: Swtpm) -> str:
    # Seal anything there and read the fingerprint the sealer stored.
    record = json.loads(TpmSealer(tcti=tpm.tcti).seal(b"x"))
    fingerprint: str = record["primary"]
    return fingerprint


def test_pcr_extend_after_sealing_makes_unseal_fail(tpm: Swtpm) -> None:
    secret = secrets.token_bytes(32)
    sealer = TpmSealer(tcti=tpm.tcti, pcrs="sha256:7")
    assert sealer.description == f"TPM at {tpm.tcti} (PCRs sha256:7)"
    blob = sealer.seal(secret)
    assert sealer.unseal(blob) == secret
    extend(tpm, 7)
    with pytest.raises(KeySourceError) as info:
        sealer.unseal(blob)
    message = str(info.value)
    assert "the PCR values (sha256:7) changed since the key was sealed" in message
    assert_no_secret(message, secret)
    # The blob's own selection counts, not the sealer's.
    with pytest.raises(KeySourceError, match=r"PCR values \(sha256:7\) changed"):
        TpmSealer(tcti=tpm.tcti).unseal(blob)
    # Sealed again under the new values, it unseals.
    assert sealer.unseal(sealer.seal(secret)) == secret


def test_several_pcrs_are_named(tpm: Swtpm) -> None:
    sealer = TpmSealer(tcti=tpm.tcti, pcrs="sha256:7,0")
    blob = sealer.seal(AGE_IDENTITY)
    assert sealer.unseal(blob) == AGE_IDENTITY
    extend(tpm, 0)
    with pytest.raises(KeySourceError, match=r"the PCR values \(sha256:0,7\) changed"):
        sealer.unseal(blob)


def test_without_pcr_policy_an_extend_does_not_matter(tpm: Swtpm) -> None:
    secret = secrets.token_bytes(32)
    sealer = TpmSealer(tcti=tpm.tcti)
    blob = sealer.seal(secret)
    extend(tpm, 7)
    extend(tpm, 0)
    assert sealer.unseal(blob) == secret


def test_pcr_sealed_object_needs_the_policy(tpm: Swtpm, tmp_path: Path) -> None:
    """userwithauth is clear: an empty password does not unseal a PCR-bound object."""
    record = json.loads(TpmSealer(tcti=tpm.tcti, pcrs="sha256:7").seal(b"secret"))
    (tmp_path / "seal.pub").write_bytes(base64.b64decode(record["public"]))
    (tmp_path / "seal.priv").write_bytes(base64.b64decode(record["private"]))
    ctx, pub, priv, obj = (str(tmp_path / n) for n in ("p.ctx", "seal.pub", "seal.priv", "s.ctx"))
    try:
        steps = [("tpm2_createprimary", "-Q", "-C", "o", "-g", "sha256", "-G",
                  "ecc256:aes128cfb", "-c", ctx),
                 ("tpm2_load", "-Q", "-C", ctx, "-u", pub, "-r", priv, "-c", obj)]
        for step in steps:
            result = tpm.run(*step)
            assert result.returncode == 0, result.stderr.decode()
            tpm.run("tpm2_flushcontext", "-t")  # swtpm has no resource manager
        result = tpm.run("tpm2_unseal", "-c", obj)
        assert result.returncode != 0
        assert b"secret" not in result.stdout
        assert b"0x12F" in result.stderr  # TPM_RC_AUTH_UNAVAILABLE
    finally:
        tpm.run("tpm2_flushcontext", "-t")


# Damaged blobs, missing TPM, missing tools.


def _mutate(blob: bytes, key: str, value: Any) -> bytes:
    record = json.loads(blob)
    record[key] = value
    return json.dumps(record).encode()


def _flip(blob: bytes, key: str, index: int) -> bytes:
    raw = bytearray(base64.b64decode(json.loads(blob)[key]))
    raw[index] ^= 0x01
    return _mutate(blob, key, base64.b64encode(bytes(raw)).decode())


@pytest.fixture(scope="module")
def sealed(tpm: Swtpm) -> tuple[bytes, bytes]:
    secret = secrets.token_bytes(32)
    return secret, TpmSealer(tcti=tpm.tcti).seal(secret)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b"", "damaged or is not a macula-secrets TPM seal"),
    (lambda b: b"\xff\xfe garbage", "damaged or is not a macula-secrets TPM seal"),
    (lambda b: b[: len(b) // 2], "damaged or is not a macula-secrets TPM seal"),
    (lambda b: b"[]", "damaged or is not a macula-secrets TPM seal"),
    (lambda b: _mutate(b, "format", "other"), "damaged or is not a macula-secrets TPM seal"),
    (lambda b: _mutate(b, "version", 2), "format version 2"),
    (lambda b: _mutate(b, "private", "not base64!"), "damaged"),
    (lambda b: _mutate(b, "pcrs", "sha256:99"), "damaged"),
    (lambda b: _flip(b, "private", 40), "damaged.*integrity check failed"),
    (lambda b: _flip(b, "private", 2), "damaged"),
    (lambda b: _flip(b, "public", 10), "damaged"),
    (lambda b: _mutate(b, "primary", "0" * 64), "sealed by another TPM"),
], ids=["empty", "binary", "truncated", "not-an-object", "format", "version", "base64",
        "pcrs", "private-flip", "private-size-flip", "public-flip", "primary"])
def test_damaged_blob(tpm: Swtpm, sealed: tuple[bytes, bytes], damage: Any,
                      message: str) -> None:
    secret, blob = sealed
    with pytest.raises(KeySourceError, match=message) as info:
        TpmSealer(tcti=tpm.tcti).unseal(damage(blob))
    assert_no_secret(str(info.value), secret)
    assert_no_secret(info.value.hint, secret)
    assert TpmSealer(tcti=tpm.tcti).unseal(blob) == secret  # the TPM is still fine


def test_no_tpm_reachable() -> None:
    tcti = f"swtpm:host=127.0.0.1,port={_free_port_pair()}"
    with pytest.raises(KeySourceError, match=f"no TPM reachable at {tcti}") as info:
        TpmSealer(tcti=tcti).seal(b"secret")
    assert info.value.hint is not None
    assert "swtpm" in info.value.hint


def test_tpm2_tools_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KeySourceError, match="tpm2-tools is not installed") as info:
        TpmSealer(tcti="swtpm:host=127.0.0.1,port=1").seal(b"secret")
    assert info.value.hint is not None
    assert "apt install tpm2-tools" in info.value.hint


# Where the secret goes.


@dataclass
class Spawned:
    argv: list[str]
    cwd: str
    cmdline: bytes | None
    folder_mode: int
    files: dict[str, bytes] = field(default_factory=dict)


def test_secret_never_in_arguments_or_files(tpm: Swtpm,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Record every process the sealer spawns: its argv, /proc/<pid>/cmdline, its folder."""
    spawned: list[Spawned] = []
    real_popen = subprocess.Popen

    def recording_popen(args: Any, *rest: Any, **kwargs: Any) -> Any:
        cwd = os.fspath(kwargs.get("cwd") or os.getcwd())
        folder = Path(cwd)
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        process = real_popen(args, *rest, **kwargs)
        try:  # Popen returns after exec; the process may already have exited, though
            cmdline: bytes | None = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        except OSError:
            cmdline = None
        spawned.append(Spawned([os.fspath(a) for a in args], cwd, cmdline,
                               stat.S_IMODE(folder.stat().st_mode), files))
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    secret = secrets.token_bytes(32)
    for pcrs in (None, "sha256:7"):
        sealer = TpmSealer(tcti=tpm.tcti, pcrs=pcrs)
        assert sealer.unseal(sealer.seal(secret)) == secret
    monkeypatch.undo()

    tools = {os.path.basename(s.argv[0]) for s in spawned}
    assert {"tpm2_createprimary", "tpm2_create", "tpm2_createpolicy", "tpm2_load",
            "tpm2_unseal", "tpm2_flushcontext"} <= tools
    forms = [secret, secret.hex().encode(), base64.b64encode(secret)]
    for call in spawned:
        joined = "\0".join(call.argv).encode()
        for form in forms:
            assert form not in joined
            assert call.cmdline is None or form not in call.cmdline
            for name, content in call.files.items():
                assert form not in content, f"{name} holds the secret"
        assert call.folder_mode == 0o700, call.argv
        assert os.path.basename(call.cwd).startswith("macula-tpm-")
        assert not os.path.exists(call.cwd), "the private folder was not removed"
    create = next(s for s in spawned if os.path.basename(s.argv[0]) == "tpm2_create")
    assert create.argv[create.argv.index("-i") + 1] == "-"  # the secret came on stdin


# PCR selections.


@pytest.mark.parametrize(("text", "normal"), [
    ("sha256:7", "sha256:7"),
    ("sha256:7,0,7", "sha256:0,7"),
    (" SHA256:0, 7 ", "sha256:0,7"),
    ("sha1:7+sha256:0,7", "sha1:7+sha256:0,7"),
])
def test_parse_pcrs(text: str, normal: str) -> None:
    assert parse_pcrs(text) == normal
    assert TpmSealer(pcrs=text).pcrs == normal


@pytest.mark.parametrize("text", ["7", "sha256", "sha256:", "sha256:24", "md5:7",
                                  "sha256:a", "sha256:7+sha256:0", "sha256:-1"])
def test_bad_pcrs(text: str) -> None:
    with pytest.raises(ConfigError, match="bad PCR selection"):
        TpmSealer(pcrs=text)


def test_defaults() -> None:
    sealer = TpmSealer()
    assert sealer.tcti == "device:/dev/tpmrm0"
    assert sealer.pcrs is None
    assert sealer.description == "TPM at device:/dev/tpmrm0"
    assert repr(sealer) == "TpmSealer(tcti='device:/dev/tpmrm0', pcrs=None)"


def test_owner_password_is_explained() -> None:
    """A TPM whose owner hierarchy has a password cannot derive the primary: say so."""
    for tpm in _start():
        result = tpm.run("tpm2_changeauth", "-c", "owner", "owner-password")
        assert result.returncode == 0, result.stderr.decode()
        with pytest.raises(KeySourceError, match="tpm2_createprimary failed") as info:
            TpmSealer(tcti=tpm.tcti).seal(b"secret")
        assert info.value.hint is not None
        assert "owner hierarchy has a password" in info.value.hint
