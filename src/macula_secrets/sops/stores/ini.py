"""The INI store: INI files read and written exactly as sops 3.11 does with go-ini.

sops parses INI with ``gopkg.in/ini.v1`` (v1.67, non-unique sections allowed)
and this module reproduces that library's observable behaviour (SOPS_FORMAT.md
5.4), established by experiment against the real sops:

* The tree's top level holds the sections in file order, always starting with
  ``DEFAULT`` (the keys before the first header, possibly none). Sections with
  the same name stay separate; within one section a repeated key keeps its
  first position and its last value.
* Keys split at the first ``=`` or ``:``; keys and values are trimmed; a value
  wrapped in matching quotes loses them; ``#`` or ``;`` anywhere in an
  unquoted value starts an inline comment; a trailing backslash continues the
  value on the next line; triple-quoted and backtick-quoted values may span
  lines.
* Comment lines accumulate until the next key or header. A section's comment
  becomes its first item; a key's comment becomes an item right after the key.
  Comment text loses its leading ``;``/``#`` and spaces.
* Output: ``[name]`` headers (none for a leading ``DEFAULT``), ``=`` aligned
  per section by byte length, go-ini's quoting of awkward keys and values, a
  blank line between sections. Metadata is a final ``[sops]`` section of
  flattened keys (``_flat.py``), written sorted (sops 3.11 writes them in
  random order).

Most callers want :func:`macula_secrets.sops.stores.get_store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...errors import FormatError, LimitError
from .._gofmt import format_float_g
from ..tree import METADATA_KEY, Branch, Comment, Timestamp
from ._flat import flatten_metadata, to_utf8, unflatten_metadata, value_to_string

if TYPE_CHECKING:
    from . import Format, Store

__all__ = ["DEFAULT_SECTION", "INIStore", "make_store"]

#: Deepest nesting printed for a value inside a section (Go ``%v`` of lists).
MAX_DEPTH: Final = 100

#: The section that holds the keys written before the first header.
DEFAULT_SECTION: Final = "DEFAULT"

# Go's unicode.IsSpace, which go-ini trims with (Python's str.strip() trims more).
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_CONTEXT: Final = "could not unmarshal input data: "
_HINT: Final = "INI lines must be `key = value`, `[section]`, `; comment` or empty"


class _Section:
    """One parsed section: go-ini's view (comment, keys in first-seen order)."""

    __slots__ = ("comment", "keys", "name")

    def __init__(self, name: str, comment: str) -> None:
        self.name = name
        self.comment = comment
        # key -> [value, comment]; dict order is go-ini's key list order.
        self.keys: dict[str, list[str]] = {}


class _Parser:
    """A line reader with go-ini's notion of lines (each keeps its ``\\n``)."""

    __slots__ = ("comment", "eof", "lines", "pos")

    def __init__(self, text: str) -> None:
        pieces = text.split("\n")
        self.lines = [p + "\n" for p in pieces[:-1]]
        self.lines.append(pieces[-1])
        self.pos = 0
        self.eof = False
        self.comment: list[str] = []

    def read(self) -> str:
        line = self.lines[self.pos]
        self.pos += 1
        if self.pos == len(self.lines):
            self.eof = True
        return line

    def error(self, message: str) -> FormatError:
        return FormatError(f"{_CONTEXT}{message} (line {self.pos})", hint=_HINT)

    def take_comment(self) -> str:
        text = "".join(self.comment).strip(_GO_SPACE)
        self.comment.clear()
        return text

    def parse(self) -> list[_Section]:
        sections = [_Section(DEFAULT_SECTION, "")]
        section = sections[0]
        auto = 1
        while not self.eof:
            line = self.read().lstrip(_GO_SPACE)
            if not line:
                continue
            first = line[0]
            if first in "#;":
                self.comment.append(line)
                continue
            if first == "[":
                close = line.rfind("]")
                if close < 0:
                    raise self.error("unclosed section header")
                name = line[1:close]
                if not name:
                    raise self.error("empty section name")
                rest = line[close + 1 :]
                at = _find_comment(rest)
                if at >= 0:
                    self.comment.append(rest[at:])
                section = _Section(name, self.take_comment())
                sections.append(section)
                auto = 1
                continue
            key, offset = self._key_name(line)
            if key == "-":
                # go-ini's auto-increment keys; sops then writes them as "#1 = ...".
                key = f"#{auto}"
                auto += 1
            value = self._value(line[offset:])
            if not key:
                raise self.error("empty key name")
            entry = section.keys.get(key)
            if entry is None:
                section.keys[key] = [value, self.take_comment()]
            else:
                entry[0] = value
                entry[1] = self.take_comment()
        return sections

    def _key_name(self, line: str) -> tuple[str, int]:
        quote = ""
        if line[0] == '"':
            quote = '"""' if line.startswith('"""') and _utf8_len(line) > 6 else '"'
        elif line[0] == "`":
            quote = "`"
        if quote:
            start = len(quote)
            end = line.find(quote, start)
            if end < 0:
                raise self.error("missing closing key quote")
            at = _find_delimiter(line, end + start)
            if at < 0:
                raise self.error("key-value delimiter not found")
            return line[start:end].strip(_GO_SPACE), at + 1
        at = _find_delimiter(line, 0)
        if at < 0:
            raise self.error("key-value delimiter not found")
        return line[:at].strip(_GO_SPACE), at + 1

    def _value(self, raw: str) -> str:
        line = raw.lstrip(_GO_SPACE)
        if not line:
            return ""
        quote = ""
        if len(line) > 3 and line.startswith('"""'):
            quote = '"""'
        elif line[0] == "`":
            quote = "`"
        if quote:
            start = len(quote)
            end = line.rfind(quote, start)
            if end < 0:
                return self._multiline(line[start:], quote)
            return line[start:end]
        line = line.strip(_GO_SPACE)
        if line[-1] == "\\":
            return self._continued(line[:-1])
        at = _find_comment(line)
        if at >= 0:
            self.comment.append(line[at:])
            line = line[:at].strip(_GO_SPACE)
        if _surrounded(line, "'") or _surrounded(line, '"'):
            line = line[1:-1]
        return line

    def _multiline(self, value: str, quote: str) -> str:
        start_line = self.pos
        parts = [value]
        while True:
            if self.eof:
                raise FormatError(
                    f"{_CONTEXT}missing closing {quote} of the value starting on line {start_line}",
                    hint=_HINT,
                )
            nxt = self.read()
            end = nxt.rfind(quote)
            # A line ending in a backslash continues the value even after a
            # closing quote (observed in the go-ini that sops 3.11 is built with).
            if end >= 0 and not nxt.strip(_GO_SPACE).endswith("\\"):
                parts.append(nxt[:end])
                at = _find_comment(nxt[end:])
                if at >= 0:
                    self.comment.append(nxt[end + at :].strip(_GO_SPACE))
                return "".join(parts)
            parts.append(nxt)

    def _continued(self, value: str) -> str:
        while not self.eof:
            nxt = self.read().strip(_GO_SPACE)
            if not nxt:
                break
            value += nxt
            if value[-1] != "\\":
                break
            value = value[:-1]
        return value


def _find_comment(text: str) -> int:
    """Index of the first ``#`` or ``;``, or -1."""
    hashes = text.find("#")
    semi = text.find(";")
    if hashes < 0:
        return semi
    return hashes if semi < 0 else min(hashes, semi)


def _find_delimiter(text: str, start: int) -> int:
    """Index of the first ``=`` or ``:`` at or after ``start``, or -1."""
    eq = text.find("=", start)
    colon = text.find(":", start)
    if eq < 0:
        return colon
    return eq if colon < 0 else min(eq, colon)


def _surrounded(text: str, quote: str) -> bool:
    return (
        len(text) >= 2
        and text[0] == quote
        and text[-1] == quote
        and text.find(quote, 1) == len(text) - 1
    )


def _strip_comment_char(comment: str) -> str:
    """sops's ``stripCommentChar``: drop the leading marker and following spaces."""
    if comment.startswith(";"):
        return comment.lstrip("; ")
    if comment.startswith("#"):
        return comment.lstrip("# ")
    return comment


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(
            f"INI input is not valid UTF-8 (line {line}, byte offset {exc.start})",
            hint="INI files must be UTF-8 text; binary files need --input-type binary",
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _to_tree(sections: list[_Section]) -> Branch:
    tree = Branch()
    for sec in sections:
        items = Branch()
        if sec.comment:
            items.append((Comment(_strip_comment_char(sec.comment)), None))
        for key, (value, comment) in sec.keys.items():
            items.append((key, value))
            if comment:
                items.append((Comment(_strip_comment_char(comment)), None))
        tree.append((sec.name, items))
    return tree


# -- writing -----------------------------------------------------------------


def _go_v(value: object, depth: int = 0) -> str:
    """Go's ``%v`` of a tree value, which sops prints for nested INI values."""
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise LimitError(f"tree nesting is deeper than {MAX_DEPTH} levels")
        if isinstance(value, Branch):
            return (
                "["
                + " ".join(
                    "{" + _go_v(k, depth + 1) + " " + _go_v(v, depth + 1) + "}" for k, v in value
                )
                + "]"
            )
        return "[" + " ".join(_go_v(v, depth + 1) for v in value) + "]"
    if isinstance(value, Comment):
        return "{" + value.value + "}"
    if isinstance(value, float):
        return format_float_g(value)
    if isinstance(value, Timestamp):
        return _go_time_string(value.text)
    return value_to_string(value)


def _go_time_string(text: str) -> str:
    """Go's ``time.Time.String()`` for an RFC 3339 text (best effort)."""
    if len(text) < 20 or text[10] not in "Tt":
        return text
    date, clock = text[:10], text[11:]
    zone = "Z"
    for i in range(8, len(clock)):
        if clock[i] in "Zz+-":
            clock, zone = clock[:i], clock[i:]
            break
    if zone in ("Z", "z"):
        return f"{date} {clock} +0000 UTC"
    offset = zone.replace(":", "")
    return f"{date} {clock} {offset} {offset}"


def _scalar_text(value: object) -> str:
    if isinstance(value, list):
        return _go_v(value)
    return value_to_string(value)


def _quote_key(key: str) -> str:
    if '"' in key or "=" in key or ":" in key:
        return "`" + key + "`"
    if "`" in key:
        return '"""' + key + '"""'
    return key


def _quote_value(value: str) -> str:
    if "\n" in value or "`" in value:
        return '"""' + value + '"""'
    if "#" in value or ";" in value:
        return "`" + value + "`"
    if value.strip(_GO_SPACE) != value:
        return '"' + value + '"'
    return value


def _comment_lines(comment: str, *, trim: bool) -> list[str]:
    out = []
    for line in comment.split("\n"):
        if not line:
            # go-ini indexes the first character of every comment line and
            # panics on an empty one; sops crashes, so refuse instead.
            raise FormatError(
                "error marshaling to ini: a comment contains an empty line",
                hint="remove the empty line from the comment",
            )
        if line[0] in "#;":
            out.append(line[0] + " " + line[1:].strip(_GO_SPACE))
        else:
            out.append("; " + (line.strip(_GO_SPACE) if trim else line))
    return out


def _encode(sections: list[tuple[str, Branch]]) -> str:
    """Lay out sections as go-ini's ``WriteTo`` does with sops's options."""
    out: list[str] = []
    written = 0
    for index, (name, items) in enumerate(sections):
        section_comment = ""
        start = 0
        if items and isinstance(items[0][0], Comment):
            section_comment = items[0][0].value
            start = 1
        keys: dict[str, list[str]] = {}
        last: list[str] | None = None
        for key, value in items[start:]:
            if isinstance(key, Comment):
                if last is not None:
                    last[1] = key.value
                continue
            if not isinstance(key, str) or not key:
                raise FormatError(
                    "error marshaling to ini: error encoding key: "
                    "error creating new key: empty key name"
                )
            entry = keys.get(key)
            if entry is None:
                entry = keys[key] = ["", ""]
            entry[0] = _scalar_text(value)
            last = entry

        block: list[str] = []
        if section_comment:
            block.extend(c + "\n" for c in _comment_lines(section_comment, trim=False))
        if index == 0 and name.upper() == DEFAULT_SECTION:
            if not keys:
                out.extend(block)
                continue
        else:
            block.append(f"[{name}]\n")
        quoted = {k: _quote_key(k) for k in keys}
        width = max((_utf8_len(q) for q in quoted.values()), default=0)
        for key, (value, comment) in keys.items():
            if comment:
                block.extend(c + "\n" for c in _comment_lines(comment, trim=True))
            qk = quoted[key]
            pad = " " * (width - _utf8_len(qk))
            block.append(f"{qk}{pad} = {_quote_value(value)}\n")
        if written:
            out.append("\n")
        out.extend(block)
        written += 1
    return "".join(out)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape")) if not text.isascii() else len(text)


def _sections_of(branches: list[Branch]) -> list[tuple[str, Branch]]:
    sections: list[tuple[str, Branch]] = []
    for branch in branches:
        for key, value in branch:
            if isinstance(key, Comment):
                continue  # comments between sections cannot be written
            if not isinstance(key, str) or not key:
                raise FormatError(
                    "error marshaling to ini: error encoding section : empty section name"
                )
            if not isinstance(value, Branch):
                raise FormatError(
                    "error marshaling to ini: error encoding section: "
                    "section values should always be mappings",
                    hint="INI needs a mapping of sections to flat mappings; "
                    "use another --output-type",
                )
            sections.append((key, value))
    return sections


class INIStore:
    """Reads and writes SOPS INI files; stateless; thread-safe."""

    name: Format = "ini"

    def load_plain(self, data: bytes) -> list[Branch]:
        """Parse an INI file: one branch of sections, ``DEFAULT`` first."""
        return [_to_tree(_Parser(_decode(data)).parse())]

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        """Parse an encrypted INI file; the first ``[sops]`` section is the metadata.

        Every ``[sops]`` section is removed from the data.
        """
        sections = _Parser(_decode(data)).parse()
        meta = next((s for s in sections if s.name == METADATA_KEY), None)
        if meta is None:
            raise FormatError("sops metadata not found")
        raw = unflatten_metadata((k, v) for k, (v, _) in meta.keys.items())
        kept = [s for s in sections if s.name != METADATA_KEY]
        return [_to_tree(kept)], raw

    def has_metadata(self, branches: list[Branch]) -> bool:
        """Tell whether there is a ``[sops]`` section."""
        return any(b.index_of(METADATA_KEY) >= 0 for b in branches)

    def emit_plain(self, branches: list[Branch]) -> bytes:
        """Print sections as sops does (comments attached as go-ini keeps them)."""
        return to_utf8(_encode(_sections_of(branches)))

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        """Print encrypted sections followed by a ``[sops]`` metadata section."""
        sections = _sections_of(branches)
        meta = Branch(flatten_metadata(metadata))
        sections.append((METADATA_KEY, meta))
        return to_utf8(_encode(sections))

    def emit_value(self, value: object) -> bytes:
        """Print one extracted value as sops's INI store: compact Go JSON."""
        from .json import marshal_go_value

        return marshal_go_value(value).encode("utf-8")


if TYPE_CHECKING:
    _conforms: Store = INIStore()  # static check against the Store protocol


def make_store(indent: int | None = None) -> INIStore:
    """Return the INI store (``indent`` does not apply to INI)."""
    return INIStore()
