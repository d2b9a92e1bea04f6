"""A Unix peer's uid maps to an identity: ``token create --uid`` binds one, revoking ends it.

The server listens on a Unix socket opened to another user (mode 0660 and
then, for this test, 0666 on a path that user can reach); a child forked
from the test drops to uid 65534 and asks without a token. What it may do
is exactly what the token bound to its uid grants.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets.server.policy import build_rules
from macula_secrets.server.run import ServeOptions, prepare, start_in_thread
from macula_secrets.server.tokens import TokenStore

from ._support import UnixConnection

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")

NOBODY = 65534




def _as_uid(uid: int, path: str, method: str, url: str, body: object = None) -> int:
    """The HTTP status a request gets when sent by a child running as ``uid``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            conn = UnixConnection(path)
            conn.request(method, url, body=None if body is None else json.dumps(body))
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except OSError:
            status = 1
        finally:
            os.write(write, str(status).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        answer = int(f.read() or 0)
    os.waitpid(pid, 0)
    return answer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, TokenStore, Secrets]]:
    outer = Path(tempfile.mkdtemp(prefix="macula-serve-test-"))
    outer.chmod(0o711)
    sock = outer / "s.sock"
    home = tmp_path / "home"
    secrets = Secrets.open(home=home, source="none", env={})
    secrets.put("console", "db", "v1")
    secrets.put("billing", "db", "b1")
    tokens = TokenStore.from_home(str(home))
    serving = prepare(ServeOptions(unix_socket=str(sock), unix_socket_mode=0o660),
                      secrets=secrets, authenticator=tokens, out=lambda _l: None)
    thread = start_in_thread(serving)
    try:
        sock.chmod(0o666)  # as a group of users would be given access, for uid 65534 here
        yield str(sock), tokens, secrets
    finally:
        serving.stop()
        thread.join(timeout=15)
        tokens.close()
        secrets.close()
        shutil.rmtree(outer)


def test_a_bound_uid_has_its_tokens_rights_and_no_more(
        served: tuple[str, TokenStore, Secrets]) -> None:
    path, tokens, secrets = served
    url = "/v1/secret/data/macula/console/db"
    # Unbound, another uid gets nothing without a token.
    assert _as_uid(NOBODY, path, "GET", url) == 403
    _, info = tokens.create(build_rules("read", apps=["console"], keys=["*"], tenant="default"),
                            display_name="nobody reads console", uid=NOBODY)
    assert tokens.lookup_uid(NOBODY) is not None
    assert _as_uid(NOBODY, path, "GET", url) == 200
    assert _as_uid(NOBODY, path, "GET", "/v1/secret/data/macula/billing/db") == 403
    assert _as_uid(NOBODY, path, "POST", url, {"data": {"value": "v2"}}) == 403
    assert secrets.get("console", "db") == "v1"
    assert tokens.uids() == {info.accessor: [NOBODY]}
    # Revoking the token ends the binding too.
    assert tokens.revoke(info.accessor)
    assert tokens.lookup_uid(NOBODY) is None
    assert _as_uid(NOBODY, path, "GET", url) == 403


def test_a_new_binding_replaces_the_old_and_expiry_counts(tmp_path: Path) -> None:
    now = [1_000.0]
    with TokenStore.from_home(str(tmp_path / "home"), clock=lambda: now[0]) as tokens:
        read = build_rules("read", apps=["console"], keys=["*"], tenant="default")
        write = build_rules("write", apps=["web"], keys=["*"], tenant="default")
        tokens.create(read, display_name="first", uid=1234)
        _, second = tokens.create(write, display_name="second", uid=1234, ttl=60)
        identity = tokens.lookup_uid(1234)
        assert identity is not None and identity.accessor == second.accessor
        assert identity.allows("create", "default", "web", "k")
        assert not identity.allows("read", "default", "console", "k")
        now[0] += 61
        assert tokens.lookup_uid(1234) is None
        assert tokens.lookup_uid(4321) is None
