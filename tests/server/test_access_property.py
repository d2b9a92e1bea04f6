"""Issue 6: no token ever reads, lists or writes outside its grants (over HTTP, real tokens).

Hypothesis draws a token's rules (an exact tenant, app and key globs over a
small alphabet so that they match the pre-seeded names, a set of
capabilities), makes the token in the server's real ``TokenStore`` and then
sends a handful of requests for secrets of a small universe of tenants,
apps and keys. What each request must get is worked out here, by a
reference evaluator written for this test (its own glob matcher, not
``fnmatch`` and not ``Identity.allows``) and by reading the store through
a second, independent ``Secrets`` instance:

* a request the rules do not grant gets 403 ``permission denied`` and
  changes nothing: the store's change-log sequence, its audit log and the
  key's versions are the same after it;
* a granted one gets what the store's state says (200/204, or 404 for a key
  or version that is not there, 400 for a failed check-and-set) and does
  what it says (the value written, the version deleted, ...);
* a listing shows exactly what docs/server.md promises: ``LIST
  metadata/macula/`` the apps of the tenant on which some rule grants
  ``list`` (the key globs play no part, as ``list`` is checked per app),
  ``LIST metadata/macula/APP/`` the live keys of the app that a rule's
  key glob grants ``list`` on (403 without ``list`` on the app, 404 when
  none of its keys is visible).

Further tests: no, revoked (by this process and by another store instance)
and expired tokens (the token store's injectable clock, and the app's own
check against wall time) get 403; traversal and encoded traversal get 400;
malformed JSON 400; an oversized body 413 (with and without Content-Length).
After each the server still answers, and no response and neither audit log
holds a planted canary value or a token.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from macula_secrets import Secrets
from macula_secrets.errors import NotFoundError
from macula_secrets.server.auth import Rule

from ._support import TokenServer, as_json, call, start_token_server

TENANTS = ("default", "acme", "globex")
SEEDED_APPS = ("ab", "ac", "ba", "Ab")
SEEDED_KEYS = ("k1", "k2", "x1", "K1")
NEW_APP = "ca"      # no keys at the start of an example: made by writes only
NEW_KEY = "n1"
APPS = (*SEEDED_APPS, NEW_APP)
KEYS = (*SEEDED_KEYS, NEW_KEY)
CAPS = ("read", "list", "create", "update", "delete", "destroy", "metadata")
CANARY = "CANARY-7f3a"       # in every seeded value
WRITTEN = "WRITTEN-91c2"     # in every value the test writes
DENIED = {"errors": ["permission denied"]}


# -- the reference evaluator -----------------------------------------------------------


def _parse_glob(glob: str) -> tuple[tuple[str, object], ...]:
    out: list[tuple[str, object]] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append(("star", None))
        elif ch == "?":
            out.append(("any", None))
        elif ch == "[":
            end = glob.index("]", i + 2)
            body = glob[i + 1:end]
            negate = body.startswith("!")
            out.append(("set", (negate, frozenset(body[1:] if negate else body))))
            i = end
        else:
            out.append(("lit", ch))
        i += 1
    return tuple(out)


@cache
def glob_match(glob: str, name: str) -> bool:
    """Shell-style match of one whole name, case-sensitive (written for this test)."""
    tokens = _parse_glob(glob)

    @cache
    def m(t: int, n: int) -> bool:
        if t == len(tokens):
            return n == len(name)
        kind, arg = tokens[t]
        if kind == "star":
            return any(m(t + 1, j) for j in range(n, len(name) + 1))
        if n == len(name):
            return False
        ch = name[n]
        if kind == "lit":
            ok = ch == arg
        elif kind == "any":
            ok = True
        else:
            negate, chars = arg  # type: ignore[misc]
            ok = (ch in chars) != negate
        return ok and m(t + 1, n + 1)

    return m(0, 0)


@dataclass(frozen=True)
class Spec:
    caps: frozenset[str]
    tenant: str
    app: str
    key: str


def visible_keys(specs: Sequence[Spec], tenant: str, app: str, keys: Sequence[str]
                 ) -> list[str]:
    """The keys of an app a listing shows: those some ``list`` rule's key glob matches."""
    return [k for k in keys if grants(specs, "list", tenant, app, k)]


def grants(specs: Sequence[Spec], cap: str, tenant: str, app: str, key: str | None) -> bool:
    return any(cap in s.caps and s.tenant == tenant and glob_match(s.app, app)
               and (key is None or glob_match(s.key, key)) for s in specs)


# -- strategies --------------------------------------------------------------------------

_APP_PIECES = ("a", "b", "c", "A", "*", "?", "[ab]", "[!a]")
_KEY_PIECES = ("k", "x", "n", "K", "1", "2", "*", "?", "[12]", "[!k]")


def _glob(pieces: Sequence[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), min_size=1, max_size=3).map("".join)


_NAMED = (frozenset({"read", "list"}),
          frozenset({"read", "list", "create", "update", "delete"}),
          frozenset(CAPS))

specs_st = st.builds(
    Spec,
    caps=st.one_of(st.sampled_from(_NAMED),
                   st.frozensets(st.sampled_from(CAPS), min_size=1, max_size=4)),
    tenant=st.sampled_from(TENANTS),
    app=st.one_of(st.sampled_from(("*", "a*", "ab", "[ab]?", "?b")), _glob(_APP_PIECES)),
    key=st.one_of(st.sampled_from(("*", "k*", "k1", "?1", "[!k]*")), _glob(_KEY_PIECES)),
)

OPS = ("get", "get_version", "post", "put", "patch", "delete_data", "delete_versions",
       "undelete", "destroy", "get_metadata", "delete_metadata", "list_app", "list_app_get",
       "list_apps", "list_root")


@dataclass(frozen=True)
class Req:
    op: str
    tenant: str
    app: str
    key: str
    versions: tuple[int, ...]
    cas: int | None          # None, or an offset from the current version (0 or 5)
    header: bool             # send X-Vault-Namespace even for "default"
    bearer: bool             # Authorization: Bearer instead of X-Vault-Token


@st.composite
def reqs_st(draw: st.DrawFn, specs: Sequence[Spec]) -> Req:
    """A request; two times in three aimed inside one of the rules (its tenant, an app
    and a key its globs match, one of its capabilities' operations), so that granted
    requests are as common as refused ones."""
    tenant = draw(st.sampled_from(TENANTS))
    app = draw(st.sampled_from(APPS))
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from(OPS))
    if draw(st.integers(0, 2)):
        s = draw(st.sampled_from(specs))
        tenant = s.tenant
        apps = [a for a in APPS if glob_match(s.app, a)]
        keys = [k for k in KEYS if glob_match(s.key, k)]
        app = draw(st.sampled_from(apps)) if apps else app
        key = draw(st.sampled_from(keys)) if keys else key
        ops = [o for o in OPS if _OP_CAP[o] & s.caps]
        op = draw(st.sampled_from(ops)) if ops else op
    return Req(op=op, tenant=tenant, app=app, key=key,
               versions=draw(st.sampled_from(((), (1,), (1, 2), (2, 99)))),
               cas=draw(st.sampled_from((None, None, 0, 5))),
               header=draw(st.booleans()), bearer=draw(st.booleans()))


_OP_CAP = {"get": {"read"}, "get_version": {"read"}, "post": {"create", "update"},
           "put": {"create", "update"}, "patch": {"update"}, "delete_data": {"delete"},
           "delete_versions": {"delete"}, "undelete": {"delete"}, "destroy": {"destroy"},
           "get_metadata": {"metadata", "read"}, "delete_metadata": {"metadata"},
           "list_app": {"list"}, "list_app_get": {"list"}, "list_apps": {"list"},
           "list_root": {"list"}}


# -- the server and an independent view of its store --------------------------------------


@dataclass
class Env:
    srv: TokenServer
    obs: Secrets             # a second Secrets on the same home: reads "the store directly"
    views: dict[str, Secrets]
    tokens_made: list[str]

    def view(self, tenant: str) -> Secrets:
        if tenant not in self.views:
            self.views[tenant] = self.obs.with_tenant(tenant)
        return self.views[tenant]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("access") / "home"
    gen = start_token_server(home)
    srv = next(gen)
    obs = Secrets.open(home=home, source="none", env={})
    e = Env(srv, obs, {}, [])
    try:
        reset(e)
        yield e
        # Whatever ran in this module: neither audit log holds a value or a token.
        assert_no_leak_in_audit(e)
    finally:
        obs.close()
        gen.close()


def reset(e: Env) -> None:
    """Every seeded key live with a canary value; the NEW app and NEW key absent."""
    store = e.obs.store
    for t in TENANTS:
        v = e.view(t)
        for a in APPS:
            for k in KEYS:
                if a == NEW_APP or k == NEW_KEY:
                    if store.current_version(t, a, k):
                        store.purge(t, a, k)
                elif v.get(a, k) is None:
                    v.put(a, k, f"{CANARY}-{t}-{a}-{k}-{uuid.uuid4().hex[:8]}")


def assert_no_leak_in_audit(e: Env) -> None:
    for name in ("audit.log", "audit-server.log"):
        text = (e.srv.home / name).read_text(encoding="utf-8")
        assert CANARY not in text and WRITTEN not in text, f"a value leaked into {name}"
        for token in e.tokens_made:
            assert token not in text, f"a token leaked into {name}"


def make_token(e: Env, rules: Sequence[Rule], ttl: float | None = None) -> tuple[str, str]:
    token, info = e.srv.tokens.create(rules, display_name="access-test", ttl=ttl)
    e.tokens_made.append(token)
    return token, info.accessor


def send(e: Env, token: str | None, method: str, path: str, body: object = None, *,
         tenant: str | None = None, bearer: bool = False,
         headers: dict[str, str] | None = None) -> tuple[int, object, bytes]:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization" if bearer else "X-Vault-Token"] = (
            f"Bearer {token}" if bearer else token)
    if tenant is not None:
        sent["X-Vault-Namespace"] = tenant
    raw_body = None if body is None else (body if isinstance(body, (bytes, str))
                                          else json.dumps(body))
    status, raw = call(e.srv.host, e.srv.port, method, path, raw_body, sent)
    return status, as_json(raw), raw


# -- state snapshots ------------------------------------------------------------------------


def history(e: Env, t: str, a: str, k: str) -> list[tuple[int, bool, bool]]:
    try:
        infos = e.obs.store.history(t, a, k)
    except NotFoundError:
        return []
    return [(i.version, i.deleted is not None, i.destroyed) for i in infos]


def snapshot(e: Env, t: str, a: str, k: str) -> tuple[object, ...]:
    store = e.obs.store
    return (store.last_change(), os.path.getsize(e.srv.home / "audit.log"),
            history(e, t, a, k), e.view(t).get(a, k), store.list_keys(t, a),
            store.list_apps(t))


# -- the property -----------------------------------------------------------------------------


def expected(e: Env, specs: Sequence[Spec], r: Req) -> int:
    """The status the request must get, from the rules and the store's state before it."""
    t, a, k = r.tenant, r.app, r.key
    store = e.obs.store
    current = store.current_version(t, a, k)
    live = e.view(t).get(a, k) is not None
    hist = {v: (deleted, destroyed) for v, deleted, destroyed in history(e, t, a, k)}

    def g(cap: str, key: str | None = k) -> bool:
        return grants(specs, cap, t, a, key)

    op = r.op
    if op == "get":
        return 403 if not g("read") else 200 if live else 404
    if op == "get_version":
        v = r.versions[0] if r.versions else 1
        ok = v in hist and hist[v] == (False, False)
        return 403 if not g("read") else 200 if ok else 404
    if op in ("post", "put"):
        if not g("update" if current else "create"):
            return 403
        if r.cas is not None and current + r.cas != current:
            return 400
        return 200
    if op == "patch":
        return 403 if not g("update") else 200 if current and live else 404
    if op in ("delete_data", "delete_versions", "undelete"):
        return 403 if not g("delete") else 204 if current else 404
    if op == "destroy":
        if not g("destroy"):
            return 403
        if not r.versions:
            return 400
        return 204 if current else 404
    if op == "get_metadata":
        if not (g("metadata") or g("read")):
            return 403
        return 200 if hist else 404
    if op == "delete_metadata":
        return 204 if g("metadata") and g("destroy") else 403
    if op in ("list_app", "list_app_get"):
        if not g("list", None):
            return 403
        return 200 if visible_keys(specs, t, a, store.list_keys(t, a)) else 404
    if op in ("list_apps", "list_root"):
        apps = [x for x in store.list_apps(t) if grants(specs, "list", t, x, None)]
        return 200 if apps else 404
    raise AssertionError(op)


def perform(e: Env, token: str, r: Req, value: str) -> tuple[int, object, bytes]:
    t, a, k = r.tenant, r.app, r.key
    tenant = t if (t != "default" or r.header) else None
    current = e.obs.store.current_version(t, a, k)
    data = f"/v1/secret/data/macula/{a}/{k}"
    kw = {"tenant": tenant, "bearer": r.bearer}
    op = r.op
    if op == "get":
        return send(e, token, "GET", data, **kw)
    if op == "get_version":
        v = r.versions[0] if r.versions else 1
        return send(e, token, "GET", f"{data}?version={v}", **kw)
    if op in ("post", "put"):
        body: dict[str, object] = {"data": {"value": value}}
        if r.cas is not None:
            body["options"] = {"cas": current + r.cas}
        return send(e, token, op.upper(), data, body, **kw)
    if op == "patch":
        return send(e, token, "PATCH", data, {"data": {"value": value}},
                    headers={"Content-Type": "application/merge-patch+json"}, **kw)
    if op == "delete_data":
        return send(e, token, "DELETE", data, **kw)
    if op in ("delete_versions", "undelete", "destroy"):
        which = op.split("_")[0]
        return send(e, token, "POST", f"/v1/secret/{which}/macula/{a}/{k}",
                    {"versions": list(r.versions)}, **kw)
    if op == "get_metadata":
        return send(e, token, "GET", f"/v1/secret/metadata/macula/{a}/{k}", **kw)
    if op == "delete_metadata":
        return send(e, token, "DELETE", f"/v1/secret/metadata/macula/{a}/{k}", **kw)
    if op == "list_app":
        return send(e, token, "LIST", f"/v1/secret/metadata/macula/{a}/", **kw)
    if op == "list_app_get":
        return send(e, token, "GET", f"/v1/secret/metadata/macula/{a}?list=true", **kw)
    if op == "list_apps":
        return send(e, token, "LIST", "/v1/secret/metadata/macula/", **kw)
    if op == "list_root":
        return send(e, token, "GET", "/v1/secret/metadata/?list=true", **kw)
    raise AssertionError(op)


def check_effect(e: Env, specs: Sequence[Spec], r: Req, value: str, before: tuple[object, ...],
                 old_hist: list[tuple[int, bool, bool]], body: object) -> None:
    """A granted request that succeeded did what it says, and only that."""
    t, a, k = r.tenant, r.app, r.key
    store = e.obs.store
    view = e.view(t)
    old = {v: (d, x) for v, d, x in old_hist}
    new = {v: (d, x) for v, d, x in history(e, t, a, k)}
    op = r.op
    old_current = max(old) if old else 0
    if op in ("get", "get_version"):
        assert isinstance(body, dict)
        got = body["data"]["data"]["value"]
        version = body["data"]["metadata"]["version"]
        assert got == view.get(a, k, version=version)
        if op == "get":
            assert version == store.current_version(t, a, k)
        else:
            assert version == (r.versions[0] if r.versions else 1)
        assert snapshot(e, t, a, k) == before
    elif op in ("post", "put", "patch"):
        assert isinstance(body, dict)
        assert body["data"]["version"] == store.current_version(t, a, k)
        assert view.get(a, k) == value
        assert store.current_version(t, a, k) == before_current(before) + 1
    elif op in ("delete_data", "delete_versions", "undelete", "destroy"):
        if op == "delete_data":
            targets = [old_current]
        elif op == "destroy":
            targets = list(r.versions)
        else:
            targets = list(r.versions) or [old_current]
        for v in targets:
            if v not in old:
                assert v not in new
                continue
            deleted, destroyed = new[v]
            if op in ("delete_data", "delete_versions"):
                assert deleted or destroyed
            elif op == "undelete":
                assert destroyed or not deleted
            else:
                assert destroyed
        for v in set(old) - set(targets):
            assert new.get(v) == old[v], "a version the request did not name changed"
    elif op == "delete_metadata":
        assert store.current_version(t, a, k) == 0 and view.get(a, k) is None
    elif op == "get_metadata":
        assert isinstance(body, dict)
        assert body["data"]["current_version"] == store.current_version(t, a, k)
        assert sorted(int(v) for v in body["data"]["versions"]) == sorted(new)
        assert snapshot(e, t, a, k) == before
    elif op in ("list_app", "list_app_get"):
        assert isinstance(body, dict)
        assert body["data"]["keys"] == visible_keys(specs, t, a, store.list_keys(t, a))
        assert snapshot(e, t, a, k) == before
    elif op == "list_apps":
        assert isinstance(body, dict)
        allowed = [x for x in store.list_apps(t) if grants(specs, "list", t, x, None)]
        assert sorted(body["data"]["keys"]) == sorted(f"{x}/" for x in allowed)
        assert snapshot(e, t, a, k) == before
    elif op == "list_root":
        assert body["data"]["keys"] == ["macula/"]  # type: ignore[index]
        assert snapshot(e, t, a, k) == before


def before_current(before: tuple[object, ...]) -> int:
    hist = before[2]
    assert isinstance(hist, list)
    return max((v for v, _d, _x in hist), default=0)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=st.lists(specs_st, min_size=1, max_size=3), data=st.data())
def test_no_token_reaches_outside_its_grants(env: Env, specs: list[Spec],
                                            data: st.DataObject) -> None:
    e = env
    reset(e)
    rules = [Rule(capabilities=s.caps, app=s.app, key=s.key, tenant=s.tenant) for s in specs]
    token, _accessor = make_token(e, rules)
    requests = data.draw(st.lists(reqs_st(specs), min_size=6, max_size=12), label="requests")
    for n, r in enumerate(requests):
        value = f"{WRITTEN}-{n}-{uuid.uuid4().hex[:6]}"
        want = expected(e, specs, r)
        before = snapshot(e, r.tenant, r.app, r.key)
        old_hist = history(e, r.tenant, r.app, r.key)
        status, body, raw = perform(e, token, r, value)
        assert status == want, (r, status, body)
        event(f"{'allowed' if status != 403 else 'denied'} {r.op} {status}")
        if status >= 300:
            assert CANARY.encode() not in raw and WRITTEN.encode() not in raw
        if status == 403:
            assert body == DENIED
        if status >= 400:
            assert snapshot(e, r.tenant, r.app, r.key) == before, \
                f"a refused request changed the store: {r}"
        else:
            check_effect(e, specs, r, value, before, old_hist, body)
    assert_no_leak_in_audit(e)


def test_reference_glob_matcher_agrees_on_samples() -> None:
    # The evaluator's own matcher, checked on hand-worked cases (not against fnmatch).
    assert glob_match("*", "ab") and glob_match("a*", "a") and not glob_match("a*", "Ab")
    assert glob_match("[ab]?", "ba") and not glob_match("[ab]?", "ca")
    assert glob_match("[!a]*", "Ab") and not glob_match("[!a]*", "ab")
    assert glob_match("?1", "k1") and not glob_match("?1", "k11") and glob_match("**1", "x1")


# -- tokens that are missing, revoked or expired ------------------------------------------------

ALL_PATHS = (("GET", "/v1/secret/data/macula/ab/k1", None),
             ("POST", "/v1/secret/data/macula/ab/k1", {"data": {"value": WRITTEN + "-x"}}),
             ("DELETE", "/v1/secret/data/macula/ab/k1", None),
             ("LIST", "/v1/secret/metadata/macula/", None),
             ("LIST", "/v1/secret/metadata/macula/ab/", None),
             ("GET", "/v1/secret/metadata/macula/ab/k1", None),
             ("POST", "/v1/secret/destroy/macula/ab/k1", {"versions": [1]}),
             ("GET", "/v1/auth/token/lookup-self", None))

EVERYTHING = [Rule(capabilities=frozenset(CAPS), app="*", key="*", tenant="default")]


def assert_refused_everywhere(e: Env, token: str | None) -> None:
    before = snapshot(e, "default", "ab", "k1")
    for method, path, body in ALL_PATHS:
        status, doc, raw = send(e, token, method, path, body)
        assert (status, doc) == (403, DENIED), (method, path, status, doc)
        assert CANARY.encode() not in raw
    assert snapshot(e, "default", "ab", "k1") == before
    assert_still_serving(e)


def assert_still_serving(e: Env) -> None:
    assert call(e.srv.host, e.srv.port, "GET", "/v1/sys/health")[0] == 200
    token, _ = make_token(e, [Rule(frozenset({"read"}), app="ab", key="k1")])
    status, doc, _raw = send(e, token, "GET", "/v1/secret/data/macula/ab/k1")
    assert status == 200 and doc["data"]["data"]["value"] == e.view("default").get(  # type: ignore[index]
        "ab", "k1")


def test_no_or_malformed_token_is_403(env: Env) -> None:
    reset(env)
    assert_refused_everywhere(env, None)
    assert_refused_everywhere(env, "mst." + "A" * 43)     # well formed, unknown
    assert_refused_everywhere(env, "not-a-token")
    assert_refused_everywhere(env, "")


def test_revoked_token_is_403_at_once(env: Env) -> None:
    reset(env)
    token, accessor = make_token(env, EVERYTHING)
    assert send(env, token, "GET", "/v1/secret/data/macula/ab/k1")[0] == 200
    assert env.srv.tokens.revoke(accessor)
    assert_refused_everywhere(env, token)
    # Revoked by another token store on the same home (another process, in effect):
    # the server's store sees the change token at its next lookup.
    from macula_secrets.server.tokens import TokenStore

    token, accessor = make_token(env, EVERYTHING)
    assert send(env, token, "GET", "/v1/secret/data/macula/ab/k1")[0] == 200
    with TokenStore.from_home(str(env.srv.home)) as other:
        assert other.revoke(accessor)
    assert_refused_everywhere(env, token)


def test_expired_token_is_403(env: Env) -> None:
    reset(env)
    clock = env.srv.clock
    token, _ = make_token(env, EVERYTHING, ttl=60)
    try:
        assert send(env, token, "GET", "/v1/secret/data/macula/ab/k1")[0] == 200
        clock.offset = 59
        assert send(env, token, "GET", "/v1/secret/data/macula/ab/k1")[0] == 200
        clock.offset = 61       # the token store's clock passes the expiry
        assert_refused_everywhere(env, token)
        # Made an hour "ago" by the store's clock, so the store still finds it valid:
        # the app's own check against wall time refuses it.
        clock.offset = -3600
        old, _ = make_token(env, EVERYTHING, ttl=60)
        assert env.srv.tokens.lookup(old) is not None
        assert_refused_everywhere(env, old)
    finally:
        clock.offset = 0


# -- bad paths and bodies -------------------------------------------------------------------------


def raw_request(e: Env, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection((e.srv.host, e.srv.port), timeout=15) as s:
        s.sendall(head + b"\r\nHost: x\r\nConnection: close\r\n"
                  + (b"Content-Length: %d\r\n" % len(body) if body else b"") + b"\r\n" + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


TRAVERSALS = (
    "/v1/secret/data/macula/../ab/k1",
    "/v1/secret/data/macula/ab/../ba/k1",
    "/v1/secret/data/macula/ab/..%2fba%2fk1",
    "/v1/secret/data/macula/..%2F..%2Fab/k1",
    "/v1/secret/data/macula/%2e%2e/ab/k1",
    "/v1/secret/data/macula/ab/%2E%2E/k1",
    "/v1/secret/data/macula/ab/%2e%2e%2fk1",
    "/v1/secret/data/macula/ab/.%2e/k1",
    "/v1/secret/data/macula/ab/%2e/k1",
    "/v1/secret/data/macula/ab/..%5ck1",
    "/v1/secret/metadata/macula/%2e%2e/",
    "/v1/secret/destroy/macula/ab/%2e%2e",
)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "LIST"])
def test_traversal_is_400_and_harmless(env: Env, method: str) -> None:
    reset(env)
    admin, _ = make_token(env, [Rule(frozenset(CAPS), app="*", key="*", tenant="*")])
    for path in TRAVERSALS:
        before = snapshot(env, "default", "ab", "k1")
        for token in (admin, None):
            head = f"{method} {path} HTTP/1.1".encode()
            if token:
                head += f"\r\nX-Vault-Token: {token}".encode()
            body = json.dumps({"data": {"value": WRITTEN}, "versions": [1]}).encode() \
                if method == "POST" else b""
            out = raw_request(env, head, body)
            assert out.startswith(b"HTTP/1.1 400"), (method, path, out[:200])
            assert b'"errors"' in out and CANARY.encode() not in out
        assert snapshot(env, "default", "ab", "k1") == before
    assert_still_serving(env)


@pytest.mark.parametrize("body", [b"{not json", b"{\"data\": {\"value\": \"x\"}", b"[1, 2]",
                                  b"\"just a string\"", b"nul", b"\xff\xfe{}",
                                  b"{\"data\": {\"value\": \"x\", \"other\": \"y\"}}"])
def test_malformed_json_is_400(env: Env, body: bytes) -> None:
    reset(env)
    admin, _ = make_token(env, EVERYTHING)
    for method, path in (("POST", "/v1/secret/data/macula/ab/k1"),
                         ("PUT", "/v1/secret/data/macula/ab/k2"),
                         ("PATCH", "/v1/secret/data/macula/ab/x1"),
                         ("POST", "/v1/secret/data/macula/ca/n1"),
                         ("POST", "/v1/secret/destroy/macula/ab/k1"),
                         ("POST", "/v1/secret/delete/macula/ab/k1")):
        if "/data/" not in path and body.startswith(b"{") and _is_json(body):
            continue  # a valid object is a fine body for delete/ and destroy/
        before = snapshot(env, "default", *path.split("/")[-2:])
        status, doc, raw = send(env, admin, method, path, body)
        assert status == 400, (method, path, status, doc)
        assert isinstance(doc, dict) and doc["errors"]
        assert CANARY.encode() not in raw
        assert snapshot(env, "default", *path.split("/")[-2:]) == before
    assert_still_serving(env)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def test_oversized_body_is_413(env: Env) -> None:
    reset(env)
    admin, _ = make_token(env, EVERYTHING)
    limit = env.srv.serving.app.max_body
    big = json.dumps({"data": {"value": WRITTEN + "x" * limit}}).encode()
    path = "/v1/secret/data/macula/ab/k1"
    before = snapshot(env, "default", "ab", "k1")
    status, doc, raw = send(env, admin, "POST", path, big)
    assert status == 413 and doc["errors"], doc  # type: ignore[index]
    assert WRITTEN.encode() not in raw
    # Without Content-Length (chunked): the limit is enforced while reading.
    conn = http.client.HTTPConnection(env.srv.host, env.srv.port, timeout=15)
    try:
        chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
        conn.request("PUT", path, body=chunks, headers={"X-Vault-Token": admin},
                     encode_chunked=True)
        resp = conn.getresponse()
        raw = resp.read()
        assert resp.status == 413, raw[:200]
        assert WRITTEN.encode() not in raw
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the client has sent it all; see below
    finally:
        conn.close()
    # Under the body limit, over the store's value limit: 413 too.
    value = WRITTEN + "y" * (env.obs.store.max_value_size + 1)
    status, doc, raw = send(env, admin, "POST", path, {"data": {"value": value}})
    assert status == 413 and WRITTEN.encode() not in raw
    assert snapshot(env, "default", "ab", "k1") == before
    assert_still_serving(env)


def test_audit_logs_hold_no_value_and_no_token(env: Env) -> None:
    assert_no_leak_in_audit(env)
    assert Path(env.srv.audit_path).stat().st_size > 0
