"""``macula-secrets serve`` as a process: certificate, tokens from the token store, SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

import hvac
import pytest
from cryptography import x509

from macula_secrets.cli import main
from macula_secrets.server.auth import Rule
from macula_secrets.server.run import ensure_certificate, fingerprint
from macula_secrets.server.tokens import TokenStore

from ._support import serve_process


def serve(home: Path, *args: str
          ) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[str], str, list[str]]]:
    return serve_process(home, "--grace", "3", *args, timeout=20)


def test_serve_tls_tokens_and_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    with TokenStore.from_home(str(home)) as tokens:
        token, _info = tokens.create([Rule(frozenset({"read", "create", "update", "list"}),
                                           app="console")], display_name="test")
    with serve(home) as (proc, url, seen):
        cert = home / "server-tls" / "cert.pem"
        assert stat.S_IMODE((home / "server-tls" / "key.pem").stat().st_mode) == 0o600
        assert any(fingerprint(str(cert)) in line for line in seen)
        client = hvac.Client(url=url, token=token, verify=str(cert))
        client.secrets.kv.v2.create_or_update_secret("macula/console/db",
                                                     secret={"value": "v"})
        assert client.secrets.kv.v2.read_secret_version(
            "macula/console/db", raise_on_deleted_version=True)["data"]["data"]["value"] == "v"
        # An open watch stream does not hold up the shutdown.
        host, port = url.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET /v1/sys/macula/watch?app=console HTTP/1.1\r\nHost: x\r\n"
                      f"X-Vault-Token: {token}\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
    # The certificate is kept for the next start.
    with serve(home) as (proc, _url, seen):
        assert any("using the self-signed certificate" in line for line in seen)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_certificate_names_the_listen_address(tmp_path: Path) -> None:
    cert_path, _key, made = ensure_certificate(str(tmp_path / "tls"), "10.1.2.3")
    assert made
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {
        "10.1.2.3", "127.0.0.1", "::1"}
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ensure_certificate(str(tmp_path / "tls"), "10.1.2.3")[2] is False
    assert ensure_certificate(str(tmp_path / "tls"), "10.9.9.9")[2] is True  # not covered


def test_plain_http_only_on_loopback(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    status = main(["serve", "--home", str(tmp_path / "h"), "--address", "0.0.0.0:0",
                   "--tls-disable"])
    assert status == 1
    err = capsys.readouterr().err
    assert "macula: error: --tls-disable is allowed only on a loopback address" in err


# uvloop leaves the transport of the refused handshake for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_client_certificates_required_with_tls_client_ca(tmp_path: Path) -> None:
    import requests

    from macula_secrets import Secrets
    from macula_secrets.server.run import ServeOptions, prepare, start_in_thread
    from tests._openbao import make_tls

    from .conftest import ROOT, FakeTokens

    tls = make_tls(tmp_path / "tls")
    secrets = Secrets.open(home=tmp_path / "home", source="none", env={})
    serving = prepare(ServeOptions(address="127.0.0.1:0", tls_cert=tls.server_cert,
                                   tls_key=tls.server_key, tls_client_ca=tls.ca_cert),
                      secrets=secrets, authenticator=FakeTokens(), out=lambda _l: None)
    thread = start_in_thread(serving)
    try:
        with_cert = hvac.Client(url=serving.url, token=ROOT, verify=tls.ca_cert,
                                cert=(tls.client_cert, tls.client_key))
        assert with_cert.is_authenticated()
        with_cert.adapter.close()
        without = hvac.Client(url=serving.url, token=ROOT, verify=tls.ca_cert)
        with pytest.raises(requests.exceptions.RequestException):
            without.is_authenticated()
        without.adapter.close()
    finally:
        serving.stop()
        thread.join(timeout=15)
