"""age recipients and identities, and the data-key wrapping sops does with them.

This is part of the keys layer (our hazmat): it turns the strings sops stores
and reads (``age1...``, ``ssh-ed25519 AAAA...``, ``AGE-SECRET-KEY-1...``) into
key objects, wraps a data key for one recipient as the ASCII-armored age file
sops keeps in an ``enc`` field, and unwraps it again. All age cryptography is
pyrage's; this module adds the rules sops applies around it, limits against
hostile ``enc`` fields, and the ``age-keygen`` file format.

Most callers want :mod:`macula_secrets.sops`, which finds the identities
(:class:`IdentitySources`) and unwraps data keys itself. Use this module
directly to generate keys or to wrap and unwrap a data key by hand.

Not supported: age plugins (``age1<name>1...``, ``AGE-PLUGIN-...``),
post-quantum hybrid keys (``age1pq1...``, sops 3.12+) and passphrase-protected
SSH keys (pyrage cannot decrypt them).
"""

from __future__ import annotations

import binascii
import os
from typing import TYPE_CHECKING, Literal

import pyrage
from pyrage import passphrase as _pyrage_passphrase
from pyrage import ssh as _pyrage_ssh
from pyrage import x25519 as _pyrage_x25519

from macula_secrets.errors import (
    ConfigError,
    DecryptionError,
    FormatError,
    IntegrityError,
    KeySourceError,
    LimitError,
    MaculaError,
    NoMatchingKeyError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from typing import Final, NoReturn

    from macula_secrets.keys._discovery import IdentitySources, read_passphrase_from_terminal

__all__ = [
    "MAX_ARMORED_SIZE",
    "MAX_FILE_SIZE",
    "MAX_SCRYPT_WORK_FACTOR",
    "MAX_STANZAS",
    "AgeIdentity",
    "AgeRecipient",
    "IdentitySources",
    "decrypt",
    "decrypt_with_passphrase",
    "encrypt",
    "format_identity_file",
    "generate_identity",
    "parse_identities",
    "parse_identity_data",
    "parse_recipient",
    "parse_recipients",
    "parse_ssh_identity",
    "read_passphrase_from_terminal",
    "unwrap_data_key",
    "wrap_data_key",
    "write_identity_file",
]

KeyKind = Literal["X25519", "ssh-ed25519", "ssh-rsa"]

MAX_ARMORED_SIZE: Final = 64 * 1024
"""Largest ``enc`` field accepted. sops writes about 400 bytes per recipient."""

MAX_FILE_SIZE: Final = 16 * 1024 * 1024
"""Default size limit of :func:`decrypt`; sops uses the same for encrypted identity files."""

MAX_STANZAS: Final = 64
"""Most recipient stanzas accepted in one age header.

Each stanza costs an X25519 or RSA operation per identity, so a hostile file
with thousands of them would make decryption slow (age's own CLI has no limit).
sops writes one stanza per file; pyrage adds one "grease" stanza.
"""

MAX_SCRYPT_WORK_FACTOR: Final = 22
"""Largest scrypt work factor (log2 N) accepted: age's default maximum.

Checked before any key derivation, because rage accepts more (CCTV
``scrypt_work_factor_23``): 2^22 already needs 4 GiB of memory, 2^23 needs 8.
"""

_MAX_HEADER_SIZE: Final = 64 * 1024
_MAX_LEADING_WHITESPACE: Final = 1024  # age's armor reader allows as much, no more
_WHITESPACE: Final = b" \t\n\r\v\f"
_ARMOR_BEGIN: Final = b"-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END: Final = b"-----END AGE ENCRYPTED FILE-----"
_ARMOR_COLUMNS: Final = 64
_VERSION_LINE: Final = b"age-encryption.org/v1"
_X25519_SECRET_PREFIX: Final = "AGE-SECRET-KEY-1"  # noqa: S105 (a prefix, not a key)
_SSH_KINDS: Final = ("ssh-ed25519", "ssh-rsa")


def __getattr__(name: str) -> object:
    # Discovery runs commands and may ask for a passphrase; importing it only
    # when asked keeps `import macula_secrets.keys.age` small for encryption.
    if name in ("IdentitySources", "read_passphrase_from_terminal"):
        from macula_secrets.keys import _discovery

        return getattr(_discovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class AgeRecipient:
    """An age recipient: a public key that a data key can be wrapped to.

    ``text`` is the recipient exactly as given (stripped of surrounding
    whitespace), because sops stores it verbatim, SSH comment included.
    ``kind`` is ``"X25519"``, ``"ssh-ed25519"`` or ``"ssh-rsa"``. Make one with
    :func:`parse_recipient` or :meth:`AgeIdentity.to_recipient`. Immutable;
    equal when the texts are equal.
    """

    __slots__ = ("_pyrage", "kind", "text")

    text: str
    kind: KeyKind
    _pyrage: object

    def __init__(self, text: str, kind: KeyKind, pyrage_recipient: object) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_pyrage", pyrage_recipient)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"AgeRecipient({self.text!r})"

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgeRecipient):
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


class AgeIdentity:
    """An age identity: a private key that can unwrap data keys.

    Its repr and str show only the public recipient, never the key. ``kind`` is
    ``"X25519"``, ``"ssh-ed25519"`` or ``"ssh-rsa"``; ``recipient`` is the
    public key as text (``None`` for a PEM-format RSA key, whose public half
    is not stored in plain text); ``source`` names where it came from (a path
    or an environment variable), for messages. Make one with
    :func:`generate_identity`, :func:`parse_identities` or
    :func:`parse_ssh_identity`. Immutable; cannot be pickled or copied.
    """

    __slots__ = ("_pyrage", "kind", "recipient", "source")

    kind: KeyKind
    recipient: str | None
    source: str | None
    _pyrage: object

    def __init__(
        self, pyrage_identity: object, *, kind: KeyKind, recipient: str | None, source: str | None
    ) -> None:
        object.__setattr__(self, "_pyrage", pyrage_identity)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "recipient", recipient)
        object.__setattr__(self, "source", source)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        if self.recipient is not None:
            return f"AgeIdentity(recipient={self.recipient!r})"
        return f"AgeIdentity(kind={self.kind!r}, source={self.source!r})"

    def __reduce__(self) -> NoReturn:
        # Pickling would write the private key to wherever the pickle goes.
        raise TypeError("age identities cannot be pickled")

    def to_recipient(self) -> AgeRecipient:
        """Return the public recipient that matches this identity.

        Raises:
            ValueError: the public key is unknown (a PEM-format RSA key).
        """
        if self.kind == "X25519":
            public = self._pyrage.to_public()  # type: ignore[attr-defined]
            return AgeRecipient(str(public), "X25519", public)
        if self.recipient is None:
            raise ValueError(f"the public key of {self.source or 'this ssh key'} is unknown")
        return parse_recipient(self.recipient)


# --- recipients --------------------------------------------------------------


def _looks_secret(text: str) -> bool:
    upper = text.upper()
    return upper.startswith(("AGE-SECRET-KEY-", "AGE-PLUGIN-")) or "PRIVATE KEY" in upper


def parse_recipient(text: str) -> AgeRecipient:
    """Parse one age recipient as sops accepts it.

    Accepted: ``age1...`` (X25519), ``ssh-ed25519 AAAA... [comment]`` and
    ``ssh-rsa AAAA... [comment]`` (RSA keys of at least 2048 bits). Surrounding
    whitespace is stripped; the rest is kept verbatim in ``.text``.

    Raises:
        ConfigError: the text is not a supported recipient; the message quotes it
            (it is a public key) unless it looks like a private key.
    """
    text = text.strip()
    shown = "(a private key, not a recipient)" if _looks_secret(text) else repr(text)
    if text.startswith("age1"):
        if text.startswith("age1pq1"):
            raise ConfigError(
                f"post-quantum age recipient {shown} is not supported",
                hint="hybrid age keys need sops 3.12+ and are not supported yet",
            )
        if text.count("1") > 1:
            # sops's own test: a Bech32 X25519 key has no "1" after its prefix.
            raise ConfigError(
                f"age plugin recipient {shown} is not supported",
                hint="age plugins (age-plugin-*) are not supported; use an age1 or ssh recipient",
            )
        if text != text.lower():
            raise ConfigError(f"invalid age recipient {shown}: mixed-case Bech32")
        try:
            parsed = _pyrage_x25519.Recipient.from_str(text)
        except pyrage.RecipientError:
            raise ConfigError(
                f"invalid age recipient {shown}: not a Bech32-encoded X25519 public key"
            ) from None
        return AgeRecipient(text, "X25519", parsed)
    if text.startswith("ssh-"):
        fields = text.split()
        key_type = fields[0]
        if key_type not in _SSH_KINDS:
            raise ConfigError(
                f"unsupported ssh recipient {shown}: "
                "only ssh-ed25519 and ssh-rsa keys are supported"
            )
        if len(fields) < 2:
            raise ConfigError(f"invalid ssh recipient {shown}: no key after the type")
        try:
            # Go's ssh.ParseAuthorizedKey separates fields by any whitespace;
            # pyrage wants exactly one space, and no comment is needed.
            parsed = _pyrage_ssh.Recipient.from_str(f"{key_type} {fields[1]}")
        except pyrage.RecipientError as exc:
            reason = "RSA key is smaller than 2048 bits" if "TooSmall" in str(exc) else "bad key"
            raise ConfigError(f"invalid ssh recipient {shown}: {reason}") from None
        kind: KeyKind = "ssh-ed25519" if key_type == "ssh-ed25519" else "ssh-rsa"
        return AgeRecipient(text, kind, parsed)
    raise ConfigError(
        f"unknown age recipient type: {shown}",
        hint="an age recipient starts with age1, ssh-ed25519 or ssh-rsa",
    )


def parse_recipients(text: str, *, skip_empty: bool = True) -> list[AgeRecipient]:
    """Parse a comma-separated list of recipients (``--age``, ``SOPS_AGE_RECIPIENTS``).

    Items are stripped. With ``skip_empty`` (the default, as sops treats an
    ``age:`` string in ``.sops.yaml``) empty items are skipped, so a trailing
    comma is harmless; without it an empty item is an error, as for sops's
    ``--age`` flag and ``SOPS_AGE_RECIPIENTS``. An empty string gives ``[]``.

    Raises:
        ConfigError: an item is not a supported recipient.
    """
    if text == "":
        return []
    return [
        parse_recipient(item) for item in text.split(",") if not (skip_empty and not item.strip())
    ]


# --- identities --------------------------------------------------------------


def generate_identity() -> AgeIdentity:
    """Generate a new X25519 identity from the operating system's randomness."""
    identity = _pyrage_x25519.Identity.generate()
    return AgeIdentity(identity, kind="X25519", recipient=str(identity.to_public()), source=None)


def _parse_identity_line(line: str, *, source: str, number: int) -> AgeIdentity:
    where = f"line {number} of {source}"
    if line.startswith("AGE-PLUGIN-"):
        raise KeySourceError(
            f"age plugin identity on {where} is not supported",
            hint="age plugins (age-plugin-*) are not supported; use an AGE-SECRET-KEY-1 identity",
        )
    if line.startswith("AGE-SECRET-KEY-PQ-1"):
        raise KeySourceError(f"post-quantum age identity on {where} is not supported")
    if not line.startswith(_X25519_SECRET_PREFIX):
        hint = None
        if line.strip().startswith(("AGE-SECRET-KEY-", "AGE-PLUGIN-")):
            hint = "remove the whitespace before the key; sops does not accept it either"
        raise KeySourceError(f"unknown identity type on {where}", hint=hint)
    if line != line.rstrip():
        raise KeySourceError(
            f"malformed age identity on {where}",
            hint="remove the whitespace after the key; sops does not accept it either",
        )
    if line != line.upper():
        raise KeySourceError(f"malformed age identity on {where}: mixed-case Bech32")
    try:
        identity = _pyrage_x25519.Identity.from_str(line)
    except pyrage.IdentityError:
        # Not chained: a parser's message may one day quote the text it read.
        raise KeySourceError(f"malformed age identity on {where}") from None
    return AgeIdentity(identity, kind="X25519", recipient=str(identity.to_public()), source=source)


def parse_identities(text: str, *, source: str) -> list[AgeIdentity]:
    """Parse age identities, one per line, exactly as sops 3.11 does.

    Empty lines and lines starting with ``#`` are ignored; a trailing ``\\r``
    is dropped. Every other line must be an ``AGE-SECRET-KEY-1...`` X25519
    identity with nothing before or after it. One bad line makes the whole
    text unusable, as in sops. ``source`` names the text in messages (a path
    or ``SOPS_AGE_KEY``); no message ever quotes a line.

    Raises:
        KeySourceError: a line is not a valid identity, or is a plugin or
            post-quantum identity (not supported).
    """
    identities = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line or line.startswith("#"):
            continue
        identities.append(_parse_identity_line(line, source=source, number=number))
    return identities


def _read_ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    end = offset + 4 + int.from_bytes(blob[offset : offset + 4], "big")
    if offset + 4 > len(blob) or end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4 : end], end


def _openssh_public_key(data: bytes) -> str | None:
    """Return ``"<type> <base64>"`` from an ``openssh-key-v1`` private key, or ``None``.

    The public half of an OpenSSH key is stored unencrypted after the magic,
    the cipher and KDF names, the KDF options and the key count.
    """
    begin, end = b"-----BEGIN OPENSSH PRIVATE KEY-----", b"-----END OPENSSH PRIVATE KEY-----"
    start = data.find(begin)
    stop = data.find(end, start + 1)
    if start < 0 or stop < 0:
        return None
    try:
        blob = binascii.a2b_base64(b"".join(data[start + len(begin) : stop].split()))
        magic = b"openssh-key-v1\0"
        if not blob.startswith(magic):
            return None
        offset = len(magic)
        for _ in range(3):  # cipher name, KDF name, KDF options
            _, offset = _read_ssh_string(blob, offset)
        offset += 4  # number of keys
        public, _ = _read_ssh_string(blob, offset)
        key_type, _ = _read_ssh_string(public, 0)
        return f"{key_type.decode('ascii')} {binascii.b2a_base64(public, newline=False).decode()}"
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return None


def parse_ssh_identity(data: bytes, *, source: str) -> AgeIdentity:
    """Parse an SSH private key (ed25519 or RSA, OpenSSH or PEM format) as an identity.

    ``source`` names the key in messages (usually its path).

    Raises:
        KeySourceError: the key is malformed, of another type (ECDSA...), or
            protected by a passphrase, which pyrage cannot decrypt.
    """
    public = _openssh_public_key(data)
    try:
        identity = _pyrage_ssh.Identity.from_buffer(data)
    except pyrage.IdentityError as exc:
        message = str(exc)
        if "decrypted" in message:
            raise KeySourceError(
                f"ssh key {source} is protected by a passphrase, which is not supported",
                hint="use an age identity (age-keygen) in SOPS_AGE_KEY_FILE instead",
            ) from None
        if "unsupported key" in message:
            raise KeySourceError(
                f"unsupported ssh key type in {source}: "
                "only ed25519 and RSA keys are age identities"
            ) from None
        raise KeySourceError(f"malformed ssh private key in {source}") from None
    kind: KeyKind = "ssh-ed25519" if public and public.startswith("ssh-ed25519 ") else "ssh-rsa"
    return AgeIdentity(identity, kind=kind, recipient=public, source=source)


def parse_identity_data(data: bytes, *, source: str) -> list[AgeIdentity]:
    """The identities of a key file that is either an SSH private key or age identities.

    For files a person names as "my identity" (``--identity``, ``[master_key]
    identity``), which may hold either kind.

    Raises:
        KeySourceError: neither an ssh key nor any age identity.
    """
    if b"PRIVATE KEY-----" in data:
        return [parse_ssh_identity(data, source=source)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeySourceError(f"{source} is not an age identity or ssh key") from None
    found = parse_identities(text, source=source)
    if not found:
        raise KeySourceError(f"no age identity in {source}")
    return found


def _format_go_time(created: datetime) -> str:
    """Format like Go's ``time.RFC3339`` (``2006-01-02T15:04:05Z07:00``)."""
    offset = created.utcoffset()
    if offset is None:
        raise ValueError("created must be a timezone-aware datetime")
    seconds = int(offset.total_seconds())
    if seconds == 0:
        zone = "Z"
    else:
        # Go prints whole minutes, truncating toward zero, and drops seconds.
        minutes = abs(seconds) // 60
        zone = f"{'-' if seconds < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
    c = created
    date = f"{c.year:04d}-{c.month:02d}-{c.day:02d}"
    return f"{date}T{c.hour:02d}:{c.minute:02d}:{c.second:02d}{zone}"


def format_identity_file(identity: AgeIdentity, *, created: datetime) -> str:
    """Return the text ``age-keygen`` writes for ``identity``.

    Three lines, each ending in ``\\n``: ``# created: <time>`` in ``created``'s
    own UTC offset (``Z`` when it is zero, as Go prints it), ``# public key:
    age1...`` and the ``AGE-SECRET-KEY-1...`` line. The result holds the
    private key: write it only to a file made by :func:`write_identity_file`.

    Raises:
        ValueError: ``identity`` is an SSH key, or ``created`` is naive.
    """
    if identity.kind != "X25519":
        raise ValueError("only X25519 identities have an age identity file format")
    stamp = _format_go_time(created)
    secret = str(identity._pyrage)
    return f"# created: {stamp}\n# public key: {identity.recipient}\n{secret}\n"


def write_identity_file(
    path: str | os.PathLike[str], identity: AgeIdentity, *, created: datetime | None = None
) -> None:
    """Create ``path`` holding ``identity`` in ``age-keygen`` format, mode 0600.

    The file is created with mode 0600 in the same call that creates it, so the
    key is never readable by others, even briefly. An existing file is never
    overwritten (``age-keygen -o`` refuses too). ``created`` defaults to now, in
    local time.

    Raises:
        KeySourceError: the file exists or cannot be created or written.
        ValueError: see :func:`format_identity_file`.
    """
    if created is None:
        from datetime import datetime

        created = datetime.now().astimezone()
    data = format_identity_file(identity, created=created).encode("ascii")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise KeySourceError(
            f"identity file {os.fsdecode(path)} already exists",
            hint="choose another path; an identity file is never overwritten",
        ) from exc
    except OSError as exc:
        raise KeySourceError(
            f"cannot create identity file {os.fsdecode(path)}: {exc.strerror}"
        ) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        # A half-written key file is worse than none: remove what we created.
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(path)
        raise KeySourceError(
            f"cannot write identity file {os.fsdecode(path)}: {exc.strerror}"
        ) from exc


# --- wrapping ----------------------------------------------------------------


def wrap_data_key(data_key: bytes, recipient: AgeRecipient) -> str:
    """Encrypt ``data_key`` to one recipient, as the armored age file sops stores in ``enc``.

    The result is an ASCII-armored age file: ``-----BEGIN AGE ENCRYPTED
    FILE-----``, the binary file in padded base64 wrapped at 64 columns,
    ``-----END AGE ENCRYPTED FILE-----``, every line ending in ``\\n``. sops
    wraps the 32-byte data key, or a 33-byte Shamir share, once per recipient.
    """
    armored: bytes = pyrage.encrypt(bytes(data_key), [recipient._pyrage], armored=True)
    return armored.decode("ascii")


def unwrap_data_key(
    enc: str, identities: Sequence[AgeIdentity], *, recipient: str | None = None
) -> bytes:
    """Decrypt an ``enc`` field (an armored age file) with any of ``identities``.

    Every identity is tried against every stanza, as sops does; ``recipient``
    (the entry's ``recipient`` field) only improves the error message.

    Raises:
        LimitError: ``enc`` is larger than :data:`MAX_ARMORED_SIZE` or has more
            than :data:`MAX_STANZAS` stanzas.
        FormatError: ``enc`` is not an armored age file, or its armor or header
            is malformed.
        NoMatchingKeyError: no identity matches; lists ``recipient``.
        IntegrityError: an identity matched but the header MAC or the payload
            failed to verify.
    """
    if len(enc) > MAX_ARMORED_SIZE:
        raise LimitError(f"enc is {len(enc)} characters long, more than {MAX_ARMORED_SIZE}")
    try:
        data = enc.encode("ascii")
    except UnicodeEncodeError:
        raise FormatError("enc is not an ASCII-armored age file: non-ASCII text") from None
    if not _split_armor(data)[1]:
        raise FormatError(
            "enc is not an ASCII-armored age file: it does not start with "
            "-----BEGIN AGE ENCRYPTED FILE-----"
        )
    body, _ = _inspect(data, max_size=None)
    return _decrypt(body, identities=identities, recipient=recipient)


def encrypt(data: bytes, recipients: Sequence[AgeRecipient], *, armored: bool = False) -> bytes:
    """Encrypt ``data`` as a whole age file to every one of ``recipients``.

    Low level: most callers want :func:`wrap_data_key`. The result is a binary
    age v1 file, or with ``armored`` the ASCII-armored form (``age -a``); the
    real ``age -d`` reads both.

    Raises:
        ConfigError: ``recipients`` is empty.
    """
    if not recipients:
        raise ConfigError("no age recipients to encrypt to")
    result: bytes = pyrage.encrypt(
        bytes(data), [recipient._pyrage for recipient in recipients], armored=armored
    )
    return result


def decrypt(
    data: bytes, identities: Sequence[AgeIdentity], *, max_size: int | None = MAX_FILE_SIZE
) -> bytes:
    """Decrypt a whole age file, binary or armored, with any of ``identities``.

    Low level: most callers want :func:`unwrap_data_key`. The same header
    limits apply; ``max_size=None`` lifts the size limit.

    Raises:
        LimitError, FormatError, NoMatchingKeyError, IntegrityError: as for
            :func:`unwrap_data_key`.
    """
    body, _ = _inspect(data, max_size=max_size)
    return _decrypt(body, identities=identities, recipient=None)


def decrypt_with_passphrase(
    data: bytes, passphrase: str, *, max_size: int | None = MAX_FILE_SIZE
) -> bytes:
    """Decrypt an age file encrypted with a passphrase (``age -p``), binary or armored.

    Low level: used for passphrase-protected identity files. A work factor
    above :data:`MAX_SCRYPT_WORK_FACTOR` is refused before any key derivation.

    Raises:
        NoMatchingKeyError: wrong passphrase, or not a passphrase-encrypted file.
        LimitError, FormatError, IntegrityError: as for :func:`unwrap_data_key`.
    """
    body, _ = _inspect(data, max_size=max_size)
    try:
        plaintext: bytes = _pyrage_passphrase.decrypt(body, passphrase)
    except pyrage.DecryptError as exc:
        raise _translate_decrypt_error(exc, recipient=None, tried=1) from exc
    return plaintext


def _inspect(data: bytes, *, max_size: int | None) -> tuple[bytes, list[bytes]]:
    """Check an age file's size and header before pyrage sees it.

    Returns what pyrage should read (leading blank lines dropped) and each
    stanza's argument line. The size, the stanza count and the scrypt work
    factor bound the work a hostile file can cause.
    """
    if max_size is not None and len(data) > max_size:
        raise LimitError(f"age file is {len(data)} bytes long, more than {max_size}")
    body, armored = _split_armor(data)
    return body, _scan_header(_dearmor_header(body) if armored else body)


def _decrypt(body: bytes, *, identities: Sequence[AgeIdentity], recipient: str | None) -> bytes:
    if not identities:
        raise _no_match(recipient, tried=0)
    try:
        plaintext: bytes = pyrage.decrypt(body, [identity._pyrage for identity in identities])
    except pyrage.DecryptError as exc:
        raise _translate_decrypt_error(exc, recipient=recipient, tried=len(identities)) from exc
    return plaintext


def _no_match(recipient: str | None, *, tried: int) -> NoMatchingKeyError:
    target = f"recipient {recipient}" if recipient else "this age file"
    plural = "identity" if tried == 1 else "identities"
    return NoMatchingKeyError(
        f"no age identity matches {target} (tried {tried} {plural})",
        recipients=[recipient] if recipient else [],
    )


# pyrage raises one exception type; its message says what went wrong. These
# are rage's own texts (as of pyrage 1.4.0); an unknown one becomes a plain
# DecryptionError, so a new pyrage can only make errors less specific.
_PYRAGE_MESSAGES: Final = (
    ("No matching keys found", "no-match"),
    ("Decryption failed", "no-match"),  # wrong passphrase
    ("Header MAC is invalid", "integrity"),
    ("decryption error", "integrity"),  # payload chunk tag
    ("age file is truncated", "integrity"),
    ("last chunk has been processed", "integrity"),
    ("Last STREAM chunk is empty", "integrity"),
    ("Excessive work parameter", "limit"),
    ("invalid armor", "format"),
    ("DecodeError", "format"),
    ("Header is invalid", "format"),
    ("Unknown age format", "format"),
    ("failed to fill whole buffer", "format"),
)


def _translate_decrypt_error(exc: Exception, *, recipient: str | None, tried: int) -> MaculaError:
    """Map one pyrage decryption error to our tree (the one place that does)."""
    message = str(exc).split("\n", 1)[0].rstrip(".")
    category = next((kind for text, kind in _PYRAGE_MESSAGES if text in message), None)
    if category is None:
        return DecryptionError(f"age decryption failed: {message}")
    if category == "no-match":
        return _no_match(recipient, tried=tried)
    if category == "integrity":
        return IntegrityError("age file failed to verify")
    if category == "limit":
        return LimitError(f"age file needs too much work to decrypt: {message}")
    return FormatError(f"malformed age file: {message}")


def _split_armor(data: bytes) -> tuple[bytes, bool]:
    """Return ``(data, armored)``, dropping blank lines before an armored file.

    age's armor reader (the one sops uses) skips up to 1 KiB of whitespace-only
    lines before ``-----BEGIN``; pyrage does not, so we drop them here.
    """
    stripped = data.lstrip(_WHITESPACE)
    if not stripped.startswith(b"-----BEGIN"):
        return data, False
    cut = data.rfind(b"\n", 0, len(data) - len(stripped)) + 1
    if cut > _MAX_LEADING_WHITESPACE:
        raise FormatError("malformed age armor: too much whitespace before it")
    return data[cut:], True


def _dearmor_header(armored: bytes) -> bytes:
    """Decode just enough of an armored age file to hold its header.

    Only for inspecting the header: pyrage decodes the whole armor again,
    strictly, when it decrypts. Each 64-column line is 48 bytes on its own.
    """
    decoded = bytearray()
    position = 0
    first = True
    while position < len(armored):
        newline = armored.find(b"\n", position)
        stop = len(armored) if newline < 0 else newline
        line = armored[position:stop].removesuffix(b"\r")
        position = stop + 1
        if first:
            if line != _ARMOR_BEGIN:
                raise FormatError(
                    "malformed age armor: the first line is not -----BEGIN AGE ENCRYPTED FILE-----"
                )
            first = False
            continue
        if line == _ARMOR_END:
            break
        if len(line) > _ARMOR_COLUMNS:
            raise FormatError("malformed age armor: a line is longer than 64 columns")
        try:
            decoded += binascii.a2b_base64(line, strict_mode=True)
        except binascii.Error:
            raise FormatError("malformed age armor: invalid base64") from None
        if _header_end(decoded) is not None or len(decoded) > _MAX_HEADER_SIZE:
            break
    return bytes(decoded)


def _header_end(data: bytes | bytearray) -> int | None:
    mac = data.find(b"\n--- ", 0, _MAX_HEADER_SIZE)
    if mac < 0:
        return None
    end = data.find(b"\n", mac + 1)
    return None if end < 0 else end + 1


def _scan_header(data: bytes) -> list[bytes]:
    """Check an age header's shape and limits; return each stanza's arguments.

    Enforces what pyrage leaves to us: at most :data:`MAX_STANZAS` stanzas, a
    bounded scrypt work factor, and that every stanza body ends with a short
    line (age's rule; pyrage 1.4.0 accepts a stanza with no body at all).
    Everything else (Bech32, base64 canonicity, the MAC) pyrage checks.
    """
    mac = data.find(b"\n--- ", 0, _MAX_HEADER_SIZE)
    if mac < 0:
        if len(data) >= _MAX_HEADER_SIZE:
            raise LimitError(f"age header is larger than {_MAX_HEADER_SIZE} bytes")
        raise FormatError("malformed age file: no complete header")
    lines = data[:mac].split(b"\n")
    if lines[0] != _VERSION_LINE:
        raise FormatError("malformed age file: not an age-encryption.org/v1 file")
    stanzas: list[bytes] = []
    in_body = False
    for line in lines[1:]:
        if line.startswith(b"-> "):
            if in_body:
                raise FormatError("malformed age header: a stanza ends without a short line")
            stanzas.append(line[3:])
            in_body = True
        elif not in_body:
            raise FormatError("malformed age header: a line outside any stanza")
        elif len(line) > _ARMOR_COLUMNS:
            raise FormatError("malformed age header: a stanza line is longer than 64 columns")
        elif len(line) < _ARMOR_COLUMNS:
            in_body = False
    if in_body:
        raise FormatError("malformed age header: a stanza ends without a short line")
    if len(stanzas) > MAX_STANZAS:
        raise LimitError(
            f"age header has {len(stanzas)} recipient stanzas, more than the limit of {MAX_STANZAS}"
        )
    for arguments in stanzas:
        fields = arguments.split(b" ")
        is_scrypt = fields[0] == b"scrypt" and len(fields) == 3 and fields[2].isdigit()
        # Length first: int() of thousands of digits is itself slow.
        if is_scrypt and (len(fields[2]) > 2 or int(fields[2]) > MAX_SCRYPT_WORK_FACTOR):
            raise LimitError(f"scrypt work factor is above the limit of {MAX_SCRYPT_WORK_FACTOR}")
    return stanzas
