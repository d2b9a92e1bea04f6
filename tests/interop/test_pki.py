"""PKI certificates from a real OpenBao: issue, keep current, reload in a TLS server.

One ``bao server -dev`` serves the module; each test enables its own PKI
mount with a throwaway root and a role for ``*.example.test`` and
127.0.0.1 whose ``max_ttl`` is 20 s. The renewal tests use a 6 s TTL, so a
renewal (at about two thirds, 4 s) lands well before the old certificate
expires. The TLS server of the test swaps its SSLContext from an
``sni_callback`` when the certificate file changes, the recipe of docs/pki.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from macula_secrets.backends.vault import RetryPolicy, VaultBackend
from macula_secrets.errors import BackendError, ConfigError, UnavailableError
from macula_secrets.pki import (
    CertificateFiles,
    CertificateKeeper,
    IssuedCertificate,
    issue_certificate,
)
from tests._openbao import HOST, Server, free_port, need_binary, start_dev

pytestmark = pytest.mark.interop

ROLE = "web"
CN = "www.example.test"


@dataclass
class PKI:
    """A PKI mount with a root CA and a role, on a running server."""

    bao: Server
    mount: str
    root_pem: str
    root_file: Path

    @property
    def root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.root_pem.encode())

    def backend(self, *, retry: RetryPolicy | None = None, timeout: float = 10.0
                ) -> VaultBackend:
        return VaultBackend(self.bao.address, token=self.bao.token, retry=retry,
                            timeout=timeout)


def _enable_pki(bao: Server, folder: Path) -> PKI:
    mount = "pki-" + uuid.uuid4().hex[:8]
    bao.request("POST", f"/v1/sys/mounts/{mount}",
                {"type": "pki", "config": {"max_lease_ttl": "1h"}})
    _, root = bao.request("POST", f"/v1/{mount}/root/generate/internal",
                          {"common_name": "macula pki test root", "ttl": "1h",
                           "key_type": "ec", "key_bits": 256})
    bao.request("POST", f"/v1/{mount}/roles/{ROLE}",
                {"allowed_domains": "example.test", "allow_subdomains": True,
                 "allow_ip_sans": True, "max_ttl": "20s", "key_type": "ec", "key_bits": 256})
    root_pem = root["data"]["certificate"]
    root_file = folder / f"{mount}-root.pem"
    root_file.write_text(root_pem + "\n")
    return PKI(bao, mount, root_pem, root_file)


@pytest.fixture
def pki(bao_dev: Server, tmp_path: Path) -> PKI:
    return _enable_pki(bao_dev, tmp_path)


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _serial(cert: x509.Certificate) -> str:
    raw = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    return ":".join(f"{b:02x}" for b in raw)


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _assert_pair(cert_pem: str, key_pem: str) -> None:
    """The private key is the certificate's."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert _public_der(key.public_key()) == _public_der(_load(cert_pem).public_key())


# -- issue ---------------------------------------------------------------------------


def test_issue_certificate_for_the_requested_names(pki: PKI) -> None:
    before = dt.datetime.now(dt.UTC)
    with pki.backend() as backend:
        issued = issue_certificate(backend, pki.mount, ROLE, CN, ttl=10,
                                   alt_names=["api.example.test"], ip_sans=["127.0.0.1"])
    cert = _load(issued.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CN
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {CN, "api.example.test"}
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # Chains to the test root: signed by it, and the chain ends in it.
    cert.verify_directly_issued_by(pki.root)
    assert _load(issued.ca_chain[-1]) == pki.root
    assert issued.serial == _serial(cert)
    assert issued.not_after == cert.not_valid_after_utc
    lifetime = (issued.not_after - before).total_seconds()
    assert 8 <= lifetime <= 12, lifetime
    _assert_pair(issued.certificate, issued.private_key)
    # The key never shows in a repr or str; the fullchain starts with the leaf.
    assert "PRIVATE KEY" not in repr(issued) and "PRIVATE KEY" not in str(issued)
    assert issued.private_key.split("\n")[1] not in repr(issued)
    assert issued.fullchain.startswith(issued.certificate)
    assert issued.bundle.startswith(issued.private_key)


def test_ttl_is_capped_by_the_role(pki: PKI) -> None:
    with pki.backend() as backend:
        issued = issue_certificate(backend, pki.mount, ROLE, CN, ttl="1h")
    assert (issued.not_after - dt.datetime.now(dt.UTC)).total_seconds() <= 21


def test_names_the_role_refuses_are_refused(pki: PKI) -> None:
    with pki.backend() as backend:
        with pytest.raises(BackendError, match="not allowed by this role"):
            issue_certificate(backend, pki.mount, ROLE, "www.elsewhere.test", ttl=10)
        with pytest.raises(ConfigError, match="nothing is mounted"):
            issue_certificate(backend, "no-such-pki", ROLE, CN, ttl=10)
        with pytest.raises(ConfigError, match="ttl"):
            issue_certificate(backend, pki.mount, ROLE, CN, ttl=0)


# -- a TLS server that reloads -------------------------------------------------------


class ReloadingTLSServer:
    """A TLS server on 127.0.0.1 that picks up a new certificate when its file changes.

    The SSLContext is chosen per handshake in ``sni_callback`` (called for
    every ClientHello, with or without SNI): when the certificate file's
    mtime or inode changed, a new context is loaded; if that fails (a
    certificate and key from different renewals, caught by OpenSSL), the old
    context serves and the load is tried again on the next handshake.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.reloads = 0
        self.failed_loads = 0
        self._stamp: tuple[int, int] | None = None
        self._ctx = self._context()
        self._reload()
        self._stop = threading.Event()
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def _reload(self) -> ssl.SSLContext:
        st = os.stat(self.cert)
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            try:
                self._ctx = self._context()
            except ssl.SSLError:
                self.failed_loads += 1
                return self._ctx
            self._stamp = stamp
            self.reloads += 1
        return self._ctx

    def _pick(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None,
              _ctx: ssl.SSLContext) -> None:
        sock.context = self._reload()

    def _serve(self) -> None:
        front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        front.load_cert_chain(self.cert, self.key)
        front.sni_callback = self._pick
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with front.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()

    def peer_serial(self, ca: Path) -> str:
        """Connect as a client that trusts only ``ca``; the serial the server presents."""
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection((HOST, self.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            der = tls.getpeercert(binary_form=True)
            assert tls.recv(2) == b"ok"
        assert der is not None
        return _serial(x509.load_der_x509_certificate(der))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_keeper_renews_before_expiry_and_a_tls_server_reloads(
        pki: PKI, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="macula_secrets")
    out = tmp_path / "tls"
    out.mkdir()
    files = CertificateFiles(key=out / "key.pem", cert=out / "cert.pem",
                             chain=out / "chain.pem", bundle=out / "bundle.pem")
    handed: list[IssuedCertificate] = []
    backend = pki.backend()
    keeper = CertificateKeeper(backend, pki.mount, ROLE, CN, ttl=6, ip_sans=["127.0.0.1"],
                               files=files, on_renew=handed.append)
    server = None
    try:
        started = time.monotonic()
        keeper.start()
        first = keeper.current
        assert first is not None and handed == [first]
        # Modes: the key and the bundle 0600, the public certificate and chain 0644.
        assert _mode(out / "key.pem") == 0o600
        assert _mode(out / "bundle.pem") == 0o600
        assert _mode(out / "cert.pem") == 0o644
        assert _mode(out / "chain.pem") == 0o644
        assert (out / "cert.pem").read_text() == first.fullchain
        assert (out / "chain.pem").read_text() == "".join(first.ca_chain)
        _assert_pair((out / "cert.pem").read_text(), (out / "key.pem").read_text())
        _load((out / "cert.pem").read_text()).verify_directly_issued_by(pki.root)

        server = ReloadingTLSServer(out / "cert.pem", out / "key.pem")
        assert server.peer_serial(pki.root_file) == first.serial

        # A new certificate (new serial) well before the first one expires.
        assert _wait_for(lambda: keeper.serial != first.serial, timeout=8), \
            "no renewal within 8 s of a 6 s certificate"
        renewed_at = dt.datetime.now(dt.UTC)
        # Not early either: at about 2/3 of the 6 s (less jitter), not on arrival
        # (OpenBao backdates not_before by 30 s; the lifetime counts from arrival).
        assert time.monotonic() - started >= 2.5
        assert keeper.renewals == 1
        second = keeper.current
        assert second is not None and second.serial != first.serial
        assert renewed_at < first.not_after - dt.timedelta(seconds=0.5)
        assert handed[-1] == second and keeper.renewals >= 1
        _assert_pair((out / "cert.pem").read_text(), (out / "key.pem").read_text())
        _assert_pair(second.certificate, (out / "bundle.pem").read_text())

        # A client connecting now sees the renewed certificate, trusted via the root.
        assert server.peer_serial(pki.root_file) == second.serial
        assert server.reloads >= 2
        # The bundle alone serves as well (one file: key, certificate and chain).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(out / "bundle.pem")
    finally:
        if server is not None:
            server.close()
        keeper.close()
        backend.close()
    for issued in handed:
        key_line = issued.private_key.split("\n")[1]
        assert key_line not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert any("valid until" in r.getMessage() for r in caplog.records)


@pytest.fixture
def own_bao() -> Iterator[Server]:
    """A server of this test's own, to be stopped in the middle of it."""
    need_binary()
    with start_dev() as server:
        yield server


def test_offline_keeps_the_current_certificate_and_retries(
        own_bao: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = _enable_pki(own_bao, tmp_path)
    files = CertificateFiles(key=tmp_path / "key.pem", cert=tmp_path / "cert.pem")
    backend = pki.backend(retry=RetryPolicy(max_attempts=1), timeout=1.0)
    keeper = CertificateKeeper(backend, pki.mount, ROLE, CN, ttl=6, files=files,
                               retry_delay=0.2, max_retry_delay=0.5)
    try:
        keeper.start()
        first = keeper.current
        assert first is not None
        before = {p: (tmp_path / p).read_bytes() for p in ("key.pem", "cert.pem")}
        caplog.set_level(logging.WARNING, logger="macula_secrets.pki")
        own_bao.stop()
        # Renewal is due at about 4 s; retries come every 0.1-0.5 s after that.
        assert _wait_for(lambda: keeper.failures >= 3, timeout=8)
        assert keeper.current == first
        assert {p: (tmp_path / p).read_bytes() for p in before} == before
        assert "keeping the current one" in caplog.text or "EXPIRED" in caplog.text
        assert "cannot reach vault" in caplog.text
        assert first.private_key.split("\n")[1] not in caplog.text
    finally:
        keeper.close()
        backend.close()


def test_start_while_offline_keeps_a_valid_certificate_from_the_files(
        pki: PKI, tmp_path: Path) -> None:
    files = CertificateFiles(key=tmp_path / "key.pem", cert=tmp_path / "cert.pem")
    with pki.backend() as backend:
        issued = issue_certificate(backend, pki.mount, ROLE, CN, ttl=15)
    files.write(issued)
    dead = VaultBackend(f"http://{HOST}:{free_port()}", token="t",
                        retry=RetryPolicy(max_attempts=1), timeout=1.0)
    keeper = CertificateKeeper(dead, pki.mount, ROLE, CN, ttl=6, files=files,
                               retry_delay=0.2, max_retry_delay=0.5)
    try:
        keeper.start()  # no raise: the files hold an unexpired certificate for CN
        assert keeper.current is None and keeper.failures >= 1
        assert (tmp_path / "cert.pem").read_text() == issued.fullchain
        # Without a usable certificate in the files, starting offline is an error.
        other = CertificateKeeper(dead, pki.mount, ROLE, "other.example.test", ttl=6,
                                  files=files)
        with pytest.raises(UnavailableError, match="cannot reach vault"):
            other.start()
    finally:
        keeper.close()
        dead.close()


def test_existing_key_file_is_tightened_to_0600(pki: PKI, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("old\n")
    key.chmod(0o644)
    with pki.backend() as backend:
        issued = issue_certificate(backend, pki.mount, ROLE, CN, ttl=10)
    CertificateFiles(key=key, cert=tmp_path / "cert.pem", cert_mode=0o600).write(issued)
    assert _mode(key) == 0o600
    assert _mode(tmp_path / "cert.pem") == 0o600


def test_revoke_on_close(pki: PKI) -> None:
    seen: list[IssuedCertificate] = []
    with pki.backend() as backend:
        keeper = CertificateKeeper(backend, pki.mount, ROLE, CN, ttl=10, on_renew=seen.append,
                                   revoke_on_close=True)
        with keeper:
            serial = keeper.serial
        assert serial is not None and seen[0].serial == serial
    _, body = pki.bao.request("GET", f"/v1/{pki.mount}/cert/{serial}")
    assert body["data"]["revocation_time"] > 0


def test_keeper_without_revoke_leaves_the_certificate_valid(pki: PKI) -> None:
    with pki.backend() as backend, CertificateKeeper(
            backend, pki.mount, ROLE, CN, ttl=10, on_renew=lambda _: None) as keeper:
        serial = keeper.serial
    _, body = pki.bao.request("GET", f"/v1/{pki.mount}/cert/{serial}")
    assert body["data"]["revocation_time"] == 0
