"""Serving the app: uvicorn (httptools) over TLS, or a Unix socket; graceful shutdown.

:func:`prepare` opens everything (store, audit log, TLS, the listening
socket) and returns a :class:`Serving`; ``Serving.run()`` serves until
SIGTERM or SIGINT (or :meth:`Serving.stop`), lets requests in flight finish
(up to ``grace`` seconds), ends watch streams and closes the store. The
``serve`` command is a thin shell over these two.

TLS is on unless refused: with no ``tls_cert`` a self-signed certificate
(ECDSA P-256, SAN for the listen address, localhost, 127.0.0.1 and ::1) is
made on first start in ``<home>/server-tls/`` (key 0600) and reused after;
its SHA-256 fingerprint is printed so clients can pin it (or point
``VAULT_CACERT``/``BAO_CACERT`` at the certificate). ``tls_client_ca``
requires client certificates signed by that CA. Plain HTTP is allowed only
on a loopback address.

On a Unix socket (mode 0600, or 0660 for a group) the kernel tells who the
peer is (``SO_PEERCRED``): uvicorn's httptools protocol is subclassed to
read it when the connection is made and to put the uid into each
request's scope, where :class:`~.app.App` maps it to an identity when the
request carries no token. The same subclass answers repeated reads of a
secret without an ASGI task (:meth:`~.app.App.fast_get`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import ipaddress
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigError

if TYPE_CHECKING:
    from .._config import SinkConfig
    from ..client import Secrets
    from ..mesh.desk import JoinDesk
    from .app import App
    from .audit import ServerAudit, SyncMode
    from .auth import Authenticator, Identity
    from .sinks import Fanout

__all__ = ["ServeOptions", "Serving", "ensure_certificate", "fingerprint", "prepare"]

DEFAULT_ADDRESS: Final = "127.0.0.1:8200"
TLS_DIR: Final = "server-tls"
AUDIT_FILE: Final = "audit-server.log"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``macula-secrets serve`` was asked for."""

    address: str = DEFAULT_ADDRESS
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    tls_disable: bool = False
    unix_socket: str | None = None
    unix_socket_mode: int = 0o600
    grace: float = 10.0
    """Seconds requests in flight get to finish on shutdown."""
    audit_sync: SyncMode = "interval"
    """``interval``: each audit line is written before the answer and fsynced in the
    background every 0.1 s; ``always``: the answer waits for its line's fsync."""
    metrics: bool = True
    """Count requests for ``/v1/sys/metrics`` (a few dictionary updates per request)."""
    integrity_check: bool = True
    """Run SQLite's ``quick_check`` of the store in the background at start (``sys/health``)."""


def _uvicorn_without_cli() -> None:
    """Import uvicorn's serving parts without its command line.

    ``import uvicorn`` (or any of its submodules) first runs the package's
    ``__init__``, which imports ``uvicorn.main``: click, the reloader and
    the multiprocessing supervisors. Serving uses none of them, and they
    are 30-45 ms of a start measured at about 200 ms on a 2-core node
    (benchmarks/bench_server.py), where OpenBao's is the bar. So when
    uvicorn is not imported yet, the package is registered with only
    ``Config`` (which its own modules import from it); the first use of
    any other name (``uvicorn.run``, ``uvicorn.Server``...) runs the real
    ``__init__`` then, so other code in the process sees the usual package.
    """
    import importlib.util

    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None:
        raise ImportError("uvicorn is not installed")
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def complete(name: str) -> Any:
        # Module-level __getattr__ (PEP 562): the rest of __init__, once.
        if name.startswith("__"):
            raise AttributeError(name)
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = complete
    sys.modules["uvicorn"] = package
    try:
        from uvicorn.config import Config
    except BaseException:
        del sys.modules["uvicorn"]
        raise
    package.Config = Config  # type: ignore[attr-defined]


def _server_classes() -> tuple[type[Any], type[Any]]:
    """uvicorn's Server and httptools protocol, subclassed (imported only to serve)."""
    try:
        _uvicorn_without_cli()
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.server import Server as UvicornServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("the server needs the 'server' extra",
                          hint="pip install 'macula-secrets[server]'") from exc

    from .app import PEER_KEY

    _status_head: list[Any] = [None, b""]
    """The head of a fast 200 answer, for uvicorn's default headers (the date) of now."""

    class PeerProtocol(HttpToolsProtocol):
        """httptools protocol that records a Unix-socket peer's uid (SO_PEERCRED) and
        accepts Vault's ``LIST`` method.

        llhttp knows only the registered HTTP methods and rejects ``LIST``,
        which hvac sends (the Go clients send ``GET ?list=true``). A request
        line that starts a read, outside any message, with ``LIST `` is fed
        to the parser as ``GET `` and its scope gets ``LIST`` back. Vault
        clients send a request line in one write; a pipelined ``LIST`` in
        the middle of a read is still refused with 400.

        A GET without a body, with nothing before it on the connection still to
        answer, is first offered to :meth:`App.fast_get` (``fast``): a repeated
        read of a secret is answered from the app's cache right here, its audit
        line written, without the ASGI scope, task and messages that cost most
        of a request; whatever ``fast`` declines takes uvicorn's ordinary path.
        """

        fast: Callable[[bytes, list[tuple[bytes, bytes]], Any, int | None], bytes | None] \
            | None = None
        """:meth:`App.fast_get`: answers a cached GET without an ASGI task (set by
        :func:`prepare`)."""
        peer_uid: int | None = None
        _in_message = False
        _list_next = False
        _fast_body: bytes | None = None

        def data_received(self, data: bytes) -> None:
            if not self._in_message and data[:5] == b"LIST ":
                data = b"GET " + data[5:]
                self._list_next = True
            super().data_received(data)

        def on_headers_complete(self) -> None:
            fast = self.fast
            if fast is not None and not self._list_next:
                parser = self.parser
                cycle = self.cycle
                # Only a GET with nothing before it still to answer, on a kept-alive
                # HTTP/1.1 connection whose writes are not paused: the answer can
                # go out at once, in order.
                if parser.get_method() == b"GET" and not self.pipeline \
                        and (cycle is None or cycle.response_complete) \
                        and not self.flow.write_paused and parser.should_keep_alive() \
                        and parser.get_http_version() == "1.1":
                    try:
                        body = fast(self.url, self.headers, self.client, self.peer_uid)
                    except Exception:   # e.g. the token store cannot be read:
                        body = None     # the ASGI path answers it in full
                    if body is not None:
                        self._fast_body = body
                        return
            super().on_headers_complete()
            if self._list_next:
                self._list_next = False
                self.scope["method"] = "LIST"

        def on_body(self, body: bytes) -> None:
            if self._fast_body is None:   # a fast GET has no body (checked)
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_message = False
            body = self._fast_body
            if body is None:
                super().on_message_complete()
                return
            self._fast_body = None
            defaults = self.server_state.default_headers
            cached = _status_head
            if cached[0] is not defaults:   # uvicorn makes a new list when the date changes
                head = [b"HTTP/1.1 200 OK\r\n"]
                for name, value in defaults:
                    head += (name, b": ", value, b"\r\n")
                cached[:] = [defaults, b"".join(head) + b"content-type: application/json"
                                                        b"\r\ncontent-length: "]
            self.transport.write(b"".join((cached[1], str(len(body)).encode(), b"\r\n\r\n",
                                           body)))
            self.on_response_complete()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family == socket.AF_UNIX:
                raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                      struct.calcsize("3i"))
                _pid, self.peer_uid, _gid = struct.unpack("3i", raw)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_message = True
            if self.peer_uid is not None:
                self.scope[PEER_KEY] = self.peer_uid  # type: ignore[typeddict-unknown-key]

    class Server(UvicornServer):
        """uvicorn's server that ends watch streams on shutdown and exits quietly."""

        on_exit: Callable[[], None] | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            # Unlike uvicorn's, the signal is not raised again after shutdown:
            # SIGTERM is the normal way to stop, and exits 0.
            if self.should_exit and sig == 2:  # a second Ctrl-C
                self.force_exit = True
            self.should_exit = True
            if self.on_exit is not None:
                self.on_exit()

    return Server, PeerProtocol


@dataclass
class Serving:
    """A prepared server: call :meth:`run` (blocking) and, from elsewhere, :meth:`stop`."""

    app: App
    secrets: Secrets
    audit: ServerAudit
    sock: socket.socket
    url: str
    cert: str | None
    server: Any
    closers: list[Callable[[], object]] = field(default_factory=list)

    def run(self) -> None:
        """Serve until stopped; then close the audit log and the store."""
        import asyncio

        try:
            # asyncio.run's clean-up (tasks, async generators, the default executor)
            # on uvloop's loop, which refuses to close while handles are left.
            with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
                loop = runner.get_loop()
                # Set here, on the serving thread: a signal (or stop()) ends watch streams.
                self.server.on_exit = lambda: loop.call_soon_threadsafe(
                    self.app.stop_watchers)
                runner.run(self.server.serve(sockets=[self.sock]))
        except OSError as exc:
            # uvloop refuses to close a loop while a transport is left, as one is
            # after a client failed the TLS handshake (no client certificate with
            # --tls-client-ca); serving is over and the process frees it.
            if exc.errno != errno.EBUSY:
                raise
        finally:
            self.close()

    def stop(self) -> None:
        """Ask the server to shut down gracefully (thread-safe)."""
        self.server.handle_exit(15, None)

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def close(self) -> None:
        for close in self.closers:
            close()
        self.audit.close()
        self.secrets.close()
        self.sock.close()
        if self.url.startswith("unix://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.url.removeprefix("unix://"))


def prepare(options: ServeOptions, *, secrets: Secrets | None = None,
            authenticator: Authenticator | None = None,
            out: Callable[[str], None] | None = None) -> Serving:
    """Open the store, the audit log and the listener; nothing is served yet.

    Raises:
        ConfigError: a bad address, TLS refused off loopback, a TLS file missing.
        UnavailableError: another server holds this home's audit log.
    """
    from .. import __version__
    from ..client import Secrets as _Secrets
    from .app import App
    from .audit import SYNC_MODES, ServerAudit

    say = out or (lambda line: sys.stderr.write(line + "\n"))
    server_class, protocol_class = _server_classes()
    from uvicorn.config import Config

    owned = secrets is None
    closers: list[Callable[[], object]] = []
    if secrets is None:
        secrets = _Secrets.open()
    sinks = None
    try:
        cfg = secrets.config
        home = cfg.home if cfg is not None else os.path.dirname(secrets.store.path)
        if authenticator is None:
            authenticator = default_authenticator(home)
            closers.append(getattr(authenticator, "close", _nothing))
        store_audit = secrets.store.audit
        hmac_of = store_audit.value_hmac if store_audit is not None else _no_hmac
        if options.audit_sync not in SYNC_MODES:
            raise ConfigError(f"--audit-sync must be one of {', '.join(SYNC_MODES)}, "
                              f"not {options.audit_sync!r}")
        sinks = _open_sinks(cfg.audit_sinks if cfg is not None else ())
        audit = ServerAudit(os.path.join(home, AUDIT_FILE), value_hmac=hmac_of,
                            sync=options.audit_sync, sinks=sinks)
    except BaseException:
        if sinks is not None:
            sinks.close()
        if owned:
            secrets.close()
        raise
    try:
        cert = key = None
        cert_fingerprint = ""
        if options.unix_socket is not None:
            sock = _unix_socket(options.unix_socket, options.unix_socket_mode)
            url = f"unix://{options.unix_socket}"
        else:
            host, port = parse_address(options.address)
            if options.tls_disable:
                if not _is_loopback(host):
                    raise ConfigError(
                        f"--tls-disable is allowed only on a loopback address, not {host}",
                        hint="serve TLS (the default), or listen on 127.0.0.1")
                say("macula: warning: TLS is off: tokens and values cross the loopback "
                    "interface in clear text")
            elif options.tls_cert or options.tls_key:
                if not (options.tls_cert and options.tls_key):
                    raise ConfigError("--tls-cert and --tls-key go together")
                cert, key = options.tls_cert, options.tls_key
            else:
                cert, key, made = ensure_certificate(os.path.join(home, TLS_DIR), host)
                say(f"macula: {'made a' if made else 'using the'} self-signed certificate "
                    f"{cert}")
            if cert is not None:
                cert_fingerprint = fingerprint(cert)
                say(f"macula: certificate SHA-256 fingerprint {cert_fingerprint}")
            sock = _tcp_socket(host, port)
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            url = f"{'https' if cert else 'http'}://{shown}:{bound}"
        from .metrics import ServerMetrics

        app = App(secrets, authenticator, audit, peer_identity=_peer_identity(authenticator),
                  version=__version__, metrics=ServerMetrics() if options.metrics else None)
        if cert is not None:
            app.join_desk = _join_desk(secrets, home, cert_fingerprint)
        if options.integrity_check:
            _check_integrity_in_background(app)
        protocol_class.fast = app.fast_get
        import ssl

        config = Config(
            app, http=protocol_class, loop="auto", lifespan="on", log_level="warning",
            access_log=False, server_header=False, proxy_headers=False,
            timeout_graceful_shutdown=max(1, round(options.grace)),
            ssl_certfile=cert, ssl_keyfile=key, ssl_ca_certs=options.tls_client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if options.tls_client_ca else ssl.CERT_NONE)
        if options.tls_client_ca and cert is None:
            raise ConfigError("--tls-client-ca needs TLS")
        server = server_class(config)
    except BaseException:
        for close in closers:
            close()
        audit.close()
        if owned:
            secrets.close()
        raise
    return Serving(app=app, secrets=secrets, audit=audit, sock=sock, url=url, cert=cert,
                   server=server, closers=closers)


def start_in_thread(serving: Serving, timeout: float = 10.0) -> threading.Thread:
    """Run ``serving`` in a daemon thread and wait until it accepts (for tests)."""
    import time

    thread = threading.Thread(target=serving.run, name="macula-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not serving.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return thread


def _open_sinks(configs: Sequence[SinkConfig]) -> Fanout | None:
    """The ``[[audit.sinks]]`` as one fan-out (``None`` when there are none)."""
    if not configs:
        return None
    from .. import _telemetry
    from .sinks import Fanout, open_sink

    fanout = Fanout([(open_sink(c), c.required) for c in configs])
    _telemetry.register_sinks(fanout)
    return fanout


def _join_desk(secrets: Secrets, home: str, cert_fingerprint: str) -> JoinDesk:
    """Where nodes ask to join this server (docs/mesh.md): offered only with TLS."""
    from .._config import MeshConfig
    from ..mesh.desk import JoinDesk

    cfg = secrets.config
    folder = cfg.secrets_dir if cfg is not None else None

    def enrolled(name: str) -> bool:
        if folder is None or not os.path.exists(os.path.join(folder, ".sops.yaml")):
            return False
        from ..errors import MaculaError
        from ..nodes import list_nodes

        try:
            return any(node.name == name for node in list_nodes(folder).nodes)
        except MaculaError:
            return False  # approval will say what is wrong with the folder

    return JoinDesk(home, fingerprint=cert_fingerprint.replace(":", ""),
                    config=cfg.mesh if cfg is not None else MeshConfig(),
                    audit=secrets.store.audit, is_enrolled=enrolled)


def _check_integrity_in_background(app: App) -> None:
    """SQLite's quick check of the store, in a thread; ``sys/health`` shows the result."""
    from .._health import integrity_check

    app.integrity = {"status": "running"}

    def check() -> None:
        app.integrity = integrity_check(app.secrets.store.path)

    threading.Thread(target=check, name="store-integrity", daemon=True).start()


def _no_hmac(_value: str) -> str | None:
    return None


def _nothing() -> None:
    return None


def default_authenticator(home: str) -> Authenticator:
    """The token store of ``home`` (``<home>/tokens.db``, made by ``token create``)."""
    from .tokens import TokenStore

    return TokenStore.from_home(home)


def _peer_identity(authenticator: Authenticator) -> Callable[[int], Identity | None]:
    """A Unix peer's identity: the authenticator's ``lookup_uid`` when it has one; else
    the uid the server runs as (and root) gets every capability, as it could read the
    store's files anyway, and other uids need a token."""
    from .auth import CAPABILITIES, Identity, Rule

    by_uid = getattr(authenticator, "lookup_uid", None)
    owner = os.geteuid()
    everything = (Rule(capabilities=CAPABILITIES, app="*", key="*", tenant="*"),)

    def identify(uid: int) -> Identity | None:
        if by_uid is not None:
            found: Identity | None = by_uid(uid)
            if found is not None:
                return found
        if uid in (owner, 0):
            return Identity(accessor=f"unix-uid-{uid}", display_name=f"unix uid {uid}",
                            rules=everything)
        return None

    return identify


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) to its parts."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"bad address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8200")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad port in address {address!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"bad port in address {address!r}")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.set_inheritable(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _unix_socket(path: str, mode: int) -> socket.socket:
    if mode not in (0o600, 0o660):
        raise ConfigError(f"unix socket mode must be 0600 or 0660, not {mode:o}")
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)   # a socket left by a server that did not shut down
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)   # the socket never exists with wider permissions
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    return sock


def fingerprint(cert_path: str) -> str:
    """SHA-256 of the certificate's DER, as colon-separated hex (as browsers show it)."""
    from ..mesh.protocol import certificate_fingerprint, colon_form

    with open(cert_path, "rb") as f:
        return colon_form(certificate_fingerprint(f.read()))


def ensure_certificate(folder: str, host: str) -> tuple[str, str, bool]:
    """``(cert, key, made)``: the self-signed certificate in ``folder`` that covers ``host``.

    Made when missing, or when it no longer covers ``host`` or is about to
    expire; the key is written 0600 before the certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path = os.path.join(folder, "cert.pem")
    key_path = os.path.join(folder, "key.pem")
    names = _san_names(host)
    now = _dt.datetime.now(_dt.UTC)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as f:
            old = x509.load_pem_x509_certificate(f.read())
        try:
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            covered = set(map(str, san.get_values_for_type(x509.IPAddress))) | set(
                san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            covered = set()
        wanted = {str(n.value) for n in names}
        if wanted <= covered and old.not_valid_after_utc > now + _dt.timedelta(days=7):
            return cert_path, key_path, False
    os.makedirs(folder, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "macula-secrets server")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            # CA:TRUE so that the certificate can itself be the trust anchor clients
            # are given (VAULT_CACERT / BAO_CACERT / requests' verify=).
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    from .._fs import atomic_write

    atomic_write(key_path, key_pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path, True


def _san_names(host: str) -> list[Any]:
    from cryptography import x509

    names: list[Any] = [x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1"))]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    else:
        if not ip.is_unspecified and x509.IPAddress(ip) not in names:
            names.append(x509.IPAddress(ip))
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming it, not binding to it
        names.append(x509.DNSName(socket.gethostname()))
    return names
