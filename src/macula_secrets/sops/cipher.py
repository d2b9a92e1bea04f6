"""The ``ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`` value codec.

Nothing else in the package builds or parses that string. Each value is
AES-256-GCM with a 32-byte random IV (what sops writes; any IV length is
read) and the value's tree path as associated data, so a ciphertext moved to
another key fails to decrypt. The ``type`` field records how to turn the
plaintext bytes back into a value (SOPS_FORMAT.md 1.4).

A :class:`ValueCipher` remembers the IV of every value it decrypted, keyed by
(type, value, path). Encrypting the same value at the same path with the same
data key then reuses that IV, which reproduces the exact ciphertext: this is
how an edit leaves unchanged values byte-identical in git (sops does the
same). Reusing an IV is safe here only because key, IV, plaintext and
associated data are all identical, so the output is identical too; a changed
value always gets a fresh IV.
"""

from __future__ import annotations

import binascii
import os
import re
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._lazyre import LazyPattern
from ..errors import FormatError, IntegrityError
from ._gofmt import format_float_f, normalize_rfc3339, parse_go_float, parse_go_int
from .tree import Comment, Timestamp

__all__ = ["ENC_PREFIX", "IV_SIZE", "ValueCipher", "to_bytes"]

ENC_PREFIX: Final = "ENC[AES256_GCM,"
IV_SIZE: Final = 32
_TAG_SIZE: Final = 16
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

# Greedy and anchored at the start only, exactly like sops's pattern.
_ENC_RE: Final = LazyPattern(r"ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]", re.S)

_b64encode = binascii.b2a_base64


def _b64(data: bytes) -> str:
    return _b64encode(data, newline=False).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise FormatError(f"error base64-decoding {what} of an encrypted value") from None


def _split_enc(text: str) -> tuple[str, str, str, str] | None:
    """Split a well-formed ``ENC[...]`` string fast; ``None`` to use the regex.

    Base64 has no commas, so for well-formed values this gives what sops's
    greedy pattern gives; anything unusual goes through the pattern itself.
    """
    if not text.startswith("ENC[AES256_GCM,data:") or text[-1] != "]":
        return None
    parts = text[20:-1].split(",")
    if len(parts) != 4:
        return None
    data, iv, tag, typ = parts
    if iv[:3] != "iv:" or tag[:4] != "tag:" or typ[:5] != "type:":
        return None
    return data, iv[3:], tag[4:], typ[5:]


def to_bytes(value: object) -> bytes:
    """The plaintext bytes sops encrypts and MACs for a scalar (Go's ``ToBytes``).

    Raises ``FormatError`` for values sops cannot encrypt (integers beyond
    64 bits, unknown types).
    """
    cls = value.__class__
    if cls is str:
        return value.encode("utf-8")  # type: ignore[attr-defined,no-any-return]
    if cls is bool:
        return b"True" if value else b"False"
    if cls is int:
        if not _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            raise FormatError("cannot encrypt an integer that does not fit in 64 bits")
        return str(value).encode("ascii")
    if cls is float:
        return format_float_f(value).encode("ascii")  # type: ignore[arg-type]
    if cls is bytes:
        return value  # type: ignore[return-value]
    if cls is Timestamp:
        return value.text.encode("ascii")  # type: ignore[attr-defined,no-any-return]
    if cls is Comment:
        return value.value.encode("utf-8", "surrogateescape")  # type: ignore[attr-defined,no-any-return]
    raise FormatError(f"unknown type: {_type_name(value)}")


def _type_name(value: object) -> str:
    name = value.__class__.__name__
    return "uint64" if name == "UInt64" else name


def _type_of(value: object) -> str:
    cls = value.__class__
    if cls is str or cls is bytes:
        return "str"
    if cls is bool:
        return "bool"
    if cls is int:
        return "int"
    if cls is float:
        return "float"
    if cls is Timestamp:
        return "time"
    if cls is Comment:
        return "comment"
    raise FormatError(f"unknown type: {_type_name(value)}")


class ValueCipher:
    """Encrypts and decrypts tree values with one data key. Not thread-safe.

    Most callers want :func:`macula_secrets.sops.decrypt_file`; this is the
    primitive the tree walks use.
    """

    __slots__ = ("_aead", "_key", "_remember", "_stash")

    def __init__(self, data_key: bytes, *, remember_ivs: bool = True) -> None:
        if len(data_key) != 32:
            raise FormatError("a SOPS data key is 32 bytes")
        self._key = bytes(data_key)
        self._aead = AESGCM(data_key)
        self._stash: dict[tuple[str, object, str], bytes] = {}
        # Off for a read-only decrypt: nothing will be encrypted again.
        self._remember = remember_ivs

    def __repr__(self) -> str:
        return "ValueCipher(<data key>)"

    def data_key(self) -> bytes:
        """The 32-byte data key (to wrap it for recipients). Handle with care."""
        return self._key

    def encrypt(self, value: object, aad: str, *, plain: bytes | None = None) -> str:
        """Encrypt a scalar or comment; empty strings and comments stay empty.

        ``plain`` is ``to_bytes(value)`` when the caller already has it (the
        tree walk computes it for the MAC).
        """
        typ = _type_of(value)
        if plain is None:
            plain = to_bytes(value)
        if not plain and typ in ("str", "comment"):
            return ""
        key = (typ, value.value if typ == "comment" else value, aad)  # type: ignore[attr-defined]
        iv = self._stash.get(key)
        if iv is None:
            iv = os.urandom(IV_SIZE)
        out = self._aead.encrypt(iv, plain, aad.encode("utf-8"))
        return (
            f"ENC[AES256_GCM,data:{_b64(out[:-_TAG_SIZE])},iv:{_b64(iv)},"
            f"tag:{_b64(out[-_TAG_SIZE:])},type:{typ}]"
        )

    def decrypt(self, text: str, aad: str, *, where: str = "") -> object:
        """Decrypt an ``ENC[...]`` string into its typed value.

        Raises:
            FormatError: the text is not in sops's format.
            IntegrityError: the tag does not verify (tampered, moved or wrong key).
        """
        if text == "":
            return ""
        fields = _split_enc(text)
        if fields is None:
            m = _ENC_RE.match(text)
            if m is None:
                raise FormatError(
                    f"value at {where or aad.rstrip(':')!r} does not match sops' data format"
                )
            fields = (m.group(1), m.group(2), m.group(3), m.group(4))
        data = _unb64(fields[0], "data")
        iv = _unb64(fields[1], "iv")
        tag = _unb64(fields[2], "tag")
        typ = fields[3]
        if not iv:
            raise FormatError("an encrypted value has an empty iv")
        try:
            plain = self._aead.decrypt(iv, data + tag, aad.encode("utf-8"))
        except InvalidTag:
            raise IntegrityError(
                f"could not decrypt the value at {where or aad.rstrip(':')!r}: "
                "authentication failed"
            ) from None
        except ValueError:
            raise FormatError(
                f"could not decrypt the value at {where or aad.rstrip(':')!r}"
            ) from None
        if typ == "str":
            try:
                value: object = plain.decode("utf-8")
            except UnicodeDecodeError:
                value = plain
        else:
            value = _decode(plain, typ, where or aad.rstrip(":"))
        if self._remember:
            key = (typ if typ != "bytes" else "str",
                   value.value if typ == "comment" else value, aad)  # type: ignore[attr-defined]
            self._stash[key] = iv
        return value


def _decode(plain: bytes, typ: str, where: str) -> object:
    try:
        if typ == "str":
            try:
                return plain.decode("utf-8")
            except UnicodeDecodeError:
                return plain
        if typ == "comment":
            return Comment(plain.decode("utf-8", "surrogateescape"))
        text = plain.decode("ascii")
        if typ == "int":
            return parse_go_int(text)
        if typ == "float":
            return parse_go_float(text)
        if typ == "bool":
            if text in ("1", "t", "T", "TRUE", "true", "True"):
                return True
            if text in ("0", "f", "F", "FALSE", "false", "False"):
                return False
            raise ValueError(text)
        if typ == "time":
            return Timestamp(normalize_rfc3339(text))
        if typ == "bytes":
            return plain
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"the value at {where!r} does not decode as its type {typ!r}") from None
    raise FormatError(f"unknown datatype {typ!r} at {where!r}")
