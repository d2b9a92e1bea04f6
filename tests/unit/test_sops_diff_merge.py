"""Key-by-key diff and three-way merge of SOPS trees (sops/diff.py, sops/merge.py).

Pure tree tests first (no crypto), then file-level merges through the real
encrypt/decrypt code with the throwaway test identity, then a Hypothesis
property test of the tree merge. Real git and the real sops binary are in
tests/interop/test_git_merge_driver.py.
"""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from macula_secrets import sops
from macula_secrets.sops.diff import MISSING, Change, compare, format_path, same
from macula_secrets.sops.merge import Conflict, merge_bytes, merge_trees
from macula_secrets.sops.tree import Branch, Comment, Timestamp
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET
from tests.strategies import keys, values

CANARY = "s3cr3t-CANARY-7f3a9c"


def B(*items: tuple[object, object]) -> Branch:  # noqa: N802 - reads like a literal
    return Branch(items)


def C(text: str) -> tuple[Comment, None]:  # noqa: N802
    return (Comment(text), None)


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, format_path(c.path)) for c in changes]


# -- same() --------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    (1, 1.0), (1, True), (0, False), (0.0, -0.0), ("1", 1), (b"x", "x"), (None, ""),
    (Branch([("a", 1), ("b", 2)]), Branch([("b", 2), ("a", 1)])),
    (Branch([("a", 1)]), Branch([C(" c"), ("a", 1)])),
    ([1, 2], [2, 1]), (Timestamp("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
])
def test_same_is_strict_about_types_order_and_comments(a: object, b: object) -> None:
    assert not same(a, b)
    assert not same(b, a)


def test_same_nan_and_equal_values() -> None:
    assert same(math.nan, float("nan"))
    assert same(B(("a", [1, B(("b", None))])), B(("a", [1, B(("b", None))])))
    assert same(Timestamp("2024-01-01T00:00:00Z"), Timestamp("2024-01-01T00:00:00Z"))


# -- diff ------------------------------------------------------------------------------------


def test_diff_added_removed_changed_nested() -> None:
    old = B(("db", B(("user", "admin"), ("password", "old"))), ("gone", 1), ("same", "x"))
    new = B(("db", B(("user", "admin"), ("password", "new"), ("port", 5432))), ("same", "x"),
            ("fresh", True))
    changes = compare([old], [new])
    assert kinds(changes) == [
        ("changed", '["db"]["password"]'), ("added", '["db"]["port"]'),
        ("removed", '["gone"]'), ("added", '["fresh"]'),
    ]
    by_path = {format_path(c.path): c for c in changes}
    assert by_path['["db"]["password"]'].old == "old"
    assert by_path['["db"]["password"]'].new == "new"
    assert by_path['["fresh"]'].old is MISSING


def test_diff_equal_trees_is_empty() -> None:
    doc = B(C(" top"), ("a", [1, 2, B(("b", "c"))]), ("n", None))
    assert compare([doc], [copy.deepcopy(doc)]) == []


def test_diff_lists_by_position() -> None:
    old = B(("hosts", ["a", "b", "c"]))
    new = B(("hosts", ["a", "B"]))
    assert kinds(compare([old], [new])) == [("changed", '["hosts"][1]'),
                                           ("removed", '["hosts"][2]')]
    assert kinds(compare([new], [old])) == [("changed", '["hosts"][1]'),
                                           ("added", '["hosts"][2]')]
    nested = compare([B(("l", [[1], B(("k", "v"))]))], [B(("l", [[1, 2], B(("k", "w"))]))])
    assert kinds(nested) == [("added", '["l"][0][1]'), ("changed", '["l"][1]["k"]')]


def test_diff_type_change_is_a_change() -> None:
    changes = compare([B(("port", 5432), ("m", B(("a", 1))))],
                      [B(("port", "5432"), ("m", ["a"]))])
    assert kinds(changes) == [("changed", '["port"]'), ("changed", '["m"]')]
    assert kinds(compare([B(("x", 1))], [B(("x", 1.0))])) == [("changed", '["x"]')]


def test_diff_comments_and_order_are_reported_without_text() -> None:
    changes = compare([B(C(" old note"), ("a", 1), ("b", 2))],
                      [B(C(" new note"), ("b", 2), ("a", 1))])
    assert kinds(changes) == [("reordered", ""), ("comments", "")]
    assert "note" not in repr(changes)


def test_diff_multi_document() -> None:
    changes = compare([B(("a", 1)), B(("b", 2))], [B(("a", 1)), B(("b", 3)), B(("c", 4))])
    assert [(c.document, c.kind, format_path(c.path)) for c in changes] == [
        (1, "changed", '["b"]'), (2, "added", ""),
    ]


def test_change_repr_and_paths_hide_values() -> None:
    change = compare([B(("password", CANARY))], [B(("password", CANARY + "2"))])[0]
    assert CANARY not in repr(change)
    assert CANARY not in str(change)
    assert format_path(("a", 0, 'say "hi"')) == '["a"][0][\'say "hi"\']'


# -- tree merge --------------------------------------------------------------------------------


BASE = B(C(" database"), ("db", B(("user", "admin"), ("password", "pw0"))),
         ("token", "t0"), ("hosts", ["a", "b"]), ("old", "x"))


def edited(**changes: object) -> Branch:
    """BASE with top-level or db-level edits; ``MISSING`` deletes."""
    doc = copy.deepcopy(BASE)
    for path, value in changes.items():
        target = doc
        key = path
        if path.startswith("db_"):
            target = doc.get("db")  # type: ignore[assignment]
            key = path[3:]
        i = target.index_of(key)
        if value is MISSING:
            del target[i]
        elif i < 0:
            target.append((key, value))
        else:
            target[i] = (key, value)
    return doc


def test_merge_disjoint_changes() -> None:
    ours = edited(db_password="pw1", new_ours="o")
    theirs = edited(token="t1", old=MISSING, new_theirs="t")
    merged = merge_trees([BASE], [ours], [theirs])
    assert merged.clean
    doc = merged.branches[0]
    db = doc.get("db")
    assert isinstance(db, Branch) and db.get("password") == "pw1"
    assert doc.get("token") == "t1"
    assert doc.index_of("old") < 0
    assert doc.get("new_ours") == "o" and doc.get("new_theirs") == "t"
    assert isinstance(doc[0][0], Comment)  # the comment before db stayed


def test_merge_same_change_on_both_sides_is_fine() -> None:
    ours = edited(token="t1", old=MISSING)
    theirs = edited(token="t1", old=MISSING)
    merged = merge_trees([BASE], [ours], [theirs])
    assert merged.clean and same(merged.branches[0], ours)


@pytest.mark.parametrize(("ours", "theirs", "path", "reason"), [
    ({"db_password": "A"}, {"db_password": "B"}, '["db"]["password"]', "changed differently"),
    ({"token": MISSING}, {"token": "t1"}, '["token"]', "deleted on our side"),
    ({"token": "t1"}, {"token": MISSING}, '["token"]', "deleted on theirs"),
    ({"extra": "A"}, {"extra": "B"}, '["extra"]', "added on both sides"),
    ({"hosts": ["a", "c"]}, {"hosts": ["a", "b", "d"]}, '["hosts"]', "changed differently"),
    ({"db": "flat"}, {"db_user": "root"}, '["db"]', "changed differently"),
])
def test_merge_conflicts(ours: dict[str, object], theirs: dict[str, object], path: str,
                         reason: str) -> None:
    merged = merge_trees([BASE], [edited(**ours)], [edited(**theirs)])
    assert not merged.clean
    assert [format_path(c.path) for c in merged.conflicts] == [path]
    assert reason in merged.conflicts[0].reason


def test_merge_conflict_never_shows_values() -> None:
    merged = merge_trees([BASE], [edited(token=CANARY)], [edited(token=CANARY + "x")])
    (conflict,) = merged.conflicts
    assert CANARY not in conflict.describe() and CANARY not in repr(conflict)
    assert conflict.describe() == '["token"]: changed differently on both sides'


def test_merge_keeps_order_and_places_new_keys() -> None:
    ours = B(("a", 1), ("b", 2), ("c", 3))
    theirs = B(("a", 1), ("x", 9), ("b", 2), ("c", 3))
    merged = merge_trees([B(("a", 1), ("b", 2), ("c", 3))], [ours], [theirs])
    assert merged.branches[0].keys() == ["a", "x", "b", "c"]
    # Only theirs reordered: their order wins.
    base = B(("a", 1), ("b", 2))
    merged = merge_trees([base], [B(("a", 1), ("b", 5))], [B(("b", 2), ("a", 1))])
    assert merged.clean and list(merged.branches[0]) == [("b", 5), ("a", 1)]


def test_merge_comments_travel_with_keys() -> None:
    base = B(("a", 1), ("b", 2))
    theirs = B(("a", 1), C(" the b key"), ("b", 2), C(" end"))
    ours = B(("a", 2), ("b", 2))
    merged = merge_trees([base], [ours], [theirs])
    assert merged.clean
    assert same(merged.branches[0], B(("a", 2), C(" the b key"), ("b", 2), C(" end")))
    clash = merge_trees([B(C(" x"), ("a", 1))], [B(C(" y"), ("a", 1))], [B(C(" z"), ("a", 1))])
    assert [(c.what, format_path(c.path)) for c in clash.conflicts] == [("comments", '["a"]')]


def test_merge_without_base_merges_additions() -> None:
    merged = merge_trees(None, [B(("a", 1), ("s", B(("x", 1))))],
                         [B(("b", 2), ("s", B(("y", 2))))])
    assert merged.clean
    doc = merged.branches[0]
    assert doc.keys() == ["a", "b", "s"]  # b goes before s, as on their side
    nested = doc.get("s")
    assert isinstance(nested, Branch) and nested.keys() == ["x", "y"]
    assert not merge_trees(None, [B(("a", 1))], [B(("a", 2))]).clean


def test_merge_duplicate_keys_are_a_conflict_when_both_changed() -> None:
    base = B(("a", 1), ("a", 2))
    merged = merge_trees([base], [B(("a", 1), ("a", 3))], [B(("a", 4), ("a", 2))])
    assert [c.reason for c in merged.conflicts] == [
        "has duplicate keys, so it cannot be merged key by key"]


def test_merge_does_not_modify_inputs() -> None:
    ours, theirs = edited(token="o"), edited(old=MISSING)
    snapshot = [copy.deepcopy(x) for x in (BASE, ours, theirs)]
    merge_trees([BASE], [ours], [theirs])
    assert all(same(a, b) for a, b in zip(snapshot, (BASE, ours, theirs), strict=True))


# -- file merge (real encryption, test identity) --------------------------------------------


def _enc(data: dict[str, object]) -> bytes:
    return sops.encrypt(data, recipients=[TEST_AGE_PUBLIC])


def _dec(data: bytes) -> dict[str, object]:
    return sops.decrypt(data, identities=[TEST_AGE_SECRET]).to_dict()


def _set(data: bytes, path: str, value: object) -> bytes:
    doc = sops.decrypt(data, identities=[TEST_AGE_SECRET])
    doc.set(path, value)
    return doc.encrypt()


def _unwrapper() -> object:
    from macula_secrets.sops import _unwrapper

    return _unwrapper([TEST_AGE_SECRET])


def _merge(base: bytes | None, ours: bytes, theirs: bytes) -> object:
    return merge_bytes(base, ours, theirs, format="yaml",
                       unwrapper=_unwrapper(),  # type: ignore[arg-type]
                       now="2030-01-01T00:00:00Z")


def test_file_merge_keeps_ours_ciphertext_and_takes_theirs() -> None:
    base = _enc({"a": "1", "b": "2", "c": "3", "n": {"x": "4"}})
    ours = _set(base, '["a"]', "A")
    theirs = _set(_set(base, '["c"]', "C"), '["n"]["z"]', "Z")
    result = _merge(base, ours, theirs)
    assert result.clean and result.carrier == "ours"  # type: ignore[attr-defined]
    data: bytes = result.data  # type: ignore[attr-defined]
    assert _dec(data) == {"a": "A", "b": "2", "c": "C", "n": {"x": "4", "z": "Z"}}
    ours_lines = set(ours.decode().splitlines())
    out_lines = data.decode().splitlines()
    for key in ("a:", "b:", "    x:"):
        line = next(ln for ln in out_lines if ln.startswith(key))
        assert line in ours_lines, key  # unchanged from ours: same ciphertext
    for key in ("c:", "    z:"):
        line = next(ln for ln in out_lines if ln.startswith(key))
        assert line not in ours_lines
    # The sops block is ours but for the new MAC and lastmodified: same wrapped data key.
    assert _metadata(data) == _metadata(ours)
    assert '    lastmodified: "2030-01-01T00:00:00Z"' in out_lines


def _metadata(data: bytes) -> list[str]:
    """The sops block's lines without mac and lastmodified."""
    block = data.decode().split("\nsops:\n", 1)[1]
    return [ln for ln in block.splitlines() if not ln.startswith(("    mac:", "    lastmod"))]


def test_file_merge_conflict_has_no_data() -> None:
    base = _enc({"a": "1"})
    result = _merge(base, _set(base, '["a"]', CANARY), _set(base, '["a"]', "other"))
    assert result.data is None  # type: ignore[attr-defined]
    assert [c.describe() for c in result.conflicts] == [  # type: ignore[attr-defined]
        '["a"]: changed differently on both sides']


def test_file_merge_takes_theirs_rotation() -> None:
    """A data key rotated on their side only is kept: merging must not undo a rotation."""
    base = _enc({"a": "1", "b": "2"})
    ours = _set(base, '["a"]', "A")
    rotated = sops.decrypt(_set(base, '["b"]', "B"), identities=[TEST_AGE_SECRET])
    rotated.rotate()
    theirs = rotated.encrypt()
    result = _merge(base, ours, theirs)
    assert result.carrier == "theirs"  # type: ignore[attr-defined]
    data: bytes = result.data  # type: ignore[attr-defined]
    assert _dec(data) == {"a": "A", "b": "B"}
    assert _metadata(data) == _metadata(theirs)
    assert _metadata(data) != _metadata(ours)


def test_file_merge_same_recipients_new_key_on_their_side_wins() -> None:
    """Ours re-wrapped for R (updatekeys), theirs rotated with R: their new data key carries."""
    from macula_secrets.keys import age

    extra = age.generate_identity().to_recipient().text
    base = _enc({"a": "1", "b": "2"})
    ours_doc = sops.decrypt(_set(base, '["a"]', "A"), identities=[TEST_AGE_SECRET])
    ours_doc.rekey([[TEST_AGE_PUBLIC, extra]])
    ours = ours_doc.encrypt()
    theirs_doc = sops.decrypt(base, identities=[TEST_AGE_SECRET])
    theirs_doc.rotate(add=[extra])
    theirs = theirs_doc.encrypt()
    result = _merge(base, ours, theirs)
    assert result.clean and result.carrier == "theirs"  # type: ignore[attr-defined]
    assert _dec(result.data) == {"a": "A", "b": "2"}  # type: ignore[attr-defined]
    assert _metadata(result.data) == _metadata(theirs)  # type: ignore[attr-defined]


def test_merge_trees_multi_document() -> None:
    base = [B(("a", 1)), B(("b", 2))]
    merged = merge_trees(base, [B(("a", 9)), B(("b", 2))], [B(("a", 1)), B(("b", 8))])
    assert merged.clean and same(merged.branches, [B(("a", 9)), B(("b", 8))])
    grown = [B(("a", 1)), B(("b", 2)), B(("c", 3))]
    merged = merge_trees(base, base, grown)
    assert merged.clean and same(merged.branches, grown)
    clash = merge_trees(base, [B(("a", 2))], grown)
    assert [c.reason for c in clash.conflicts] == ["changed differently on both sides"]
    doc2 = merge_trees(base, [B(("a", 1)), B(("b", 3))], [B(("a", 1)), B(("b", 4))])
    assert [c.describe() for c in doc2.conflicts] == [
        'document 2: ["b"]: changed differently on both sides']


def test_file_merge_recipient_changes_on_both_sides_conflict() -> None:
    from macula_secrets.keys import age

    other = [age.generate_identity().to_recipient().text for _ in range(2)]
    base = _enc({"a": "1"})
    sides = []
    for extra in other:
        doc = sops.decrypt(base, identities=[TEST_AGE_SECRET])
        doc.rotate(add=[extra])
        sides.append(doc.encrypt())
    result = _merge(base, sides[0], sides[1])
    assert result.data is None  # type: ignore[attr-defined]
    assert [c.what for c in result.conflicts] == ["metadata"]  # type: ignore[attr-defined]
    assert "recipients" in result.conflicts[0].describe()  # type: ignore[attr-defined]


def test_file_merge_add_add_without_base() -> None:
    ours, theirs = _enc({"a": "1"}), _enc({"b": "2"})
    result = _merge(None, ours, theirs)
    # Two independent files: same recipients, different data keys; ours carries.
    assert result.clean and result.carrier == "ours"  # type: ignore[attr-defined]
    assert _dec(result.data) == {"a": "1", "b": "2"}  # type: ignore[attr-defined]


def test_file_merge_that_changes_nothing_keeps_ours_bytes() -> None:
    """Both sides made the same change: ours is already the result, byte for byte."""
    base = _enc({"a": "1", "b": "2"})
    ours = _set(base, '["a"]', "A")
    theirs = _set(base, '["a"]', "A")
    assert ours != theirs  # fresh IVs and MACs on each side
    result = _merge(base, ours, theirs)
    assert result.clean and result.data == ours  # type: ignore[attr-defined]


def test_file_merge_refuses_a_tampered_side() -> None:
    from macula_secrets.errors import IntegrityError

    base = _enc({"a": "1", "b_unencrypted": "clear"})
    theirs = base.replace(b"b_unencrypted: clear", b"b_unencrypted: forged")
    with pytest.raises(IntegrityError):
        _merge(base, _set(base, '["a"]', "A"), theirs)


# -- property -----------------------------------------------------------------------------

maps = st.lists(st.tuples(keys, values), max_size=6, unique_by=lambda kv: kv[0]).map(Branch)


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[Branch, Branch, Branch, dict[str, object],
                                             dict[str, object]]:
    """A base map and two sides that each edit a different set of top-level keys."""
    base = draw(maps)
    names = base.keys()
    extra = draw(st.lists(keys.filter(lambda k: k not in names), max_size=4, unique=True))
    pool = names + extra
    flags = draw(st.lists(st.sampled_from(["ours", "theirs", "none"]), min_size=len(pool),
                          max_size=len(pool)))
    edits: dict[str, dict[str, object]] = {"ours": {}, "theirs": {}}
    for key, who in zip(pool, flags, strict=True):
        if who == "none":
            continue
        deleting = key in names and draw(st.booleans())
        edits[who][key] = MISSING if deleting else draw(values)
    return (base, _apply(base, edits["ours"]), _apply(base, edits["theirs"]),
            edits["ours"], edits["theirs"])


def _apply(base: Branch, edits: dict[str, object]) -> Branch:
    out = Branch(base)
    for key, value in edits.items():
        i = out.index_of(key)
        if value is MISSING:
            if i >= 0:
                del out[i]
        elif i >= 0:
            out[i] = (key, value)
        else:
            out.append((key, value))
    return out


@given(disjoint_edits())
def test_property_disjoint_edits_both_land(case: tuple[Branch, Branch, Branch,
                                                        dict[str, object],
                                                        dict[str, object]]) -> None:
    base, ours, theirs, ours_edits, theirs_edits = case
    merged = merge_trees([base], [ours], [theirs])
    assert merged.clean, [c.describe() for c in merged.conflicts]
    doc = merged.branches[0]
    for key in base.keys() + list(ours_edits) + list(theirs_edits):
        expected = ours_edits.get(key, theirs_edits.get(key, base.get(key, MISSING)))
        got = doc.get(key) if doc.index_of(key) >= 0 else MISSING
        assert same(got, expected), key
    assert set(doc.keys()) == {k for k in base.keys() + list(ours_edits) + list(theirs_edits)
                               if (ours_edits.get(k, theirs_edits.get(k, 0)) is not MISSING)}


@given(maps, maps)
def test_property_one_sided_merges_are_identity(base: Branch, other: Branch) -> None:
    assert same(merge_trees([base], [other], [base]).branches[0], other)
    assert same(merge_trees([base], [base], [other]).branches[0], other)
    assert merge_trees([base], [other], [other]).clean
    assert same(merge_trees([base], [other], [other]).branches[0], other)


@given(maps, maps, maps)
def test_property_merge_is_symmetric_in_conflicts(base: Branch, x: Branch, y: Branch) -> None:
    a = merge_trees([base], [x], [y])
    b = merge_trees([base], [y], [x])
    assert sorted(format_path(c.path) for c in a.conflicts) == sorted(
        format_path(c.path) for c in b.conflicts)
    assert a.clean == b.clean
    if a.clean:
        # The same values either way; only where new keys land may differ.
        assert all(c.kind == "reordered" for c in compare([a.branches[0]], [b.branches[0]]))


def test_conflict_equality() -> None:
    assert Conflict(("a",), "r") == Conflict(("a",), "r")
    assert Conflict(("a",), "r") != Conflict(("a",), "r", what="comments")
