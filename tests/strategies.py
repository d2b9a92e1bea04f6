"""Hypothesis strategies for SOPS trees and YAML text."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from macula_secrets.sops.tree import Branch, Comment

# Text that YAML (go-yaml) can carry: no control characters other than tab and
# newline, no surrogates, no U+FEFF (go-yaml escapes everything after a BOM).
_ALPHABET = st.characters(
    blacklist_categories=("Cs", "Cc"),
    blacklist_characters="\ufeff\ufffe\uffff\x85\u2028\u2029",
)

keys = st.text(_ALPHABET, min_size=1, max_size=12).filter(lambda k: k != "sops")
texts = st.one_of(
    st.text(_ALPHABET, max_size=30),
    st.text(st.sampled_from("ab \n\t:#-'\"[]{}&*!|>%@`,?"), max_size=12),
    st.sampled_from(["", "yes", "no", "on", "null", "~", "true", "1.0", "0x1F", "017",
                     "2024-01-01", "-", "- a", ": x", "a: b", " lead", "trail ", "\n", "a\n",
                     "a\n\n", "multi\nline", "<<", "=", "#", "---", "..."]),
)
floats = st.floats(allow_nan=False, allow_infinity=True, width=64).filter(
    lambda f: not (math.isfinite(f) and abs(f) > 1e300)
)
ints = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
scalars = st.one_of(texts, ints, floats, st.booleans(), st.none())


def _extend(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    maps = st.lists(st.tuples(keys, children), max_size=5, unique_by=lambda kv: kv[0]).map(Branch)
    seqs = st.lists(children, max_size=5)
    return st.one_of(maps, seqs)


values = st.recursive(scalars, _extend, max_leaves=25)

documents = st.lists(st.tuples(keys, values), min_size=1, max_size=8,
                     unique_by=lambda kv: kv[0]).map(Branch)

comment_text = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -_"),
                       max_size=15)


@st.composite
def commented_documents(draw: st.DrawFn) -> Branch:
    """A document with comments sprinkled where the YAML store can keep them."""
    doc = draw(documents)

    def sprinkle(node: object) -> object:
        if isinstance(node, Branch) and len(node) > 0:
            # (An empty map prints as "{}": go-yaml gives comments inside a flow
            # collection no stable place, so none are put there.)
            out = Branch()
            for k, v in node:
                if draw(st.booleans()):
                    out.append((Comment(" " + draw(comment_text)), None))
                out.append((k, sprinkle(v)))
            if draw(st.integers(0, 3)) == 0:
                out.append((Comment(" " + draw(comment_text)), None))
            return out
        if isinstance(node, list):
            return [sprinkle(v) for v in node]
        return node

    result = sprinkle(doc)
    assert isinstance(result, Branch)
    return result


def normalize(value: object) -> object:
    """What a YAML round trip through go-yaml legitimately changes: integral floats
    print as integers (``1.0`` -> ``1``) and come back as ints."""
    if isinstance(value, Branch):
        return Branch((k, normalize(v)) for k, v in value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value == int(value) \
            and abs(value) < 1e6:
        return int(value)  # -0.0 prints as "-0", which reads back as the int 0
    return value
