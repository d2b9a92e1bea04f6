"""Helpers shared by the flat stores (dotenv and INI).

Flat formats cannot nest, so sops stores its metadata there as one entry per
leaf, naming the path with ``__map_<key>`` and ``__list_<index>`` separators
(``age__list_0__map_recipient``) and escaping newlines as ``\\n``
(SOPS_FORMAT.md 5.3). :func:`flatten_metadata` and :func:`unflatten_metadata`
convert between that form and the metadata tree that ``metadata.py`` reads and
writes. :func:`value_to_string` is how both stores print a non-string value
that came from another format (sops's ``ValToString``).

Internal to the stores; nothing else should need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ...errors import FormatError, LimitError
from .._gofmt import format_float_f, format_float_g, normalize_rfc3339
from ..tree import Branch, Timestamp

__all__ = [
    "MAX_LIST_INDEX",
    "MAX_PATH_DEPTH",
    "flatten_metadata",
    "go_type_name",
    "is_complex",
    "to_utf8",
    "unflatten_metadata",
    "value_to_string",
]

MAP_SEPARATOR: Final = "__map_"
LIST_SEPARATOR: Final = "__list_"

#: A flattened key may name at most this many nested levels.
MAX_PATH_DEPTH: Final = 100
#: Largest list index accepted in a flattened key (real files use a handful).
MAX_LIST_INDEX: Final = 4096

_SPLIT = re.compile(f"({MAP_SEPARATOR}|{LIST_SEPARATOR})")
_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


# -- printing values ------------------------------------------------------------


def is_complex(value: object) -> bool:
    """Tell whether ``value`` is a mapping or a list (which flat formats cannot hold)."""
    return isinstance(value, list)  # Branch is a list subclass


def value_to_string(value: object) -> str:
    """Print a scalar as sops's ``ValToString`` does for dotenv and INI output.

    ``5.0`` for a float with no fraction below 1e6, Go ``%G`` otherwise
    (``1E+06``, ``0.5``); ``true``/``false``; timestamps in RFC 3339 without
    fraction; ``<nil>`` for null. ``bytes`` that are not UTF-8 are carried
    through as surrogate escapes, for :func:`to_utf8` to restore.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format_float_g(value, upper=True)
        if "." not in text and "E" not in text and text not in ("NaN", "+Inf", "-Inf"):
            # Go then prints with one decimal so the value cannot pass for an int.
            text = format_float_f(value) + ".0"
        return text
    if isinstance(value, Timestamp):
        try:
            return normalize_rfc3339(value.text, fraction=False)
        except ValueError:
            return value.text
    return str(value)


def go_type_name(value: object) -> str:
    """The Go type sops would report for ``value`` in an error message."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, Timestamp):
        return "time.Time"
    if isinstance(value, Branch):
        return "sops.TreeBranch"
    if isinstance(value, list):
        return "[]interface {}"
    return type(value).__name__


def to_utf8(text: str) -> bytes:
    """Encode output text, restoring raw bytes carried as surrogate escapes.

    Any other lone surrogate becomes U+FFFD, as Go prints an invalid rune.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8", "surrogateescape")


# -- metadata -----------------------------------------------------------------


def flatten_metadata(metadata: Branch) -> list[tuple[str, str]]:
    """Flatten a metadata tree into ``(key, text)`` pairs, sorted byte-wise.

    Maps add ``__map_<key>``, lists ``__list_<index>``; null leaves and empty
    containers produce nothing; newlines in values become ``\\n``; integers
    print in decimal and booleans as ``true``/``false``. The keys carry no
    ``sops_`` prefix; the dotenv store adds it.
    """
    flat: dict[str, str] = {}
    # An explicit stack: a hostile tree must not exhaust Python's recursion.
    stack: list[tuple[str, object, int]] = []
    for key, value in reversed(metadata):
        if isinstance(key, str):
            stack.append((key, value, 1))
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_PATH_DEPTH:
            raise LimitError(f"sops metadata is nested deeper than {MAX_PATH_DEPTH} levels")
        if isinstance(value, Branch):
            for k, v in reversed(value):
                if isinstance(k, str):
                    stack.append((path + MAP_SEPARATOR + k, v, depth + 1))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((f"{path}{LIST_SEPARATOR}{i}", value[i], depth + 1))
        elif value is not None:
            if isinstance(value, float) and value.is_integer():
                text = str(int(value))  # shamir_threshold read back from JSON
            else:
                text = value_to_string(value)
            flat[path] = text.replace("\n", "\\n")
    # Python orders str by code point, which is UTF-8 byte order, as Go's sort.Strings.
    return sorted(flat.items())


def unflatten_metadata(items: Iterable[tuple[str, str]]) -> Branch:
    """Rebuild the metadata tree from flattened ``(key, text)`` pairs.

    Keys come without the ``sops_`` prefix, in any order; a repeated key keeps
    its last value. ``\\n`` in values becomes a newline; ``shamir_threshold``
    becomes an ``int`` (an integral float such as ``2.0`` is accepted, as sops
    does for old files) and ``mac_only_encrypted`` a ``bool``.

    Raises:
        FormatError: two keys disagree about the shape of the tree, or a list
            index or ``shamir_threshold`` is not a number.
        LimitError: a key is nested too deeply or names a huge list index.
    """
    root: dict[str, object] = {}
    for flat_key, text in dict(items).items():
        value = _decode_leaf(flat_key, text.replace("\\n", "\n"))
        tokens = _tokenize(flat_key)
        node: dict[str, object] | list[object] = root
        for pos, token in enumerate(tokens):
            last = pos == len(tokens) - 1
            if last:
                _put(node, token, value, flat_key)
                break
            want_list = isinstance(tokens[pos + 1], int)
            found = _get(node, token)
            child: dict[str, object] | list[object]
            if found is None:
                child = [] if want_list else {}
                _put(node, token, child, flat_key)
            elif isinstance(found, list if want_list else dict):
                child = found
            else:
                raise _conflict(flat_key)
            node = child
    return _to_branch(root)


def _decode_leaf(flat_key: str, text: str) -> object:
    if flat_key == "mac_only_encrypted":
        return text == "true"
    if flat_key == "shamir_threshold":
        try:
            return int(text, 10) if text.lstrip("+-").isdigit() else _integral(text)
        except ValueError:
            raise FormatError("sops metadata: shamir_threshold is not an integer") from None
    return text


def _integral(text: str) -> int:
    f = float(text)
    if not f.is_integer():
        raise ValueError(text)
    return int(f)


def _tokenize(flat_key: str) -> list[str | int]:
    parts = _SPLIT.split(flat_key)
    if len(parts) // 2 >= MAX_PATH_DEPTH:
        raise LimitError(f"sops metadata key is nested deeper than {MAX_PATH_DEPTH} levels")
    tokens: list[str | int] = [parts[0]]
    for i in range(1, len(parts), 2):
        sep, name = parts[i], parts[i + 1]
        if sep == MAP_SEPARATOR:
            tokens.append(name)
            continue
        if not (name.isascii() and name.isdigit()):
            raise FormatError(f"sops metadata key {flat_key!r} has an invalid list index")
        index = int(name)
        if index > MAX_LIST_INDEX:
            raise LimitError(
                f"sops metadata key {flat_key!r} has a list index above {MAX_LIST_INDEX}"
            )
        tokens.append(index)
    return tokens


def _get(node: dict[str, object] | list[object], token: str | int) -> object:
    if isinstance(node, dict):
        return node.get(token) if isinstance(token, str) else None
    if isinstance(token, int) and token < len(node):
        return node[token]
    return None


def _put(
    node: dict[str, object] | list[object], token: str | int, value: object, flat_key: str
) -> None:
    if isinstance(node, dict):
        if not isinstance(token, str):  # pragma: no cover - tokens alternate by type
            raise _conflict(flat_key)
        if isinstance(node.get(token), (dict, list)) or (
            token in node and isinstance(value, (dict, list))
        ):
            raise _conflict(flat_key)
        node[token] = value
        return
    if not isinstance(token, int):  # pragma: no cover
        raise _conflict(flat_key)
    if token >= len(node):
        node.extend([None] * (token + 1 - len(node)))
    elif isinstance(node[token], (dict, list)):
        raise _conflict(flat_key)
    node[token] = value


def _conflict(flat_key: str) -> FormatError:
    return FormatError(f"sops metadata key {flat_key!r} conflicts with another metadata key")


def _to_branch(root: dict[str, object]) -> Branch:
    """Convert nested dicts/lists into Branches/lists (depth is bounded by the tokenizer)."""

    def convert(value: object) -> object:
        if isinstance(value, dict):
            return Branch((k, convert(v)) for k, v in value.items())
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    out = convert(root)
    if not isinstance(out, Branch):  # pragma: no cover
        raise FormatError("sops metadata is not a mapping")
    return out
