"""The Unix socket: mode 0600, and the peer's uid (SO_PEERCRED) as its identity."""

from __future__ import annotations

import json
import os
import stat

from ._support import UnixConnection
from .conftest import READER, Running


def call(path: str, method: str, url: str, body: object = None,
         token: str | None = None) -> tuple[int, dict[str, object] | None]:
    conn = UnixConnection(path)
    try:
        headers = {"X-Vault-Token": token} if token else {}
        conn.request(method, url, body=None if body is None else json.dumps(body),
                     headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw) if raw else None


def test_peer_uid_is_the_identity(unix_server: Running) -> None:
    path = unix_server.url.removeprefix("unix://")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # No token: this process runs as the server's uid, which may do everything.
    status, _ = call(path, "POST", "/v1/secret/data/macula/console/db", {"data": {"value": "v"}})
    assert status == 200
    status, body = call(path, "GET", "/v1/secret/data/macula/console/db")
    assert status == 200 and body["data"]["data"]["value"] == "v"  # type: ignore[index]
    # A token, when sent, is what counts.
    assert call(path, "POST", "/v1/secret/data/macula/console/db", {"data": {"value": "w"}},
                token=READER)[0] == 403
    with open(unix_server.audit_path, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    assert entries[0]["peer_uid"] == os.getuid()
    assert entries[0]["accessor"] == f"unix-uid-{os.getuid()}"


def test_other_uids_need_a_token(unix_server: Running) -> None:
    from macula_secrets.server.run import _peer_identity

    from .conftest import FakeTokens

    identify = _peer_identity(FakeTokens())
    assert identify(os.geteuid()) is not None
    assert identify(os.geteuid() + 12345) is None
