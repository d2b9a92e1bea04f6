"""Scalars: which style go-yaml gives a string, and how a quoted one is written.

Shared by the event-driven emitter and the fast writer. :func:`scalar_node`
builds the node sops builds for a Go value (go-yaml's ``Node.Encode``),
including the quoting a string needs to keep its type.
"""

from __future__ import annotations

import re
from typing import Final

from ...._lazyre import LazyPattern
from ....errors import FormatError
from ..._gofmt import format_float_g
from ...tree import Timestamp
from . import nodes as S
from .nodes import (
    DOCUMENT,
    DOUBLE_QUOTED_STYLE,
    FOLDED_STYLE,
    LITERAL_STYLE,
    SCALAR,
    SINGLE_QUOTED_STYLE,
    TAGGED_STYLE,
    Node,
)
from .resolve import resolve_tag

_BREAKS: Final = "\r\n\x85\u2028\u2029"
_OLD_BOOLS: Final = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
     "n", "N", "no", "No", "NO", "off", "Off", "OFF"]
)


def _is_printable(c: str) -> bool:
    """go-yaml's byte-level test, in code points: NEL and astral planes are not printable."""
    o = ord(c)
    return o == 0x0A or 0x20 <= o <= 0x7E or 0xA0 <= o <= 0xD7FF or (
        0xE000 <= o <= 0xFFFD and o != 0xFEFF
    )


class _ScalarData:
    __slots__ = (
        "block_allowed",
        "block_plain_allowed",
        "flow_plain_allowed",
        "multiline",
        "single_quoted_allowed",
        "style",
        "value",
    )

    def __init__(self) -> None:
        self.value = ""
        self.multiline = False
        self.flow_plain_allowed = False
        self.block_plain_allowed = False
        self.single_quoted_allowed = False
        self.block_allowed = False
        self.style = 0


# A scalar made only of these characters has no spaces, breaks, tabs or
# unprintable characters; its analysis reduces to a few indicator checks.
_BORING = re.compile(
    "[^\x00-\x20\x7f-\xa0\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff"
    "\U00010000-\U0010ffff]+"
)
_FLOW_INDICATORS = LazyPattern("[,?\\[\\]{}:]")


def analyze_scalar(value: str, data: _ScalarData) -> None:
    """Decide which styles can represent ``value`` (libyaml's analysis)."""
    data.value = value
    if value and _BORING.fullmatch(value):
        first = value[0]
        flow_ind = block_ind = value[:3] in ("---", "...")
        if first in "#,[]{}&*!|>'\"%@`":
            flow_ind = block_ind = True
        elif first in "?:":
            flow_ind = True
            if len(value) == 1:
                block_ind = True
        elif first == "-" and len(value) == 1:
            flow_ind = block_ind = True
        if not flow_ind and _FLOW_INDICATORS.search(value, 1):
            flow_ind = True
        if len(value) > 1 and value[-1] == ":":
            block_ind = True
        data.multiline = False
        data.flow_plain_allowed = not flow_ind
        data.block_plain_allowed = not block_ind
        data.single_quoted_allowed = True
        data.block_allowed = True
        return
    if not value:
        data.multiline = False
        data.flow_plain_allowed = False
        data.block_plain_allowed = True
        data.single_quoted_allowed = True
        data.block_allowed = False
        return
    block_ind = flow_ind = line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = False
    previous_space = previous_break = False
    if value[:3] in ("---", "..."):
        block_ind = flow_ind = True
    preceded_by_ws = True
    n = len(value)
    for i, c in enumerate(value):
        followed_by_ws = i + 1 >= n or value[i + 1] in " \t"
        if i == 0:
            if c in "#,[]{}&*!|>'\"%@`":
                flow_ind = block_ind = True
            elif c in "?:":
                flow_ind = True
                if followed_by_ws:
                    block_ind = True
            elif c == "-" and followed_by_ws:
                flow_ind = block_ind = True
        elif c in ",?[]{}":
            flow_ind = True
        elif c == ":":
            flow_ind = True
            if followed_by_ws:
                block_ind = True
        elif c == "#" and preceded_by_ws:
            flow_ind = block_ind = True
        if c == "\t":
            tabs = True
        elif not _is_printable(c):
            special = True
        if c == " ":
            if i == 0:
                leading_space = True
            if i == n - 1:
                trailing_space = True
            if previous_break:
                break_space = True
            previous_space, previous_break = True, False
        elif c in _BREAKS:
            line_breaks = True
            if i == 0:
                leading_break = True
            if i == n - 1:
                trailing_break = True
            if previous_space:
                space_break = True
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = c in " \t\r\n\x85\u2028\u2029\0"
    data.multiline = line_breaks
    data.flow_plain_allowed = data.block_plain_allowed = True
    data.single_quoted_allowed = data.block_allowed = True
    if leading_space or leading_break or trailing_space or trailing_break:
        data.flow_plain_allowed = data.block_plain_allowed = False
    if trailing_space:
        data.block_allowed = False
    if break_space:
        data.flow_plain_allowed = data.block_plain_allowed = False
        data.single_quoted_allowed = False
    if space_break or tabs or special:
        data.flow_plain_allowed = data.block_plain_allowed = False
        data.single_quoted_allowed = False
    if space_break or special:
        data.block_allowed = False
    if line_breaks:
        data.flow_plain_allowed = data.block_plain_allowed = False
    if flow_ind:
        data.flow_plain_allowed = False
    if block_ind:
        data.block_plain_allowed = False


_HAS_BREAK = LazyPattern("[\r\n\x85\u2028\u2029]")
# Characters a double-quoted scalar must escape: the non-printable ones (see
# _is_printable), line breaks, the quote and the backslash.
_NEEDS_ESCAPE = LazyPattern(
    '["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff'
    "\U00010000-\U0010ffff]"
)

def double_quoted_body(value: str) -> str:
    """The text between the quotes of a double-quoted scalar, escaped as go-yaml does."""
    # go-yaml's BOM test looks at the start of the value, not the current
    # character: a value that starts with a BOM is escaped throughout.
    bom = value.startswith("\ufeff")
    if not bom and not _NEEDS_ESCAPE.search(value):
        return value
    out: list[str] = []
    for c in value:
        o = ord(c)
        if bom or not _is_printable(c) or c in _BREAKS or c in ('"', "\\"):
            esc = _DQ_ESCAPES.get(o)
            if esc is not None:
                out.append("\\" + esc)
            elif o <= 0xFF:
                out.append(f"\\x{o:02X}")
            elif o <= 0xFFFF:
                out.append(f"\\u{o:04X}")
            else:
                out.append(f"\\U{o:08X}")
        else:
            out.append(c)
    return "".join(out)


_DQ_ESCAPES: Final[dict[int, str]] = {
    0x00: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f",
    0x0D: "r", 0x1B: "e", 0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_",
    0x2028: "L", 0x2029: "P",
}


# -- node encoding (go-yaml's encoder.node) ---------------------------------------------

_ROOT_DATA = _ScalarData()


def _root_style(value: str, requested: int) -> int:
    """The style go-yaml writes a lone scalar in (document root, block context)."""
    data = _ROOT_DATA
    analyze_scalar(value, data)
    style = requested
    if style == S.PLAIN and not data.block_plain_allowed:
        style = S.SINGLE_QUOTED
    if style == S.SINGLE_QUOTED and not data.single_quoted_allowed:
        style = S.DOUBLE_QUOTED
    if style in (S.LITERAL, S.FOLDED) and not data.block_allowed:
        style = S.DOUBLE_QUOTED
    return style


_STYLE_FLAGS: Final = {
    S.DOUBLE_QUOTED: DOUBLE_QUOTED_STYLE,
    S.SINGLE_QUOTED: SINGLE_QUOTED_STYLE,
    S.LITERAL: LITERAL_STYLE,
    S.FOLDED: FOLDED_STYLE,
}


def _is_base60_float(s: str) -> bool:
    import re

    if not s or not (s[0] in "+-" or s[0].isdigit()) or ":" not in s:
        return False
    return re.fullmatch(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?", s) is not None


def _encode_base64(data: bytes) -> str:
    import base64

    enc = base64.b64encode(data).decode("ascii")
    if len(enc) <= 70:
        return enc
    return "".join(enc[i:i + 70] + "\n" for i in range(0, len(enc), 70))


def string_node(s: str) -> Node:
    """The node go-yaml makes for a Go string (``Node.Encode``), style included."""
    if "\n" in s:
        requested = S.LITERAL
    else:
        can_plain = resolve_tag(s) == "!!str" and not (s in _OLD_BOOLS or _is_base60_float(s))
        requested = S.PLAIN if can_plain else S.DOUBLE_QUOTED
    style = _root_style(s, requested)
    if style == S.PLAIN:
        tag = "!!merge" if s == "<<" else resolve_tag(s)
        return Node(SCALAR, tag, s, 0)
    if style == S.LITERAL and not _literal_reads_back(s):
        # go-yaml writes some strings as literal blocks it cannot read back
        # (a line that starts with a tab after the indentation). sops then
        # silently prints null; we print the value double-quoted instead.
        style = S.DOUBLE_QUOTED
    return Node(SCALAR, "!!str", s, _STYLE_FLAGS[style])


def _literal_reads_back(s: str) -> bool:
    """Whether the literal block go-yaml writes for ``s`` parses back to ``s``."""
    from .emitter import Encoder
    from .parser import parse_documents

    doc = Node(DOCUMENT)
    doc.content.append(Node(SCALAR, "!!str", s, LITERAL_STYLE))
    enc = Encoder(indent=4)
    enc.encode_document(doc)
    try:
        docs = parse_documents(enc.close())
    except FormatError:
        return False
    return bool(docs) and bool(docs[0].content) and docs[0].content[0].value == s


def scalar_node(value: object) -> Node:
    """The node go-yaml makes for a scalar value of the sops tree."""
    if value is None:
        return Node(SCALAR, "!!null", "null", 0)
    if value is True:
        return Node(SCALAR, "!!bool", "true", 0)
    if value is False:
        return Node(SCALAR, "!!bool", "false", 0)
    if isinstance(value, str):
        return string_node(value)
    if isinstance(value, int):
        return Node(SCALAR, "!!int", str(value), 0)
    if isinstance(value, float):
        s = format_float_g(value)
        s = {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(s, s)
        return Node(SCALAR, resolve_tag(s), s, 0)
    if isinstance(value, Timestamp):
        return Node(SCALAR, "!!timestamp", value.text, 0)
    if isinstance(value, bytes):
        try:
            return string_node(value.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        text = _encode_base64(value)
        style = S.LITERAL if "\n" in text else S.PLAIN
        style = _root_style(text, style)
        return Node(SCALAR, "!!binary", text, TAGGED_STYLE | _STYLE_FLAGS.get(style, 0))
    raise FormatError(f"yaml: cannot encode a value of type {type(value).__name__}")
