"""A fast writer for trees without comments, laid out exactly as ``emitter.py`` does.

The event-driven emitter mirrors go-yaml state by state, which costs tens of
microseconds per value in CPython. For block mappings and sequences of
scalars with no comments (every file sops writes without comments, and the
decrypted form of those), the layout rules reduce to a few: nested blocks
indent to the next multiple of the indentation, a collection inside a list
item starts on the ``- `` line two columns in, literal blocks indent like a
nested block. This module applies those rules directly and returns ``None``
for anything else, so the full emitter handles every case this one does not
know. ``tests/property/test_yaml_fast_path.py`` checks both give the same
bytes.
"""

from __future__ import annotations

from ...tree import Branch, Comment
from .nodes import DOUBLE_QUOTED_STYLE, LITERAL_STYLE, SINGLE_QUOTED_STYLE, TAGGED_STYLE
from .resolve import resolve_tag
from .scalars import _BORING, double_quoted_body, scalar_node

__all__ = ["fast_emit"]

_ODD_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


class _DeclinedError(Exception):
    pass


# First characters that make go-yaml type, quote or tag a string (typed
# scalars, old booleans like "yes", indicators).
_NOT_SIMPLE_START = frozenset("+-0123456789~.<#,[]{}&*!|>'\"%@`?:")
# Words go-yaml types (true, null...) or quotes as YAML 1.1 booleans (yes, on...).
_WORDS = frozenset((
    "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL",
    "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO",
    "off", "Off", "OFF",
))


def _scalar_text(value: object, *, key: bool) -> tuple[str, str | None]:
    """``(text, literal)``: the one-line text, or the value of a literal block."""
    if (
        value.__class__ is str
        and value
        and value[0] not in _NOT_SIMPLE_START
        and value[-1] != ":"
        and value not in _WORDS
        and _BORING.fullmatch(value)
        and (not key or (len(value) <= 128 and value.isascii()))
    ):
        # No spaces, breaks or unprintable characters, no indicator, resolves
        # to a string: go-yaml writes it plain, untagged.
        return value, None
    node = scalar_node(value)
    style = node.style
    if style & TAGGED_STYLE or node.tag == "!!merge":
        raise _DeclinedError
    text = node.value
    if style & DOUBLE_QUOTED_STYLE:
        return '"' + double_quoted_body(text) + '"', None
    if style & SINGLE_QUOTED_STYLE:
        if "\n" in text or any(b in text for b in _ODD_BREAKS):
            raise _DeclinedError
        return "'" + text.replace("'", "''") + "'", None
    if style & LITERAL_STYLE:
        if key or any(b in text for b in _ODD_BREAKS):
            raise _DeclinedError
        return "", text
    if style:
        raise _DeclinedError
    # A plain node keeps no tag only when its text resolves back to its tag.
    if resolve_tag(text) != node.tag:
        raise _DeclinedError
    if key:
        if not text:
            return "''", None
        if len(text.encode("utf-8")) > 128:
            raise _DeclinedError  # written as a "? " complex key
    return text, None


class _Writer:
    __slots__ = ("indent", "out")

    def __init__(self, indent: int) -> None:
        self.indent = indent
        self.out: list[str] = []

    def _aligned(self, indent: int) -> int:
        b = self.indent
        return b * ((indent + b) // b)

    def _literal(self, value: str, content_indent: int) -> None:
        """Write `` |<hints>`` and the block (the caller wrote the key or dash)."""
        out = self.out
        hints = ""
        if value and (value[0] == " " or value[0] == "\n"):
            hints = str(self.indent)
        if not value or value[-1] != "\n":
            hints += "-"
        elif len(value) == 1 or value[-2] == "\n":
            hints += "+"
        out.append(" |" + hints + "\n")
        pad = " " * content_indent
        parts = value.split("\n")
        for part in parts[:-1]:
            out.append(pad + part + "\n" if part else "\n")
        if parts[-1]:
            out.append(pad + parts[-1] + "\n")

    def value_after(self, value: object, block_indent: int, scalar_indent: int) -> None:
        """Write what follows ``key:`` or ``-`` for ``value``.

        ``block_indent`` is where a nested block starts; ``scalar_indent`` is
        where a literal block's lines go.
        """
        out = self.out
        cls = value.__class__
        if cls is Branch:
            if not value:
                out.append(" {}\n")
                return
            self.mapping(value, block_indent, inline=False)  # type: ignore[arg-type]
            return
        if cls is list:
            if not value:
                out.append(" []\n")
                return
            self.sequence(value, block_indent, inline=False)  # type: ignore[arg-type]
            return
        if cls is Comment:
            raise _DeclinedError
        text, literal = _scalar_text(value, key=False)
        if literal is not None:
            self._literal(literal, scalar_indent)
        else:
            out.append(" " + text + "\n")

    def mapping(self, branch: Branch, indent: int, *, inline: bool) -> None:
        out = self.out
        nested = self._aligned(indent)
        first = True
        pad = " " * indent
        for k, v in branch:
            if k.__class__ is Comment:
                raise _DeclinedError
            key_text, _ = _scalar_text(k, key=True)
            if first and inline:
                out.append(" " + key_text + ":")
            else:
                out.append(pad + key_text + ":")
            first = False
            cls = v.__class__
            if (cls is Branch or cls is list) and v:
                out.append("\n")
            self.value_after(v, nested, nested)

    def sequence(self, items: list[object], indent: int, *, inline: bool) -> None:
        out = self.out
        pad = " " * indent
        first = True
        for item in items:
            if item.__class__ is Comment:
                raise _DeclinedError
            out.append(" -" if first and inline else pad + "-")
            first = False
            cls = item.__class__
            if cls is Branch and item:
                self.mapping(item, indent + 2, inline=True)  # type: ignore[arg-type]
            elif cls is list and item:
                self.sequence(item, indent + 2, inline=True)  # type: ignore[arg-type]
            else:
                self.value_after(item, indent + 2, indent + 2)


def fast_emit(branches: list[Branch], *, indent: int = 4) -> str | None:
    """Print branches as go-yaml would, or ``None`` when the full emitter is needed."""
    if not 2 <= indent <= 9:
        return None
    w = _Writer(indent)
    try:
        for i, branch in enumerate(branches):
            if not branch:
                return None
            if i:
                w.out.append("---\n")
            w.mapping(branch, 0, inline=False)
    except (_DeclinedError, RecursionError):
        return None
    return "".join(w.out)

