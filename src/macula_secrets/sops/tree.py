"""The in-memory document model every SOPS store reads into and writes from.

A document is a list of *branches*, one per YAML document (the other formats
always have one). A :class:`Branch` is an ordered mapping kept as a list of
``(key, value)`` pairs, because SOPS keeps what a dict cannot: duplicate keys
(JSON, dotenv), and comments between items, which are pairs whose key is a
:class:`Comment` and whose value is ``None``. A sequence is a plain ``list``
whose items may also be :class:`Comment`.

Scalars are ``str``, ``bytes`` (a string that is not valid UTF-8, such as
binary file content), ``bool``, ``int``, ``float``, ``None`` and
:class:`Timestamp`. The scalar type decides the ``type:`` field of an
``ENC[...]`` value (see ``cipher.py``).

This module has no I/O and no cryptography; stores build trees, the engine
walks them.
"""

from __future__ import annotations

from typing import Final, TypeAlias

__all__ = [
    "METADATA_KEY",
    "Branch",
    "Comment",
    "Scalar",
    "Timestamp",
    "Value",
]

METADATA_KEY: Final = "sops"


class Comment:
    """A comment line, as a first-class tree item.

    ``value`` is the text after the comment marker, exactly as the store
    defines it (YAML and dotenv keep the leading space of ``# text``). Comments
    are encrypted by default, so the repr does not show them.
    """

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Comment) and other.value == self.value

    def __hash__(self) -> int:
        return hash((Comment, self.value))

    def __repr__(self) -> str:
        return "Comment(***)"


class Timestamp:
    """A YAML timestamp, kept as its RFC 3339 text with nanosecond precision.

    Python's ``datetime`` stops at microseconds and Go's ``time.Time`` does not,
    so the canonical text (what Go's ``RFC3339Nano`` prints) is the value.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timestamp) and other.text == self.text

    def __hash__(self) -> int:
        return hash((Timestamp, self.text))

    def __repr__(self) -> str:
        return f"Timestamp({self.text!r})"


Scalar: TypeAlias = "str | bytes | bool | int | float | Timestamp | None"
Value: TypeAlias = "Scalar | Branch | list[object] | Comment"


class Branch(list[tuple[object, object]]):
    """An ordered mapping: ``(key, value)`` pairs, comments included.

    Keys are ``str`` or :class:`Comment` (whose value is ``None``). Use
    :meth:`get` and :meth:`index_of` for lookups; they skip comments and return
    the first match, as SOPS does for duplicate keys.
    """

    __slots__ = ()

    def index_of(self, key: str) -> int:
        """Return the position of the first item with ``key``, or -1."""
        for i, (k, _) in enumerate(self):
            if k == key and k.__class__ is str:
                return i
        return -1

    def get(self, key: str, default: object = None) -> object:
        """Return the value of the first item with ``key``, else ``default``."""
        i = self.index_of(key)
        return default if i < 0 else self[i][1]

    def keys(self) -> list[str]:
        """Return the non-comment keys in order."""
        return [k for k, _ in self if k.__class__ is str]

    def __repr__(self) -> str:
        # Keys are clear in SOPS files; values may be secrets, so only their
        # types are shown.
        items = ", ".join(
            "#" if k.__class__ is Comment else f"{k!r}: {_shape(v)}" for k, v in self
        )
        return f"Branch({{{items}}})"


def _shape(value: object) -> str:
    """A value's kind without its content (for reprs)."""
    if isinstance(value, Branch):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_shape(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return repr(value)
    return f"<{type(value).__name__}>"
