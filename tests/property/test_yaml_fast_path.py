"""The line-based YAML fast path must read every text it accepts exactly as the
full (go-yaml compatible) reader does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from macula_secrets.errors import FormatError
from macula_secrets.sops.stores._yaml import fast
from macula_secrets.sops.stores._yaml.parser import parse_documents
from macula_secrets.sops.stores.yaml import YAMLStore, _TreeReader
from tests.strategies import documents

STORE = YAMLStore()


def _full(text: str) -> object:
    docs = parse_documents(text)
    return [_TreeReader().document(d) for d in docs]


def _check(text: str) -> bool:
    result = fast.try_parse(text)
    if result is None:
        return False
    branch, _duplicates = result
    try:
        full = _full(text)
    except FormatError as exc:  # pragma: no cover - the point of the test
        raise AssertionError(f"fast path accepted text the full reader rejects: {exc}") from None
    assert [branch] == full, text
    return True


@settings(max_examples=400, deadline=None)
@given(documents)
def test_fast_path_agrees_on_emitted_documents(doc: object) -> None:
    _check(STORE.emit_plain([doc]).decode())  # type: ignore[list-item]


_LINES = st.sampled_from([
    "a: 1", "b: x y", "c:", "  d: 2", "  - e", "- f", "    g: |", "      lit", "",
    "  ", "h: |-", "  x", "i: |+", "j: 'q''s'", 'k: "\\u00e9\\n"', "l: {}", "m: []",
    "- n: 1", "  o: 2", "p: a:b", "q: http://x", "r: - s", "t: :u", '"v": 1', "'w': 2",
    "x:  spaced  ", "-   y: 3", "      - z", "aa: bb: cc", "null: 1", "1: one", "<<: m",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_LINES, min_size=1, max_size=10))
def test_fast_path_agrees_on_line_soup(lines: list[str]) -> None:
    _check("\n".join(lines) + "\n")


def test_fast_path_is_used_for_sops_style_files() -> None:
    text = "a: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops:\n    age:\n" \
           "        - recipient: age1xyz\n          enc: |\n            -----BEGIN\n" \
           "            -----END\n    version: 3.11.0\n"
    assert _check(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(documents, min_size=1, max_size=3), st.sampled_from([2, 4, 8]))
def test_fast_writer_agrees_with_the_emitter(docs: list[object], indent: int) -> None:
    from macula_secrets.sops.stores._yaml.fastemit import fast_emit

    store = YAMLStore(indent)
    fast_text = fast_emit(docs, indent=indent)  # type: ignore[arg-type]
    if fast_text is not None:
        assert fast_text.encode() == store.emit_plain_full(docs)  # type: ignore[arg-type]
