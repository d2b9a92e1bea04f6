"""Black-box tests of ``token create``, ``token list`` and ``token revoke``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macula_secrets.audit import tail, verify
from macula_secrets.server.auth import Identity, Rule
from macula_secrets.server.policy import POLICIES
from macula_secrets.server.tokens import TOKEN_PREFIX, TokenStore
from tests.cli._support import Result, run_cli


@pytest.fixture
def home(tmp_path: Path, private_cwd: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"MACULA_SECRETS_HOME": str(home), "MACULA_SECRETS_CONFIG": "",
            "MACULA_SECRETS_TENANT": ""}


def cli(env: dict[str, str], *args: str) -> Result:
    return run_cli(*args, env=env)


def lookup(home: Path, token: str) -> Identity | None:
    with TokenStore.from_home(str(home)) as store:
        return store.lookup(token)


def identity(home: Path, token: str) -> Identity:
    found = lookup(home, token)
    assert found is not None
    return found


def create(env: dict[str, str], *args: str) -> tuple[str, str]:
    """Run ``token create``; return the token and the accessor it reported."""
    r = cli(env, "token", "create", *args).assert_ok()
    lines = r.text.splitlines()
    assert len(lines) == 1 and lines[0].startswith(TOKEN_PREFIX)
    token = lines[0]
    assert token not in r.err
    accessor = r.err.split("macula: token ", 1)[1].split()[0]
    return token, accessor


def test_create_prints_the_token_once_and_it_looks_up(env: dict[str, str], home: Path) -> None:
    r = cli(env, "token", "create", "--app", "console", "--app", "billing-*",
            "--key", "db_*", "--policy", "read", "--tenant", "acme", "--ttl", "1h",
            "--name", "ci reader").assert_ok()
    token = r.text.strip()
    assert r.text.count(TOKEN_PREFIX) == 1 and len(token) == 47
    assert token not in r.err
    assert "policy read" in r.err and "expires 20" in r.err
    assert "read,list on acme/console/db_*" in r.err
    assert "read,list on acme/billing-*/db_*" in r.err
    ident = identity(home, token)
    caps = POLICIES["read"]
    assert ident.rules == (
        Rule(caps, app="console", key="db_*", tenant="acme"),
        Rule(caps, app="billing-*", key="db_*", tenant="acme"))
    assert ident.display_name == "ci reader"
    assert ident.expires_at is not None


def test_create_defaults(env: dict[str, str], home: Path) -> None:
    token, _ = create(env, "--app", "console", "--policy", "write")
    ident = identity(home, token)
    assert ident.rules == (Rule(POLICIES["write"], app="console", key="*", tenant="default"),)
    assert ident.expires_at is None
    assert ident.display_name == "write console"


def test_create_takes_the_configured_tenant(env: dict[str, str], home: Path) -> None:
    token, _ = create({**env, "MACULA_SECRETS_TENANT": "acme"}, "--app", "a", "--policy", "read")
    assert identity(home, token).rules[0].tenant == "acme"


def test_admin_all_tenants(env: dict[str, str], home: Path) -> None:
    token, _ = create(env, "--app", "*", "--policy", "admin", "--all-tenants")
    assert identity(home, token).allows("destroy", "anyone", "any", "k")


def test_create_json(env: dict[str, str], home: Path) -> None:
    r = cli(env, "token", "create", "--app", "console", "--policy", "read", "--json",
            "--ttl", "30m").assert_ok()
    assert r.err == ""
    doc = json.loads(r.text)
    assert doc["token"].startswith(TOKEN_PREFIX)
    assert doc["policy"] == "read" and doc["revoked"] is False and doc["expired"] is False
    assert doc["rules"] == [{"capabilities": ["read", "list"], "tenant": "default",
                             "app": "console", "key": "*"}]
    assert doc["expires_at"].endswith("Z")
    assert identity(home, doc["token"]).accessor == doc["accessor"]


def test_list_never_shows_tokens(env: dict[str, str]) -> None:
    t1, a1 = create(env, "--app", "console", "--policy", "read", "--name", "one")
    t2, a2 = create(env, "--app", "billing", "--policy", "write", "--ttl", "7d")
    cli(env, "token", "revoke", a1).assert_ok()
    r = cli(env, "token", "list").assert_ok()
    assert r.err == ""
    for out in (r.text, cli(env, "token", "list", "--json").assert_ok().text):
        assert t1 not in out and t2 not in out and TOKEN_PREFIX not in out
        assert t1[len(TOKEN_PREFIX):] not in out and t2[len(TOKEN_PREFIX):] not in out
    lines = r.text.splitlines()
    assert lines[0].startswith(a1) and "revoked" in lines[0] and "one" in lines[0]
    assert lines[1].strip() == "read,list on default/console/*"
    assert lines[2].startswith(a2) and "active" in lines[2]
    doc = json.loads(cli(env, "token", "list", "--json").assert_ok().text)
    assert [(d["accessor"], d["revoked"]) for d in doc] == [(a1, True), (a2, False)]


def test_list_when_empty(env: dict[str, str]) -> None:
    r = cli(env, "token", "list").assert_ok()
    assert r.out == b"" and r.err == "macula: no tokens\n"
    assert json.loads(cli(env, "token", "list", "--json").assert_ok().text) == []


def test_revoke_then_lookup_finds_nothing(env: dict[str, str], home: Path) -> None:
    token, accessor = create(env, "--app", "console", "--policy", "read")
    assert lookup(home, token) is not None
    r = cli(env, "token", "revoke", accessor).assert_ok()
    assert r.out == b"" and r.err == f"macula: token {accessor} revoked\n"
    assert lookup(home, token) is None
    again = cli(env, "token", "revoke", accessor).assert_ok()
    assert "already revoked" in again.err


def test_create_and_revoke_are_audited_without_the_token(env: dict[str, str],
                                                          home: Path) -> None:
    token, accessor = create(env, "--app", "console", "--policy", "read")
    cli(env, "token", "revoke", accessor).assert_ok()
    log = home / "audit.log"
    assert [(e["op"], e["accessor"]) for e in tail(str(log))] == [
        ("token-create", accessor), ("token-revoke", accessor)]
    assert token not in log.read_text()
    assert token[len(TOKEN_PREFIX):] not in log.read_text()
    assert verify(str(log)).ok


def test_home_option(tmp_path: Path, private_cwd: Path) -> None:
    home = tmp_path / "elsewhere"
    r = run_cli("token", "create", "--app", "a", "--policy", "read", "--home", str(home))
    token = r.assert_ok().text.strip()
    assert lookup(home, token) is not None
    assert (home / "tokens.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--app", "a/b"], "app glob 'a/b' contains a path separator"),
    (["--app", "..x"], "app glob '..x' contains '..'"),
    (["--app", ""], "app glob is empty"),
    (["--app", "a", "--key", "k/*"], "key glob 'k/*' contains a path separator"),
    (["--app", "a", "--tenant", "ac*"], "tenant name 'ac*' contains a glob character"),
    (["--app", "a", "--tenant", "../x"], "tenant name"),
    (["--app", "a", "--all-tenants"], "--all-tenants needs --policy admin"),
    (["--app", "a", "--ttl", "soon"], "not a duration: 'soon'"),
    (["--app", "a", "--ttl", "0"], "more than 0"),
    (["--app", "a", "--name", ""], "display name is empty"),
])
def test_bad_create_input_is_one_line_exit_1(env: dict[str, str], home: Path,
                                             args: list[str], message: str) -> None:
    policy = ["--policy", "read"]
    line = cli(env, "token", "create", *args, *policy).assert_one_error(1)
    assert message in line
    assert not (home / "tokens.db").exists() or cli(env, "token", "list", "--json").text == "[]\n"


def test_all_tenants_with_a_tenant_is_refused(env: dict[str, str]) -> None:
    line = cli(env, "token", "create", "--app", "a", "--policy", "admin", "--all-tenants",
               "--tenant", "acme").assert_one_error(1)
    assert "exclude each other" in line


def test_unknown_policy_is_a_usage_error(env: dict[str, str]) -> None:
    r = cli(env, "token", "create", "--app", "a", "--policy", "root")
    assert r.rc == 2 and r.out == b"" and "invalid choice: 'root'" in r.err


@pytest.mark.parametrize(("accessor", "message"), [
    ("0" * 24, "no token with accessor 000000000000000000000000"),
    ("nope", "not an accessor"),
    (TOKEN_PREFIX + "A" * 43, "that is a token, not an accessor"),
])
def test_bad_revoke_input_is_one_line_exit_1(env: dict[str, str], accessor: str,
                                             message: str) -> None:
    create(env, "--app", "console", "--policy", "read")
    line = cli(env, "token", "revoke", accessor).assert_one_error(1)
    assert message in line
    assert "A" * 43 not in line  # a pasted token is never echoed


def test_unwritable_audit_log_creates_nothing(env: dict[str, str], home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "audit.log").mkdir()
    line = cli(env, "token", "create", "--app", "a", "--policy", "read").assert_one_error(1)
    assert "audit log" in line
    assert cli(env, "token", "list", "--json").assert_ok().text == "[]\n"
