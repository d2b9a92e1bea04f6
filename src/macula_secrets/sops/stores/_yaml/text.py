"""Decoding YAML input: UTF-8 (or UTF-16 with a BOM), no forbidden characters."""

from __future__ import annotations

import re

from ...._lazyre import LazyPattern
from ....errors import FormatError

# The ASCII part of the same set: cheap to compile, enough for ASCII text.
_FORBIDDEN_ASCII = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

__all__ = ["decode_text"]

# Characters YAML forbids in a stream (go-yaml's reader rejects them). Written
# as the forbidden set rather than the negation of the allowed one: a class
# with huge ranges costs milliseconds to compile at start-up.
_FORBIDDEN_ANY = LazyPattern(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)

def decode_text(data: bytes) -> str:
    """Decode YAML input as go-yaml does: UTF-8, or UTF-16 with a BOM.

    Raises ``FormatError`` for undecodable bytes and for characters YAML
    forbids (most control characters), naming the offset.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise FormatError("yaml: invalid UTF-16 input") from None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"yaml: invalid UTF-8 at byte {exc.start}") from None
        if text.startswith("\ufeff"):
            text = text[1:]
    m = (_FORBIDDEN_ASCII if text.isascii() else _FORBIDDEN_ANY).search(text)
    if m is not None:
        line = text.count("\n", 0, m.start()) + 1
        raise FormatError(f"yaml: line {line}: control characters are not allowed")
    return text
