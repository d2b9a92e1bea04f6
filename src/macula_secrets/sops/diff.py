"""Compare two decrypted SOPS trees key by key: what was added, removed or changed.

Part of the sops layer and pure: no I/O, no cryptography, no printing. The
``diff`` command decrypts two files and prints what :func:`compare` returns;
the merge driver (:mod:`.merge`) uses :func:`same` to decide which side
changed a value.

Why key by key: an encrypted file's text diff shows which *lines* changed,
but every change also rewrites the MAC, and a file re-encrypted by a tool
that does not reuse IVs changes every line. Comparing the plaintext trees
says exactly which keys differ. Values are carried in :class:`Change` so a
caller *may* show them (``--show-values``), but nothing here prints or
reprs them: a ``Change`` shows only its kind and path.

Mappings are compared by key (the first occurrence of a duplicated key with
the first, and so on); a change in the order of the keys they share is one
``reordered`` change of the mapping, a change in its comments one
``comments`` change (comment text is encrypted content, so it is not shown).
Sequences are compared item by item by position: an item inserted at the
front shows as every later item changed plus one added at the end, as with
``git diff`` of a list.

Most callers want ``macula-secrets diff``; this is the function behind it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

from .tree import Branch, Comment

__all__ = ["MISSING", "Change", "ChangeKind", "compare", "compare_values", "format_path", "same"]

ChangeKind = Literal["added", "removed", "changed", "comments", "reordered"]
TreePath = tuple[str | int, ...]


class _Missing:
    """The value of a key that is not there (distinct from ``None``, a YAML null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Stands for "no such key / item" on one side of a comparison or merge.
MISSING: Final = _Missing()


class Change:
    """One difference between two trees: its kind, where, and the two values.

    ``old`` is :data:`MISSING` for ``added``, ``new`` for ``removed``; for
    ``comments`` and ``reordered`` both are the mappings or lists concerned.
    ``document`` is the YAML document index (0 for every other format).
    The repr shows the kind and the path only, never a value.
    """

    __slots__ = ("document", "kind", "new", "old", "path")

    def __init__(self, kind: ChangeKind, path: TreePath, old: object, new: object, *,
                 document: int = 0) -> None:
        self.kind = kind
        self.path = path
        self.old = old
        self.new = new
        self.document = document

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Change) and other.kind == self.kind
                and other.path == self.path and other.document == self.document
                and same(other.old, self.old) and same(other.new, self.new))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        doc = f", document={self.document}" if self.document else ""
        return f"Change({self.kind!r}, {format_path(self.path)!r}{doc})"


def format_path(path: Sequence[str | int]) -> str:
    """``("db", "hosts", 0)`` -> ``["db"]["hosts"][0]``, the syntax ``set``/``--extract`` read.

    A key containing ``"`` is written with single quotes (sops paths have no
    escapes, so a key holding both quote characters cannot be addressed).
    The empty path (the document itself) is the empty string.
    """
    out = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif '"' in part:
            out.append(f"['{part}']")
        else:
            out.append(f'["{part}"]')
    return "".join(out)


def same(a: object, b: object) -> bool:
    """Whether two tree values are identical as sops would write them.

    Stricter than ``==``: ``1``, ``1.0`` and ``True`` differ (they encrypt
    as ``int``, ``float`` and ``bool``), ``0.0`` and ``-0.0`` differ (their
    plaintexts are ``0`` and ``-0``), NaN equals NaN, and mappings must
    have the same items, comments included, in the same order.
    """
    if a is b:
        return True
    cls = a.__class__
    if cls is not b.__class__:
        return False
    if cls is Branch or cls is list or cls is tuple:
        return len(a) == len(b) and all(  # type: ignore[arg-type]
            same(x, y) for x, y in zip(a, b, strict=False)  # type: ignore[call-overload]
        )
    if cls is float:
        if math.isnan(a) or math.isnan(b):  # type: ignore[arg-type]
            return math.isnan(a) and math.isnan(b)  # type: ignore[arg-type]
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)  # type: ignore[arg-type]
    return a == b


def compare(old: Sequence[Branch], new: Sequence[Branch]) -> list[Change]:
    """Every difference between two decrypted documents (lists of branches), in tree order.

    An empty list means the two hold the same values, comments and order.
    """
    changes: list[Change] = []
    for i in range(max(len(old), len(new))):
        a: object = old[i] if i < len(old) else MISSING
        b: object = new[i] if i < len(new) else MISSING
        for change in compare_values(a, b):
            change.document = i
            changes.append(change)
    return changes


def compare_values(old: object, new: object, path: TreePath = ()) -> list[Change]:
    """The differences between two tree values found at ``path``."""
    out: list[Change] = []
    _compare(old, new, path, out)
    return out


def _compare(a: object, b: object, path: TreePath, out: list[Change]) -> None:
    if same(a, b):
        return
    if a is MISSING:
        out.append(Change("added", path, MISSING, b))
    elif b is MISSING:
        out.append(Change("removed", path, a, MISSING))
    elif isinstance(a, Branch) and isinstance(b, Branch):
        _compare_branches(a, b, path, out)
    elif a.__class__ is list and b.__class__ is list:
        _compare_lists(a, b, path, out)
    else:
        out.append(Change("changed", path, a, b))


def _occurrences(branch: Branch) -> dict[tuple[str, int], object]:
    """``(key, n)`` -> value of the n-th item with that key, in order (comments skipped)."""
    seen: dict[str, int] = {}
    out: dict[tuple[str, int], object] = {}
    for k, v in branch:
        if k.__class__ is str:
            n = seen.get(k, 0)
            seen[k] = n + 1
            out[(k, n)] = v
    return out


def _comment_layout(items: Sequence[object], *, in_branch: bool) -> list[tuple[object, str]]:
    """Each comment with what precedes it (a key, or a list position), to spot changes."""
    layout: list[tuple[object, str]] = []
    before: object = None
    position = 0
    for item in items:
        node = item[0] if in_branch else item  # type: ignore[index]
        if node.__class__ is Comment:
            layout.append((before, node.value))
        else:
            before = node if in_branch else position
            position += 1
    return layout


def _compare_branches(a: Branch, b: Branch, path: TreePath, out: list[Change]) -> None:
    old = _occurrences(a)
    new = _occurrences(b)
    for key, value in old.items():
        _compare(value, new.get(key, MISSING), (*path, key[0]), out)
    for key, value in new.items():
        if key not in old:
            out.append(Change("added", (*path, key[0]), MISSING, value))
    if [k for k in old if k in new] != [k for k in new if k in old]:
        out.append(Change("reordered", path, a, b))
    if _comment_layout(a, in_branch=True) != _comment_layout(b, in_branch=True):
        out.append(Change("comments", path, a, b))


def _compare_lists(a: list[object], b: list[object], path: TreePath, out: list[Change]) -> None:
    old = [v for v in a if v.__class__ is not Comment]
    new = [v for v in b if v.__class__ is not Comment]
    for i in range(max(len(old), len(new))):
        _compare(old[i] if i < len(old) else MISSING, new[i] if i < len(new) else MISSING,
                 (*path, i), out)
    if _comment_layout(a, in_branch=False) != _comment_layout(b, in_branch=False):
        out.append(Change("comments", path, a, b))
