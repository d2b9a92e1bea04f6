"""Issue 6: the server's audit log is a hash chain that `audit verify --server` checks.

After a few requests of every kind (a write, reads, a refused token, a bad
path, a listing, a delete), ``macula-secrets audit verify --server`` (the
real command, in its own process) passes. Then, each on a copy of the file
in a home of its own: a line edited, a line edited with its own hash
recomputed, a line deleted, two lines swapped, a foreign line inserted;
verify fails and names the first line that breaks the chain, which is
worked out here for each change.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from macula_secrets.server.auth import Rule

from ._support import TokenServer, call, start_token_server

AUDIT = "audit-server.log"


def verify_cli(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACULA_SECRETS_")}
    return subprocess.run([sys.executable, "-m", "macula_secrets", "audit", "verify",
                           "--server", "--home", str(home)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The lines of a server's audit log after a few requests (the server is stopped)."""
    home = tmp_path_factory.mktemp("chain") / "home"
    gen = start_token_server(home)
    srv: TokenServer = next(gen)
    try:
        token, _ = srv.tokens.create([Rule(frozenset({"read", "list", "create", "update",
                                                      "delete"}), app="console")],
                                     display_name="chain")
        h = {"X-Vault-Token": token}
        url = "/v1/secret/data/macula/console/db"
        statuses = [
            call(srv.host, srv.port, "POST", url, json.dumps({"data": {"value": "v1"}}), h)[0],
            call(srv.host, srv.port, "GET", url, None, h)[0],
            call(srv.host, srv.port, "PUT", url, json.dumps({"data": {"value": "v2"}}), h)[0],
            call(srv.host, srv.port, "GET", url + "?version=1", None, h)[0],
            call(srv.host, srv.port, "GET", url, None, {"X-Vault-Token": "mst.nope"})[0],
            call(srv.host, srv.port, "GET", "/v1/secret/data/macula/web/db", None, h)[0],
            call(srv.host, srv.port, "GET", "/v1/secret/data/macula/%2e%2e/x", None, h)[0],
            call(srv.host, srv.port, "LIST", "/v1/secret/metadata/macula/console/", None, h)[0],
            call(srv.host, srv.port, "GET", "/v1/sys/health")[0],
            call(srv.host, srv.port, "DELETE", url, None, h)[0],
        ]
        assert statuses == [200, 200, 200, 200, 403, 403, 400, 200, 200, 204]
        # Ten requests, thirteen lines: each of the three changes has a request line first.
        # While it serves (the server holds its lock on the file), verify passes.
        done = verify_cli(home)
        assert done.returncode == 0, done.stderr
        assert f"{AUDIT}: 13 entries, hash chain intact" in done.stdout
    finally:
        gen.close()
    done = verify_cli(home)
    assert done.returncode == 0 and "13 entries, hash chain intact" in done.stdout
    return (home / AUDIT).read_bytes().splitlines(keepends=True)


def _edit(lines: list[bytes], i: int) -> list[bytes]:
    entry = json.loads(lines[i])
    entry["status"] = 200 if entry.get("status") != 200 else 403
    return [*lines[:i], json.dumps(entry).encode() + b"\n", *lines[i + 1:]]


def _edit_and_rehash(lines: list[bytes], i: int) -> list[bytes]:
    # A forger who recomputes the edited line's own hash: the next line's link breaks.
    from macula_secrets.audit import _canonical, _hash

    entry = json.loads(lines[i])
    entry["result"] = "ok" if entry["result"] != "ok" else "denied"
    entry["hash"] = _hash(entry["prev"], entry)
    return [*lines[:i], _canonical(entry) + b"\n", *lines[i + 1:]]


def _delete(lines: list[bytes], i: int) -> list[bytes]:
    return [*lines[:i], *lines[i + 1:]]


def _swap(i: int, j: int) -> Callable[[list[bytes], int], list[bytes]]:
    def swap(lines: list[bytes], _i: int) -> list[bytes]:
        out = list(lines)
        out[i], out[j] = out[j], out[i]
        return out
    return swap


def _insert(lines: list[bytes], i: int) -> list[bytes]:
    prev = json.loads(lines[i - 1])["hash"]
    fake = {"op": "read data", "prev": prev, "result": "ok",
            "hash": hashlib.sha256(b"not the chain").hexdigest()}
    return [*lines[:i], json.dumps(fake).encode() + b"\n", *lines[i:]]


# (what, change, index of the changed line (0-based), first broken line (1-based), reason)
CASES = [
    ("edit the first line", _edit, 0, 1, "its hash does not match (edited)"),
    ("edit line 4", _edit, 3, 4, "its hash does not match (edited)"),
    ("edit the last line", _edit, 12, 13, "its hash does not match (edited)"),
    ("edit line 5 and recompute its hash", _edit_and_rehash, 4, 6,
     "does not follow the line before"),
    ("delete the first line", _delete, 0, 1, "does not follow the line before"),
    ("delete line 6", _delete, 5, 6, "does not follow the line before"),
    ("swap lines 3 and 4", _swap(2, 3), 2, 3, "does not follow the line before"),
    ("swap lines 2 and 7", _swap(1, 6), 1, 2, "does not follow the line before"),
    ("swap the first two lines", _swap(0, 1), 0, 1, "does not follow the line before"),
    ("insert a line before line 5", _insert, 4, 5, "its hash does not match (edited)"),
]


@pytest.mark.parametrize(("what", "change", "index", "bad", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_verify_names_the_first_broken_line(audited: list[bytes], tmp_path: Path, what: str,
                                            change: Callable[[list[bytes], int], list[bytes]],
                                            index: int, bad: int, reason: str) -> None:
    home = tmp_path / "copy"
    home.mkdir(mode=0o700)
    changed = change(audited, index)
    assert changed != audited
    (home / AUDIT).write_bytes(b"".join(changed))
    done = verify_cli(home)
    assert done.returncode == 1, (what, done.stdout, done.stderr)
    assert f"{AUDIT}: line {bad} {reason}" in done.stderr, (what, done.stderr)
    assert "hash chain intact" not in done.stdout


def test_an_untouched_copy_verifies(audited: list[bytes], tmp_path: Path) -> None:
    home = tmp_path / "copy"
    home.mkdir(mode=0o700)
    (home / AUDIT).write_bytes(b"".join(audited))
    done = verify_cli(home)
    assert done.returncode == 0 and "13 entries, hash chain intact" in done.stdout


def test_cutting_the_tail_is_not_detected(audited: list[bytes], tmp_path: Path) -> None:
    """A hash chain with no anchor outside the file cannot tell a log cut short: the
    last lines removed leave a valid, shorter chain. Pinned so that a change here
    is noticed; see the report (an anchor, e.g. the head hash kept elsewhere)."""
    home = tmp_path / "copy"
    home.mkdir(mode=0o700)
    (home / AUDIT).write_bytes(b"".join(audited[:7]))
    done = verify_cli(home)
    assert done.returncode == 0 and "7 entries, hash chain intact" in done.stdout
