"""The token store: create, look up, revoke, expire; hashed at rest; seen across processes."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from macula_secrets.audit import AuditLog, tail, verify
from macula_secrets.errors import ConfigError, UnavailableError
from macula_secrets.server.auth import Rule
from macula_secrets.server.policy import build_rules
from macula_secrets.server.tokens import (
    TOKEN_PREFIX,
    TOKENS_FILE,
    TokenInfo,
    TokenStore,
    is_accessor,
    parse_ttl,
)

READ_CONSOLE = build_rules("read", apps=["console"], tenant="acme")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path, clock: Clock) -> TokenStore:
    s = TokenStore.from_home(str(home), audit=AuditLog(str(home / "audit.log")), clock=clock)
    yield s
    s.close()


def test_a_token_looks_up_to_its_identity(store: TokenStore) -> None:
    token, info = store.create(READ_CONSOLE, display_name="console reader", policy="read")
    assert token.startswith(TOKEN_PREFIX) and len(token) == 47
    assert is_accessor(info.accessor) and info.accessor not in token
    ident = store.lookup(token)
    assert ident is not None
    assert ident.accessor == info.accessor
    assert ident.display_name == "console reader"
    assert ident.rules == READ_CONSOLE
    assert ident.meta == {"policy": "read"}
    assert ident.expires_at is None
    assert ident.allows("read", "acme", "console", "db")
    assert ident.allows("list", "acme", "console")
    assert not ident.allows("update", "acme", "console", "db")
    assert not ident.allows("read", "default", "console", "db")
    assert not ident.allows("read", "acme", "billing", "db")


def test_tokens_are_distinct(store: TokenStore) -> None:
    made = [store.create(READ_CONSOLE, display_name="t") for _ in range(20)]
    assert len({t for t, _ in made}) == 20
    assert len({i.accessor for _, i in made}) == 20


def test_identity_meta_is_not_shared_between_lookups(store: TokenStore) -> None:
    token, _ = store.create(READ_CONSOLE, display_name="t", policy="read")
    first = store.lookup(token)
    assert first is not None
    first.meta["policy"] = "admin"
    again = store.lookup(token)
    assert again is not None and again.meta == {"policy": "read"}


@pytest.mark.parametrize("bad", [
    "", "mst.", "mst", "x" * 47, TOKEN_PREFIX + "A" * 42, TOKEN_PREFIX + "A" * 44,
    TOKEN_PREFIX + "é" * 43, TOKEN_PREFIX + "+" * 43, "MST." + "A" * 43,
])
def test_malformed_tokens_are_refused(store: TokenStore, bad: str) -> None:
    store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(bad) is None


def test_unknown_and_altered_tokens_are_refused(store: TokenStore) -> None:
    token, _ = store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(TOKEN_PREFIX + "A" * 43) is None
    last = token[-1]
    altered = token[:-1] + ("B" if last != "B" else "C")
    assert store.lookup(altered) is None
    assert store.lookup(token) is not None


def test_revoked_token_is_refused_at_once(store: TokenStore) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(token) is not None  # now cached
    assert store.revoke(info.accessor) is True
    assert store.lookup(token) is None
    assert store.revoke(info.accessor) is False  # already revoked
    assert store.revoke("0" * 24) is False  # unknown
    assert store.revoke("not an accessor") is False
    again = store.get(info.accessor)
    assert again is not None and again.revoked


def test_expiry_follows_the_clock(store: TokenStore, clock: Clock) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t", ttl=3600)
    assert info.expires_at == clock.now + 3600
    ident = store.lookup(token)
    assert ident is not None and ident.expires_at == info.expires_at
    clock.now += 3599
    assert store.lookup(token) is not None
    clock.now += 1
    assert store.lookup(token) is None
    clock.now -= 10  # a clock stepped back: valid again, as its expiry says
    assert store.lookup(token) is not None


def test_list_shows_records_never_tokens(store: TokenStore, clock: Clock) -> None:
    t1, i1 = store.create(READ_CONSOLE, display_name="one")
    clock.now += 1
    t2, i2 = store.create(READ_CONSOLE, display_name="two", ttl=60)
    store.revoke(i1.accessor)
    listed = store.list()
    assert [i.accessor for i in listed] == [i1.accessor, i2.accessor]
    assert listed[0].revoked and not listed[1].revoked
    assert listed[1].expires_at == i2.expires_at
    assert t1 not in repr(listed) and t2 not in repr(listed)
    assert "token" not in TokenInfo.__slots__  # type: ignore[attr-defined]


def test_files_are_private(store: TokenStore, home: Path) -> None:
    store.create(READ_CONSOLE, display_name="t")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    db = home / TOKENS_FILE
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.with_name(db.name + ".token").stat().st_mode) == 0o600
    for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "audit.log").stat().st_mode) == 0o600


def test_token_is_never_stored_in_clear(store: TokenStore, home: Path) -> None:
    import base64

    tokens = [store.create(READ_CONSOLE, display_name="t")[0] for _ in range(5)]
    raw = b"".join(p.read_bytes() for p in home.iterdir())  # db, -wal, -shm, audit.log
    for token in tokens:
        body = token.removeprefix(TOKEN_PREFIX)
        assert token.encode() not in raw
        assert body.encode() not in raw
        assert base64.urlsafe_b64decode(body + "=") not in raw


def test_revocation_reaches_another_instance_at_once(
        home: Path, store: TokenStore, clock: Clock) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    other = TokenStore.from_home(str(home), clock=clock)  # another process, in effect
    try:
        assert other.lookup(token) is not None  # cached there
        store.revoke(info.accessor)
        assert other.lookup(token) is None  # the change token said so
    finally:
        other.close()


def revoke_without_bump(home: Path, accessor: str) -> None:
    """What a writer killed between its commit and its change-token bump leaves."""
    conn = sqlite3.connect(home / TOKENS_FILE)
    with conn:
        conn.execute("UPDATE tokens SET revoked_at = 1 WHERE accessor = ?", (accessor,))
        conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")
    conn.close()


def test_a_lost_bump_is_caught_within_the_refresh(
        home: Path, store: TokenStore, clock: Clock) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(token) is not None
    revoke_without_bump(home, info.accessor)
    clock.now += 0.5
    assert store.lookup(token) is not None  # within the refresh interval: cached
    clock.now += 0.5
    assert store.lookup(token) is None


def test_refresh_zero_checks_the_database_on_every_lookup(
        home: Path, store: TokenStore, clock: Clock) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    other = TokenStore.from_home(str(home), clock=clock, refresh=0)
    try:
        assert other.lookup(token) is not None
        revoke_without_bump(home, info.accessor)
        assert other.lookup(token) is None
    finally:
        other.close()


def test_clock_stepping_back_does_not_freeze_the_cache(
        home: Path, store: TokenStore, clock: Clock) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(token) is not None
    revoke_without_bump(home, info.accessor)
    clock.now -= 3600
    assert store.lookup(token) is None


def test_a_new_token_is_usable_at_once_elsewhere(home: Path, store: TokenStore,
                                                 clock: Clock) -> None:
    other = TokenStore.from_home(str(home), clock=clock)
    try:
        assert other.lookup(TOKEN_PREFIX + "A" * 43) is None
        token, _ = store.create(READ_CONSOLE, display_name="t")
        assert other.lookup(token) is not None  # unknown tokens are never cached
    finally:
        other.close()


def test_a_forked_child_uses_its_own_connection(store: TokenStore) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    assert store.lookup(token) is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            ok = store.lookup(token) is not None and store.revoke(info.accessor)
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(info.accessor).revoked  # type: ignore[union-attr]
    fresh = TokenStore(store.path)
    try:
        assert fresh.lookup(token) is None
    finally:
        fresh.close()


def test_create_and_revoke_are_audited_by_accessor(store: TokenStore, home: Path) -> None:
    token, info = store.create(READ_CONSOLE, display_name="ci", ttl=60, policy="read")
    store.revoke(info.accessor)
    store.revoke(info.accessor)  # nothing revoked: no line
    log = str(home / "audit.log")
    entries = tail(log, 10)
    assert [e["op"] for e in entries] == ["token-create", "token-revoke"]
    created, revoked = entries
    assert created["accessor"] == info.accessor and created["tenant"] == "acme"
    assert created["policy"] == "read" and created["name"] == "ci"
    assert created["rules"] == ["read,list on acme/console/*"]
    assert str(created["expires_at"]).endswith("Z")
    assert revoked["accessor"] == info.accessor
    assert token not in (home / "audit.log").read_text()
    assert verify(log).ok


def test_unwritable_audit_log_makes_no_token(home: Path, clock: Clock) -> None:
    home.mkdir(mode=0o700)
    (home / "audit.log").mkdir()  # cannot be opened for appending
    s = TokenStore.from_home(str(home), audit=AuditLog(str(home / "audit.log")), clock=clock)
    try:
        with pytest.raises(UnavailableError, match="audit log"):
            s.create(READ_CONSOLE, display_name="t")
        assert s.list() == []
    finally:
        s.close()


def test_unwritable_audit_log_revokes_nothing(home: Path, store: TokenStore) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    (home / "audit.log").unlink()
    (home / "audit.log").mkdir()
    with pytest.raises(UnavailableError):
        store.revoke(info.accessor)
    assert store.lookup(token) is not None


@pytest.mark.parametrize("rules", [(), (Rule(capabilities=frozenset()),),
                                   (Rule(capabilities=frozenset({"sudo"})),),
                                   (Rule(capabilities=frozenset({"read"}), app="a/b"),),
                                   (Rule(capabilities=frozenset({"read"}), key=".."),)])
def test_bad_rules_are_refused(store: TokenStore, rules: tuple[Rule, ...]) -> None:
    with pytest.raises(ConfigError):
        store.create(rules, display_name="t")


@pytest.mark.parametrize("name", ["", "  ", "a\nb", "x" * 201])
def test_bad_display_names_are_refused(store: TokenStore, name: str) -> None:
    with pytest.raises(ConfigError, match="display name"):
        store.create(READ_CONSOLE, display_name=name)


@pytest.mark.parametrize("ttl", [0, -1, 1e12])
def test_bad_ttls_are_refused(store: TokenStore, ttl: float) -> None:
    with pytest.raises(ConfigError, match="time to live"):
        store.create(READ_CONSOLE, display_name="t", ttl=ttl)


def test_a_row_that_cannot_be_read_grants_nothing(store: TokenStore, home: Path) -> None:
    token, info = store.create(READ_CONSOLE, display_name="t")
    conn = sqlite3.connect(home / TOKENS_FILE)
    with conn:
        conn.execute("UPDATE tokens SET rules = ? WHERE accessor = ?",
                     ('[{"capabilities": ["read", "everything"], "tenant": "*", '
                      '"app": "*", "key": "*"}]', info.accessor))
    conn.close()
    fresh = TokenStore(store.path)
    try:
        assert fresh.lookup(token) is None
        with pytest.raises(Exception, match=info.accessor):
            fresh.list()
    finally:
        fresh.close()


def test_not_a_token_store(tmp_path: Path) -> None:
    from macula_secrets.errors import FormatError

    bad = tmp_path / TOKENS_FILE
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(FormatError, match="not a macula-secrets token store"):
        TokenStore(str(bad))


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800), (" 2h ", 7200),
])
def test_parse_ttl(text: str, seconds: float) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-1h", "1.5h", "1w", "h", "1h30m",
                                  "99999999999d"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_ttl(text)
