"""A fast path for the YAML most secrets files are: block maps and lists, no comments.

The full reader (``scanner.py``/``parser.py``) follows go-yaml token by token,
which costs tens of microseconds per line in CPython. Most SOPS files, and
every file sops writes without comments, use a small part of YAML: block
mappings and sequences, one-line plain or quoted scalars, literal blocks
(the ``enc`` fields), ``{}`` and ``[]``. This module reads exactly that part
line by line and gives up (returns ``None``) on anything else, so the full
reader decides every case this one does not know. Both must give the same
tree; ``tests/property/test_yaml_fast_path.py`` checks it on generated
documents.
"""

from __future__ import annotations

import re
from typing import Final

from ...tree import Branch
from .resolve import UInt64, resolve

__all__ = ["try_parse"]

# Characters whose presence sends the whole text to the full reader: comments,
# tabs and CR (whitespace rules), document markers and directives are checked
# per line below.
_UNSUPPORTED: Final = re.compile("[#\t\r\x85\u2028\u2029\ufeff]")

# A mapping entry: key, then ":" followed by a space or the end of the line.
_ENTRY: Final = re.compile(
    r"""(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s\-?:,\[\]{}#&*!|>'"%@`][^:]*?(?::[^\s:][^:]*?)*)"""
    r":(?: +(?P<value>.*))?$"
)
_DOUBLE: Final = re.compile(r'"((?:[^"\\]|\\.)*)" *$')
_SINGLE: Final = re.compile(r"'((?:[^']|'')*)' *$")
_ESCAPE: Final = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_SIMPLE_ESCAPES: Final = {
    "0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "'": "'", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_LITERAL_HEADER: Final = re.compile(r"\|([-+]?) *$")
# Plain scalars that are fine on one line in block context.
_PLAIN_START_BAD: Final = frozenset("[]{},#&*!|>'\"%@`")
# First characters for which go-yaml's resolver may give a type other than str.
_TYPED_START: Final = frozenset("+-0123456789yYnNtTfFoO~.<")


class _DeclinedError(Exception):
    """The text uses YAML the fast path does not handle."""


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code[0] in "xuU" and len(code) > 1:
            value = int(code[1:], 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise _DeclinedError
            return chr(value)
        raise _DeclinedError

    return _ESCAPE.sub(one, body) if "\\" in body else body


def _quoted(text: str) -> str | None:
    """The value of a one-line quoted scalar, or None if ``text`` is not one."""
    if text[0] == '"':
        m = _DOUBLE.match(text)
        return None if m is None else _unescape(m.group(1))
    if text[0] == "'":
        m = _SINGLE.match(text)
        return None if m is None else m.group(1).replace("''", "'")
    return None


def _plain(text: str) -> object:
    """Decode a one-line plain scalar as go-yaml does, or give up."""
    c = text[0]
    if c in _PLAIN_START_BAD or (c in "-?:" and (len(text) == 1 or text[1] == " ")):
        raise _DeclinedError
    if ": " in text or text[-1] == ":" or text.startswith(("---", "...")):
        raise _DeclinedError
    value = text if text[-1] != " " else text.rstrip(" ")
    if c not in _TYPED_START:
        return value  # go-yaml's resolver only types scalars starting with these
    if value == "<<":
        return value
    tag, out = resolve("", value)
    if tag == "!!binary" or isinstance(out, UInt64):
        raise _DeclinedError
    return out


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Reader:
    __slots__ = ("duplicates", "lines", "n")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.n = len(lines)
        self.duplicates = False

    def _next_content(self, i: int) -> int:
        lines = self.lines
        while i < self.n and not lines[i].strip(" "):
            i += 1
        return i

    def mapping(self, i: int, indent: int) -> tuple[Branch, int]:
        lines = self.lines
        out = Branch()
        seen: set[str] = set()
        while True:
            i = self._next_content(i)
            if i >= self.n:
                return out, i
            line = lines[i]
            ind = _indent_of(line)
            if ind < indent:
                return out, i
            if ind > indent:
                raise _DeclinedError
            body = line[ind:]
            if body.startswith("- ") or body == "-":
                return out, i  # an indentless sequence ends here; the caller decides
            m = _ENTRY.match(body)
            if m is None:
                raise _DeclinedError
            raw_key, value_text = m.group("key", "value")
            if raw_key[0] in "\"'":
                key: object = _quoted(raw_key)
                if key is None:
                    raise _DeclinedError
                ident = "q" + str(key)
            else:
                if raw_key != raw_key.rstrip(" "):
                    raise _DeclinedError
                if raw_key == "<<":
                    raise _DeclinedError  # a merge key: the full reader checks its value
                key = _plain(raw_key)
                ident = "p" + raw_key
            # go-yaml compares keys by their text; keep it simple and let the
            # full reader report any duplicate with its exact message.
            if ident[1:] in seen:
                self.duplicates = True
            seen.add(ident[1:])
            value, i = self.value(value_text, i, indent)
            out.append((key, value))

    def value(self, text: str | None, i: int, indent: int) -> tuple[object, int]:
        """Parse the value that starts after ``key:`` on line ``i`` (block at ``indent``)."""
        lines = self.lines
        if text is None or not text.strip(" "):
            j = self._next_content(i + 1)
            if j < self.n:
                ind = _indent_of(lines[j])
                body = lines[j][ind:]
                is_seq = body.startswith("- ") or body == "-"
                if ind > indent:
                    if is_seq:
                        return self.sequence(j, ind)
                    return self.mapping(j, ind)
                if ind == indent and is_seq:
                    return self.sequence(j, ind)
            return None, i + 1
        text = text.rstrip(" ")
        if text == "{}":
            return self._after_scalar(Branch(), i, indent)
        if text == "[]":
            return self._after_scalar([], i, indent)
        if text[0] == "|":
            return self.literal(text, i, indent)
        if text[0] in "\"'":
            q = _quoted(text)
            if q is None:
                raise _DeclinedError
            return self._after_scalar(q, i, indent)
        return self._after_scalar(_plain(text), i, indent)

    def _after_scalar(self, value: object, i: int, indent: int) -> tuple[object, int]:
        # A more indented line after a one-line scalar would continue it.
        j = self._next_content(i + 1)
        if j < self.n and _indent_of(self.lines[j]) > indent:
            raise _DeclinedError
        return value, i + 1

    def literal(self, header: str, i: int, indent: int) -> tuple[str, int]:
        m = _LITERAL_HEADER.match(header)
        if m is None:
            raise _DeclinedError  # indentation indicators and folded blocks: full reader
        chomp = m.group(1)
        lines = self.lines
        j = i + 1
        if j >= self.n or not lines[j].strip(" "):
            raise _DeclinedError  # leading empty lines decide the indentation: full reader
        block = _indent_of(lines[j])
        if block <= indent:
            raise _DeclinedError
        content: list[str] = []
        trailing = 0
        while j < self.n:
            line = lines[j]
            if len(line) <= block and not line.strip(" "):
                trailing += 1
                j += 1
                continue
            if _indent_of(line) < block:
                break
            content.extend([""] * trailing)
            trailing = 0
            content.append(line[block:])
            j += 1
        if j >= self.n and trailing and lines[-1] == "":
            trailing -= 1  # the empty string after the file's final newline
        core = "\n".join(content)
        if chomp == "-":
            value = core
        elif chomp == "+":
            value = core + "\n" + "\n" * trailing
        else:
            value = core + "\n"
        return value, j

    def sequence(self, i: int, indent: int) -> tuple[list[object], int]:
        lines = self.lines
        out: list[object] = []
        while True:
            i = self._next_content(i)
            if i >= self.n:
                return out, i
            line = lines[i]
            ind = _indent_of(line)
            if ind != indent:
                if ind > indent:
                    raise _DeclinedError
                return out, i
            body = line[ind:]
            if body == "-":
                rest = ""
            elif body.startswith("- "):
                rest = body[2:]
            else:
                return out, i
            stripped = rest.lstrip(" ")
            if not stripped:
                value, i = self.value(None, i, indent)
                out.append(value)
                continue
            col = indent + 1 + (len(rest) - len(stripped)) + (1 if body.startswith("- ") else 0)
            if stripped.startswith("- ") or stripped == "-":
                lines[i] = " " * col + stripped
                value, i = self.sequence(i, col)
                out.append(value)
                continue
            if stripped[0] not in "\"'|" and _ENTRY.match(stripped) is not None:
                lines[i] = " " * col + stripped
                value, i = self.mapping(i, col)
                out.append(value)
                continue
            if stripped[0] in "\"'" and _ENTRY.match(stripped) is not None and \
                    _quoted(stripped) is None:
                lines[i] = " " * col + stripped
                value, i = self.mapping(i, col)
                out.append(value)
                continue
            value, i = self.value(stripped, i, indent)
            out.append(value)


def try_parse(text: str) -> tuple[Branch, bool] | None:
    """Parse a one-document YAML text in the common subset.

    Returns ``(branch, has_duplicate_keys)``, or ``None`` when the text needs
    the full reader (comments, flow collections, anchors, tags, several
    documents, multi-line plain or quoted scalars, folded blocks...).
    """
    if not text.endswith("\n") or _UNSUPPORTED.search(text):
        return None
    lines = text.split("\n")
    for line in lines:
        if line.startswith(("---", "...", "%")):
            return None
    reader = _Reader(lines)
    try:
        start = reader._next_content(0)
        if start >= reader.n:
            return None
        if _indent_of(lines[start]) != 0:
            return None
        branch, end = reader.mapping(start, 0)
        if reader._next_content(end) < reader.n:
            return None
    except (_DeclinedError, RecursionError):
        return None
    return branch, reader.duplicates
