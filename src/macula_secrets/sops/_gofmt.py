"""Number and time formatting exactly as Go's ``strconv`` and ``time`` print them.

sops is written in Go, and the bytes it encrypts, MACs and prints come from
``strconv.FormatFloat`` and ``time.Time.MarshalText``. Python's ``repr`` and
``str`` differ (``1e-07``, ``1.0``), so every store and the cipher format
numbers through this module. Both Go and Python produce the *shortest*
round-trip digits for a float64, so only the layout has to be redone here.
"""

from __future__ import annotations

import math
import re

from .._lazyre import LazyPattern

__all__ = [
    "format_float_e",
    "format_float_f",
    "format_float_g",
    "normalize_rfc3339",
    "parse_go_float",
    "parse_go_int",
    "shortest_digits",
]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def shortest_digits(x: float) -> tuple[str, int]:
    """Return ``(digits, point)`` with ``x == 0.<digits> * 10**point`` in magnitude.

    ``digits`` has no leading or trailing zeros (``"0"`` for zero, point 1).
    Python's ``repr`` already yields the shortest digits that round-trip,
    which is what Go's ``FormatFloat(x, _, -1, 64)`` uses.
    """
    r = repr(abs(x))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    point = len(ip) + e
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, point


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return None


def format_float_f(x: float) -> str:
    """Go ``strconv.FormatFloat(x, 'f', -1, 64)``: never an exponent, no ``.0``."""
    s = _special(x)
    if s is not None:
        return s
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    digits, point = shortest_digits(x)
    if digits == "0":
        return sign + "0"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_float_e(x: float, *, upper: bool = False) -> str:
    """Go ``strconv.FormatFloat(x, 'e', -1, 64)``: ``1.5e+06``, ``1e-07``."""
    s = _special(x)
    if s is not None:
        return s
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    digits, point = shortest_digits(x)
    exp = 0 if digits == "0" else point - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    esign = "-" if exp < 0 else "+"
    e = "E" if upper else "e"
    return f"{sign}{mant}{e}{esign}{abs(exp):02d}"


def format_float_g(x: float, *, upper: bool = False) -> str:
    """Go ``strconv.FormatFloat(x, 'g', -1, 64)``: ``123456``, ``1.234567e+06``, ``1e-05``.

    In shortest mode Go switches to exponent form when the decimal exponent
    is below -4 or at least 6, whatever the number of digits.
    """
    s = _special(x)
    if s is not None:
        return s
    digits, point = shortest_digits(x)
    exp = 0 if digits == "0" else point - 1
    if exp < -4 or exp >= 6:
        return format_float_e(x, upper=upper)
    return format_float_f(x)


_GO_FLOAT = LazyPattern(
    r"[+-]?(?:(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?"
    r"|0[xX](?:[\da-fA-F_]+\.?[\da-fA-F_]*|\.[\da-fA-F_]+)[pP][+-]?\d+"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)


def parse_go_float(text: str) -> float:
    """Parse like Go ``strconv.ParseFloat(text, 64)``; ``ValueError`` otherwise.

    Underscores are accepted only where Go accepts them (with a base prefix);
    since sops never writes them, they are rejected here.
    """
    if not _GO_FLOAT.fullmatch(text) or "_" in text:
        raise ValueError("invalid float")
    body = text.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        v = float.fromhex(body)
        return -v if text.startswith("-") else v
    v = float(text)
    if math.isinf(v) and body.lower() not in ("inf", "infinity"):
        raise ValueError("float out of range")
    return v


def parse_go_int(text: str) -> int:
    """Parse like Go ``strconv.Atoi`` on 64-bit: optional sign, decimal digits."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError("invalid int")
    v = int(text)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError("int out of range")
    return v


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def normalize_rfc3339(text: str, *, fraction: bool = True) -> str:
    """Re-print an RFC 3339 time the way Go prints the parsed ``time.Time``.

    ``fraction=True`` gives ``RFC3339Nano`` (trailing zeros trimmed), the
    form of ``MarshalText``; ``fraction=False`` gives ``RFC3339`` (fraction
    dropped), which sops uses for ``lastmodified``. A zero offset prints as
    ``Z``. ``ValueError`` when the text is not RFC 3339.
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError("not an RFC 3339 time")
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) < 24
            and int(minute) < 60 and int(sec) < 60):
        raise ValueError("not an RFC 3339 time")
    out = f"{year}-{month}-{day}T{hour}:{minute}:{sec}"
    if fraction and frac:
        nanos = frac[1:10].rstrip("0")
        if nanos:
            out += "." + nanos
    if zone in ("Z", "z", "+00:00", "-00:00"):
        return out + "Z"
    return out + zone
