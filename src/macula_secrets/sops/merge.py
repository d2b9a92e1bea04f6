"""Three-way merge of SOPS files, key by key: what a git merge driver needs.

Part of the sops layer: decrypting and re-encrypting go through
:mod:`.document` (no crypto here), and nothing here reads files or runs git;
``macula-secrets merge-driver`` does that.

Why: sops seals each file with one MAC over every value, and git merges
text. Two branches that change different keys of one sops file therefore
always conflict in the ``mac`` and ``lastmodified`` lines (sops issue 52),
and resolving that by hand means decrypting, merging and re-encrypting. This
module merges the *plaintext* trees and seals the result again:

* nested mappings merge key by key, recursively; a list or a scalar is one
  unit (lists have no keys to line changes up by);
* a key changed on one side only takes that side's value; a key added on one
  side is added; a key deleted on one side and unchanged on the other is
  deleted; the same change on both sides is taken once;
* different changes of one key on the two sides (including a change on one
  side and a deletion on the other) are a :class:`Conflict`, reported by
  path only, never with values;
* comments travel with the key they precede and merge by the same rules.

The result is encrypted with the metadata and data key of the side that
*carries* the file: ours, unless only theirs changed the recipients, the
key groups, the selection rule or the data key (``rotate``,
``updatekeys``), in which case theirs, so that a key rotation done on one
branch is never undone by merging it (reusing the old data key would
re-admit a removed recipient). Both sides changing those the same way is
fine (the side with a new data key carries, else ours); changing them
differently is a conflict. Values unchanged from the carrier keep their exact ciphertext
(the carrier's IVs are reused, as ``edit`` does); values from the other
side are encrypted afresh under the carrier's data key; the MAC and
``lastmodified`` are new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from .._crypto import constant_time_equal
from .diff import MISSING, format_path, same
from .document import SopsFile, decrypt_bytes
from .keygroups import Unwrapper
from .metadata import AgeKey, Metadata
from .stores import Store, get_store
from .tree import Branch, Comment

__all__ = ["Conflict", "MergeResult", "TreeMerge", "merge_bytes", "merge_files", "merge_trees"]

TreePath = tuple[str | int, ...]

#: Why a key could not be merged; values are never part of a reason.
_BOTH_CHANGED: Final = "changed differently on both sides"
_BOTH_ADDED: Final = "added on both sides with different values"
_OURS_DELETED: Final = "deleted on our side, changed on theirs"
_THEIRS_DELETED: Final = "changed on our side, deleted on theirs"
_DUPLICATES: Final = "has duplicate keys, so it cannot be merged key by key"


class Conflict:
    """A place where the two sides made different changes: path and reason, no values.

    ``what`` is ``"value"``, ``"comments"`` (the comments before a key, or at
    the end of a mapping when the path names the mapping) or ``"metadata"``
    (the ``sops`` block: recipients, key groups, rule or data key).
    """

    __slots__ = ("document", "path", "reason", "what")

    def __init__(self, path: TreePath, reason: str, *,
                 what: Literal["value", "comments", "metadata"] = "value",
                 document: int = 0) -> None:
        self.path = path
        self.reason = reason
        self.what = what
        self.document = document

    def describe(self) -> str:
        """One line for a person: ``["db"]["password"]: changed differently on both sides``."""
        where = format_path(self.path) or "the top level"
        if self.what == "metadata":
            where = "sops metadata"
        elif self.what == "comments":
            where = f"comments at {where}"
        if self.document:
            where = f"document {self.document + 1}: {where}"
        return f"{where}: {self.reason}"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Conflict) and other.path == self.path
                and other.reason == self.reason and other.what == self.what
                and other.document == self.document)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Conflict({self.describe()!r})"


class TreeMerge:
    """The merged documents, and the conflicts (empty when the merge is clean).

    When there are conflicts, ``branches`` holds our side at every
    conflicting place; it is not meant to be written.
    """

    __slots__ = ("branches", "conflicts")

    def __init__(self, branches: list[Branch], conflicts: list[Conflict]) -> None:
        self.branches = branches
        self.conflicts = conflicts

    @property
    def clean(self) -> bool:
        return not self.conflicts


class MergeResult:
    """The outcome of merging three encrypted files.

    ``data`` is the merged file (encrypted, ready to write over ours) or
    ``None`` when there are conflicts; ``carrier`` says whose metadata and
    data key it uses.
    """

    __slots__ = ("carrier", "conflicts", "data")

    def __init__(self, data: bytes | None, conflicts: list[Conflict],
                 carrier: Literal["ours", "theirs"]) -> None:
        self.data = data
        self.conflicts = conflicts
        self.carrier = carrier

    @property
    def clean(self) -> bool:
        return not self.conflicts

    def __repr__(self) -> str:
        return f"MergeResult(conflicts={len(self.conflicts)}, carrier={self.carrier!r})"


# -- trees -------------------------------------------------------------------------------


def merge_trees(
    base: Sequence[Branch] | None, ours: Sequence[Branch], theirs: Sequence[Branch]
) -> TreeMerge:
    """Merge decrypted documents (one branch per YAML document) three ways.

    ``base`` is ``None`` when the two sides have no common ancestor (both
    added the file): then every key is "added on both sides". Documents
    merge pairwise; when the sides have different numbers of documents, the
    whole list is one unit. Inputs are not modified; unchanged values are
    shared with them, not copied.
    """
    conflicts: list[Conflict] = []
    if (base is not None and len(base) == len(ours) == len(theirs)) or (
        base is None and len(ours) == len(theirs)
    ):
        out: list[Branch] = []
        for i, (o, t) in enumerate(zip(ours, theirs, strict=True)):
            found: list[Conflict] = []
            b: object = base[i] if base is not None else MISSING
            merged = _merge_value(b, o, t, (), found)
            for c in found:
                c.document = i
            conflicts.extend(found)
            out.append(merged if isinstance(merged, Branch) else o)
        return TreeMerge(out, conflicts)
    whole = _merge_value(list(base) if base is not None else MISSING, list(ours), list(theirs),
                         (), conflicts)
    if conflicts or not isinstance(whole, list):
        conflicts = conflicts or [Conflict((), "the number of YAML documents changed "
                                               "differently on both sides")]
        return TreeMerge(list(ours), conflicts)
    return TreeMerge(whole, conflicts)


def _reason(base: object, ours: object, theirs: object) -> str:
    if base is MISSING:
        return _BOTH_ADDED
    if ours is MISSING:
        return _OURS_DELETED
    if theirs is MISSING:
        return _THEIRS_DELETED
    return _BOTH_CHANGED


def _merge_value(base: object, ours: object, theirs: object, path: TreePath,
                 conflicts: list[Conflict]) -> object:
    """The merged value at ``path`` (:data:`MISSING`: the key is gone)."""
    if same(ours, theirs):
        return ours
    if same(ours, base):
        return theirs
    if same(theirs, base):
        return ours
    if isinstance(ours, Branch) and isinstance(theirs, Branch) and (
        base is MISSING or isinstance(base, Branch)
    ):
        return _merge_branch(base if isinstance(base, Branch) else Branch(), ours, theirs,
                             path, conflicts)
    conflicts.append(Conflict(path, _reason(base, ours, theirs)))
    return ours


class _Split:
    """A mapping taken apart: values and the comments before each key, by key."""

    __slots__ = ("comments", "duplicates", "order", "tail", "values")

    def __init__(self, branch: Branch) -> None:
        self.values: dict[str, object] = {}
        self.comments: dict[str, tuple[str, ...]] = {}
        self.order: list[str] = []
        self.duplicates = False
        pending: list[str] = []
        for k, v in branch:
            if k.__class__ is Comment:
                pending.append(k.value)
                continue
            key = str(k)
            if key in self.values:
                self.duplicates = True
            self.values[key] = v
            self.comments[key] = tuple(pending)
            self.order.append(key)
            pending = []
        self.tail = tuple(pending)

    def value(self, key: str) -> object:
        return self.values.get(key, MISSING)

    def comments_of(self, key: str) -> object:
        return self.comments.get(key, MISSING)


def _merge_comments(base: object, ours: object, theirs: object, path: TreePath,
                    conflicts: list[Conflict], *, at_end: bool = False) -> object:
    """Merge comment blocks (tuples of comment texts) as one unit each."""
    found: list[Conflict] = []
    merged = _merge_value(base, ours, theirs, path, found)
    for c in found:
        c.what = "comments"
        if at_end:
            c.reason = f"(the end of the mapping) {c.reason}"
    conflicts.extend(found)
    return merged


def _merge_branch(base: Branch, ours: Branch, theirs: Branch, path: TreePath,
                  conflicts: list[Conflict]) -> Branch:
    b, o, t = _Split(base), _Split(ours), _Split(theirs)
    if b.duplicates or o.duplicates or t.duplicates:
        conflicts.append(Conflict(path, _DUPLICATES))
        return ours
    values: dict[str, object] = {}
    comments: dict[str, tuple[str, ...]] = {}
    for key in [*o.order, *(k for k in t.order if k not in o.values),
                *(k for k in b.order if k not in o.values and k not in t.values)]:
        value = _merge_value(b.value(key), o.value(key), t.value(key), (*path, key), conflicts)
        # The comments before a key travel with it: a deleted key takes them
        # along, unless the other side changed them (a conflict, as for values).
        note = _merge_comments(b.comments_of(key), o.comments_of(key), t.comments_of(key),
                               (*path, key), conflicts)
        if value is not MISSING:
            values[key] = value
            comments[key] = note if isinstance(note, tuple) else ()
    tail = _merge_comments(b.tail, o.tail, t.tail, path, conflicts, at_end=True)

    # Order: ours, unless only theirs reordered the keys they share with the base.
    common_b = [k for k in b.order if k in o.values and k in t.values]
    common_o = [k for k in o.order if k in b.values and k in t.values]
    common_t = [k for k in t.order if k in b.values and k in o.values]
    lead, other = (t, o) if common_o == common_b and common_t != common_b else (o, t)
    order = [k for k in lead.order if k in values]
    for key in other.order:
        if key in values and key not in order:
            # After the nearest key that precedes it on its own side, else
            # before the nearest one that follows it, else at the end.
            i = other.order.index(key)
            at = len(order)
            for before in reversed(other.order[:i]):
                if before in order:
                    at = order.index(before) + 1
                    break
            else:
                for after in other.order[i + 1:]:
                    if after in order:
                        at = order.index(after)
                        break
            order.insert(at, key)
    order.extend(k for k in values if k not in order)

    out = Branch()
    for key in order:
        out.extend((Comment(text), None) for text in comments[key])
        out.append((key, values[key]))
    if isinstance(tail, tuple):
        out.extend((Comment(text), None) for text in tail)
    return out


# -- files --------------------------------------------------------------------------------


def _shape(md: Metadata) -> tuple[object, ...]:
    """What must agree for two sides to share one metadata block (all public)."""
    groups = tuple(
        tuple(sorted(k.recipient if isinstance(k, AgeKey) else k.label for k in g))
        for g in md.key_groups
    )
    threshold = md.shamir_threshold if len(md.key_groups) > 1 else 0
    return groups, threshold, md.rule, md.mac_only_encrypted


def _data_key(doc: SopsFile) -> bytes:
    return doc._cipher_key()


def _rotated(side: SopsFile, base: SopsFile | None) -> bool:
    return base is None or not constant_time_equal(_data_key(side), _data_key(base))


def _changed(side: SopsFile, base: SopsFile | None) -> bool:
    if base is None:
        return True
    return _shape(side.metadata) != _shape(base.metadata) or _rotated(side, base)


def merge_files(base: SopsFile | None, ours: SopsFile, theirs: SopsFile, *,
                store: Store | None = None, now: str | None = None,
                unchanged: tuple[bytes, bytes] | None = None) -> MergeResult:
    """Merge three decrypted files and encrypt the result (see the module docstring).

    ``ours`` or ``theirs`` (the carrier) gets the merged branches and a new
    MAC; the others are not modified. ``store`` defaults to ours' format;
    ``now`` is the ``lastmodified`` to write (default: the current time).
    ``unchanged`` is ``(ours, theirs)`` as encrypted bytes: when the merge
    gives exactly the carrier's content, its bytes are returned as they are
    (no new MAC or ``lastmodified``, so no diff at all).
    """
    ours_changed, theirs_changed = _changed(ours, base), _changed(theirs, base)
    carrier: Literal["ours", "theirs"] = "ours"
    conflicts: list[Conflict] = []
    if theirs_changed and not ours_changed:
        carrier = "theirs"
    elif theirs_changed and _shape(ours.metadata) != _shape(theirs.metadata):
        conflicts.append(Conflict(
            (), "the recipients, key groups or selection rule were changed differently "
                "on both sides; merge them with `updatekeys` or `rotate` on one branch first",
            what="metadata"))
    elif theirs_changed and _rotated(theirs, base) and not _rotated(ours, base):
        # The same recipients on both sides, but only theirs has a new data key.
        carrier = "theirs"
    tree = merge_trees(base.branches if base is not None else None, ours.branches,
                       theirs.branches)
    conflicts.extend(tree.conflicts)
    if conflicts:
        return MergeResult(None, conflicts, carrier)
    doc = ours if carrier == "ours" else theirs
    if unchanged is not None and same(tree.branches, doc.branches):
        return MergeResult(unchanged[0 if carrier == "ours" else 1], [], carrier)
    doc.branches = tree.branches
    data = doc.encrypt(store or get_store(ours.format), now=now)
    return MergeResult(data, [], carrier)


def merge_bytes(
    base: bytes | None,
    ours: bytes,
    theirs: bytes,
    *,
    format: str,
    unwrapper: Unwrapper,
    store: Store | None = None,
    names: tuple[str, str, str] = ("base", "ours", "theirs"),
    now: str | None = None,
) -> MergeResult:
    """Decrypt three versions of one encrypted file and merge them.

    ``base`` is ``None`` (or empty) when the sides have no common ancestor.
    Each side's MAC is checked: a tampered side is an error, not a merge.

    Raises:
        FormatError: a side is not a SOPS file of ``format``.
        NoMatchingKeyError, ThresholdError: no identity opens a side.
        IntegrityError: a side was changed after it was encrypted.
    """
    store = store or get_store(format)

    def open_side(data: bytes, name: str) -> SopsFile:
        return decrypt_bytes(data, format=format, unwrapper=unwrapper, name=name, store=store)

    base_doc = open_side(base, names[0]) if base else None
    ours_doc = open_side(ours, names[1])
    theirs_doc = open_side(theirs, names[2])
    return merge_files(base_doc, ours_doc, theirs_doc, store=store, now=now,
                       unchanged=(ours, theirs))
