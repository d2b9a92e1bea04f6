"""Recovery shares: a secret split M-of-N into text a person can print, copy and type.

Part of the keys layer; the arithmetic is :mod:`.shamir`'s (sops-compatible
GF(256)), this module adds the printable format around it. A share reads::

    macula-share-1-0A5G-7KQ2-M9XD-...-R2TW

``macula-share-1`` is the format tag; the groups (four characters each) are
Crockford base32 of the share's bytes::

    split id (5)  kind (1)  threshold M (1)  total N (1)  shamir share (len + 1)  CRC-32 (4)

The shamir share is :func:`.shamir.split`'s output: the y values, then the
index x. The CRC-32 covers the tag and every byte before it. CRC-32 catches
every error confined to 32 consecutive bits, so any one changed character
(5 bits), any swap of two neighbours, is always caught; other mistakes slip
through with probability 2^-32. Reading is forgiving where it cannot be
wrong: case, spaces, dashes and line breaks do not matter, and the
look-alikes ``O``/``0`` and ``I``/``L``/``1`` read the same (Crockford).

All shares of one split start with the same characters: the first two
groups are the split id (``7KQ2-M9XD``, shown with every share), then kind,
M and N. Custodians can tell shares that belong together. The split id is
random: shares of two splits, even of the same secret, are refused
together, because mixing them would give a wrong secret without any error.

Most callers want :func:`split_secret` and :func:`combine_shares`;
:class:`ShareSet` collects shares one at a time (a prompt that re-asks).
Messages and reprs never contain the secret or a share's payload.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from ..errors import KeySourceError, ThresholdError
from . import shamir

if TYPE_CHECKING:
    from .age import AgeIdentity

__all__ = [
    "KINDS",
    "TAG",
    "Kind",
    "Share",
    "ShareSet",
    "combine_shares",
    "describe_kind",
    "identity_from_secret",
    "identity_to_secret",
    "parse_share",
    "split_secret",
]

Kind = Literal["master-key", "age-identity"]
"""What a split holds: a store's master key, or one age X25519 identity (its 32 bytes)."""

KINDS: Final[tuple[Kind, ...]] = ("master-key", "age-identity")
TAG: Final = "macula-share-1"
"""The format tag every share starts with; the CRC covers it too."""

_KIND_CODES: Final[dict[Kind, int]] = {"master-key": 1, "age-identity": 2}
_CODE_KINDS: Final[dict[int, Kind]] = {v: k for k, v in _KIND_CODES.items()}
_DESCRIPTIONS: Final[dict[Kind, str]] = {"master-key": "a master key",
                                         "age-identity": "an age identity"}

_ID_SIZE: Final = 5
_HEADER_SIZE: Final = 1 + _ID_SIZE + 2
_CRC_SIZE: Final = 4
_GROUP: Final = 4

_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES: Final[dict[str, int]] = {
    **{c: i for i, c in enumerate(_ALPHABET)}, "O": 0, "I": 1, "L": 1,
}
_SEPARATORS = re.compile(r"[\s\-_]+")
# The tag, forgiving case and separators; one digit of version.
_TAG_RE = re.compile(r"macula[\s\-_]*share[\s\-_]*([0-9])", re.IGNORECASE)


def describe_kind(kind: Kind) -> str:
    """``a master key`` or ``an age identity``, for messages."""
    return _DESCRIPTIONS[kind]


@dataclass(frozen=True, slots=True)
class Share:
    """One parsed share. ``payload`` (the shamir share bytes) is left out of the repr.

    ``split_id`` is printable (``7KQ2-M9XD``) and not secret; ``index`` is
    the share's x (1..``total``), the number custodians know it by.
    """

    kind: Kind
    split_id: str
    threshold: int
    total: int
    index: int
    payload: bytes = field(repr=False)

    def to_text(self) -> str:
        """The share's printable text (``macula-share-1-...``)."""
        header = _decode_id(self.split_id) + bytes(
            [_KIND_CODES[self.kind], self.threshold, self.total])
        body = header + self.payload
        body += zlib.crc32(TAG.encode("ascii") + body).to_bytes(_CRC_SIZE, "big")
        chars = _encode(body)
        groups = [chars[i:i + _GROUP] for i in range(0, len(chars), _GROUP)]
        return "-".join([TAG, *groups])


def split_secret(
    secret: bytes,
    kind: Kind,
    shares: int,
    threshold: int,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> list[str]:
    """Split ``secret`` into ``shares`` printable shares, any ``threshold`` of which restore it.

    Every call makes a new random split id, so shares of two calls never
    combine, even for the same secret.

    Raises:
        ValueError: ``kind`` is unknown, ``2 <= threshold <= shares <= 255``
            does not hold, or ``secret`` is empty.
    """
    if kind not in _KIND_CODES:
        raise ValueError(f"unknown kind of secret {kind!r} (expected one of {', '.join(KINDS)})")
    split_id = _format_id(randbytes(_ID_SIZE))
    parts = shamir.split(secret, shares, threshold, randbytes=randbytes)
    return [Share(kind, split_id, threshold, shares, p[-1], p).to_text() for p in parts]


def parse_share(text: str, *, source: str = "share") -> Share:
    """Parse one share's text; ``source`` names it in messages (``share 3``, a path).

    Raises:
        KeySourceError: the text is not a share, a character is not one a
            share uses, or the checksum does not match (``hint`` then names
            the group of four characters that is probably wrong, when a
            single changed character explains the mismatch).
    """
    match = _TAG_RE.search(text)
    if match is None or text[:match.start()].strip():
        raise KeySourceError(f"{source}: not a recovery share (it should start with {TAG})")
    if match.group(1) != TAG[-1]:
        raise KeySourceError(
            f"{source}: macula-share-{match.group(1)} is a share format this version "
            "cannot read", hint="combine the shares with the macula-secrets version that "
            "made them, or a newer one")
    rest = text[match.end():]
    if _TAG_RE.search(rest):
        raise KeySourceError(f"{source}: holds more than one share",
                             hint="give one share per file or line")
    chars = _SEPARATORS.sub("", rest).upper()
    for position, char in enumerate(chars, start=1):
        if char not in _VALUES:
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise KeySourceError(
                f"{source}: character {position} (group {(position - 1) // _GROUP + 1}) is "
                f"{shown}, which shares do not use",
                hint=f"shares use the digits and the letters except U; {_COMPARE_HINT}")
    symbols = [_VALUES[c] for c in chars]
    if len(symbols) * 5 % 8 >= 5 or len(symbols) * 5 // 8 < _HEADER_SIZE + 2 + _CRC_SIZE:
        raise KeySourceError(
            f"{source}: has {len(symbols)} characters after {TAG}, which is not the length "
            "of a share (a character is missing or extra)", hint=_COMPARE_HINT)
    body = _decode(symbols)
    if body is None or not _crc_ok(body):
        suspect = _locate_mistake(symbols)
        hint = (f"the mistake is probably in group {suspect} (characters "
                f"{(suspect - 1) * _GROUP + 1}-{suspect * _GROUP}); {_COMPARE_HINT}"
                if suspect is not None else _COMPARE_HINT)
        raise KeySourceError(f"{source}: checksum does not match (a character is mistyped)",
                             hint=hint)
    kind = _CODE_KINDS.get(body[_ID_SIZE])
    threshold, total = body[_ID_SIZE + 1], body[_ID_SIZE + 2]
    payload = body[_HEADER_SIZE:-_CRC_SIZE]
    index = payload[-1]
    if kind is None:
        raise KeySourceError(f"{source}: holds a kind of secret this version does not know",
                             hint="combine the shares with the macula-secrets version that "
                                  "made them, or a newer one")
    if not 2 <= threshold <= total or not 1 <= index <= total:
        # The checksum matched, so this was made this way: not a typing mistake.
        raise KeySourceError(f"{source}: is not a valid share (share {index}, "
                             f"{threshold} of {total})")
    return Share(kind, _format_id(body[:_ID_SIZE]), threshold, total, index, payload)


class ShareSet:
    """Shares of one split, collected one at a time until there are enough.

    :meth:`add` checks each share against the ones before it and leaves the
    set unchanged when it raises, so a prompt can ask again. With ``kind``,
    shares of another kind of secret are refused. Not thread-safe.
    """

    def __init__(self, *, kind: Kind | None = None) -> None:
        self.kind = kind
        self._shares: list[Share] = []
        self._sources: list[str] = []

    def __repr__(self) -> str:
        first = self._shares[0] if self._shares else None
        split = f"split={first.split_id!r}, " if first else ""
        return f"ShareSet({split}count={len(self._shares)}, needed={self.needed})"

    @property
    def count(self) -> int:
        """How many shares were accepted."""
        return len(self._shares)

    @property
    def needed(self) -> int | None:
        """The threshold M, known once a first share is in."""
        return self._shares[0].threshold if self._shares else None

    @property
    def split_id(self) -> str | None:
        return self._shares[0].split_id if self._shares else None

    def is_complete(self) -> bool:
        """Whether enough shares are in to restore the secret."""
        return bool(self._shares) and len(self._shares) >= self._shares[0].threshold

    def add(self, share: str | Share, *, source: str | None = None) -> Share:
        """Parse (if text) and check one share; return it.

        Raises:
            KeySourceError: the share does not parse, belongs to another split,
                was given already, or holds another kind of secret.
        """
        source = source or f"share {len(self._shares) + 1}"
        if isinstance(share, str):
            share = parse_share(share, source=source)
        if self.kind is not None and share.kind != self.kind:
            raise KeySourceError(
                f"{source}: restores {describe_kind(share.kind)}, not "
                f"{describe_kind(self.kind)}")
        if self._shares:
            first = self._shares[0]
            if share.split_id != first.split_id:
                raise KeySourceError(
                    f"{source}: belongs to another split ({share.split_id}, not "
                    f"{first.split_id})",
                    hint="only shares printed together by one `key split` combine; "
                         "the first characters of all its shares are the same")
            if (share.kind, share.threshold, share.total) != (
                    first.kind, first.threshold, first.total):
                raise KeySourceError(
                    f"{source}: does not match {self._sources[0]} (same split "
                    f"{first.split_id}, but a different kind, threshold or total)")
            for other, other_source in zip(self._shares, self._sources, strict=True):
                if other.index == share.index:
                    same = other.payload == share.payload
                    raise KeySourceError(
                        f"{source}: is share {share.index} of {share.total} again "
                        f"(as {other_source})" if same else
                        f"{source}: has the index of {other_source} ({share.index}) but "
                        "different content",
                        hint="every share must be a different one" if same else None)
        self._shares.append(share)
        self._sources.append(source)
        return share

    def combine(self) -> tuple[Kind, bytes]:
        """The kind and the secret.

        Raises:
            KeySourceError: no share was given.
            ThresholdError: fewer shares than the threshold.
        """
        if not self._shares:
            raise KeySourceError("no recovery shares were given")
        first = self._shares[0]
        if len(self._shares) < first.threshold:
            raise ThresholdError(
                f"{len(self._shares)} of the {first.threshold} shares needed to restore "
                f"{describe_kind(first.kind)} were given (split {first.split_id}, "
                f"{first.threshold} of {first.total})",
                threshold=first.threshold, recovered=len(self._shares))
        secret = shamir.combine([s.payload for s in self._shares], threshold=first.threshold)
        return first.kind, secret


def combine_shares(
    texts: Iterable[str | Share],
    *,
    sources: Sequence[str] | None = None,
    kind: Kind | None = None,
) -> tuple[Kind, bytes]:
    """Restore a split secret from at least M of its shares; return ``(kind, secret)``.

    Shares are named ``share 1``, ``share 2``, ... in messages, or by
    ``sources`` (paths, say). More than M shares are fine; every one given
    must be valid. With ``kind``, shares of another kind of secret are refused.

    Raises:
        KeySourceError: a share does not parse (the message names it), the
            shares come from different splits, one is given twice, or none is given.
        ThresholdError: fewer than M shares.
    """
    collected = ShareSet(kind=kind)
    for number, text in enumerate(texts, start=1):
        source = sources[number - 1] if sources is not None else f"share {number}"
        collected.add(text, source=source)
    return collected.combine()


# -- age identities as 32-byte secrets ------------------------------------------------

_BECH32: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AGE_HRP: Final = "age-secret-key-"


def identity_to_secret(text: str, *, source: str) -> bytes:
    """The 32 bytes of the one X25519 identity in an identity file's text.

    Splitting the bytes rather than the ``AGE-SECRET-KEY-1...`` line keeps
    each share at 72 characters instead of 136.

    Raises:
        KeySourceError: the text holds no identity, several, or a bad line.
    """
    from .age import parse_identities

    identities = parse_identities(text, source=source)
    if len(identities) != 1:
        raise KeySourceError(
            f"{source} holds {len(identities)} identities; split one at a time"
            if identities else f"{source} holds no age identity",
            hint="copy the identity to recover into a file of its own (mode 0600)"
            if identities else None)
    line = next(raw.strip() for raw in text.split("\n")
                if raw.strip().startswith("AGE-SECRET-KEY-1"))
    secret = _bech32_data(line.lower())
    if _bech32_encode(_AGE_HRP, secret).upper() != line:
        raise KeySourceError(f"malformed age identity in {source}")
    return secret


def identity_from_secret(secret: bytes) -> AgeIdentity:
    """The X25519 identity whose 32 bytes are ``secret`` (the reverse of the above).

    Raises:
        KeySourceError: ``secret`` is not 32 bytes.
    """
    from .age import parse_identities

    if len(secret) != 32:
        raise KeySourceError("the restored secret is not an age identity (wrong size)")
    line = _bech32_encode(_AGE_HRP, secret).upper()
    return parse_identities(line, source="recovery shares")[0]


# -- internals ------------------------------------------------------------------------

_COMPARE_HINT: Final = ("compare it with the original group by group; case, spaces, dashes "
                        "and 0/O, 1/I/L do not matter")


def _encode(data: bytes) -> str:
    """Crockford base32, most significant bits first; the last character is zero-padded."""
    count = -(-len(data) * 8 // 5)
    value = int.from_bytes(data, "big") << (count * 5 - len(data) * 8)
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(count)))


def _decode(symbols: Sequence[int]) -> bytes | None:
    """The bytes of base32 symbols, or ``None`` unless they are the canonical encoding.

    Non-zero padding bits are refused (``None``): otherwise a changed last
    character could decode to the same bytes, and a mistake would go unnoticed.
    """
    size, pad = divmod(len(symbols) * 5, 8)
    if pad >= 5:
        return None
    value = 0
    for s in symbols:
        value = (value << 5) | s
    if value & ((1 << pad) - 1):
        return None
    return (value >> pad).to_bytes(size, "big")


def _crc_ok(body: bytes) -> bool:
    expected = zlib.crc32(TAG.encode("ascii") + body[:-_CRC_SIZE])
    return expected == int.from_bytes(body[-_CRC_SIZE:], "big")


def _locate_mistake(symbols: Sequence[int]) -> int | None:
    """The group (1-based) where changing one character makes the checksum match.

    ``None`` unless exactly one group can: with two mistakes, or a missing
    character, no single change fits, and pointing somewhere would mislead.
    """
    groups: set[int] = set()
    fixed = list(symbols)
    for position, original in enumerate(symbols):
        for value in range(32):
            if value == original:
                continue
            fixed[position] = value
            body = _decode(fixed)
            if body is not None and _crc_ok(body):
                groups.add(position // _GROUP + 1)
        fixed[position] = original
    return groups.pop() if len(groups) == 1 else None


def _format_id(raw: bytes) -> str:
    chars = _encode(raw)
    return f"{chars[:4]}-{chars[4:]}"


def _decode_id(split_id: str) -> bytes:
    body = _decode([_VALUES[c] for c in split_id.replace("-", "")])
    if body is None or len(body) != _ID_SIZE:
        raise ValueError("malformed split id")
    return body


def _bech32_polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= generator[i]
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & mask)
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    """BIP 173 Bech32 (what age uses for its keys), lower case."""
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _bech32_polymod([*_bech32_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[v] for v in values + checksum)


def _bech32_data(text: str) -> bytes:
    """The data bytes of a lower-case Bech32 string (checked by re-encoding, above)."""
    data = text[text.rfind("1") + 1:-6]
    if any(c not in _BECH32 for c in data):
        return b""
    return bytes(_convert_bits((_BECH32.index(c) for c in data), 5, 8, pad=False))
