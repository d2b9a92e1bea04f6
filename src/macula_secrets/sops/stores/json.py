"""The JSON store: SOPS JSON files read and written exactly as sops 3.11 does.

Reading follows Go's ``encoding/json`` token stream as the sops JSON store uses
it (SOPS_FORMAT.md 5.2): the top level must be an object, key order and
duplicate keys are kept, every number becomes a ``float`` (sops <= 3.13.1
decodes all JSON numbers as float64) and anything after the top-level object is
ignored. Writing reproduces ``json.Marshal`` + ``json.Indent``: a TAB (or N
spaces) per level, Go string escaping (``<``, ``>``, ``&``, U+2028 and U+2029
as ``\\uXXXX``), Go number layout, ``{}``/``[]`` for empty containers, and the
metadata as a final ``"sops"`` member.

Two deliberate departures from sops, both for hostile or damaged input:
non-UTF-8 input and truncated input are errors here, where Go would replace the
bytes with U+FFFD or (for some truncations) silently drop the unfinished
member. Nesting deeper than :data:`MAX_DEPTH` is a :class:`LimitError`.

The binary store (``binary.py``) writes its encrypted form through this module.
Most callers want :func:`macula_secrets.sops.stores.get_store` rather than this
module.
"""

from __future__ import annotations

import json as _stdlib_json
import math
import re
from typing import TYPE_CHECKING, Final

from ...errors import ConfigError, FormatError, LimitError
from .._gofmt import format_float_e, format_float_f
from ..tree import METADATA_KEY, Branch, Comment, Timestamp

if TYPE_CHECKING:
    from . import Format, Store

__all__ = [
    "MAX_DEPTH",
    "JSONStore",
    "format_json_float",
    "make_store",
    "marshal_go_value",
    "parse_json",
    "quote_json_string",
]

#: Deepest container nesting accepted on input and produced on output.
MAX_DEPTH: Final = 100

# -- reading -----------------------------------------------------------------

# Token-stream states, named after the position in the JSON grammar.
_TOP: Final = 0
_ARRAY_START: Final = 1
_ARRAY_VALUE: Final = 2
_ARRAY_COMMA: Final = 3
_OBJECT_START: Final = 4
_OBJECT_KEY: Final = 5
_OBJECT_COLON: Final = 6
_OBJECT_VALUE: Final = 7
_OBJECT_COMMA: Final = 8

_VALUE_STATES: Final = frozenset((_TOP, _ARRAY_START, _ARRAY_VALUE, _OBJECT_VALUE))

# What Go's decoder says after "invalid character 'x'" in each state.
_CONTEXT: Final = {
    _TOP: " looking for beginning of value",
    _ARRAY_START: " looking for beginning of value",
    _ARRAY_VALUE: " looking for beginning of value",
    _OBJECT_VALUE: " looking for beginning of value",
    _ARRAY_COMMA: " after array element",
    _OBJECT_KEY: " looking for beginning of object key string",
    _OBJECT_COLON: " after object key",
    _OBJECT_COMMA: " after object key:value pair",
    _OBJECT_START: "",
}

_WS = re.compile(r"[ \t\r\n]+")
# A complete, valid JSON string. Unrolled so long strings match in one pass.
_STRING = re.compile(r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"')
# A complete number: the lookaheads refuse "1." and "1e", which Go reports as
# errors inside the number rather than as a number followed by junk.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+|(?!\.))(?:[eE][+-]?[0-9]+|(?![eE]))")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.S)
_SIMPLE_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_LITERALS: Final = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


def _skip_ws(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return m.end() if m is not None else i


def _quote_char(ch: str) -> str:
    """Go's ``quoteChar`` for the byte at an error position (first UTF-8 byte)."""
    c = ch.encode("utf-8", "surrogatepass")[0]
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c < 0x20 or c == 0x7F or 0x80 <= c < 0xA0:
        named = {
            0x07: "\\a",
            0x08: "\\b",
            0x0C: "\\f",
            0x0A: "\\n",
            0x0D: "\\r",
            0x09: "\\t",
            0x0B: "\\v",
        }
        if c in named:
            return f"'{named[c]}'"
        return f"'\\x{c:02x}'" if c < 0x80 else f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


def _unescape(body: str) -> str:
    """Decode the escapes of a validated string body as Go does.

    A surrogate pair becomes one character; a lone surrogate becomes U+FFFD.
    """
    if "\\" not in body:
        return body
    out: list[str] = []
    pos = 0
    n = len(body)
    while pos < n:
        j = body.find("\\", pos)
        if j < 0:
            out.append(body[pos:])
            break
        out.append(body[pos:j])
        m = _ESCAPE.match(body, j)
        if m is None:  # pragma: no cover - the string was validated by _STRING
            raise FormatError("invalid JSON string escape")
        hexa = m.group(1)
        if hexa is None:
            out.append(_SIMPLE_ESCAPES[m.group(2)])
            pos = m.end()
            continue
        cp = int(hexa, 16)
        pos = m.end()
        if 0xD800 <= cp < 0xE000:
            m2 = _ESCAPE.match(body, pos) if 0xD800 <= cp < 0xDC00 else None
            low = m2.group(1) if m2 is not None else None
            if m2 is not None and low is not None and 0xDC00 <= int(low, 16) < 0xE000:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                pos = m2.end()
            else:
                cp = 0xFFFD
        out.append(chr(cp))
    return "".join(out)


def _scalar_error(text: str, i: int) -> str:
    """Go's scanner message for a malformed string, number or literal at ``i``."""
    n = len(text)
    c = text[i]
    if c == '"':
        j = i + 1
        while j < n:
            ch = text[j]
            if ch == '"':
                break
            if ch < " ":
                return f"invalid character {_quote_char(ch)} in string literal"
            if ch == "\\":
                j += 1
                if j >= n:
                    return "unexpected EOF"
                e = text[j]
                if e == "u":
                    for k in range(j + 1, j + 5):
                        if k >= n:
                            return "unexpected EOF"
                        if text[k] not in "0123456789abcdefABCDEF":
                            return (
                                f"invalid character {_quote_char(text[k])} "
                                "in \\u hexadecimal character escape"
                            )
                    j += 4
                elif e not in _SIMPLE_ESCAPES:
                    return f"invalid character {_quote_char(e)} in string escape code"
            j += 1
        return "unexpected EOF"
    if c == "-" or "0" <= c <= "9":
        j = i + 1 if c == "-" else i
        if j >= n:
            return "unexpected EOF"
        if not "0" <= text[j] <= "9":
            return f"invalid character {_quote_char(text[j])} in numeric literal"
        j = j + 1 if text[j] == "0" else _skip_digits(text, j)
        if j < n and text[j] == ".":
            j += 1
            if j >= n:
                return "unexpected EOF"
            if not "0" <= text[j] <= "9":
                return (
                    f"invalid character {_quote_char(text[j])} "
                    "after decimal point in numeric literal"
                )
            j = _skip_digits(text, j)
        if j < n and text[j] in "eE":
            j += 1
            if j < n and text[j] in "+-":
                j += 1
            if j >= n:
                return "unexpected EOF"
            return f"invalid character {_quote_char(text[j])} in exponent of numeric literal"
        return "unexpected EOF"  # pragma: no cover - the regex accepts the rest
    word = _LITERALS[c][0] if c in _LITERALS else ""
    if not word:
        return f"invalid character {_quote_char(c)} looking for beginning of value"
    for k, want in enumerate(word):
        if i + k >= n:
            return "unexpected EOF"
        if text[i + k] != want:
            return (
                f"invalid character {_quote_char(text[i + k])} "
                f"in literal {word} (expecting {_quote_char(want)})"
            )
    return "unexpected EOF"  # pragma: no cover


def _skip_digits(text: str, j: int) -> int:
    n = len(text)
    while j < n and "0" <= text[j] <= "9":
        j += 1
    return j


def _go_type_of(value: object) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "float64"
    return "string"


def parse_json(data: bytes, *, strict: bool = False) -> Branch:
    """Parse a JSON document whose top level is an object into a :class:`Branch`.

    With ``strict=False`` this behaves like the sops 3.11 plaintext loader (Go
    token stream; content after the top-level object is ignored). With
    ``strict=True`` it behaves like the encrypted-file loader, which first runs
    ``json.Unmarshal`` over the whole input: trailing content is an error.
    Numbers become ``float``; strings are decoded as Go does (lone surrogate
    escapes become U+FFFD).

    Raises:
        FormatError: the input is not UTF-8 or not a JSON object; the message
            is sops's (lower-cased), without the offending value.
        LimitError: containers are nested deeper than :data:`MAX_DEPTH`.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"JSON input is not valid UTF-8 (invalid byte at offset {exc.start})",
            hint="sops files must be UTF-8 text; binary files need --input-type binary",
        ) from None
    fast = _parse_fast(text, strict)
    if fast is not None:
        return fast
    return _parse_exact(text, strict)


class _RejectedError(Exception):
    """Raised inside the fast path to hand the input to the exact parser."""


def _reject_constant(name: str) -> object:
    raise _RejectedError(name)


def _finite_float(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise _RejectedError(text)
    return v


_DECODER = _stdlib_json.JSONDecoder(
    object_pairs_hook=Branch,
    parse_float=_finite_float,
    parse_int=_finite_float,
    parse_constant=_reject_constant,
    strict=True,
)
# A \uD800-\uDFFF escape: Go and Python disagree on unpaired surrogates.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse_fast(text: str, strict: bool) -> Branch | None:
    """Parse well-formed input with the C scanner; ``None`` means "use the exact parser".

    For well-formed JSON the stdlib scanner and Go's decoder agree (objects as
    ordered pairs with duplicates, every number a float), except for unpaired
    surrogate escapes and NaN/Infinity literals, which go to the exact parser
    together with every malformed or too deeply nested input, so that errors
    carry sops's messages.
    """
    start = _skip_ws(text, 0)
    if not text.startswith("{", start) or _SURROGATE_ESCAPE.search(text):
        return None
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError, _RejectedError):
        return None
    if strict and _skip_ws(text, end) < len(text):
        return None
    if not isinstance(value, Branch) or _depth_exceeds(value, MAX_DEPTH):
        return None
    return value


def _depth_exceeds(root: object, limit: int) -> bool:
    """Tell whether containers nest more than ``limit`` deep (iteratively)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, Branch):
            stack.extend((v, depth + 1) for _, v in node if isinstance(v, list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, list))
    return False


def _parse_exact(text: str, strict: bool) -> Branch:
    """The reference parser: Go's token stream, state by state, with its messages."""

    def fail(msg: str, hint: str | None = None) -> FormatError:
        return _fail(strict, msg, hint)

    context = _CONTEXT
    if strict:
        # json.Unmarshal's scanner names the context the token stream leaves out.
        context = {**_CONTEXT, _OBJECT_START: _CONTEXT[_OBJECT_KEY]}
    n = len(text)
    i = _skip_ws(text, 0)
    if i >= n:
        raise fail("unexpected end of JSON input" if strict else "EOF")
    c = text[i]
    if c != "{":
        hint = (
            "sops only supports JSON files with a top-level object; "
            'wrap the content, e.g. {"data": [...]}'
        )
        if c == "[":
            if strict:
                raise fail("json: cannot unmarshal array into Go value of type stores.SopsFile")
            raise fail("expected JSON object start, got delimiter [ instead", hint)
        if c in "]},:":
            raise fail(f"invalid character {_quote_char(c)} looking for beginning of value")
        value, _ = _scalar(text, i, strict)
        if strict:
            kind = {"<nil>": "null", "float64": "number", "bool": "bool", "string": "string"}
            raise fail(
                f"json: cannot unmarshal {kind[_go_type_of(value)]} "
                "into Go value of type stores.SopsFile"
            )
        raise fail(f"expected JSON object start, got {_go_type_of(value)} instead", hint)

    root = Branch()
    # Each frame: (container, key waiting for its value or None).
    stack: list[tuple[Branch | list[object], str | None]] = [(root, None)]
    state = _OBJECT_START
    i += 1
    eof_msg = "unexpected EOF"
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            raise fail(eof_msg)
        c = text[i]
        if c in "{[":
            if state not in _VALUE_STATES:
                raise fail(f"invalid character {_quote_char(c)}{context[state]}")
            if len(stack) >= MAX_DEPTH:
                raise LimitError(f"JSON nesting is deeper than {MAX_DEPTH} levels")
            container: Branch | list[object] = Branch() if c == "{" else []
            _attach(stack, container)
            stack.append((container, None))
            state = _OBJECT_START if c == "{" else _ARRAY_START
            i += 1
            continue
        if c in "}]":
            ok = (_OBJECT_START, _OBJECT_COMMA) if c == "}" else (_ARRAY_START, _ARRAY_COMMA)
            if state not in ok:
                raise fail(f"invalid character {_quote_char(c)}{context[state]}")
            stack.pop()
            i += 1
            if not stack:
                break
            state = _OBJECT_COMMA if isinstance(stack[-1][0], Branch) else _ARRAY_COMMA
            continue
        if c == ":":
            if state != _OBJECT_COLON:
                raise fail(f"invalid character {_quote_char(c)}{context[state]}")
            state = _OBJECT_VALUE
            i += 1
            continue
        if c == ",":
            if state == _ARRAY_COMMA:
                state = _ARRAY_VALUE
            elif state == _OBJECT_COMMA:
                state = _OBJECT_KEY
            else:
                raise fail(f"invalid character {_quote_char(c)}{context[state]}")
            i += 1
            continue
        if c == '"' and state in (_OBJECT_START, _OBJECT_KEY):
            m = _STRING.match(text, i)
            if m is None:
                raise fail(_scalar_error(text, i) if i + 1 < n else eof_msg)
            stack[-1] = (stack[-1][0], _unescape(text[i + 1 : m.end() - 1]))
            state = _OBJECT_COLON
            i = m.end()
            continue
        if state not in _VALUE_STATES:
            raise fail(f"invalid character {_quote_char(c)}{context[state]}")
        value, i = _scalar(text, i, strict)
        _attach(stack, value)
        state = _OBJECT_COMMA if state == _OBJECT_VALUE else _ARRAY_COMMA

    if strict:
        rest = _skip_ws(text, i)
        if rest < n:
            raise fail(f"invalid character {_quote_char(text[rest])} after top-level value")
    return root


def _attach(stack: list[tuple[Branch | list[object], str | None]], value: object) -> None:
    container, key = stack[-1]
    # The state machine guarantees a key is pending whenever the container is a Branch.
    if isinstance(container, Branch):
        container.append((key, value))
        stack[-1] = (container, None)
    else:
        container.append(value)


def _fail(strict: bool, msg: str, hint: str | None = None) -> FormatError:
    if strict:
        # The encrypted loader validates the whole input first (json.Unmarshal).
        if msg == "unexpected EOF":
            msg = "unexpected end of JSON input"
        return FormatError("error unmarshalling input json: " + msg, hint=hint)
    return FormatError("could not unmarshal input data: " + msg, hint=hint)


def _scalar(text: str, i: int, strict: bool) -> tuple[object, int]:
    """Read the string, number or literal at ``i``; return it and the next index."""
    c = text[i]
    if c == '"':
        m = _STRING.match(text, i)
        if m is not None:
            return _unescape(text[i + 1 : m.end() - 1]), m.end()
    elif c == "-" or "0" <= c <= "9":
        m = _NUMBER.match(text, i)
        if m is not None:
            v = float(m.group())
            if v in (float("inf"), float("-inf")):
                raise _fail(strict, "number is out of range for a 64-bit float")
            return v, m.end()
    elif c in _LITERALS:
        word, value = _LITERALS[c]
        if text.startswith(word, i):
            return value, i + len(word)
    raise _fail(strict, _scalar_error(text, i))


# -- writing -----------------------------------------------------------------

_ESCAPE_OUT = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_ESCAPED: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    esc = _ESCAPED.get(ch)
    if esc is not None:
        return esc
    if "\ud800" <= ch <= "\udfff":
        return "\\ufffd"  # Go replaces every invalid UTF-8 byte with U+FFFD
    return f"\\u{ord(ch):04x}"


def quote_json_string(value: str | bytes) -> str:
    """Quote a string as Go's ``json.Marshal`` does (HTML-safe escaping).

    ``bytes`` that are not valid UTF-8 get one ``\\ufffd`` per invalid byte.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if _ESCAPE_OUT.search(value) is None:
        return '"' + value + '"'
    return '"' + _ESCAPE_OUT.sub(_escape_char, value) + '"'


def format_json_float(x: float) -> str:
    """Format a float as Go's ``encoding/json`` does.

    Plain decimal digits for 1e-6 <= |x| < 1e21, exponent form otherwise with
    a minimal exponent (``1e-7``, ``1e+21``). Raises ``ValueError`` for NaN and
    infinities, which JSON cannot represent.
    """
    if math.isnan(x) or math.isinf(x):
        raise ValueError("unsupported value")
    a = abs(x)
    if 1e-4 <= a < 1e16:
        # Python's repr already has Go's shortest digits and no exponent here.
        r = repr(x)
        return r[:-2] if r.endswith(".0") else r
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = format_float_e(x)
        if s[-4:-1] == "e-0":  # Go trims e-07 to e-7 (but keeps e+21)
            s = s[:-2] + s[-1]
        return s
    return format_float_f(x)


def _scalar_json(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (str, bytes)):
        return quote_json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        try:
            return format_json_float(value)
        except ValueError:
            raise FormatError(
                "error marshaling to json: unsupported value "
                + ("NaN" if math.isnan(value) else "infinity"),
                hint="JSON has no NaN or infinity; use another output format",
            ) from None
    if isinstance(value, Timestamp):
        return quote_json_string(value.text)
    raise FormatError(f"error marshaling to json: unsupported type {type(value).__name__}")


def marshal_go_value(value: object, _depth: int = 0) -> str:
    """Compact ``json.Marshal`` of a tree value, as sops's INI store extracts values.

    Go has no ordered map, so a mapping marshals as its list of
    ``{"Key": k, "Value": v}`` items, a comment as ``{"Value": text}``, and an
    empty list or mapping as ``null`` (a nil slice).
    """
    if isinstance(value, Comment):
        return '{"Value":' + quote_json_string(value.value) + "}"
    if not isinstance(value, list):
        return _scalar_json(value)
    if not value:
        return "null"
    if _depth >= MAX_DEPTH:
        raise LimitError(f"tree nesting is deeper than {MAX_DEPTH} levels")
    d = _depth + 1
    if isinstance(value, Branch):
        return (
            "["
            + ",".join(
                '{"Key":' + marshal_go_value(k, d) + ',"Value":' + marshal_go_value(v, d) + "}"
                for k, v in value
            )
            + "]"
        )
    return "[" + ",".join(marshal_go_value(v, d) for v in value) + "]"


def _is_encrypted_comment(item: Comment) -> bool:
    return item.value.startswith("ENC[") and item.value.endswith("]")


class _Writer:
    """Builds indented JSON text the way ``json.Marshal`` + ``json.Indent`` lay it out."""

    __slots__ = ("encrypted", "indent", "out")

    def __init__(self, indent: str, *, encrypted: bool) -> None:
        self.indent = indent
        self.encrypted = encrypted
        self.out: list[str] = []

    def value(self, value: object, level: int, *, meta: bool = False) -> None:
        if isinstance(value, Branch):
            self.branch(value, level, meta=meta)
        elif isinstance(value, list):
            self.array(value, level, meta=meta)
        else:
            self.out.append(_scalar_json(value))

    def _check_depth(self, level: int) -> None:
        if level >= MAX_DEPTH:
            raise LimitError(f"tree nesting is deeper than {MAX_DEPTH} levels")

    def branch(self, branch: Branch, level: int, *, meta: bool = False) -> None:
        self._check_depth(level)
        out = self.out
        inner = "\n" + self.indent * (level + 1)
        first = True
        for key, val in branch:
            if key.__class__ is not str:
                continue  # comments in mappings cannot be written in JSON
            out.append(("{" if first else ",") + inner)
            first = False
            out.append(quote_json_string(key))
            out.append(": ")
            self.value(val, level + 1, meta=meta)
        out.append("{}" if first else "\n" + self.indent * level + "}")

    def array(self, items: list[object], level: int, *, meta: bool = False) -> None:
        self._check_depth(level)
        out = self.out
        if meta and not items:
            # Go marshals the nil key lists of a key group as null.
            out.append("null")
            return
        inner = "\n" + self.indent * (level + 1)
        first = True
        for item in items:
            value = item
            if isinstance(item, Comment):
                # sops 3.11 writes an encrypted comment inside a list as a plain
                # list string and drops the others; plaintext output drops all.
                if not (self.encrypted and _is_encrypted_comment(item)):
                    continue
                value = item.value
            out.append(("[" if first else ",") + inner)
            first = False
            self.value(value, level + 1, meta=meta)
        out.append("[]" if first else "\n" + self.indent * level + "]")

    def text(self) -> str:
        return "".join(self.out)


class JSONStore:
    """Reads and writes SOPS JSON files; stateless apart from the indent; thread-safe."""

    name: Format = "json"

    def __init__(self, indent: int | None = None) -> None:
        self._indent = indent

    def _indent_text(self) -> str:
        if self._indent is None or self._indent == -1:
            return "\t"
        if self._indent < -1:
            raise ConfigError(
                "JSON indentation smaller than -1 is not accepted",
                hint="use -1 for a TAB or a number of spaces >= 0",
            )
        return " " * self._indent

    def load_plain(self, data: bytes) -> list[Branch]:
        """Parse a plaintext JSON file (sops's lenient token-stream reading)."""
        return [parse_json(data)]

    def load_encrypted(self, data: bytes) -> tuple[list[Branch], Branch]:
        """Parse an encrypted JSON file; return the data and the raw ``sops`` value.

        Every top-level ``sops`` member is removed from the data.
        """
        branch = parse_json(data, strict=True)
        meta: object = None
        found = False
        kept = Branch()
        for key, value in branch:
            if key == METADATA_KEY:
                meta = value
                found = True
            else:
                kept.append((key, value))
        if not found or meta is None:
            raise FormatError("sops metadata not found")
        if not isinstance(meta, Branch):
            raise FormatError(
                "error unmarshalling input json: json: cannot unmarshal "
                f"{_json_kind(meta)} into Go struct field SopsFile.sops of type stores.Metadata"
            )
        return [kept], meta

    def has_metadata(self, branches: list[Branch]) -> bool:
        """Tell whether any branch has a top-level ``sops`` key."""
        return any(b.index_of(METADATA_KEY) >= 0 for b in branches)

    def _emit(self, branch: Branch, *, encrypted: bool, metadata: Branch | None) -> bytes:
        w = _Writer(self._indent_text(), encrypted=encrypted)
        if metadata is None:
            w.branch(branch, 0)
        else:
            _emit_with_metadata(w, branch, metadata)
        return (w.text() + "\n").encode("utf-8")

    def emit_plain(self, branches: list[Branch]) -> bytes:
        """Print the first branch as sops prints plaintext JSON (comments dropped)."""
        if not branches:
            raise FormatError("no document to write")
        return self._emit(branches[0], encrypted=False, metadata=None)

    def emit_encrypted(self, branches: list[Branch], metadata: Branch) -> bytes:
        """Print encrypted data with ``metadata`` as the final ``"sops"`` member."""
        if not branches:
            raise FormatError("no document to write")
        return self._emit(branches[0], encrypted=True, metadata=metadata)

    def emit_value(self, value: object) -> bytes:
        """Print one value as sops's JSON ``EmitValue``: indented, no final newline."""
        w = _Writer(self._indent_text(), encrypted=False)
        w.value(value, 0)
        return w.text().encode("utf-8")


def _emit_with_metadata(w: _Writer, branch: Branch, metadata: Branch) -> None:
    out = w.out
    inner = "\n" + w.indent
    first = True
    for key, val in branch:
        if key.__class__ is not str:
            continue
        out.append(("{" if first else ",") + inner)
        first = False
        out.append(quote_json_string(key))
        out.append(": ")
        w.value(val, 1)
    out.append(("{" if first else ",") + inner + quote_json_string(METADATA_KEY) + ": ")
    w.value(metadata, 1, meta=True)
    out.append("\n}")


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "string"


if TYPE_CHECKING:
    _conforms: Store = JSONStore()  # static check against the Store protocol


def make_store(indent: int | None = None) -> JSONStore:
    """Return a JSON store; ``indent`` is spaces per level, ``None`` or -1 for a TAB."""
    return JSONStore(indent)
