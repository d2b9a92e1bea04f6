"""X.509 certificates from an OpenBao / Vault PKI mount, issued and kept current.

:func:`issue_certificate` asks a PKI role for one certificate
(``POST <mount>/issue/<role>``) and returns it with its freshly generated
private key. :class:`CertificateKeeper` keeps a certificate current for a
long-running server: it issues one, writes it to files (or hands it to a
callback), and issues the next one at about two thirds of the lifetime from a
background thread, keeping the current certificate while Vault is away.

This sits beside the backends, not inside them: it talks to Vault through a
:class:`~macula_secrets.backends.vault.VaultBackend` (its authentication,
retries, TLS settings and error translation) and needs the ``vault`` extra.
It does not keep certificates in the runtime store: a certificate is
reissued, never versioned. See docs/pki.md for the file layout, the write
order and reload recipes.

Private keys never appear in a repr, a message or a log line.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import random as _random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._fs import atomic_write
from .errors import BackendError, ConfigError, MaculaError

if TYPE_CHECKING:
    from .backends.vault import VaultBackend

__all__ = ["CertificateFiles", "CertificateKeeper", "IssuedCertificate", "issue_certificate",
           "revoke_certificate"]

_log = logging.getLogger("macula_secrets.pki")

KEY_MODE: Final = 0o600
"""Mode of files that hold the private key (the key file and the bundle)."""
PUBLIC_MODE: Final = 0o644
"""Mode of the certificate and chain files: public data, readable by a server
that drops privileges after reading its key (nginx workers, for one)."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One certificate from a PKI role, with its private key; the key is never shown.

    ``certificate``, ``private_key`` and each of ``ca_chain`` are PEM text;
    ``ca_chain`` runs from the issuing CA up (the root included when the
    mount returns it). ``serial`` is Vault's colon-separated hex form
    (``3a:7f:...``), the one ``pki/revoke`` takes; ``not_after`` is aware UTC.
    """

    certificate: str
    private_key: str = field(repr=False)
    ca_chain: tuple[str, ...]
    serial: str
    not_after: _dt.datetime
    not_before: _dt.datetime

    def __repr__(self) -> str:
        return (f"IssuedCertificate(serial={self.serial!r}, "
                f"not_after={self.not_after.isoformat()!r}, private_key='***')")

    @property
    def fullchain(self) -> str:
        """The certificate followed by its chain: what nginx's ``ssl_certificate`` wants."""
        return _join(self.certificate, *self.ca_chain)

    @property
    def bundle(self) -> str:
        """Private key, certificate and chain in one PEM text (one file, one rename)."""
        return _join(self.private_key, self.certificate, *self.ca_chain)


def issue_certificate(
    backend: VaultBackend,
    mount: str,
    role: str,
    common_name: str,
    *,
    ttl: str | int,
    alt_names: Sequence[str] = (),
    ip_sans: Sequence[str] = (),
) -> IssuedCertificate:
    """Issue a certificate and private key from ``<mount>/issue/<role>``.

    ``ttl`` is seconds or a Vault duration (``"72h"``); the role's
    ``max_ttl`` (and the CA's own expiry) may shorten it, so read
    ``not_after`` rather than assuming it. The request goes through the
    backend's session: its token upkeep, retries of transient failures and
    error translation. A retried request may leave one unused certificate
    behind in Vault, which is harmless, so issuing counts as safe to retry.

    Raises:
        ConfigError: nothing is mounted at ``mount``, or ``ttl`` is not positive.
        BackendError: the role refused the request (unknown role, a name the
            role does not allow, a TTL it rejects); Vault's reason is in the text.
        PermissionDeniedError: the token's policy does not allow ``issue``.
        UnavailableError: Vault could not be reached or is sealed.
    """
    mount = mount.strip("/")
    if not mount or not role:
        raise ConfigError("pki mount and role must not be empty")
    params: dict[str, Any] = {"common_name": common_name, "ttl": _duration(ttl),
                              "format": "pem"}
    if alt_names:
        params["alt_names"] = ",".join(alt_names)
    if ip_sans:
        params["ip_sans"] = ",".join(ip_sans)
    what = f"{mount}/issue/{role}"
    # Not idempotent: each call signs a new certificate.
    resp = backend.request("POST", what, params, idempotent=False)
    return _parse_issue(resp, what, backend.address)


def revoke_certificate(backend: VaultBackend, mount: str, serial: str) -> None:
    """Revoke the certificate with ``serial`` (``POST <mount>/revoke``).

    Fails with a ``BackendError`` for a role with ``no_store`` set, whose
    certificates Vault does not remember.
    """
    mount = mount.strip("/")
    backend.request("POST", f"{mount}/revoke", {"serial_number": serial})


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where :class:`CertificateKeeper` writes; every path is optional.

    ``key`` (mode 0600) holds the private key, ``cert`` (mode ``cert_mode``,
    0644 by default) the certificate followed by the chain (a "fullchain",
    what nginx and uvicorn want), ``chain`` (``cert_mode``) the CA chain
    alone, and ``bundle`` (0600) key, certificate and chain in one file.

    Each file is replaced atomically. The bundle is the only layout in which
    no reader can ever pair a certificate with the wrong key: one file, one
    rename. With separate files the key is written first and the certificate
    last; see :class:`CertificateKeeper` for why.
    """

    key: str | os.PathLike[str] | None = None
    cert: str | os.PathLike[str] | None = None
    chain: str | os.PathLike[str] | None = None
    bundle: str | os.PathLike[str] | None = None
    cert_mode: int = PUBLIC_MODE

    def __post_init__(self) -> None:
        if (self.key is None) != (self.cert is None):
            raise ConfigError("certificate files: key and cert go together",
                              hint="or use bundle= for key, certificate and chain in one file")
        if self.cert_mode & 0o7000 or self.cert_mode & ~0o777:
            raise ConfigError(f"certificate file mode {self.cert_mode:o} is not a file mode")

    def write(self, issued: IssuedCertificate) -> None:
        """Write every configured file, each atomically: key, then cert, then chain, bundle.

        The order is the contract readers rely on; see :class:`CertificateKeeper`.
        """
        if self.key is not None:
            _write(self.key, issued.private_key, KEY_MODE)
        if self.cert is not None:
            _write(self.cert, issued.fullchain, self.cert_mode)
        if self.chain is not None:
            _write(self.chain, _join(*issued.ca_chain), self.cert_mode)
        if self.bundle is not None:
            _write(self.bundle, issued.bundle, KEY_MODE)


class CertificateKeeper:
    """Keep a certificate from a PKI role current, in files or in memory. Thread-safe.

    :meth:`start` issues the first certificate (raising if it cannot, unless
    ``files.cert`` or ``files.bundle`` already holds an unexpired one for the
    same name, which is then kept), writes it, calls ``on_renew``, and starts
    a daemon thread that issues the next one once ``renew_at`` (2/3 by
    default) of the lifetime has passed, less up to ``jitter`` of it at
    random so that many nodes started together do not renew together.

    **Write order.** Vault makes a new private key with every certificate,
    so key and certificate change together, and two files cannot be
    replaced in one step. The key is renamed into place first and the
    certificate last. TLS libraries (OpenSSL's ``SSL_CTX_use_certificate``
    then ``SSL_CTX_use_PrivateKey``, so Python's ``load_cert_chain`` and
    nginx) read the certificate before the key: a reader that sees the new
    certificate therefore also sees the new key. The only mixed pair a
    reader can get is the old certificate with the new key, and OpenSSL
    refuses that pair (``key values mismatch``) instead of serving it, so
    the reader keeps its old context and succeeds on its next try. A file
    watcher should watch the certificate (written last, so its change means
    the pair is complete), or use the single ``bundle`` file, where no mixed
    pair can exist at all.

    **Offline.** When issuing fails, the current certificate stays in place
    (files untouched) and issuing is retried with exponential backoff and
    jitter (``retry_delay`` up to ``max_retry_delay`` seconds), past the
    expiry if need be; each failure is logged as a warning naming the mount,
    role and common name, never key material.

    ``on_renew(cert)`` is called from the keeper's thread (from the caller's
    for the first certificate) after the files are written; it is how a
    process takes the key in memory without files. An exception in it is
    logged and does not stop the keeper. ``close()`` stops the thread and,
    with ``revoke_on_close``, revokes the current certificate (off by
    default: short-lived certificates are meant to expire, and revoking
    them only grows the CRL).

    Args:
        backend: the Vault connection (token, TLS, retries) to issue through.
        mount, role, common_name, ttl, alt_names, ip_sans: as for
            :func:`issue_certificate`.
        files: where to write, or ``None`` to only call ``on_renew``.
        on_renew: called with each new :class:`IssuedCertificate`.
        renew_at: fraction of the lifetime after which a new one is issued.
        jitter: fraction of the lifetime taken off that, at random.
        retry_delay, max_retry_delay: backoff bounds in seconds while issuing fails.
        revoke_on_close: revoke the current certificate in :meth:`close`.
        wall_clock, random: time and randomness, for tests.
    """

    def __init__(
        self,
        backend: VaultBackend,
        mount: str,
        role: str,
        common_name: str,
        *,
        ttl: str | int,
        alt_names: Sequence[str] = (),
        ip_sans: Sequence[str] = (),
        files: CertificateFiles | None = None,
        on_renew: Callable[[IssuedCertificate], object] | None = None,
        renew_at: float = 2 / 3,
        jitter: float = 0.1,
        retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        revoke_on_close: bool = False,
        wall_clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
        random: Callable[[], float] = _random.random,
    ) -> None:
        if files is None and on_renew is None:
            raise ConfigError("a certificate keeper needs files or on_renew to hand over to")
        if not 0 < renew_at < 1 or not 0 <= jitter < renew_at:
            raise ConfigError("renew_at must be in (0, 1) and jitter in [0, renew_at)")
        if retry_delay <= 0 or max_retry_delay < retry_delay:
            raise ConfigError("retry delays must be positive, max_retry_delay >= retry_delay")
        _duration(ttl)  # fail now, not in the thread
        self.backend = backend
        self.mount = mount.strip("/")
        self.role = role
        self.common_name = common_name
        self.ttl = ttl
        self.alt_names = tuple(alt_names)
        self.ip_sans = tuple(ip_sans)
        self.files = files
        self.revoke_on_close = revoke_on_close
        self._on_renew = on_renew
        self._renew_at = renew_at
        self._jitter = jitter
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._wall = wall_clock
        self._random = random
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: IssuedCertificate | None = None
        self._kept_from_files: _dt.datetime | None = None
        self.renewals = 0
        """Certificates issued after the first (for tests and diagnostics)."""
        self.failures = 0
        """Failed attempts to issue since the last success."""

    def __repr__(self) -> str:
        return (f"CertificateKeeper({self.mount!r}, {self.role!r}, {self.common_name!r}, "
                f"serial={self.serial!r})")

    def __enter__(self) -> CertificateKeeper:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def current(self) -> IssuedCertificate | None:
        """The certificate in use (``None`` when one kept from files was not issued here)."""
        with self._lock:
            return self._current

    @property
    def serial(self) -> str | None:
        current = self.current
        return None if current is None else current.serial

    def start(self) -> None:
        """Issue and hand over the first certificate, then renew in the background.

        Raises:
            MaculaError: the first certificate could not be issued and no
                unexpired one for this name is in the files.
        """
        if self._thread is not None:
            raise ConfigError("certificate keeper already started")
        received = self._wall()
        try:
            issued = self._issue()
        except MaculaError as exc:
            not_after = self._valid_in_files()
            if not_after is None:
                raise
            _log.warning("cannot issue a certificate for %s from %s/issue/%s (%s); keeping "
                         "the one in the files until %s", self.common_name, self.mount,
                         self.role, exc, not_after.isoformat())
            self._kept_from_files = not_after
            self.failures = 1
            wait = self._backoff()
        else:
            self._hand_over(issued)
            wait = self._renew_delay(issued, received)
        self._thread = threading.Thread(target=self._run, args=(wait,),
                                        name=f"macula-pki-{self.common_name}", daemon=True)
        self._thread.start()

    def renew_now(self) -> IssuedCertificate:
        """Issue and hand over a new certificate now, from the calling thread.

        The background schedule is not changed. Raises as :func:`issue_certificate`.
        """
        issued = self._issue()
        self._hand_over(issued)
        return issued

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop renewing; with ``revoke_on_close``, revoke the current certificate.

        Files are left in place: a server reading them keeps working until
        the certificate expires. A failed revocation is logged, not raised.
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        current = self.current
        if self.revoke_on_close and current is not None:
            try:
                revoke_certificate(self.backend, self.mount, current.serial)
            except MaculaError as exc:
                _log.warning("cannot revoke certificate %s of %s: %s", current.serial,
                             self.common_name, exc)

    # -- internals -------------------------------------------------------------------

    def _issue(self) -> IssuedCertificate:
        return issue_certificate(self.backend, self.mount, self.role, self.common_name,
                                 ttl=self.ttl, alt_names=self.alt_names, ip_sans=self.ip_sans)

    def _hand_over(self, issued: IssuedCertificate) -> None:
        if self.files is not None:
            self.files.write(issued)
        with self._lock:
            first = self._current is None and self._kept_from_files is None
            self._current = issued
            self._kept_from_files = None
            self.failures = 0
            if not first:
                self.renewals += 1
        _log.info("certificate %s for %s valid until %s", issued.serial, self.common_name,
                  issued.not_after.isoformat())
        if self._on_renew is not None:
            try:
                self._on_renew(issued)
            except Exception:
                # The traceback names the callback's code, never our key material.
                _log.exception("on_renew callback for %s failed", self.common_name)

    def _renew_delay(self, issued: IssuedCertificate, received: _dt.datetime) -> float:
        """Seconds from now until the next renewal: ``renew_at`` of the lifetime, less jitter.

        The lifetime counts from when the certificate arrived, not from its
        ``not_before``: Vault backdates that (30 s by default) against clock
        skew, which would otherwise make a short-lived certificate look two
        thirds spent on arrival.
        """
        start = max(issued.not_before, received)
        lifetime = (issued.not_after - start).total_seconds()
        at = start + _dt.timedelta(
            seconds=lifetime * (self._renew_at - self._jitter * self._random()))
        return max(0.0, (at - self._wall()).total_seconds())

    def _backoff(self) -> float:
        ceiling = min(self._max_retry_delay, self._retry_delay * 2.0 ** (self.failures - 1))
        # Half fixed, half random: never hammering, never in lockstep with other nodes.
        return ceiling * (0.5 + 0.5 * self._random())

    def _run(self, wait: float) -> None:
        while not self._stop.wait(wait):
            received = self._wall()
            try:
                issued = self._issue()
            except Exception as exc:
                # MaculaError messages carry no key material; anything else is
                # named by its type only, in case its text holds the response.
                reason = str(exc) if isinstance(exc, MaculaError) else type(exc).__name__
                self.failures += 1
                wait = self._backoff()
                current = self.current
                not_after = (current.not_after if current is not None
                             else self._kept_from_files)
                expired = not_after is not None and self._wall() >= not_after
                _log.warning(
                    "cannot renew the certificate for %s from %s/issue/%s (attempt %d): %s; "
                    "%s, retrying in %.1f s", self.common_name, self.mount, self.role,
                    self.failures, reason,
                    "the current one has EXPIRED" if expired else "keeping the current one",
                    wait)
                continue
            try:
                self._hand_over(issued)
            except OSError as exc:
                self.failures += 1
                wait = self._backoff()
                _log.warning("cannot write the certificate for %s: %s; retrying in %.1f s",
                             self.common_name, exc.strerror or type(exc).__name__, wait)
                continue
            wait = self._renew_delay(issued, received)

    def _valid_in_files(self) -> _dt.datetime | None:
        """``not_after`` of an unexpired certificate for our name in the files, if any."""
        from cryptography import x509

        if self.files is None:
            return None
        path = self.files.cert if self.files.cert is not None else self.files.bundle
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            return None
        names = [a.value for a in cert.subject.get_attributes_for_oid(
            x509.oid.NameOID.COMMON_NAME)]
        if self.common_name not in names or cert.not_valid_after_utc <= self._wall():
            return None
        return cert.not_valid_after_utc


def _parse_issue(resp: Any, what: str, address: str) -> IssuedCertificate:
    """The :class:`IssuedCertificate` in an ``issue`` answer; errors never quote the key."""
    from cryptography import x509

    data = resp.get("data") if isinstance(resp, dict) else None
    if not isinstance(data, dict):
        raise BackendError(f"vault at {address} answered {what} without data")
    certificate = data.get("certificate")
    private_key = data.get("private_key")
    if not isinstance(certificate, str) or not isinstance(private_key, str) or not private_key:
        raise BackendError(f"vault at {address} answered {what} without a certificate and key",
                           hint="check that the role issues keys (pki/issue, not pki/sign)")
    chain = data.get("ca_chain") or ([data["issuing_ca"]] if data.get("issuing_ca") else [])
    try:
        parsed = x509.load_pem_x509_certificate(certificate.encode())
    except ValueError as exc:
        raise BackendError(f"vault at {address} answered {what} with a certificate that "
                           "is not PEM") from exc
    serial = data.get("serial_number")
    if not isinstance(serial, str) or not serial:
        serial = _serial_text(parsed.serial_number)
    return IssuedCertificate(
        certificate=_ends_with_newline(certificate),
        private_key=_ends_with_newline(private_key),
        ca_chain=tuple(_ends_with_newline(str(c)) for c in chain),
        serial=serial,
        not_after=parsed.not_valid_after_utc,
        not_before=parsed.not_valid_before_utc,
    )


def _serial_text(serial: int) -> str:
    """Vault's form of a serial number: colon-separated lowercase hex bytes."""
    raw = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    return ":".join(f"{b:02x}" for b in raw)


def _duration(ttl: str | int) -> str:
    if isinstance(ttl, bool) or (isinstance(ttl, int) and ttl <= 0):
        raise ConfigError(f"certificate ttl {ttl!r} must be a positive number of seconds")
    if isinstance(ttl, int):
        return f"{ttl}s"
    if not ttl.strip():
        raise ConfigError("certificate ttl is empty")
    return ttl.strip()


def _ends_with_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"


def _join(*pems: str) -> str:
    return "".join(_ends_with_newline(p) for p in pems)


def _write(path: str | os.PathLike[str], text: str, mode: int) -> None:
    """Atomically replace ``path`` with ``text``; the file ends up with ``mode``.

    atomic_write keeps an existing file's mode, but ours is part of the
    contract: a key file someone left 0644 must not pass the new key on at
    0644, so the old file is set to ``mode`` before the new one is written.
    """
    try:
        if os.stat(path).st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
    atomic_write(path, text.encode(), mode=mode)
