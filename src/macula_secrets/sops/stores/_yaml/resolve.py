"""Scalar typing exactly as go-yaml v3 does it (what decides sops's ``type:``).

go-yaml v3 mixes YAML 1.2 and 1.1 rules: ``yes``/``on`` are strings, ``017``
is octal, ``09`` is a float, ``2024-01-01`` is a timestamp, an integer above
int64 but within uint64 is a ``uint64`` (which sops cannot encrypt). This
module reproduces the table in SOPS_FORMAT.md 5.1 by following the same
decision order as go-yaml's ``resolve``.
"""

from __future__ import annotations

import math
from typing import Final

from ...._lazyre import LazyPattern
from ....errors import FormatError
from ..._gofmt import parse_go_float
from ...tree import Timestamp

__all__ = ["UInt64", "parse_timestamp", "resolve", "resolve_tag"]

NULL: Final = "!!null"
BOOL: Final = "!!bool"
STR: Final = "!!str"
INT: Final = "!!int"
FLOAT: Final = "!!float"
TIMESTAMP: Final = "!!timestamp"
SEQ: Final = "!!seq"
MAP: Final = "!!map"
BINARY: Final = "!!binary"
MERGE: Final = "!!merge"

_LONG_PREFIX: Final = "tag:yaml.org,2002:"
_RESOLVABLE: Final = frozenset(("", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP))

_MAP: Final[dict[str, tuple[str, object]]] = {}
for _v, _t, _words in (
    (True, BOOL, ("true", "True", "TRUE")),
    (False, BOOL, ("false", "False", "FALSE")),
    (None, NULL, ("", "~", "null", "Null", "NULL")),
    (math.nan, FLOAT, (".nan", ".NaN", ".NAN")),
    (math.inf, FLOAT, (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
    (-math.inf, FLOAT, ("-.inf", "-.Inf", "-.INF")),
    ("<<", MERGE, ("<<",)),
):
    for _w in _words:
        _MAP[_w] = (_t, _v)

_YAML_FLOAT = LazyPattern(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1


class UInt64(int):
    """An integer go-yaml reads as ``uint64``: sops refuses to encrypt it."""

    __slots__ = ()


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:str`` -> ``!!str``; other tags unchanged."""
    if tag.startswith(_LONG_PREFIX):
        return "!!" + tag[len(_LONG_PREFIX):]
    return tag


def _hint(text: str) -> str:
    if not text:
        return "N"
    c = text[0]
    if c in "+-":
        return "S"
    if "0" <= c <= "9":
        return "D"
    if c in "yYnNtTfFoO~":
        return "M"
    if c == ".":
        return "."
    return ""


_INT_SHAPE = LazyPattern(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)")


def _go_parse_int(text: str, base: int) -> int | None:
    """Go ``strconv.ParseInt``/``ParseUint`` with base prefixes (base 0), unbounded."""
    if base == 0 and not (text.isascii() and text.isdigit()) and not _INT_SHAPE.fullmatch(text):
        return None
    body = text
    neg = False
    if body and body[0] in "+-":
        neg = body[0] == "-"
        body = body[1:]
    if not body:
        return None
    if base == 0:
        low = body[:2].lower()
        if low == "0x":
            base, body = 16, body[2:]
        elif low == "0o":
            base, body = 8, body[2:]
        elif low == "0b":
            base, body = 2, body[2:]
        elif body[0] == "0" and len(body) > 1:
            base, body = 8, body[1:]
        else:
            base = 10
        if not body:
            return None
    digits = "0123456789abcdef"[:base]
    if not all(ch in digits for ch in body.lower()):
        return None
    value = int(body, base)
    return -value if neg else value


def _parse_go_float(text: str) -> float | None:
    try:
        return parse_go_float(text)
    except ValueError:
        return None


def resolve(tag: str, text: str) -> tuple[str, object]:
    """Return ``(resolved tag, value)`` for a scalar, as go-yaml's ``resolve``.

    Values: ``str``, ``int``, :class:`UInt64`, ``float``, ``bool``, ``None``,
    :class:`Timestamp`. Raises ``FormatError`` when an explicit tag does not
    fit the text (``!!int abc``).
    """
    tag = short_tag(tag)
    if tag not in _RESOLVABLE:
        return tag, text
    rtag, out = _resolve(tag, text)
    if tag in ("", rtag, STR, BINARY):
        return rtag, out
    if tag == FLOAT and rtag == INT and isinstance(out, int):
        return FLOAT, float(out)
    # The value itself is not quoted: it may be a secret.
    raise FormatError(f"yaml: cannot decode a {rtag} value as a {tag}")


def _resolve(tag: str, text: str) -> tuple[str, object]:
    hint = _hint(text)
    if not hint or tag in (STR, BINARY):
        return STR, text
    hit = _MAP.get(text)
    if hit is not None:
        return hit
    if hint == ".":
        f = _parse_go_float(text)
        if f is not None:
            return FLOAT, f
    elif hint in "DS":
        if tag in ("", TIMESTAMP):
            ts = parse_timestamp(text)
            if ts is not None:
                return TIMESTAMP, Timestamp(ts)
        plain = text.replace("_", "")
        v = _go_parse_int(plain, 0)
        if v is not None:
            if _INT64_MIN <= v <= _INT64_MAX:
                return INT, v
            if 0 <= v <= _UINT64_MAX:
                return INT, UInt64(v)
        if plain.count(".") <= 1 and _YAML_FLOAT.fullmatch(plain):
            f = _parse_go_float(plain)
            if f is not None:
                return FLOAT, f
        # Binary and octal prefixes (go-yaml tries these after the float).
        for prefix, base in (("0b", 2), ("0o", 8)):
            if plain.startswith(prefix):
                v = _go_parse_int(plain[2:], base)
                if v is not None and _INT64_MIN <= v <= _UINT64_MAX:
                    return INT, v if v <= _INT64_MAX else UInt64(v)
            elif plain.startswith("-" + prefix):
                v = _go_parse_int("-" + plain[3:], base)
                if v is not None and v >= _INT64_MIN:
                    return INT, v
    return STR, text


def resolve_tag(text: str) -> str:
    """The tag go-yaml gives a plain scalar with no explicit tag."""
    return _resolve("", text)[0]


def decode_binary(text: str) -> str | bytes:
    """Decode a ``!!binary`` scalar; ``str`` when the bytes are UTF-8, else ``bytes``."""
    import base64
    import binascii

    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError("yaml: !!binary value contains invalid base64 data") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


# Go layouts tried by go-yaml: "2006-1-2T15:4:5.999999999Z07:00" (and with a
# lower-case t), "2006-1-2 15:4:5.999999999" (UTC), and "2006-1-2".
_TS = LazyPattern(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?"
)
_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_timestamp(text: str) -> str | None:
    """Parse a YAML timestamp the way go-yaml does; return Go's RFC3339Nano text.

    ``None`` when go-yaml would not see a timestamp (then the scalar is an
    int, a float or a string).
    """
    # go-yaml's quick check first: every layout starts with four digits and "-".
    if len(text) < 8 or text[4] != "-" or not text[:4].isdigit():
        return None
    m = _TS.fullmatch(text)
    if m is None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    sep = m.group("sep")
    zone = m.group("zone")
    if sep is None:
        hour = minute = second = 0
        frac = None
    else:
        if sep == " " and zone is not None:
            return None
        if sep in "Tt" and zone is None:
            return None
        hour, minute, second = int(m.group(5)), int(m.group(6)), int(m.group(7))
        frac = m.group(8)
    if not 1 <= month <= 12:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS[month - 1] + (1 if month == 2 and leap else 0):
        return None
    if hour >= 24 or minute >= 60 or second >= 60:
        return None
    out = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if frac:
        nanos = frac[:9].ljust(9, "0").rstrip("0")
        if nanos:
            out += "." + nanos
    if zone is None or zone == "Z":
        return out + "Z"
    zh, zm = int(zone[1:3]), int(zone[4:6])
    if zh > 24 or zm > 60:
        return None
    if zh == 0 and zm == 0:
        return out + "Z"
    return out + zone
