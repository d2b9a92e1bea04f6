"""Black-box tests of the runtime-store commands: get, put, list, history, delete,
undelete, destroy, rollback, sync, run, key rotate-master."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from macula_secrets import sops as sopslib
from tests.cli._support import CANARY, Result, run_cli, run_proc
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET


def cli(env: dict[str, str], *args: str, input: bytes = b"") -> Result:
    return run_cli(*args, env=env, input=input)


def write_app(folder: Path, app: str, data: dict[str, object], ext: str = "yaml") -> Path:
    fmt = {"yaml": "yaml", "json": "json", "env": "dotenv"}[ext]
    path = folder / f"{app}.enc.{ext}"
    path.write_bytes(sopslib.encrypt(data, recipients=[TEST_AGE_PUBLIC], format=fmt))
    return path


def test_put_get_history_rollback(store_env: dict[str, str]) -> None:
    assert cli(store_env, "put", "console", "token", "one").assert_ok().text == \
        "console/token: version 1\n"
    cli(store_env, "put", "console", "token", input=b"two\n").assert_ok()
    assert cli(store_env, "get", "console", "token").assert_ok().text == "two\n"
    assert cli(store_env, "get", "-n", "console", "token").assert_ok().text == "two"
    assert cli(store_env, "get", "console", "token", "--version", "1").assert_ok().text == "one\n"
    data = json.loads(cli(store_env, "get", "console", "token", "--json").assert_ok().text)
    assert data == {"tenant": "default", "app": "console", "key": "token", "version": 2,
                    "value": "two"}
    hist = json.loads(cli(store_env, "history", "console", "token", "--json").assert_ok().text)
    assert [(h["version"], h["state"], h["current"]) for h in hist] == [
        (1, "live", False), (2, "live", True)]
    table = cli(store_env, "history", "console", "token").assert_ok().text.splitlines()
    assert table[0].split()[0] == "VERSION" and table[-1].endswith("current")
    out = cli(store_env, "rollback", "console", "token", "1").assert_ok().text
    assert out.startswith("console/token: version 3")
    assert cli(store_env, "get", "console", "token").assert_ok().text == "one\n"


def test_multiline_stdin_keeps_its_newlines(store_env: dict[str, str]) -> None:
    pem = b"-----BEGIN X-----\nabc\n-----END X-----\n"
    cli(store_env, "put", "web", "cert", input=pem).assert_ok()
    assert cli(store_env, "get", "-n", "web", "cert").assert_ok().out == pem


def test_cas(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "a", "k", "v1", "--cas", "0").assert_ok()
    line = cli(store_env, "put", "a", "k", "v2", "--cas", "0").assert_one_error()
    assert "check-and-set" in line and "a/k" in line
    cli(store_env, "put", "a", "k", "v2", "--cas", "1").assert_ok()


def test_delete_undelete_destroy_list(store_env: dict[str, str]) -> None:
    for key in ("k1", "k2"):
        cli(store_env, "put", "app", key, CANARY).assert_ok()
    assert cli(store_env, "list", "app").assert_ok().text == "k1\nk2\n"
    assert cli(store_env, "list").assert_ok().text == "app\n"
    cli(store_env, "delete", "app", "k1").assert_ok()
    assert cli(store_env, "list", "app").assert_ok().text == "k2\n"
    assert json.loads(cli(store_env, "list", "app", "--all", "--json").assert_ok().text) == [
        "k1", "k2"]
    cli(store_env, "get", "app", "k1").assert_one_error()
    cli(store_env, "undelete", "app", "k1").assert_ok()
    assert cli(store_env, "get", "app", "k1").assert_ok().text == CANARY + "\n"
    cli(store_env, "destroy", "app", "k1", "--versions", "1").assert_ok()
    cli(store_env, "get", "app", "k1").assert_one_error()
    hist = json.loads(cli(store_env, "history", "app", "k1", "--json").assert_ok().text)
    assert hist[0]["state"] == "destroyed"
    r = cli(store_env, "destroy", "app", "k1")
    assert r.rc == 2 and "--versions" in r.err
    cli(store_env, "delete", "app", "k1", "--versions", "x").assert_one_error()


@pytest.mark.parametrize("args", [
    ("get", "con/sole", "k"),
    ("get", "console", ".."),
    ("put", "console", "a\x01b", "v"),
    ("get", "console", "missing"),
    ("history", "console", "missing"),
    ("rollback", "console", "missing", "1"),
    ("delete", "console", "missing"),
])
def test_bad_names_and_missing_secrets_are_one_line_errors(store_env: dict[str, str],
                                                           args: tuple[str, ...]) -> None:
    cli(store_env, "put", "console", "present", CANARY).assert_ok()
    cli(store_env, *args).assert_one_error()


def test_value_size_limit(store_env: dict[str, str]) -> None:
    env = {**store_env, "MACULA_SECRETS_MAX_VALUE_SIZE": "10"}
    cli(env, "put", "a", "k", "x" * 10).assert_ok()
    line = cli(env, "put", "a", "k", input=b"y" * 11).assert_one_error()
    assert "11 bytes" in line and "limit of 10" in line
    assert cli(env, "get", "a", "k").assert_ok().text == "x" * 10 + "\n"


def test_tenants_are_separate(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "app", "k", "default-value").assert_ok()
    cli(store_env, "put", "--tenant", "acme", "app", "k", "acme-value").assert_ok()
    assert cli(store_env, "get", "app", "k", "--tenant", "acme").assert_ok().text == \
        "acme-value\n"
    assert cli(store_env, "get", "app", "k").assert_ok().text == "default-value\n"
    env = {**store_env, "MACULA_SECRETS_TENANT": "acme"}
    assert cli(env, "get", "app", "k").assert_ok().text == "acme-value\n"


def test_sync_is_idempotent_and_names_a_bad_file(store_env: dict[str, str]) -> None:
    folder = Path(store_env["MACULA_SECRETS_DIR"])
    write_app(folder, "console", {"db": {"password": CANARY, "port": 5432}, "debug": True})
    write_app(folder, "billing", {"STRIPE": "sk"}, "env")
    bad = folder / "broken.enc.yaml"
    bad.write_text("not: [a sops file\n")
    r = cli(store_env, "sync")
    assert r.rc == 1
    assert "console: 3 added" in r.text and "billing: 1 added" in r.text
    assert "broken.enc.yaml" in r.err and CANARY not in r.err and "Traceback" not in r.err
    bad.unlink()
    r = cli(store_env, "sync").assert_ok()
    assert "up to date" in r.text and "nothing changed" in r.err
    assert cli(store_env, "get", "console", "db.port").assert_ok().text == "5432\n"
    assert cli(store_env, "get", "console", "debug").assert_ok().text == "true\n"
    report = json.loads(cli(store_env, "sync", "--json").assert_ok().text)
    assert all(not (a["added"] or a["changed"] or a["deleted"]) for a in report)


def test_put_on_an_app_with_a_file_changes_the_file(store_env: dict[str, str]) -> None:
    folder = Path(store_env["MACULA_SECRETS_DIR"])
    path = write_app(folder, "console", {"a": "1", "b": "2"})
    before = path.read_text().splitlines()
    cli(store_env, "put", "console", "b", "3").assert_ok()
    after = path.read_text().splitlines()
    changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    names = [before[i].split(":")[0] for i in changed]
    # lastmodified has one-second precision: it may not have moved.
    assert names in (["b", "    lastmodified", "    mac"], ["b", "    mac"])
    assert sopslib.load(path, identities=[TEST_AGE_SECRET]) == {"a": "1", "b": "3"}


def test_rotate_master_key(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "app", "k", CANARY).assert_ok()
    key_file = Path(store_env["MACULA_SECRETS_HOME"]) / "master.key"
    old = key_file.read_text()
    r = cli(store_env, "key", "rotate-master", "--reencrypt").assert_ok()
    assert "master key rotated" in r.err and CANARY not in r.err
    assert key_file.read_text() != old
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert cli(store_env, "get", "app", "k").assert_ok().text == CANARY + "\n"


def test_group_readable_master_key_is_refused(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "app", "k", "v").assert_ok()
    key_file = Path(store_env["MACULA_SECRETS_HOME"]) / "master.key"
    key_file.chmod(0o640)
    r = cli(store_env, "get", "app", "k")
    line = r.assert_one_error()
    assert "can be read by others" in line
    assert f"chmod 600 {key_file}" in r.err


def test_run_injects_env_and_passes_the_exit_status(store_env: dict[str, str]) -> None:
    folder = Path(store_env["MACULA_SECRETS_DIR"])
    write_app(folder, "console", {"database": {"url": "postgres://x"}, "api-token": CANARY})
    env = {**os.environ, **store_env}
    script = 'printf "%s|%s" "$DATABASE_URL" "$API_TOKEN"; exit 7'
    r = run_proc("run", "--app", "console", "--", "sh", "-c", script, env=env)
    assert r.rc == 7, r.err
    assert r.out == f"postgres://x|{CANARY}".encode()
    r = run_proc("run", "--app", "console", "--prefix", "APP_", "--only", "database.url",
                 "--pristine", "--", "/usr/bin/env", env=env)
    assert r.rc == 0, r.err
    assert r.out == b"APP_DATABASE_URL=postgres://x\n"


def test_run_errors(store_env: dict[str, str]) -> None:
    cli(store_env, "put", "a", "x.y", "1").assert_ok()
    cli(store_env, "put", "b", "x_y", "2").assert_ok()
    env = {**os.environ, **store_env}
    line = run_proc("run", "--app", "a", "--app", "b", "--", "true", env=env).assert_one_error()
    assert "$X_Y" in line
    run_proc("run", "--app", "a", "--", "no-such-command-xyz", env=env).assert_one_error()
    run_proc("run", "--app", "a", env=env).assert_one_error()
    run_proc("run", "--app", "a", "--only", "nope", "--", "true", env=env).assert_one_error()


def test_help_documents_every_store_command() -> None:
    for command in ("get", "put", "delete", "undelete", "destroy", "list", "history",
                    "rollback", "sync", "run"):
        r = run_cli(command, "--help")
        assert r.rc == 0 and "--home" in r.text and "--tenant" in r.text, command
    r = run_cli("key", "rotate-master", "--help")
    assert r.rc == 0 and "--reencrypt" in r.text
