"""Unit tests of the age layer: parsing, key files, wrapping, limits and key discovery."""

from __future__ import annotations

import base64
import binascii
import copy
import io
import os
import pickle
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets import _env
from macula_secrets.errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    KeySourceError,
    LimitError,
    NoMatchingKeyError,
)
from macula_secrets.keys import age
from macula_secrets.keys.age import AgeIdentity, IdentitySources
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

DATA_KEY = bytes(range(32))

# A throwaway ed25519 key made by `ssh-keygen -t ed25519 -N pw`: public test data.
ENCRYPTED_SSH_KEY = b"""\
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABDnL155sj
INMp7j4YhSRH4jAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIHmPKs4I7QHvyB8f
cWRcR4rX5uwnpdS1t4fW600b5kUaAAAAkNaWqoYxqvjfh3dpvXcUUV3ujZS5FJ4xg3svSe
UHm1Xz6/QB46dG2/ToCVOuBcja+WVPHTauKiIAI11xN0gj0GcpOjG8qfJHO0Wro27DIA63
Sk/+nwCArYXkgAGWu4WpWgLZF8QXwwqsDOvMH1icE71gGRPeIRJc1Cxwm+Gy8QBuoRLl3V
w7fFhgvmUfRuB0OA==
-----END OPENSSH PRIVATE KEY-----
"""


# --- helpers -----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def scrypt_encrypt(plaintext: bytes, passphrase: str, *, work_factor: int = 10) -> bytes:
    """Encrypt like `age -p`, from the spec, with a small work factor.

    pyrage always picks a work factor of about one second; this keeps the
    passphrase tests fast and doubles as an independent implementation.
    """
    file_key, salt, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
    wrap_key = Scrypt(
        salt=b"age-encryption.org/v1/scrypt" + salt, length=32, n=2**work_factor, r=8, p=1
    ).derive(passphrase.encode())
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    header = f"age-encryption.org/v1\n-> scrypt {_b64(salt)} {work_factor}\n{_b64(body)}\n---"
    mac_key = HKDF(hashes.SHA256(), 32, salt=b"", info=b"header").derive(file_key)
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(header.encode())
    payload_key = HKDF(hashes.SHA256(), 32, salt=nonce, info=b"payload").derive(file_key)
    assert len(plaintext) < 64 * 1024  # one STREAM chunk, the last one
    chunk = ChaCha20Poly1305(payload_key).encrypt(bytes(11) + b"\x01", plaintext, None)
    return f"{header} {_b64(mac.finalize())}\n".encode() + nonce + chunk


def armor(data: bytes, *, columns: int = 64) -> str:
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + columns] for i in range(0, len(encoded), columns)]
    return "\n".join(
        ["-----BEGIN AGE ENCRYPTED FILE-----", *lines, "-----END AGE ENCRYPTED FILE-----", ""]
    )


def fake_header(stanzas: list[str]) -> bytes:
    """An age file whose header has the given stanza lines (each with an empty body)."""
    lines = ["age-encryption.org/v1"]
    for stanza in stanzas:
        lines += [f"-> {stanza}", ""]
    return ("\n".join(lines) + "\n--- " + "A" * 43 + "\n").encode() + bytes(32)


def all_text(exc: BaseException) -> str:
    """Every string an exception shows: message, repr, hint, errors, recipients."""
    parts = [str(exc), repr(exc), str(getattr(exc, "hint", ""))]
    parts += [str(item) for item in getattr(exc, "errors", [])]
    parts += [str(item) for item in getattr(exc, "recipients", [])]
    return "\n".join(parts)


def openssh_private(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def ed25519_key() -> tuple[bytes, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = openssh_private(key)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = openssh_private(key)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


@pytest.fixture(scope="module")
def identity() -> AgeIdentity:
    return age.generate_identity()


# --- recipients --------------------------------------------------------------


def test_parse_x25519_recipient_keeps_text() -> None:
    recipient = age.parse_recipient(f"  {TEST_AGE_PUBLIC}\n")
    assert recipient.text == TEST_AGE_PUBLIC
    assert recipient.kind == "X25519"
    assert str(recipient) == TEST_AGE_PUBLIC
    assert repr(recipient) == f"AgeRecipient({TEST_AGE_PUBLIC!r})"
    assert recipient == age.parse_recipient(TEST_AGE_PUBLIC)
    assert len({recipient, age.parse_recipient(TEST_AGE_PUBLIC)}) == 1


def test_parse_ssh_recipients_keep_comment(
    ed25519_key: tuple[bytes, str], rsa_key: tuple[bytes, str]
) -> None:
    for (_, public), kind in ((ed25519_key, "ssh-ed25519"), (rsa_key, "ssh-rsa")):
        text = f"{public} me@host and more"
        recipient = age.parse_recipient(f" {text} ")
        assert recipient.text == text
        assert recipient.kind == kind


def test_parse_ssh_recipient_accepts_tab_like_go(ed25519_key: tuple[bytes, str]) -> None:
    text = ed25519_key[1].replace(" ", "\t")
    assert age.parse_recipient(text).text == text


def test_recipient_is_immutable() -> None:
    recipient = age.parse_recipient(TEST_AGE_PUBLIC)
    with pytest.raises(AttributeError):
        recipient.text = "x"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "unknown age recipient type"),
        ("foo", "'foo'"),
        ("AGE1" + TEST_AGE_PUBLIC[4:].upper(), "unknown age recipient type"),
        (TEST_AGE_PUBLIC[:-1] + "q", "not a Bech32"),
        (TEST_AGE_PUBLIC[:10] + TEST_AGE_PUBLIC[10:].upper(), "mixed-case"),
        ("age1yubikey1qwerty", "plugin"),
        ("age1pq1qwerty", "post-quantum"),
        ("ssh-ed25519", "no key"),
        ("ssh-ed25519 AAAA", "bad key"),
        ("ssh-dss AAAA", "only ssh-ed25519 and ssh-rsa"),
        ("ecdsa-sha2-nistp256 AAAA", "unknown age recipient type"),
    ],
)
def test_bad_recipients_are_config_errors(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        age.parse_recipient(text)
    assert words in str(info.value)
    assert str(info.value) == str(info.value).strip()
    if text:
        assert repr(text.strip()) in str(info.value) or "private key" in str(info.value)


def test_small_rsa_recipient_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refusing it is the point)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    with pytest.raises(ConfigError, match="2048"):
        age.parse_recipient(public.decode())


def test_ecdsa_ssh_recipient_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    with pytest.raises(ConfigError, match="unknown age recipient type"):
        age.parse_recipient(public.decode())


def test_secret_given_as_recipient_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        age.parse_recipient(TEST_AGE_SECRET)
    assert TEST_AGE_SECRET not in all_text(info.value)
    assert "private key" in str(info.value)


def test_parse_recipients_like_sops_config() -> None:
    other = age.generate_identity().recipient
    assert other is not None
    parsed = age.parse_recipients(f" {TEST_AGE_PUBLIC} ,,  ,{other},")
    assert [r.text for r in parsed] == [TEST_AGE_PUBLIC, other]
    assert age.parse_recipients("") == []
    assert age.parse_recipients(" , ") == []


def test_parse_recipients_strict_like_sops_flag() -> None:
    assert len(age.parse_recipients(TEST_AGE_PUBLIC, skip_empty=False)) == 1
    with pytest.raises(ConfigError, match="unknown age recipient type"):
        age.parse_recipients(f"{TEST_AGE_PUBLIC},", skip_empty=False)


# --- identities --------------------------------------------------------------


def test_parse_identities_ignores_comments_and_blank_lines() -> None:
    other = age.generate_identity()
    text = (
        f"# created: now\r\n\r\n# public key: {TEST_AGE_PUBLIC}\r\n{TEST_AGE_SECRET}\r\n"
        f"\n#{TEST_AGE_SECRET} commented out\n{age.format_identity_file(other, created=_utc())}"
    )
    identities = age.parse_identities(text, source="keys.txt")
    assert [i.recipient for i in identities] == [TEST_AGE_PUBLIC, other.recipient]
    assert all(i.kind == "X25519" and i.source == "keys.txt" for i in identities)
    assert age.parse_identities("", source="x") == []
    assert age.parse_identities("# nothing\n", source="x") == []


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f" {TEST_AGE_SECRET}", "unknown identity type on line 2 of SOPS_AGE_KEY"),
        (f"\t{TEST_AGE_SECRET}", "unknown identity type"),
        (f"{TEST_AGE_SECRET} ", "malformed age identity on line 2"),
        (f"{TEST_AGE_SECRET}\t", "malformed age identity"),
        (f"{TEST_AGE_SECRET} {TEST_AGE_SECRET}", "malformed age identity"),
        (TEST_AGE_SECRET.lower(), "unknown identity type"),
        (TEST_AGE_SECRET[:20] + TEST_AGE_SECRET[20:].lower(), "mixed-case"),
        (TEST_AGE_SECRET[:-1] + "Q", "malformed age identity"),
        ("AGE-PLUGIN-YUBIKEY-1QQQQQQ", "age plugin identity on line 2"),
        ("AGE-SECRET-KEY-PQ-1QQQQQQ", "post-quantum"),
        ("ssh-ed25519 AAAA", "unknown identity type"),
    ],
)
def test_bad_identity_lines_fail_the_source(line: str, words: str) -> None:
    text = f"# comment\n{line}\n{TEST_AGE_SECRET}\n"
    with pytest.raises(KeySourceError) as info:
        age.parse_identities(text, source="SOPS_AGE_KEY")
    assert words in str(info.value)
    assert TEST_AGE_SECRET not in all_text(info.value)
    assert TEST_AGE_SECRET.lower() not in all_text(info.value)
    assert info.value.__cause__ is None


def test_whitespace_error_has_a_hint() -> None:
    with pytest.raises(KeySourceError) as info:
        age.parse_identities(f"  {TEST_AGE_SECRET}", source="x")
    assert info.value.hint is not None and "whitespace" in info.value.hint


def test_identity_never_shows_its_key() -> None:
    (identity,) = age.parse_identities(TEST_AGE_SECRET, source="x")
    for text in (repr(identity), str(identity), f"{identity}", f"{identity!r}", repr([identity])):
        assert TEST_AGE_SECRET not in text
        assert TEST_AGE_SECRET.lower() not in text
    assert repr(identity) == f"AgeIdentity(recipient={TEST_AGE_PUBLIC!r})"
    with pytest.raises(TypeError):
        pickle.dumps(identity)
    with pytest.raises(TypeError):
        copy.copy(identity)
    with pytest.raises(AttributeError):
        identity.recipient = "x"
    assert identity.to_recipient() == age.parse_recipient(TEST_AGE_PUBLIC)


def test_generate_identity() -> None:
    first, second = age.generate_identity(), age.generate_identity()
    assert first.kind == "X25519"
    assert first.recipient is not None and first.recipient.startswith("age1")
    assert first.recipient != second.recipient
    assert first.to_recipient().text == first.recipient


def test_parse_ssh_identities(ed25519_key: tuple[bytes, str], rsa_key: tuple[bytes, str]) -> None:
    for (private, public), kind in ((ed25519_key, "ssh-ed25519"), (rsa_key, "ssh-rsa")):
        identity = age.parse_ssh_identity(private, source="/home/me/.ssh/id")
        assert identity.kind == kind
        assert identity.recipient == public
        assert identity.to_recipient().text == public
        secret_body = private.decode().splitlines()[2]
        assert secret_body not in repr(identity)
        assert repr(identity) == f"AgeIdentity(recipient={public!r})"


def test_pem_rsa_identity_has_no_known_recipient() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    identity = age.parse_ssh_identity(pem, source="id_rsa")
    assert identity.kind == "ssh-rsa"
    assert identity.recipient is None
    assert repr(identity) == "AgeIdentity(kind='ssh-rsa', source='id_rsa')"
    with pytest.raises(ValueError, match="unknown"):
        identity.to_recipient()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    enc = age.wrap_data_key(DATA_KEY, age.parse_recipient(public.decode()))
    assert age.unwrap_data_key(enc, [identity]) == DATA_KEY


def test_passphrase_protected_ssh_key_is_a_clear_error() -> None:
    with pytest.raises(KeySourceError, match="protected by a passphrase") as info:
        age.parse_ssh_identity(ENCRYPTED_SSH_KEY, source="/home/me/.ssh/id_ed25519")
    assert "/home/me/.ssh/id_ed25519" in str(info.value)
    assert info.value.hint


def test_bad_ssh_keys() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = openssh_private(key)
    with pytest.raises(KeySourceError, match="unsupported ssh key type in k"):
        age.parse_ssh_identity(private, source="k")
    for garbage in (b"", b"garbage", TEST_AGE_SECRET.encode()):
        with pytest.raises(KeySourceError, match="malformed ssh private key in k") as info:
            age.parse_ssh_identity(garbage, source="k")
        assert TEST_AGE_SECRET not in all_text(info.value)


# --- identity files ----------------------------------------------------------


def _utc() -> datetime:
    return datetime(2026, 11, 29, 5, 0, 16, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("created", "stamp"),
    [
        (_utc(), "2026-11-29T05:00:16Z"),
        (_utc().astimezone(timezone(timedelta(hours=-5))), "2026-11-29T00:00:16-05:00"),
        (_utc().astimezone(timezone(timedelta(hours=5, minutes=30))), "2026-11-29T10:30:16+05:30"),
        (_utc().astimezone(timezone(timedelta(seconds=30))), "2026-11-29T05:00:46+00:00"),
        (datetime(33, 1, 2, 3, 4, 5, tzinfo=UTC), "0033-01-02T03:04:05Z"),
    ],
)
def test_format_identity_file_like_age_keygen(created: datetime, stamp: str) -> None:
    (identity,) = age.parse_identities(TEST_AGE_SECRET, source="x")
    text = age.format_identity_file(identity, created=created)
    assert text == (f"# created: {stamp}\n# public key: {TEST_AGE_PUBLIC}\n{TEST_AGE_SECRET}\n")


def test_format_identity_file_refuses_naive_time_and_ssh(ed25519_key: tuple[bytes, str]) -> None:
    (identity,) = age.parse_identities(TEST_AGE_SECRET, source="x")
    with pytest.raises(ValueError, match="timezone-aware"):
        age.format_identity_file(identity, created=datetime(2026, 1, 1))
    ssh = age.parse_ssh_identity(ed25519_key[0], source="k")
    with pytest.raises(ValueError, match="X25519"):
        age.format_identity_file(ssh, created=_utc())


def test_write_identity_file_is_0600_from_the_start(tmp_path: Path, identity: AgeIdentity) -> None:
    path = tmp_path / "keys.txt"
    old = os.umask(0)  # the mode must not depend on a restrictive umask
    try:
        age.write_identity_file(path, identity, created=_utc())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == age.format_identity_file(identity, created=_utc())
    (parsed,) = age.parse_identities(path.read_text(), source=str(path))
    assert parsed.recipient == identity.recipient


def test_write_identity_file_default_time_is_local(tmp_path: Path, identity: AgeIdentity) -> None:
    path = tmp_path / "keys.txt"
    age.write_identity_file(str(path), identity)
    stamp = path.read_text().splitlines()[0].removeprefix("# created: ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", stamp)
    assert abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=1)


def test_write_identity_file_never_overwrites(tmp_path: Path, identity: AgeIdentity) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("precious\n")
    with pytest.raises(KeySourceError, match="already exists") as info:
        age.write_identity_file(path, identity)
    assert str(path) in str(info.value)
    assert path.read_text() == "precious\n"
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(KeySourceError, match="already exists"):
        age.write_identity_file(link, identity)
    assert not (tmp_path / "elsewhere.txt").exists()


def test_write_identity_file_reports_missing_directory(
    tmp_path: Path, identity: AgeIdentity
) -> None:
    with pytest.raises(KeySourceError, match="cannot create identity file"):
        age.write_identity_file(tmp_path / "missing" / "keys.txt", identity)


# --- wrapping ----------------------------------------------------------------


def test_wrap_layout_matches_age_armor(identity: AgeIdentity) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    lines = enc.split("\n")
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-2:] == ["-----END AGE ENCRYPTED FILE-----", ""]
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64
    binary = binascii.a2b_base64("".join(body), strict_mode=True)
    assert binary.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert age.unwrap_data_key(enc, [identity]) == DATA_KEY


def test_unwrap_tries_every_identity(identity: AgeIdentity, ed25519_key: tuple[bytes, str]) -> None:
    ssh = age.parse_ssh_identity(ed25519_key[0], source="k")
    others = [age.generate_identity() for _ in range(3)]
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    assert age.unwrap_data_key(enc, [*others, ssh, identity]) == DATA_KEY
    enc = age.wrap_data_key(DATA_KEY, ssh.to_recipient())
    assert age.unwrap_data_key(enc, [identity, ssh, *others]) == DATA_KEY


def test_unwrap_with_wrong_identities(identity: AgeIdentity) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    (wrong,) = age.parse_identities(TEST_AGE_SECRET, source="x")
    with pytest.raises(NoMatchingKeyError) as info:
        age.unwrap_data_key(enc, [wrong], recipient=identity.recipient)
    text = all_text(info.value)
    assert str(info.value) == (
        f"no age identity matches recipient {identity.recipient} (tried 1 identity)"
    )
    assert info.value.recipients == [identity.recipient]
    assert TEST_AGE_SECRET not in text and TEST_AGE_SECRET.lower() not in text
    with pytest.raises(NoMatchingKeyError, match="tried 0 identities"):
        age.unwrap_data_key(enc, [])


def test_unwrap_accepts_what_age_armor_reader_accepts(identity: AgeIdentity) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    for variant in (
        enc.replace("\n", "\r\n"),
        enc.rstrip("\n"),
        "\n \t\r\n" + enc + "\n  \n",
    ):
        assert age.unwrap_data_key(variant, [identity]) == DATA_KEY


@pytest.mark.parametrize(
    "mangle",
    [
        lambda enc: enc.replace("BEGIN AGE ENCRYPTED FILE", "BEGIN PGP MESSAGE"),
        lambda enc: enc.replace("\n", "\n  "),
        lambda enc: "  " + enc,
        lambda enc: armor(binascii.a2b_base64("".join(enc.splitlines()[1:-1])), columns=76),
        lambda enc: enc.replace("-----END AGE ENCRYPTED FILE-----\n", ""),
        lambda enc: enc + "trailing garbage\n",
        lambda enc: enc.replace("A", "*", 1),
        lambda enc: base64.b64decode("".join(enc.splitlines()[1:-1])).decode("latin-1"),
        lambda enc: "",
        lambda enc: "-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n",
        lambda enc: armor(b"age-encryption.org/v2\n-> X25519 abc\n\n--- " + b"A" * 43 + b"\n"),
        lambda enc: "\n" * 2000 + enc,
        lambda enc: enc.replace("A", "\u00c4"),
    ],
)
def test_malformed_enc_is_a_format_error(
    identity: AgeIdentity, mangle: Callable[[str], str]
) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    with pytest.raises(FormatError):
        age.unwrap_data_key(mangle(enc), [identity])


def test_tampered_enc_is_an_integrity_error(identity: AgeIdentity) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    data = bytearray(binascii.a2b_base64("".join(enc.splitlines()[1:-1])))
    data[-1] ^= 1  # last byte of the payload tag
    with pytest.raises(IntegrityError):
        age.unwrap_data_key(armor(bytes(data)), [identity])
    mac_at = data.index(b"\n--- ") + 6
    data[-1] ^= 1
    data[mac_at] = ord("B") if data[mac_at] != ord("B") else ord("C")
    with pytest.raises((IntegrityError, FormatError)):
        age.unwrap_data_key(armor(bytes(data)), [identity])


def test_decrypt_binary_and_armored(identity: AgeIdentity) -> None:
    recipient = identity.to_recipient()._pyrage
    binary = pyrage.encrypt(b"payload", [recipient])
    assert age.decrypt(binary, [identity]) == b"payload"
    assert age.decrypt(pyrage.encrypt(b"payload", [recipient], armored=True), [identity]) == (
        b"payload"
    )
    with pytest.raises(LimitError):
        age.decrypt(binary, [identity], max_size=len(binary) - 1)
    assert age.decrypt(binary, [identity], max_size=None) == b"payload"


# --- limits ------------------------------------------------------------------


def test_enc_size_limit(identity: AgeIdentity) -> None:
    enc = age.wrap_data_key(DATA_KEY, identity.to_recipient())
    padded = enc + " " * (age.MAX_ARMORED_SIZE - len(enc))
    assert age.unwrap_data_key(padded, [identity]) == DATA_KEY
    with pytest.raises(LimitError, match="more than 65536"):
        age.unwrap_data_key(padded + " ", [identity])


def test_stanza_limit_counts_before_pyrage(identity: AgeIdentity) -> None:
    # Unknown stanza types cost pyrage nothing, so only our own count can fail here.
    at_limit = fake_header(["X25519 abc"] + ["grease"] * (age.MAX_STANZAS - 1))
    with pytest.raises(FormatError) as info:
        age.decrypt(at_limit, [identity])
    assert not isinstance(info.value, LimitError)
    over = fake_header(["grease"] * (age.MAX_STANZAS + 1))
    with pytest.raises(LimitError, match="65 recipient stanzas"):
        age.decrypt(over, [identity])
    with pytest.raises(LimitError):
        age.unwrap_data_key(armor(over), [identity])


def test_stanza_limit_on_real_multi_recipient_files(identity: AgeIdentity) -> None:
    others = [age.generate_identity().to_recipient()._pyrage for _ in range(age.MAX_STANZAS)]
    few = pyrage.encrypt(DATA_KEY, [identity.to_recipient()._pyrage, *others[:5]], armored=True)
    assert age.unwrap_data_key(few.decode(), [identity]) == DATA_KEY
    many = pyrage.encrypt(DATA_KEY, [identity.to_recipient()._pyrage, *others], armored=True)
    with pytest.raises(LimitError):
        age.unwrap_data_key(many.decode(), [identity])


def test_header_size_limit(identity: AgeIdentity) -> None:
    huge = b"age-encryption.org/v1\n" + b"-> grease\n" + (b"A" * 64 + b"\n") * 1100
    with pytest.raises(LimitError, match="header is larger"):
        age.decrypt(huge, [identity])
    with pytest.raises(FormatError, match="no complete header"):
        age.decrypt(b"age-encryption.org/v1\n-> X25519 abc\n", [identity])


def test_stanza_without_final_short_line_is_refused(identity: AgeIdentity) -> None:
    # pyrage 1.4.0 accepts these; age (and the CCTV vectors) do not.
    data = b"age-encryption.org/v1\n-> X25519 abc\n" + b"A" * 64 + b"\n--- " + b"A" * 43 + b"\n"
    with pytest.raises(FormatError, match="short line"):
        age.decrypt(data, [identity])
    with pytest.raises(FormatError, match="short line"):
        age.decrypt(b"age-encryption.org/v1\n-> empty\n--- " + b"A" * 43 + b"\n", [identity])


def test_scrypt_work_factor_limit_is_checked_before_derivation() -> None:
    data = fake_header(["scrypt AAAAAAAAAAAAAAAAAAAAAA 23"])
    with pytest.raises(LimitError, match="work factor"):
        age.decrypt_with_passphrase(data, "password")
    with pytest.raises(LimitError, match="work factor"):
        age.decrypt_with_passphrase(fake_header(["scrypt AAAA " + "9" * 5000]), "password")


def test_decrypt_with_passphrase() -> None:
    data = scrypt_encrypt(b"secret identity", "correct horse")
    assert pyrage.passphrase.decrypt(data, "correct horse") == b"secret identity"
    assert age.decrypt_with_passphrase(data, "correct horse") == b"secret identity"
    assert age.decrypt_with_passphrase(armor(data).encode(), "correct horse") == (
        b"secret identity"
    )
    with pytest.raises(NoMatchingKeyError):
        age.decrypt_with_passphrase(data, "wrong")


# --- property ----------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data_key=st.binary(min_size=32, max_size=33),
    count=st.integers(min_value=1, max_value=6),
    order=st.randoms(use_true_random=False),
)
def test_wrap_unwrap_round_trip(data_key: bytes, count: int, order: object) -> None:
    identities = [age.generate_identity() for _ in range(count)]
    encs = [age.wrap_data_key(data_key, i.to_recipient()) for i in identities]
    shuffled = list(identities)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    for identity, enc in zip(identities, encs, strict=True):
        assert age.unwrap_data_key(enc, [identity]) == data_key
        assert age.unwrap_data_key(enc, shuffled) == data_key
        others = [i for i in identities if i is not identity]
        with pytest.raises(NoMatchingKeyError):
            age.unwrap_data_key(enc, others)


# --- discovery ---------------------------------------------------------------


class Keys:
    """Throwaway identities, each with an enc wrapping DATA_KEY to it."""

    def __init__(self, count: int) -> None:
        self.identities = [age.generate_identity() for _ in range(count)]
        self.enc = [age.wrap_data_key(DATA_KEY, i.to_recipient()) for i in self.identities]
        self.recipient = [str(i.recipient) for i in self.identities]
        self.text = [age.format_identity_file(i, created=_utc()) for i in self.identities]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(6)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def sources(env: dict[str, str], home: Path, **kwargs: object) -> IdentitySources:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return IdentitySources.from_environment(env, home, **kwargs)  # type: ignore[arg-type]


def key_command(tmp_path: Path, keys_text: str, *, status: int = 0) -> tuple[str, Path]:
    """A SOPS_AGE_KEY_CMD that logs SOPS_AGE_RECIPIENT and prints the keys."""
    folder = tmp_path / "a dir"
    folder.mkdir(exist_ok=True)
    (folder / "keys").write_text(keys_text)
    log = folder / "log"
    script = folder / "cmd.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s|%s\\n' \"$SOPS_AGE_RECIPIENT\" \"$1\" >> '{log}'\n"
        f"cat '{folder / 'keys'}'\n"
        f"exit {status}\n"
    )
    script.chmod(0o755)
    return f"'{script}' 'an arg'", log


def test_sops_age_key_alone(home: Path, keys: Keys) -> None:
    found = sources({_env.SOPS_AGE_KEY: keys.text[0]}, home)
    assert found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0]) == DATA_KEY
    assert [i.recipient for i in found.identities_for(keys.recipient[0])] == [keys.recipient[0]]
    assert found.errors == []


def test_sops_age_key_file_alone(home: Path, tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "k.txt"
    path.write_text(keys.text[1])
    found = sources({_env.SOPS_AGE_KEY_FILE: str(path)}, home)
    assert found.unwrap_data_key(keys.enc[1], recipient=keys.recipient[1]) == DATA_KEY


def test_sops_age_key_file_has_no_tilde_expansion(home: Path, keys: Keys) -> None:
    (home / "k.txt").write_text(keys.text[1])
    found = sources({_env.SOPS_AGE_KEY_FILE: "~/k.txt"}, home)
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[1], recipient=keys.recipient[1])
    assert any("SOPS_AGE_KEY_FILE: cannot read ~/k.txt" in e for e in info.value.errors)


def test_sops_age_key_cmd_alone(home: Path, tmp_path: Path, keys: Keys) -> None:
    command, log = key_command(tmp_path, keys.text[2])
    found = sources({_env.SOPS_AGE_KEY_CMD: command}, home)
    assert found.unwrap_data_key(keys.enc[2], recipient=keys.recipient[2]) == DATA_KEY
    assert log.read_text() == f"{keys.recipient[2]}|an arg\n"


def test_sops_age_key_cmd_runs_once_per_recipient(home: Path, tmp_path: Path, keys: Keys) -> None:
    command, log = key_command(tmp_path, keys.text[2] + keys.text[3])
    found = sources({_env.SOPS_AGE_KEY_CMD: command}, home)
    for index in (2, 3, 2):
        assert found.unwrap_data_key(keys.enc[index], recipient=keys.recipient[index]) == DATA_KEY
    assert log.read_text().splitlines() == [
        f"{keys.recipient[2]}|an arg",
        f"{keys.recipient[3]}|an arg",
        f"{keys.recipient[2]}|an arg",
    ]


def test_ssh_private_key_file_alone(
    home: Path, tmp_path: Path, ed25519_key: tuple[bytes, str]
) -> None:
    path = tmp_path / "deploy_key"
    path.write_bytes(ed25519_key[0])
    enc = age.wrap_data_key(DATA_KEY, age.parse_recipient(ed25519_key[1]))
    found = sources({_env.SOPS_AGE_SSH_PRIVATE_KEY_FILE: str(path)}, home)
    assert found.unwrap_data_key(enc, recipient=ed25519_key[1]) == DATA_KEY


def test_default_ssh_keys_are_always_tried(
    home: Path, ed25519_key: tuple[bytes, str], rsa_key: tuple[bytes, str], keys: Keys
) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_bytes(ed25519_key[0])
    (home / ".ssh" / "id_rsa").write_bytes(rsa_key[0])
    found = sources({_env.SOPS_AGE_KEY: keys.text[0]}, home)
    for _, public in (ed25519_key, rsa_key):
        enc = age.wrap_data_key(DATA_KEY, age.parse_recipient(public))
        assert found.unwrap_data_key(enc, recipient=public) == DATA_KEY
    kinds = [i.kind for i in found.identities_for("x")]
    assert kinds == ["ssh-ed25519", "ssh-rsa", "X25519"]


def test_default_keys_txt_under_xdg_config_home(home: Path, tmp_path: Path, keys: Keys) -> None:
    config = tmp_path / "xdg"
    (config / "sops" / "age").mkdir(parents=True)
    (config / "sops" / "age" / "keys.txt").write_text(keys.text[4])
    found = sources({"XDG_CONFIG_HOME": str(config)}, home)
    assert found.default_key_file == str(config / "sops" / "age" / "keys.txt")
    assert found.unwrap_data_key(keys.enc[4], recipient=keys.recipient[4]) == DATA_KEY


def test_default_keys_txt_under_home_config(home: Path, keys: Keys) -> None:
    (home / ".config" / "sops" / "age").mkdir(parents=True)
    (home / ".config" / "sops" / "age" / "keys.txt").write_text(keys.text[4])
    for env in ({}, {"XDG_CONFIG_HOME": ""}):
        found = sources(env, home)
        assert found.unwrap_data_key(keys.enc[4], recipient=keys.recipient[4]) == DATA_KEY


def test_relative_xdg_config_home_is_an_error(home: Path, keys: Keys) -> None:
    found = sources({"XDG_CONFIG_HOME": "relative/dir"}, home)
    assert found.default_key_file is None
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0])
    assert any("XDG_CONFIG_HOME is relative" in e for e in info.value.errors)
    assert str(info.value).startswith("failed to load age identities (1 source failed): ")


def test_all_sources_together(
    home: Path, tmp_path: Path, keys: Keys, ed25519_key: tuple[bytes, str]
) -> None:
    ssh_path = tmp_path / "ssh_key"
    ssh_path.write_bytes(ed25519_key[0])
    key_file = tmp_path / "k.txt"
    key_file.write_text(keys.text[1])
    command, _ = key_command(tmp_path, keys.text[2])
    (home / ".config" / "sops" / "age").mkdir(parents=True)
    (home / ".config" / "sops" / "age" / "keys.txt").write_text(keys.text[3])
    env = {
        _env.SOPS_AGE_SSH_PRIVATE_KEY_FILE: str(ssh_path),
        _env.SOPS_AGE_KEY: keys.text[0],
        _env.SOPS_AGE_KEY_FILE: str(key_file),
        _env.SOPS_AGE_KEY_CMD: command,
    }
    found = sources(env, home)
    assert [i.recipient for i in found.identities_for("r")] == [
        ed25519_key[1],
        keys.recipient[0],
        keys.recipient[1],
        keys.recipient[3],  # the default file
        keys.recipient[2],  # the command, run for every recipient
    ]
    for index in range(4):
        assert found.unwrap_data_key(keys.enc[index], recipient=keys.recipient[index]) == DATA_KEY
    enc = age.wrap_data_key(DATA_KEY, age.parse_recipient(ed25519_key[1]))
    assert found.unwrap_data_key(enc, recipient=ed25519_key[1]) == DATA_KEY
    assert found.errors == []


def test_broken_sources_are_skipped(home: Path, tmp_path: Path, keys: Keys) -> None:
    key_file = tmp_path / "k.txt"
    key_file.write_text(keys.text[1])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_bytes(ENCRYPTED_SSH_KEY)
    (home / ".ssh" / "id_rsa").write_text("not a key")
    env = {
        _env.SOPS_AGE_SSH_PRIVATE_KEY_FILE: str(tmp_path / "missing"),
        _env.SOPS_AGE_KEY: f" {TEST_AGE_SECRET}\n",
        _env.SOPS_AGE_KEY_FILE: str(key_file),
        _env.SOPS_AGE_KEY_CMD: "/nonexistent/command",
    }
    found = sources(env, home)
    assert found.unwrap_data_key(keys.enc[1], recipient=keys.recipient[1]) == DATA_KEY
    errors = found.errors
    assert len(errors) == 4
    assert "cannot read" in errors[0] and str(tmp_path / "missing") in errors[0]
    assert "protected by a passphrase" in errors[1]
    assert "malformed ssh private key" in errors[2]
    assert "unknown identity type on line 1 of SOPS_AGE_KEY" in errors[3]
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0])
    assert any("SOPS_AGE_KEY_CMD: cannot run /nonexistent/command" in e for e in info.value.errors)
    assert TEST_AGE_SECRET not in all_text(info.value)


def test_failing_command_is_recorded(home: Path, tmp_path: Path, keys: Keys) -> None:
    command, _ = key_command(tmp_path, keys.text[2], status=3)
    found = sources({_env.SOPS_AGE_KEY_CMD: command, _env.SOPS_AGE_KEY: keys.text[0]}, home)
    assert found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0]) == DATA_KEY
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[2], recipient=keys.recipient[2])
    assert any("cmd.sh exited with status 3" in e for e in info.value.errors)
    for bad, words in (("'unclosed", "cannot split"), ("", "the command is empty")):
        found = sources({_env.SOPS_AGE_KEY_CMD: bad}, home)
        with pytest.raises(NoMatchingKeyError) as info:
            found.unwrap_data_key(keys.enc[2], recipient=keys.recipient[2])
        assert any(words in e for e in info.value.errors)


def test_static_sources_are_read_once(home: Path, tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "k.txt"
    path.write_text(keys.text[1])
    found = sources({_env.SOPS_AGE_KEY_FILE: str(path)}, home)
    assert found.unwrap_data_key(keys.enc[1], recipient=keys.recipient[1]) == DATA_KEY
    path.write_text(keys.text[2])
    assert found.unwrap_data_key(keys.enc[1], recipient=keys.recipient[1]) == DATA_KEY
    with pytest.raises(NoMatchingKeyError):
        found.unwrap_data_key(keys.enc[2], recipient=keys.recipient[2])


def test_nothing_found_lists_locations_like_sops(home: Path, keys: Keys) -> None:
    found = sources({}, home)
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0])
    config = home / ".config" / "sops" / "age" / "keys.txt"
    assert str(info.value) == (
        "failed to load age identities: did not find keys in locations "
        f"'SOPS_AGE_SSH_PRIVATE_KEY_FILE', '{home}/.ssh/id_ed25519', '{home}/.ssh/id_rsa', "
        f"'SOPS_AGE_KEY', 'SOPS_AGE_KEY_FILE', 'SOPS_AGE_KEY_CMD', and '{config}'"
    )
    assert "\n" not in str(info.value)
    assert info.value.recipients == [keys.recipient[0]]
    assert info.value.hint is not None and str(config) in info.value.hint


def test_no_match_names_recipient_and_unused_locations(home: Path, keys: Keys) -> None:
    found = sources({_env.SOPS_AGE_KEY: TEST_AGE_SECRET}, home)
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0])
    assert str(info.value) == (
        f"no age identity matches recipient {keys.recipient[0]} (tried 1 identity)"
    )
    assert info.value.errors[-1].startswith(
        "did not find keys in locations 'SOPS_AGE_SSH_PRIVATE_KEY_FILE'"
    )
    assert TEST_AGE_SECRET not in all_text(info.value)


def test_format_errors_in_enc_propagate(home: Path, keys: Keys) -> None:
    found = sources({_env.SOPS_AGE_KEY: keys.text[0]}, home)
    with pytest.raises(FormatError):
        found.unwrap_data_key("not armor", recipient=keys.recipient[0])


def test_passphrase_protected_identity_file(home: Path, tmp_path: Path, keys: Keys) -> None:
    path = tmp_path / "keys.age"
    path.write_bytes(scrypt_encrypt(keys.text[5].encode(), "open sesame"))
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return "open sesame"

    found = sources(
        {_env.SOPS_AGE_KEY_FILE: str(path), _env.SOPS_AGE_KEY: keys.text[0]},
        home,
        read_passphrase=ask,
    )
    # A plain identity matches first: no prompt.
    assert found.unwrap_data_key(keys.enc[0], recipient=keys.recipient[0]) == DATA_KEY
    assert prompts == []
    assert found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5]) == DATA_KEY
    assert found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5]) == DATA_KEY
    assert prompts == ["Enter passphrase for identity 'SOPS_AGE_KEY_FILE':"]


def test_armored_passphrase_identity_in_env(home: Path, keys: Keys) -> None:
    armored = armor(scrypt_encrypt(keys.text[5].encode(), "pw"))
    found = sources({_env.SOPS_AGE_KEY: armored}, home, read_passphrase=lambda _: "pw")
    assert found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5]) == DATA_KEY


def test_wrong_passphrase_is_recorded_once(home: Path, keys: Keys) -> None:
    calls: list[str] = []

    def ask(prompt: str) -> str:
        calls.append(prompt)
        return "wrong"

    found = sources(
        {_env.SOPS_AGE_KEY: armor(scrypt_encrypt(keys.text[5].encode(), "pw"))},
        home,
        read_passphrase=ask,
    )
    for _ in range(2):
        with pytest.raises(NoMatchingKeyError) as info:
            found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5])
    assert len(calls) == 1
    wanted = "incorrect passphrase for identity file SOPS_AGE_KEY"
    assert any(wanted in e for e in info.value.errors)


def test_passphrase_without_terminal(home: Path, keys: Keys) -> None:
    env = {_env.SOPS_AGE_KEY: armor(scrypt_encrypt(keys.text[5].encode(), "pw"))}
    found = sources(env, home, read_passphrase=None)
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5])
    assert any("protected by a passphrase" in e for e in info.value.errors)

    def no_terminal(prompt: str) -> str:
        return age.read_passphrase_from_terminal(prompt, stdin=io.StringIO())

    found = sources(env, home, read_passphrase=no_terminal)
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5])
    assert any("standard input is not a terminal" in e for e in info.value.errors)


def test_read_passphrase_from_terminal_needs_a_tty() -> None:
    with pytest.raises(KeySourceError, match="not a terminal"):
        age.read_passphrase_from_terminal("Passphrase:", stdin=io.StringIO("typed\n"))


def test_age_encrypted_identity_without_scrypt_is_refused(home: Path, keys: Keys) -> None:
    other = age.generate_identity()
    wrapped = age.wrap_data_key(keys.text[5].encode(), other.to_recipient())
    found = sources({_env.SOPS_AGE_KEY: wrapped}, home, read_passphrase=lambda _: "pw")
    with pytest.raises(NoMatchingKeyError) as info:
        found.unwrap_data_key(keys.enc[5], recipient=keys.recipient[5])
    assert any("encrypted, but not with a passphrase" in e for e in info.value.errors)


def test_env_names_are_declared_once() -> None:
    assert _env.SOPS_AGE_KEY == "SOPS_AGE_KEY"
    assert _env.SOPS_AGE_KEY_FILE == "SOPS_AGE_KEY_FILE"
    assert _env.SOPS_AGE_KEY_CMD == "SOPS_AGE_KEY_CMD"
    assert _env.SOPS_AGE_SSH_PRIVATE_KEY_FILE == "SOPS_AGE_SSH_PRIVATE_KEY_FILE"
    assert _env.SOPS_AGE_RECIPIENT == "SOPS_AGE_RECIPIENT"
    assert set(_env.__all__) <= set(vars(_env))


def test_module_import_stays_light() -> None:
    # A fresh interpreter is the only way to see what an import pulls in.
    import subprocess
    import sys

    code = (
        "import sys; import macula_secrets.keys.age; "
        "print(sorted(m for m in ('dataclasses', 'subprocess', 'shlex', 'getpass', "
        "'macula_secrets.keys._discovery') if m in sys.modules))"
    )
    src = str(Path(age.__file__).parents[2])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert result.stdout.strip() == "[]"
