"""Policies grant exactly what their rules say: no token reads, lists or writes outside
its grants, and a token of one tenant gets nothing in another.

The expected answer is computed here without ``fnmatch``: globs are drawn as
lists of pieces (a literal character, ``*``, ``?``, ``[set]``, ``[!set]``)
and matched by a small recursive matcher over those pieces. Names include
the glob characters themselves (``*``, ``?``, ``[``, ``]``, ``!``), which
must match only as the literal characters they are in a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from macula_secrets.server.auth import CAPABILITIES, Identity, Rule
from macula_secrets.server.policy import POLICIES, build_rules, dump_rules, parse_rules
from macula_secrets.server.tokens import TokenStore

_SETTINGS = settings(max_examples=100, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

Piece = tuple[str, str]  # ("lit", "a"), ("star", ""), ("any", ""), ("set", "ab"), ("not", "a")
Glob = tuple[Piece, ...]

_LITERALS = "ab._-!]"  # no "[": a literal "[" would start a set in fnmatch
_SET_MEMBERS = "ab._*?"  # no "-" (a range), no "]" or "!" (special at the start)
_NAME_CHARS = "ab._-*?[]!"
_QUERY_CAPS = sorted(CAPABILITIES | {"sudo", ""})


@st.composite
def globs(draw: st.DrawFn) -> Glob:
    piece = st.one_of(
        st.sampled_from(_LITERALS).map(lambda c: ("lit", c)),
        st.just(("star", "")),
        st.just(("any", "")),
        st.text(_SET_MEMBERS, min_size=1, max_size=3).map(lambda s: ("set", s)),
        st.text(_SET_MEMBERS, min_size=1, max_size=2).map(lambda s: ("not", s)),
    )
    pieces = tuple(draw(st.lists(piece, min_size=1, max_size=4)))
    text = to_text(pieces)
    # The rules of a glob (policy.check_glob): no "..", not ".".
    if ".." in text or text == ".":
        pieces = (("star", ""),)
    return pieces


def to_text(glob: Glob) -> str:
    out = []
    for kind, value in glob:
        out.append({"lit": value, "star": "*", "any": "?", "set": f"[{value}]",
                    "not": f"[!{value}]"}[kind])
    return "".join(out)


def model_match(glob: Sequence[Piece], name: str) -> bool:
    """Whether ``name`` matches ``glob``, by the definition of each piece."""
    if not glob:
        return name == ""
    (kind, value), rest = glob[0], glob[1:]
    if kind == "star":
        return any(model_match(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    head = name[0]
    ok = {"lit": head == value, "any": True, "set": head in value,
          "not": head not in value}[kind]
    return ok and model_match(rest, name[1:])


def _valid(name: str) -> bool:
    return bool(name) and ".." not in name and name != "."


names = st.text(_NAME_CHARS, min_size=1, max_size=4).filter(_valid)


@st.composite
def matching(draw: st.DrawFn, glob: Glob) -> str:
    """A name that ``glob`` matches (by construction), else any name."""
    out = []
    for kind, value in glob:
        if kind == "lit":
            out.append(value)
        elif kind == "star":
            out.append(draw(st.text(_NAME_CHARS, max_size=2)))
        elif kind == "any":
            out.append(draw(st.sampled_from(_NAME_CHARS)))
        elif kind == "set":
            out.append(draw(st.sampled_from(value)))
        else:
            out.append(draw(st.sampled_from([c for c in _NAME_CHARS if c not in value])))
    name = "".join(out)
    return name if _valid(name) else draw(names)


def near(glob: Glob) -> st.SearchStrategy[str]:
    """Names that mostly match ``glob``: the cases where a wrong answer would show."""
    return st.one_of(matching(glob), matching(glob), matching(glob), names)


@st.composite
def rule_specs(draw: st.DrawFn) -> tuple[frozenset[str], Glob, Glob, Glob]:
    caps = frozenset(draw(st.sets(st.sampled_from(sorted(CAPABILITIES)), max_size=4)))
    return caps, draw(globs()), draw(globs()), draw(globs())


Query = tuple[str, str, str, str | None]
queries = st.tuples(st.sampled_from(_QUERY_CAPS), names, names, st.one_of(st.none(), names))


@st.composite
def queries_near(draw: st.DrawFn, specs: Sequence[tuple[frozenset[str], Glob, Glob, Glob]]
                 ) -> Query:
    """A question about a path close to one of the rules (or any path)."""
    if not specs or draw(st.integers(0, 4)) == 0:
        return draw(queries)
    caps, t, a, k = draw(st.sampled_from(specs))
    cap = draw(st.sampled_from(sorted(caps) or _QUERY_CAPS)) if draw(st.booleans()) \
        else draw(st.sampled_from(_QUERY_CAPS))
    key = draw(st.one_of(st.none(), near(k), near(k)))
    return cap, draw(near(t)), draw(near(a)), key


def expected(specs: Sequence[tuple[frozenset[str], Glob, Glob, Glob]],
             cap: str, tenant: str, app: str, key: str | None) -> bool:
    return any(cap in caps and model_match(t, tenant) and model_match(a, app)
               and (key is None or model_match(k, key))
               for caps, t, a, k in specs)


def to_rules(specs: Sequence[tuple[frozenset[str], Glob, Glob, Glob]]) -> tuple[Rule, ...]:
    return tuple(Rule(capabilities=caps, tenant=to_text(t), app=to_text(a), key=to_text(k))
                 for caps, t, a, k in specs)


@_SETTINGS
@given(st.lists(rule_specs(), max_size=4), st.data())
def test_allows_is_exactly_some_rule_grants_and_every_glob_matches(
        specs: list[tuple[frozenset[str], Glob, Glob, Glob]], data: st.DataObject) -> None:
    asked = data.draw(st.lists(queries_near(specs), min_size=1, max_size=30))
    ident = Identity(accessor="a" * 24, display_name="t", rules=to_rules(specs))
    for cap, tenant, app, key in asked:
        assert ident.allows(cap, tenant, app, key) == expected(specs, cap, tenant, app, key), (
            cap, tenant, app, key, [to_text(g) for s in specs for g in s[1:]])


@_SETTINGS
@given(st.lists(rule_specs(), max_size=4))
def test_rules_survive_the_store_format(
        specs: list[tuple[frozenset[str], Glob, Glob, Glob]]) -> None:
    rules = to_rules([s for s in specs if s[0]])
    assert parse_rules(dump_rules(rules)) == rules


# -- tokens made by the command-line options ---------------------------------------------

tenants = names.filter(lambda n: not set(n) & set("*?[]"))


def literal(name: str) -> Glob:
    return tuple(("lit", c) for c in name)


def granted(policy: str, tenant: Glob, apps: list[Glob], keys: list[Glob]
            ) -> list[tuple[frozenset[str], Glob, Glob, Glob]]:
    """What build_rules should grant, as the model's rule specs."""
    return [(POLICIES[policy], tenant, a, k) for a in apps for k in keys]


@_SETTINGS
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    tenant=tenants,
    apps=st.lists(globs(), min_size=1, max_size=3),
    keys=st.lists(globs(), min_size=1, max_size=2),
    other=tenants,
    data=st.data(),
)
def test_a_token_reaches_only_its_tenant_apps_keys_and_capabilities(
        policy: str, tenant: str, apps: list[Glob], keys: list[Glob], other: str,
        data: st.DataObject) -> None:
    specs = granted(policy, literal(tenant), apps, keys)
    asked = data.draw(st.lists(queries_near(specs), min_size=1, max_size=30))
    rules = build_rules(policy, apps=[to_text(a) for a in apps],
                        keys=[to_text(k) for k in keys], tenant=tenant)
    ident = Identity(accessor="a" * 24, display_name="t", rules=rules)
    for cap, where, app, key in asked:
        for place in {where, tenant, other}:
            want = expected(specs, cap, place, app, key)
            assert want == (place == tenant and cap in POLICIES[policy]
                            and any(model_match(a, app) for a in apps)
                            and (key is None or any(model_match(k, key) for k in keys)))
            assert ident.allows(cap, place, app, key) == want, (policy, place, app, key)
            # The tenant is one exact name: a token of ``tenant`` is nothing elsewhere.
            if place != tenant:
                assert not any(ident.allows(c, place, app, key) for c in CAPABILITIES)


@_SETTINGS
@given(apps=st.lists(globs(), min_size=1, max_size=2), data=st.data())
def test_only_an_admin_token_spans_tenants(apps: list[Glob], data: st.DataObject) -> None:
    texts = [to_text(a) for a in apps]
    for policy in ("read", "write"):
        with pytest.raises(ValueError, match="--all-tenants needs --policy admin"):
            build_rules(policy, apps=texts, all_tenants=True)
    specs = granted("admin", (("star", ""),), apps, [(("star", ""),)])
    asked = data.draw(st.lists(queries_near(specs), min_size=1, max_size=20))
    ident = Identity(accessor="a" * 24, display_name="t",
                     rules=build_rules("admin", apps=texts, all_tenants=True))
    for cap, tenant, app, key in asked:
        want = cap in CAPABILITIES and any(model_match(a, app) for a in apps)
        assert ident.allows(cap, tenant, app, key) == want


@pytest.fixture(scope="module")
def token_store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    home: Path = tmp_path_factory.mktemp("tokens")
    store = TokenStore.from_home(str(home / "home"))
    yield store
    store.close()


@settings(_SETTINGS, max_examples=40)
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    tenant=tenants,
    apps=st.lists(globs(), min_size=1, max_size=2),
    keys=st.lists(globs(), min_size=1, max_size=2),
    data=st.data(),
)
def test_a_stored_token_grants_what_it_was_made_with(
        token_store: TokenStore, policy: str, tenant: str, apps: list[Glob],
        keys: list[Glob], data: st.DataObject) -> None:
    specs = granted(policy, literal(tenant), apps, keys)
    asked = data.draw(st.lists(queries_near(specs), min_size=1, max_size=20))
    rules = build_rules(policy, apps=[to_text(a) for a in apps],
                        keys=[to_text(k) for k in keys], tenant=tenant)
    token, info = token_store.create(rules, display_name="p", policy=policy)
    ident = token_store.lookup(token)
    assert ident is not None and ident.rules == rules
    for cap, where, app, key in asked:
        assert ident.allows(cap, where, app, key) == expected(specs, cap, where, app, key)
    assert token_store.revoke(info.accessor)
    assert token_store.lookup(token) is None
