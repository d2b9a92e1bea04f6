"""The join protocol's messages: what a new node sends, the code people compare, the seals.

A join request is a small JSON object (:class:`JoinMessage`): the node's
name, its public key (an age ``age1...`` X25519 recipient or its
``ssh-ed25519`` host key), a random nonce, when it was made, and the
SHA-256 fingerprint of the bootstrap's TLS certificate the node pinned.
Its canonical form (sorted keys, no spaces) is hashed; the hash gives the
*join code* (``1234-5678-9012``) that the node prints and ``node pending``
shows, so an operator who compares the two knows the request they approve
is the one the node sent, public key included. Naming the bootstrap's
fingerprint in the message means a request relayed to another bootstrap is
refused there.

Everything secret that crosses the wire is sealed with age to one
recipient (:func:`seal`): the challenge that proves the node holds its
private key, the approvers' nonces, and the grant. The private keys never
leave their machines; only recipients (public keys) are sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from ..keys.age import AgeIdentity

__all__ = [
    "CHALLENGE_BYTES",
    "CLOCK_SKEW",
    "NONCE_BYTES",
    "VERSION",
    "JoinMessage",
    "b64",
    "certificate_fingerprint",
    "colon_form",
    "commitment",
    "fingerprint_of_der",
    "human_code",
    "matches_commitment",
    "normalize_fingerprint",
    "open_sealed",
    "seal",
    "unb64",
]

VERSION: Final = 1
NONCE_BYTES: Final = 16
CHALLENGE_BYTES: Final = 32
CLOCK_SKEW: Final = 300
"""Seconds a request's ``created`` may differ from the bootstrap's clock."""
MAX_RECIPIENT: Final = 1024
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_HEX64: Final = re.compile(r"[0-9A-F]{64}")
_FIELDS: Final = frozenset({"version", "name", "recipient", "nonce", "created", "bootstrap"})


@dataclass(frozen=True, slots=True)
class JoinMessage:
    """A join request as the node sends it; immutable, compared field by field."""

    name: str
    recipient: str
    nonce: str
    """:data:`NONCE_BYTES` random bytes, base64: makes every request unique (replays)."""
    created: int
    """Unix seconds when the node made the request."""
    bootstrap: str
    """The pinned certificate fingerprint (64 upper-case hex digits)."""
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.name, "recipient": self.recipient,
                "nonce": self.nonce, "created": self.created, "bootstrap": self.bootstrap}

    def canonical(self) -> bytes:
        """The bytes that are hashed: sorted keys, no whitespace, UTF-8."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")

    def digest(self) -> bytes:
        return hashlib.sha256(b"macula-join-v1\0" + self.canonical()).digest()

    @property
    def code(self) -> str:
        """The join code people compare on both machines."""
        return human_code(self.digest())

    @classmethod
    def parse(cls, obj: object) -> JoinMessage:
        """A message from its JSON; every field checked, nothing else allowed.

        Raises:
            FormatError: a field missing, unknown, of the wrong type or form.
        """
        if not isinstance(obj, Mapping):
            raise FormatError("a join request must be a JSON object")
        extra = set(obj) - _FIELDS
        if extra:
            raise FormatError(f"unknown field {sorted(extra)[0]!r} in the join request")
        missing = _FIELDS - set(obj)
        if missing:
            raise FormatError(f"the join request has no {sorted(missing)[0]!r}")
        version, name, recipient = obj["version"], obj["name"], obj["recipient"]
        nonce, created, bootstrap = obj["nonce"], obj["created"], obj["bootstrap"]
        if version != VERSION or isinstance(version, bool):
            raise FormatError(f"join protocol version {version!r} is not supported",
                              hint=f"this bootstrap speaks version {VERSION}")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise FormatError("the node name must be 1-63 letters, digits, '.', '_' or '-'")
        if not isinstance(recipient, str) or not 0 < len(recipient) <= MAX_RECIPIENT \
                or not recipient.startswith(("age1", "ssh-ed25519 ")):
            raise FormatError("the node key must be an age1... or ssh-ed25519 public key")
        if not isinstance(nonce, str) or len(unb64(nonce, "nonce")) != NONCE_BYTES:
            raise FormatError(f"the nonce must be {NONCE_BYTES} bytes of base64")
        if not isinstance(created, int) or isinstance(created, bool) or created < 0:
            raise FormatError("created must be a Unix time in seconds")
        if not isinstance(bootstrap, str) or not _HEX64.fullmatch(bootstrap):
            raise FormatError("bootstrap must be a SHA-256 fingerprint in upper-case hex")
        return cls(name, recipient, nonce, created, bootstrap)


def human_code(digest: bytes) -> str:
    """Twelve digits from a digest, in three groups: about 40 bits, read aloud easily."""
    number = int.from_bytes(digest[:8], "big") % 10**12
    text = f"{number:012d}"
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 upper-case hex digits; colons, spaces and a
    ``sha256:`` prefix are accepted.

    Raises:
        FormatError: not 32 bytes of hex.
    """
    raw = text.strip()
    if raw.lower().startswith("sha256:"):
        raw = raw[7:]
    raw = raw.replace(":", "").replace(" ", "").upper()
    if not _HEX64.fullmatch(raw):
        raise FormatError("a certificate fingerprint is 32 bytes of hex (SHA-256)",
                          hint="serve prints it: 'certificate SHA-256 fingerprint AB:CD:...'")
    return raw


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def certificate_fingerprint(pem: bytes) -> str:
    """The SHA-256 fingerprint (64 upper-case hex digits) of a PEM certificate's DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return fingerprint_of_der(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))


def colon_form(hexdigits: str) -> str:
    """``AB:CD:...``: a fingerprint as ``serve`` prints it and browsers show it."""
    return ":".join(hexdigits[i:i + 2] for i in range(0, len(hexdigits), 2))


def commitment(secret: bytes) -> str:
    """What is stored instead of a secret that must be shown later: its SHA-256."""
    return hashlib.sha256(b"macula-join-commit\0" + secret).hexdigest()


def matches_commitment(secret: bytes, commit: str) -> bool:
    """Whether ``secret`` is the one ``commit`` was made of (constant time)."""
    return hmac.compare_digest(commitment(secret), commit)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise FormatError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"{what} is not valid base64") from None


def seal(data: bytes, recipient: str) -> str:
    """``data`` age-encrypted (armored) to one recipient: only its private key opens it."""
    from ..keys.age import encrypt, parse_recipient

    return encrypt(data, [parse_recipient(recipient)], armored=True).decode("ascii")


def open_sealed(text: object, identities: Sequence[AgeIdentity], what: str) -> bytes:
    """Open what :func:`seal` made.

    Raises:
        FormatError: not an age file.
        NoMatchingKeyError: sealed to someone else.
        IntegrityError: changed after it was sealed.
    """
    from ..errors import NoMatchingKeyError
    from ..keys.age import decrypt

    if not isinstance(text, str) or not text.startswith("-----BEGIN AGE ENCRYPTED FILE-----"):
        raise FormatError(f"{what} is not an armored age file")
    try:
        return decrypt(text.encode("ascii"), identities, max_size=1024 * 1024)
    except NoMatchingKeyError:
        raise NoMatchingKeyError(f"{what} is sealed to another key") from None
    except (IntegrityError, FormatError) as exc:
        raise IntegrityError(f"{what} was changed after it was sealed ({exc})") from None
