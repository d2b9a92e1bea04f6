"""The vault backend against a real OpenBao dev server, and its retries against a fake one.

One ``bao server -dev`` serves the whole module (in memory, KV v2 at
``secret/``); each test writes under a path prefix or app of its own. The
retry tests use a tiny scripted HTTP server on 127.0.0.1 instead, so that
they can answer 503, 429 and 403 on demand.
"""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macula_secrets.backends.vault import AppRole, RetryPolicy, VaultBackend
from macula_secrets.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from macula_secrets.testing import exercise_backend
from tests._openbao import Server, free_port

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def bao(bao_dev: Server) -> Server:
    return bao_dev


def _unique() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _root(bao: Server, **kwargs: Any) -> VaultBackend:
    return VaultBackend(bao.address, token=bao.token, **kwargs)


# -- conformance and versions ------------------------------------------------------


def test_conformance(bao: Server) -> None:
    prefix = _unique()
    exercise_backend(lambda: _root(bao, path_template=prefix + "/{app}/{key}"),
                     app="conformance", versioned=True)


def test_conformance_default_layout(bao: Server) -> None:
    app = _unique()
    exercise_backend(lambda: _root(bao), app=app, versioned=True)
    _, raw = bao.request("GET", f"/v1/secret/data/macula/{app}/value0")
    assert raw["data"]["data"] == {"value": "plain"}  # the documented layout


def test_versions_cas_delete_undelete_destroy(bao: Server) -> None:
    app = _unique()
    b = _root(bao)
    try:
        assert [b.put(app, "k", f"v{i}") for i in (1, 2, 3)] == [1, 2, 3]
        assert b.get(app, "k", version=1) == "v1"
        assert b.get(app, "k", version=9) is None
        with pytest.raises(ConflictError, match="check-and-set"):
            b.put(app, "k", "stale", cas=2)
        with pytest.raises(ConflictError):
            b.put(app, "k", "exists", cas=0)
        assert b.put(app, "k", "v4", cas=3) == 4
        assert b.put(app, "new", "x", cas=0) == 1

        b.delete(app, "k")
        assert b.get(app, "k") is None
        assert b.get(app, "k", version=3) == "v3"
        assert [v.state for v in b.versions(app, "k")] == ["live"] * 3 + ["deleted"]
        assert b.list(app) == ["new"]
        assert b.load_all(app) == {"new": "x"}
        with pytest.raises(NotFoundError):
            b.delete(app, "k")

        b.undelete(app, "k", [4])
        assert b.get(app, "k") == "v4"
        assert b.list(app) == ["k", "new"]

        b.destroy(app, "k", [1, 4])
        history = b.versions(app, "k")
        assert [v.state for v in history] == ["destroyed", "live", "live", "destroyed"]
        assert [v.current for v in history] == [False, False, False, True]
        assert history[0].created <= history[-1].created
        assert b.get(app, "k", version=1) is None
        assert b.get(app, "k") is None
        assert b.list(app) == ["new"]
        assert b.versions(app, "absent") == []
        assert app in b.apps()
    finally:
        b.close()


def test_load_all_reads_many_keys_concurrently(bao: Server) -> None:
    app = _unique()
    b = _root(bao, connections=3)
    try:
        want = {f"key{i:03d}": f"value {i}" for i in range(40)}
        for k, v in want.items():
            b.put(app, k, v)
        # Gone keys among them: absent answers inside pipelined batches.
        b.put(app, "deleted", "x")
        b.delete(app, "deleted")
        b.put(app, "destroyed", "x")
        b.destroy(app, "destroyed", [1])
        assert b.load_all(app) == want
        assert b.list(app) == sorted(want)
        assert b._reader.pipelining  # OpenBao answers pipelined requests in order
    finally:
        b.close()


def test_missing_mount_is_a_config_error(bao: Server) -> None:
    with _root(bao, mount="nothing-here") as b, pytest.raises(ConfigError, match="nothing-here"):
        b.get("app", "key")


# -- token sources -------------------------------------------------------------------


def test_token_from_env_and_file(bao: Server, tmp_path: Path) -> None:
    app = _unique()
    for env in ({"VAULT_TOKEN": bao.token}, {"BAO_TOKEN": bao.token}):
        with VaultBackend(bao.address, env=env) as b:
            b.put(app, "k", "v")
            assert bao.token not in repr(b)
    token_file = tmp_path / "token"
    token_file.write_text(bao.token + "\n")
    with VaultBackend(bao.address, token_file=token_file) as b:
        assert b.get(app, "k") == "v"
    with pytest.raises(ConfigError, match="no vault token") as info:
        VaultBackend(bao.address, env={})
    assert "VAULT_TOKEN" in (info.value.hint or "")


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="http"):
        VaultBackend("127.0.0.1:8200", token="x")
    with pytest.raises(ConfigError, match="template"):
        VaultBackend("http://127.0.0.1:1", token="x", path_template="macula/{key}/{app}")
    b = VaultBackend(["http://127.0.0.1:1", "http://127.0.0.1:2"], token="x")
    assert b.address == "http://127.0.0.1:1"
    with pytest.raises(ConfigError):
        b.get("../up", "k")


# -- AppRole ---------------------------------------------------------------------------

RW_POLICY = """
path "secret/data/macula/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/metadata/macula/*" { capabilities = ["read", "list", "delete"] }
"""

TTL = 2  # seconds: short enough to wait out in a test


@pytest.fixture(scope="module")
def approle(bao: Server, tmp_path_factory: pytest.TempPathFactory) -> AppRole:
    bao.request("POST", "/v1/sys/auth/approle", {"type": "approle"})
    bao.request("PUT", "/v1/sys/policies/acl/macula-rw", {"policy": RW_POLICY})
    bao.request("POST", "/v1/auth/approle/role/edge", {
        "token_policies": ["macula-rw"], "token_ttl": f"{TTL}s", "token_max_ttl": "30s"})
    _, role = bao.request("GET", "/v1/auth/approle/role/edge/role-id")
    _, secret = bao.request("POST", "/v1/auth/approle/role/edge/secret-id", {})
    folder = tmp_path_factory.mktemp("approle")
    (folder / "role_id").write_text(role["data"]["role_id"] + "\n")
    (folder / "secret_id").write_text(secret["data"]["secret_id"] + "\n")
    return AppRole(str(folder / "role_id"), str(folder / "secret_id"))


def test_approle_logs_in_again_after_the_token_expires(bao: Server, approle: AppRole) -> None:
    app = _unique()
    # One backend watches the clock and logs in before the token expires; the
    # other's clock stands still, so only Vault's 403 tells it the token is gone.
    proactive = VaultBackend(bao.address, approle=approle)
    reactive = VaultBackend(bao.address, approle=approle, clock=lambda: 0.0)
    try:
        assert proactive.put(app, "k", "v") == 1
        assert reactive.get(app, "k") == "v"
        assert (proactive.logins, reactive.logins) == (1, 1)
        first = reactive._token.value if reactive._token else None
        time.sleep(TTL + 0.5)
        assert proactive.get(app, "k") == "v"
        assert reactive.get(app, "k") == "v"
        assert (proactive.logins, reactive.logins) == (2, 2)
        second = reactive._token.value if reactive._token else None
        assert first != second
        assert first is not None
        assert first not in repr(reactive)
    finally:
        proactive.close()
        reactive.close()


def test_approle_token_is_renewed_past_half_its_ttl(bao: Server, approle: AppRole) -> None:
    now = [100.0]
    b = VaultBackend(bao.address, approle=approle, clock=lambda: now[0])
    try:
        app = _unique()
        b.put(app, "k", "v")
        assert (b.logins, b.renewals) == (1, 0)
        now[0] += TTL * 0.6  # past half the TTL, not yet near expiry
        assert b.get(app, "k") == "v"
        assert (b.logins, b.renewals) == (1, 1)
    finally:
        b.close()


def test_approle_with_a_wrong_secret_id(bao: Server, approle: AppRole, tmp_path: Path) -> None:
    wrong = tmp_path / "secret_id"
    wrong.write_text("00000000-0000-0000-0000-000000000000")
    b = VaultBackend(bao.address, approle=AppRole(approle.role_id_file, str(wrong)))
    with pytest.raises(PermissionDeniedError, match="approle login") as info:
        b.get("app", "k")
    assert "00000000" not in str(info.value)


# -- permissions -----------------------------------------------------------------------


def test_permission_denied(bao: Server) -> None:
    app = _unique()
    policy = (f'path "secret/data/macula/{app}/*" {{ capabilities = ["read"] }}\n'
              f'path "secret/metadata/macula/{app}/*" {{ capabilities = ["read", "list"] }}\n')
    bao.request("PUT", f"/v1/sys/policies/acl/{app}-ro", {"policy": policy})
    _, created = bao.request("POST", "/v1/auth/token/create",
                             {"policies": [f"{app}-ro"], "ttl": "1h"})
    token = created["auth"]["client_token"]
    with _root(bao) as root:
        root.put(app, "k", "v")
        root.put("other-" + app, "k", "v")
    b = VaultBackend(bao.address, token=token)
    try:
        assert b.get(app, "k") == "v"
        with pytest.raises(PermissionDeniedError) as write:
            b.put(app, "k", "new")
        assert str(write.value) == (f"permission denied for secret/data/macula/{app}/k "
                                    f"in vault at {b.address}")
        with pytest.raises(PermissionDeniedError) as read:
            b.get("other-" + app, "k")
        for err in (write.value, read.value):
            assert token not in str(err)
            assert token not in repr(err)
        assert token not in repr(b)
        assert isinstance(read.value, PermissionError)
    finally:
        b.close()


# -- unreachable, retries -------------------------------------------------------------------


def test_unreachable_vault_after_retries() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    delays: list[float] = []
    b = VaultBackend(address, token="tok-not-shown", retry=RetryPolicy(4, 0.5, 1.5),
                     sleep=delays.append, random=lambda: 1.0, timeout=2.0)
    with pytest.raises(UnavailableError) as info:
        b.get("app", "key")
    assert str(info.value) == f"cannot reach vault at {address}: connection refused"
    assert delays == [0.5, 1.0, 1.5]  # capped at max_delay
    delays.clear()
    with pytest.raises(UnavailableError):
        b.put("app", "key", "v")  # nothing was sent: a write is retried too
    assert len(delays) == 3


class _Script:
    """What the fake Vault answers: one (status, body) per KV request, in order."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.hits: list[str] = []
        self.raw_404 = False  # answer everything with an empty 404, as a web server would


def _kv_body(value: str, version: int = 1) -> dict[str, Any]:
    return {"data": {"data": {"value": value}, "metadata": {"version": version}}}


@pytest.fixture
def fake_vault() -> Iterator[tuple[str, _Script]]:
    script = _Script()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if script.raw_404:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/v1/auth/token/lookup-self"):
                status, body = 200, {"data": {"ttl": 0, "renewable": False}}
            else:
                script.hits.append(f"{self.command} {self.path}")
                status, body = script.answers.pop(0) if script.answers else (500, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815  (http.server names them so)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _backend(address: str, delays: list[float], **kwargs: Any) -> VaultBackend:
    return VaultBackend(address, token="tok", retry=RetryPolicy(5, 0.2, 10.0),
                        sleep=delays.append, random=random.Random(7).random, **kwargs)


def test_retries_5xx_and_429_with_backoff_and_jitter(fake_vault: tuple[str, _Script]) -> None:
    address, script = fake_vault
    sealed = (503, {"errors": ["Vault is sealed"]})
    script.answers = [sealed, (429, {"errors": ["rate limited"]}), (500, {"errors": ["boom"]}),
                      (200, _kv_body("hello"))]
    delays: list[float] = []
    with _backend(address, delays) as b:
        assert b.get("app", "key") == "hello"
    assert script.hits == ["GET /v1/secret/data/macula/app/key"] * 4
    assert len(delays) == 3
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= 0.2 * 2**attempt  # full jitter: uniform below the cap
    assert len(set(delays)) == 3


def test_sealed_vault_after_retries(fake_vault: tuple[str, _Script]) -> None:
    address, script = fake_vault
    script.answers = [(503, {"errors": ["Vault is sealed"]})] * 5
    delays: list[float] = []
    with _backend(address, delays) as b, pytest.raises(UnavailableError) as info:
        b.get("app", "key")
    assert str(info.value) == f"vault at {address} is sealed"
    assert len(script.hits) == 5 and len(delays) == 4


def test_4xx_is_not_retried(fake_vault: tuple[str, _Script]) -> None:
    address, script = fake_vault
    delays: list[float] = []
    with _backend(address, delays) as b:
        script.answers = [(403, {"errors": ["permission denied"]})]
        with pytest.raises(PermissionDeniedError):
            b.get("app", "key")
        script.answers = [(400, {"errors": ["bad request"]})]
        with pytest.raises(BackendError, match="bad request"):
            b.put("app", "key", "v")
    assert len(script.hits) == 2
    assert delays == []


def test_a_write_is_not_resent_after_a_500(fake_vault: tuple[str, _Script]) -> None:
    address, script = fake_vault
    delays: list[float] = []
    with _backend(address, delays) as b:
        script.answers = [(500, {"errors": ["boom"]})]
        with pytest.raises(UnavailableError):
            b.put("app", "key", "v")  # it may have been applied: sending again could double it
        assert len(script.hits) == 1
        script.answers = [(503, {"errors": ["Vault is sealed"]}),
                          (200, {"data": {"version": 7}})]
        assert b.put("app", "key", "v") == 7  # a sealed Vault applied nothing
    assert len(script.hits) == 3 and len(delays) == 1


def test_tls_failure_is_not_retried(fake_vault: tuple[str, _Script]) -> None:
    address, _script = fake_vault
    delays: list[float] = []
    tls = address.replace("http://", "https://")
    with _backend(tls, delays) as b, pytest.raises(BackendError, match="TLS") as info:
        b.get("app", "key")
    assert not isinstance(info.value, UnavailableError)
    assert tls in str(info.value)
    assert delays == []


def test_a_bare_404_is_not_an_absent_secret(fake_vault: tuple[str, _Script]) -> None:
    address, script = fake_vault
    script.answers = [(404, {"errors": []})]  # what vault says for an absent secret
    with _backend(address, []) as b:
        assert b.get("app", "key") is None
    script.raw_404 = True
    with _backend(address, []) as b, pytest.raises(BackendError, match="without a vault error"):
        b.get("app", "key")  # a proxy or web server, not vault
