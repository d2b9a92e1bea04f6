"""Listing commands: ``--json`` everywhere, aligned tables for a person at a terminal,
plain names and no escape codes for a pipe or with ``NO_COLOR``."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from macula_secrets.cli import build_parser
from tests.cli._support import MACULA_BIN, run_cli, run_proc

LISTINGS = [("list",), ("history", "app", "key"), ("token", "list"), ("audit", "tail"),
            ("node", "list"), ("agent", "status"), ("sync",), ("doctor",)]


@pytest.mark.parametrize("words", LISTINGS, ids=" ".join)
def test_every_listing_has_json(words: tuple[str, ...]) -> None:
    args = build_parser().parse_args([*words, "--json"])
    assert args.json is True


@pytest.fixture
def env(tmp_path: Path, private_cwd: Path) -> dict[str, str]:
    env = {"MACULA_SECRETS_HOME": str(tmp_path / "home"), "MACULA_SECRETS_CONFIG": "",
           "MACULA_SECRETS_TENANT": "", "MACULA_SECRETS_DIR": "", "NO_COLOR": ""}
    for key, value in (("db_password", "v1"), ("api_token", "v2"), ("db_password", "v3")):
        run_cli("put", "console", key, value, env=env).assert_ok()
    run_cli("token", "create", "--app", "console", "--key", "db_*", "--key", "api_*",
            "--policy", "read", "--name", "reader", env=env).assert_ok()
    return env


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the listing commands believe stdout is a terminal."""
    monkeypatch.setattr("macula_secrets.cli.storecmds.is_terminal", lambda _stream: True)


def test_list_is_a_table_on_a_terminal(env: dict[str, str], terminal: None) -> None:
    text = run_cli("list", "console", env={**env, "NO_COLOR": "1"}).assert_ok().text
    lines = text.splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "UPDATED", "(UTC)", "ORIGIN"]
    assert [line.split()[:2] for line in lines[1:]] == [["api_token", "1"],
                                                         ["db_password", "2"]]
    assert lines[1].split()[-1] == "local"
    for column in ("VERSION", "UPDATED", "ORIGIN"):  # aligned under the header
        at = lines[0].index(column)
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in lines[1:])
    assert "\x1b[" not in text  # NO_COLOR
    apps = run_cli("list", env=env).assert_ok().text
    assert apps.splitlines()[0].startswith("\x1b[1mAPP") and "console  2" in apps


def test_list_is_names_when_piped(env: dict[str, str]) -> None:
    assert run_cli("list", "console", env=env).assert_ok().text == "api_token\ndb_password\n"


def test_token_list_is_a_table_on_a_terminal(env: dict[str, str], terminal: None) -> None:
    text = run_cli("token", "list", env={**env, "NO_COLOR": "1"}).assert_ok().text
    header, first, second = text.splitlines()
    assert header.split() == ["ACCESSOR", "STATE", "EXPIRES", "NAME", "RULES"]
    assert first.split()[1:4] == ["active", "never", "reader"]
    rules = header.index("RULES")
    assert first[rules:] == "read,list on default/console/db_*"
    assert second[:rules].strip() == "" and second[rules:] == "read,list on default/console/api_*"


def test_history_header_bold_only_on_a_terminal(env: dict[str, str],
                                                terminal: None) -> None:
    bold = run_cli("history", "console", "db_password", env=env).assert_ok().text
    assert bold.startswith("\x1b[1mVERSION")
    plain = run_cli("history", "console", "db_password",
                    env={**env, "NO_COLOR": "1"}).assert_ok().text
    assert plain.startswith("VERSION") and "\x1b[" not in plain


def test_real_terminal_and_pipe(env: dict[str, str]) -> None:
    """The real isatty(): a pseudo-terminal gets the table, a pipe the names."""
    child_env = {**os.environ, **{k: v for k, v in env.items() if v}}
    child_env.pop("NO_COLOR", None)
    main, sub = pty.openpty()
    try:
        done = subprocess.run([MACULA_BIN, "list", "console"], stdout=sub,
                              stderr=subprocess.PIPE, env=child_env, timeout=60, check=False)
        os.close(sub)
        out = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
    assert done.returncode == 0, done.stderr
    assert b"\x1b[1mKEY" in out and b"db_password" in out
    piped = run_proc("list", "console", env=child_env)
    assert piped.rc == 0 and piped.out == b"api_token\ndb_password\n"


def test_agent_status_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "MACULA_"))}
    env.update({"MACULA_SECRETS_AGENT_SOCK": str(tmp_path / "run" / "agent.sock"),
                "MACULA_SECRETS_HOME": str(tmp_path / "home")})
    assert run_proc("agent", "start", "--ttl", "5m", env=env).rc == 0
    try:
        result = run_proc("agent", "status", "--json", env=env)
        assert result.rc == 0, result.err
        doc = json.loads(result.out)
        assert doc["socket"] == env["MACULA_SECRETS_AGENT_SOCK"]
        assert doc["held"] == 0 and doc["ttl_seconds"] == 300.0 and doc["pid"] > 0
    finally:
        run_proc("agent", "stop", env=env)
