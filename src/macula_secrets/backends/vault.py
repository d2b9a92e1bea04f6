"""Vault / OpenBao KV v2 as a backend: one KV secret per (app, key).

The secret for key ``database_url`` of app ``console`` lives at
``<mount>/data/macula/console/database_url`` (the path template
``macula/{app}/{key}`` under the mount ``secret``) with its value in the field
``value``: the same layout ``macula-secrets serve`` speaks, so one client reads
the same paths from Vault or from an edge node. A tenant is a Vault namespace
(``X-Vault-Namespace``).

Every KV v2 version is a version here: ``put`` returns the KV version,
``get(version=N)`` reads an old one, ``delete`` soft-deletes the latest,
``undelete`` and ``destroy`` act on given versions, and ``versions`` turns
the key's metadata into :class:`VersionInfo` records.

Authentication is a token (given, from a token file, or from ``VAULT_TOKEN`` /
``BAO_TOKEN`` in the environment mapping the caller passes in) or AppRole
(``role_id`` and ``secret_id`` read from files, logged in again when the token
expires). Renewable tokens are renewed once past half their TTL.

Transient failures (connection errors, HTTP 5xx, 429) are retried with
exponential backoff and full jitter; nothing else is. hvac and requests are
imported here and nowhere else, and their errors are translated into
:mod:`macula_secrets.errors` in one place, :func:`_translate`.

This module needs the ``vault`` extra (``pip install 'macula-secrets[vault]'``).
Serving cached values while Vault is unreachable is ``Secrets``' job
(``source = "vault"``; see docs/vault.md). TLS verification is always on
(system CAs or a given CA bundle), with an optional client certificate
(mTLS).

Several addresses are the nodes of one HA cluster. Requests go to the
active node, found by asking each node's ``sys/health`` (200: active, 429:
standby); when the node in use cannot be reached, is sealed or answers 5xx,
the request moves to the active node at once (or, while none is active
yet, to a standby, which forwards or serves it) and the active node is
looked for again a few seconds later. A write moves only when the node
surely did not apply it, as with retries.
"""

from __future__ import annotations

import builtins
import contextlib
import http.client
import json
import math
import os
import random as _random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._names import check_name
from ..errors import (
    BackendError,
    ConfigError,
    ConflictError,
    KeySourceError,
    MaculaError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from ._vaulthttp import Reader

if TYPE_CHECKING:
    from ..records import VersionInfo
    from . import Backend

try:
    import hvac
    import hvac.exceptions
    import requests
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the vault backend needs hvac: pip install 'macula-secrets[vault]'") from exc

__all__ = ["AppRole", "RetryPolicy", "VaultBackend"]

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_MOUNT: Final = "secret"
DEFAULT_PATH_TEMPLATE: Final = "macula/{app}/{key}"
VALUE_FIELD: Final = "value"
TOKEN_ENV: Final = ("VAULT_TOKEN", "BAO_TOKEN")
"""Environment variables a token is taken from, first found wins."""

_CAS_MISMATCH: Final = "check-and-set parameter did not match"
_ACTIVE: Final = 200
_STANDBY: Final = frozenset({429, 473})
"""``sys/health`` codes of an unsealed standby and a performance standby."""
RECHECK_AFTER: Final = 5.0
"""Seconds on a standby (or after a move) before the active node is looked for again."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: exponential backoff with full jitter.

    Attempt ``n`` (0-based) that fails transiently waits
    ``random() * min(max_delay, base_delay * 2**n)`` seconds before the next;
    after ``max_attempts`` attempts the last error is raised.
    """

    max_attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        return random() * min(self.max_delay, self.base_delay * 2.0 ** attempt)


@dataclass(frozen=True, slots=True)
class AppRole:
    """AppRole credentials, read from files at each login (so they can be rotated).

    The files hold the ``role_id`` and the ``secret_id``; surrounding
    whitespace is ignored. ``mount`` is where the auth method is enabled.
    """

    role_id_file: str
    secret_id_file: str
    mount: str = "approle"


class _Token:
    """The current token and what is known of its lease; never shown in a repr."""

    __slots__ = ("expires_at", "issued_at", "renewable", "ttl", "value")

    def __init__(self, value: str, *, ttl: float | None = None, renewable: bool = False,
                 now: float = 0.0) -> None:
        self.value = value
        self.ttl = ttl if ttl else None  # 0 means "never expires" (a root token)
        self.renewable = renewable
        self.issued_at = now
        self.expires_at = None if self.ttl is None else now + self.ttl

    def __repr__(self) -> str:
        return "_Token('***')"


class VaultBackend:
    """One KV v2 mount of one Vault or OpenBao server (and namespace); thread-safe.

    Args:
        address: ``http(s)://host:port``, or a list of them: the nodes of one
            HA cluster, of which the active one is used (see the module docs).
        mount: where the KV v2 engine is mounted.
        path_template: where a secret lives in the mount; must contain
            ``{app}`` as a whole path segment and end with the segment ``{key}``.
        namespace: sent as ``X-Vault-Namespace`` (a tenant).
        token, token_file, approle, env: where the token comes from, first
            given wins: a token, a file holding one (read again when Vault
            refuses the token), AppRole credentials, else ``VAULT_TOKEN`` or
            ``BAO_TOKEN`` in ``env`` (the process environment is not read here).
        verify: check TLS certificates against the system CAs (``True``), or
            against the CA bundle at this path. Verification cannot be
            switched off, and a certificate problem is never retried.
        client_cert, client_key: PEM files of a client certificate and its
            key, for a server that requires one (mTLS); both or neither.
        timeout: seconds per HTTP request.
        retry: the retry policy for transient failures.
        connections: kept-alive connections over which ``list``/``load_all``/
            ``sync`` pipeline their reads (Vault works on them in parallel).
        sleep, random, clock: time and randomness, for tests.

    Raises:
        ConfigError: a bad address, mount or template, no token source, or a
            CA bundle, client certificate or key that is not a readable file.
    """

    name = "vault"

    def __init__(
        self,
        address: str | Sequence[str],
        *,
        mount: str = DEFAULT_MOUNT,
        path_template: str = DEFAULT_PATH_TEMPLATE,
        namespace: str | None = None,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        approle: AppRole | None = None,
        env: Mapping[str, str] | None = None,
        verify: bool | str | os.PathLike[str] = True,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        connections: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        addresses = [address] if isinstance(address, str) else list(address)
        if not addresses:
            raise ConfigError("no vault address given")
        for a in addresses:
            if not a.startswith(("http://", "https://")):
                raise ConfigError(f"vault address {a!r} must start with http:// or https://")
        self.addresses = [a.rstrip("/") for a in addresses]
        self.address = self.addresses[0]
        """The node requests go to now (the active one, once it is known)."""
        self._recheck_at = 0.0 if len(self.addresses) > 1 else math.inf
        self.failovers = 0
        """How many times requests moved to another node (for tests and diagnostics)."""
        mount = mount.strip("/")
        if not mount:
            raise ConfigError("vault mount is empty")
        self.mount = mount
        self.path_template = path_template
        self._apps_prefix, self._app_suffix = _split_template(path_template)
        self.namespace = namespace
        self._verify, self._cert = _tls_settings(verify, client_cert, client_key)
        self.retry = retry if retry is not None else RetryPolicy()
        if self.retry.max_attempts < 1:
            raise ConfigError("vault retry max_attempts must be at least 1")
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._connections = max(1, connections)
        self._approle = approle
        self._token_file = None if token_file is None else os.fspath(token_file)
        env = {} if env is None else env
        initial = token
        if initial is None and self._token_file is not None:
            initial = self._read_token_file()
        if initial is None and approle is None:
            initial = next((env[n] for n in TOKEN_ENV if env.get(n)), None)
            if initial is None:
                raise ConfigError(
                    f"no vault token for {self.address}",
                    hint="set VAULT_TOKEN or BAO_TOKEN, or configure token_file or approle")
        self._auth_kind = ("token" if token is not None else "token_file"
                           if self._token_file is not None else "approle"
                           if approle is not None else "env")
        self._token: _Token | None = None if initial is None else _Token(initial, now=clock())
        self._lease_known = False  # for a given token: looked up once, lazily
        self.logins = 0
        """How many AppRole logins this backend made (for tests and diagnostics)."""
        self.renewals = 0
        """How many times it renewed its token."""
        self._lock = threading.RLock()
        session = requests.Session()
        # Proxies and CA bundles come from our configuration, not from the
        # process environment (REQUESTS_CA_BUNDLE, HTTPS_PROXY).
        session.trust_env = False
        session.verify = self._verify
        session.cert = self._cert
        self._session = session
        self._timeout = timeout
        self._reader = Reader(verify=self._verify, cert=self._cert, timeout=timeout)
        self._client = hvac.Client(url=self.address, token=initial or "", namespace=namespace,
                                   verify=self._verify, cert=self._cert, timeout=timeout,
                                   session=session)

    def __repr__(self) -> str:
        ns = f", namespace={self.namespace!r}" if self.namespace else ""
        where = self.address if len(self.addresses) == 1 else self.addresses
        return (f"VaultBackend({where!r}, mount={self.mount!r}, "
                f"path_template={self.path_template!r}{ns}, auth={self._auth_kind!r})")

    def __enter__(self) -> VaultBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- paths ---------------------------------------------------------------------

    def path_of(self, app: str, key: str) -> str:
        """The secret's path inside the mount (``macula/console/database_url``)."""
        check_name("app", app)
        check_name("key", key)
        return self.path_template.format(app=app, key=key)

    def _folder_of(self, app: str) -> str:
        check_name("app", app)
        return self._apps_prefix + app + self._app_suffix

    # -- Backend -------------------------------------------------------------------

    def get(self, app: str, key: str, *, version: int | None = None) -> str | None:
        path = self.path_of(app, key)
        try:
            query = "" if version is None else f"?version={int(version)}"
            resp = self._call(lambda _: self._read("GET", f"{self.mount}/data/{path}", query),
                              f"{self.mount}/data/{path}")
        except NotFoundError:
            return None
        return self._value_of(resp, path)

    def put(self, app: str, key: str, value: str, *, cas: int | None = None) -> int:
        path = self.path_of(app, key)
        resp = self._call(
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path, secret={VALUE_FIELD: value}, cas=cas, mount_point=self.mount),
            f"{self.mount}/data/{path}", idempotent=False)
        return int(resp["data"]["version"])

    def delete(self, app: str, key: str) -> None:
        path = self.path_of(app, key)
        meta = self._metadata(path)
        current = 0 if meta is None else int(meta.get("current_version") or 0)
        if current == 0 or not _is_live(meta, current):
            raise NotFoundError(f"{app}/{key} has no live value in vault at {self.address}")
        self._on_versions("delete", path, [current])

    def delete_versions(self, app: str, key: str, versions: Sequence[int]) -> None:
        """Soft-delete the given ``versions`` of a key (``delete`` takes the latest)."""
        self._on_versions("delete", self.path_of(app, key), versions)

    def current_version(self, app: str, key: str) -> int:
        """The key's latest KV version (0 when it has none)."""
        meta = self._metadata(self.path_of(app, key))
        return 0 if meta is None else int(meta.get("current_version") or 0)

    def undelete(self, app: str, key: str, versions: Sequence[int]) -> None:
        """Restore soft-deleted ``versions`` of a key (destroyed ones stay gone)."""
        self._on_versions("undelete", self.path_of(app, key), versions)

    def destroy(self, app: str, key: str, versions: Sequence[int]) -> None:
        """Erase the values of ``versions`` of a key for good; their metadata stays."""
        self._on_versions("destroy", self.path_of(app, key), versions)

    def _on_versions(self, action: str, path: str, versions: Sequence[int]) -> None:
        """``POST <mount>/<action>/<path>`` with ``versions`` (delete, undelete, destroy)."""
        chosen = list(versions)
        self._call(lambda c: getattr(c.secrets.kv.v2, f"{action}_secret_versions")(
            path, versions=chosen, mount_point=self.mount),
            f"{self.mount}/{action}/{path}", idempotent=False)

    def list(self, app: str) -> builtins.list[str]:
        return [key for key, version in self.current_versions(app).items() if version]

    def current_versions(self, app: str) -> dict[str, int]:
        """Each key's current version from KV metadata (0: deleted or destroyed).

        One LIST, then the metadata reads pipelined: what a periodic check for
        changes costs without reading a single value.
        """
        keys = self._list_keys(app)
        answers = self._read_many(
            [f"{self.mount}/metadata/{self.path_of(app, k)}" for k in keys])
        found = {}
        for key, resp in zip(keys, answers, strict=True):
            meta = None if resp is None else resp.get("data") or {}
            if meta is not None:
                current = int(meta.get("current_version") or 0)
                found[key] = current if _is_live(meta, current) else 0
        return found

    def load_all(self, app: str) -> dict[str, str]:
        """Every live key's value: one LIST, then the reads pipelined over a few connections."""
        keys = self._list_keys(app)
        paths = [self.path_of(app, k) for k in keys]
        answers = self._read_many([f"{self.mount}/data/{p}" for p in paths])
        return {k: self._value_of(resp, p)
                for k, p, resp in zip(keys, paths, answers, strict=True) if resp is not None}

    def versions(self, app: str, key: str) -> builtins.list[VersionInfo]:
        from datetime import datetime

        from ..records import VersionInfo

        meta = self._metadata(self.path_of(app, key))
        if meta is None:
            return []
        current = int(meta.get("current_version") or 0)
        out = []
        for number, info in sorted(((int(n), i) for n, i in (meta.get("versions") or {}).items()),
                                   key=lambda item: item[0]):
            deleted = info.get("deletion_time") or ""
            out.append(VersionInfo(
                version=number,
                created=datetime.fromisoformat(info["created_time"]),
                deleted=datetime.fromisoformat(deleted) if deleted else None,
                destroyed=bool(info.get("destroyed")),
                current=number == current,
            ))
        return out

    def apps(self) -> builtins.list[str]:
        names = self._list(self._apps_prefix)
        return sorted(n[:-1] for n in names if n.endswith("/") and _valid("app", n[:-1]))

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                idempotent: bool = True) -> dict[str, Any]:
        """One call to any Vault API path (``sys/leases/renew``, ``pki/issue/web``, ...).

        For what the KV methods do not cover (leases, PKI, dynamic secrets),
        with the same token upkeep, retries, HA moves and error translation.
        Returns Vault's JSON answer (``{}`` when it has none).

        ``idempotent=False`` marks a call that must not reach Vault twice
        (reading ``database/creds/ROLE`` makes a new credential each time):
        it goes through hvac and is retried only when Vault surely did not get
        it. Every other call goes through the light keep-alive client, about
        five times less CPU a call (renewals: benchmarks/bench_leases.py).
        """
        verb = method.upper()
        where = path.strip("/")
        payload = None if body is None else json.dumps(body).encode()
        target = "/v1/" + urllib.parse.quote(where)

        def send(client: Any) -> Any:
            if not idempotent:
                return client.adapter.request(verb, f"/v1/{where}", json=body)
            return self._reader.request(self.address, verb, target, self._headers(), payload)

        resp = self._call(send, where, idempotent=idempotent)
        return resp if isinstance(resp, dict) else {}

    def close(self) -> None:
        self._reader.close()
        self._session.close()

    # -- helpers -------------------------------------------------------------------

    def _value_of(self, resp: Mapping[str, Any], path: str) -> str:
        data = (resp.get("data") or {}).get("data") or {}
        if VALUE_FIELD not in data:
            raise BackendError(
                f"{self.mount}/data/{path} in vault at {self.address} has no field "
                f"{VALUE_FIELD!r}")
        value = data[VALUE_FIELD]
        if isinstance(value, str):
            return value
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def _metadata(self, path: str) -> dict[str, Any] | None:
        try:
            resp = self._call(lambda _: self._read("GET", f"{self.mount}/metadata/{path}"),
                              f"{self.mount}/metadata/{path}")
        except NotFoundError:
            return None
        data: dict[str, Any] = resp.get("data") or {}
        return data

    def _list(self, folder: str) -> builtins.list[str]:
        try:
            resp = self._call(lambda _: self._read("LIST", f"{self.mount}/metadata/{folder}"),
                              f"{self.mount}/metadata/{folder}")
        except NotFoundError:
            return []
        return [str(k) for k in (resp.get("data") or {}).get("keys") or []]

    def _headers(self) -> dict[str, str]:
        headers = {"X-Vault-Request": "true"}
        token = self._client.token
        if token:
            if not _header_safe(token):
                raise KeySourceError("the vault token holds characters a token cannot have",
                                     hint="check the token file or VAULT_TOKEN")
            headers["X-Vault-Token"] = token
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        return headers

    def _read(self, method: str, path: str, query: str = "") -> dict[str, Any]:
        """GET or LIST ``/v1/<path>`` on the node in use, through the light reader."""
        return self._reader.request(self.address, method,
                                    "/v1/" + urllib.parse.quote(path) + query, self._headers())

    def _read_many(self, paths: builtins.list[str]) -> builtins.list[dict[str, Any] | None]:
        """GET ``/v1/<path>`` of every path, pipelined; ``None`` for an absent one.

        Any other error is raised (translated), failing them all, so that
        ``_call`` retries them or logs in again as for a single read.
        """
        if not paths:
            return []

        def fetch(_: Any) -> builtins.list[dict[str, Any] | None]:
            answers = self._reader.request_many(
                self.address, "GET", ["/v1/" + urllib.parse.quote(p) for p in paths],
                self._headers(), connections=self._connections)
            out: builtins.list[dict[str, Any] | None] = []
            for path, answer in zip(paths, answers, strict=True):
                if not isinstance(answer, BaseException):
                    out.append(answer)
                    continue
                try:
                    with _translate(self.address, path, client_cert=self._cert is not None):
                        raise answer
                except NotFoundError:
                    out.append(None)
            return out

        return self._call(fetch, f"{len(paths)} reads under {self.mount}/")  # type: ignore[no-any-return]

    def _list_keys(self, app: str) -> builtins.list[str]:
        names = self._list(self._folder_of(app))
        return sorted(n for n in names if not n.endswith("/") and _valid("key", n))

    # -- auth ----------------------------------------------------------------------

    def _read_token_file(self) -> str:
        path = self._token_file or ""
        text = _read_secret_file(path, "vault token file")
        if not text:
            raise KeySourceError(f"vault token file {self._token_file} is empty")
        return text

    def _set_token(self, token: _Token) -> None:
        self._token = token
        self._client.token = token.value

    def _login(self) -> None:
        """Log in with AppRole (or re-read the token file); the caller holds the lock."""
        if self._approle is None:
            if self._token_file is not None:
                self._set_token(_Token(self._read_token_file(), now=self._clock()))
                self._lease_known = False
            return
        role = self._approle
        role_id = _read_secret_file(role.role_id_file, "approle role_id file")
        secret_id = _read_secret_file(role.secret_id_file, "approle secret_id file")
        path = f"auth/{role.mount}/login"
        try:
            resp = self._attempts(lambda c: c.auth.approle.login(
                role_id, secret_id, use_token=False, mount_point=role.mount), path)
        except UnavailableError:
            raise
        except BackendError as exc:
            if isinstance(exc.__cause__, requests.exceptions.RequestException):
                raise  # a TLS or transport problem, not the credentials
            raise PermissionDeniedError(
                f"approle login at {path} on {self.address} was refused",
                hint="check role_id and secret_id (vault.role_id_file, "
                     "vault.secret_id_file)") from exc
        auth = resp.get("auth") or {}
        self._set_token(_Token(str(auth.get("client_token") or ""),
                               ttl=float(auth.get("lease_duration") or 0),
                               renewable=bool(auth.get("renewable")), now=self._clock()))
        self._lease_known = True
        self.logins += 1

    def _ensure_token(self) -> None:
        """Log in, look up, renew or replace the token as its lease requires."""
        with self._lock:
            if self._token is None:
                self._login()
                return
            if not self._lease_known:
                self._lookup_lease()
            token = self._token
            if token is None or token.expires_at is None or token.ttl is None:
                return
            now = self._clock()
            # A margin of a tenth of the TTL (at most 5 s) keeps a request from
            # racing the expiry on the way to the server.
            if self._approle is not None and now >= token.expires_at - min(5.0, token.ttl / 10):
                self._login()
            elif token.renewable and now >= token.issued_at + token.ttl / 2:
                self._renew()

    def _lookup_lease(self) -> None:
        """Learn a given token's TTL once; a token that cannot look itself up is left as is."""
        try:
            resp = self._attempts(lambda c: c.auth.token.lookup_self(), "auth/token/lookup-self",
                                  max_attempts=1)
        except UnavailableError:
            return  # the real request will report it; try again next time
        except BackendError:
            self._lease_known = True
            return
        data = resp.get("data") or {}
        if self._token is None:
            return
        self._token = _Token(self._token.value, ttl=float(data.get("ttl") or 0),
                             renewable=bool(data.get("renewable")), now=self._clock())
        self._lease_known = True

    def _renew(self) -> None:
        try:
            resp = self._attempts(lambda c: c.auth.token.renew_self(), "auth/token/renew-self")
        except BackendError:
            if self._approle is not None:
                self._login()
            return
        auth = resp.get("auth") or {}
        if self._token is None:
            return
        self.renewals += 1
        self._set_token(_Token(self._token.value, ttl=float(auth.get("lease_duration") or 0),
                               renewable=bool(auth.get("renewable")), now=self._clock()))

    # -- requests ------------------------------------------------------------------

    def _call(self, fn: Callable[[Any], Any], what: str, *, idempotent: bool = True) -> Any:
        """Run one API call with auth upkeep, one re-login on 403, and retries."""
        if self._clock() >= self._recheck_at:
            self._locate()
        self._ensure_token()
        try:
            return self._attempts(fn, what, idempotent=idempotent)
        except PermissionDeniedError:
            # Vault answers 403 both for an expired token and for a policy that
            # says no; only a new token tells them apart.
            if self._approle is None and self._token_file is None:
                raise
            with self._lock:
                before = self._token.value if self._token is not None else None
                self._login()
                changed = self._token is not None and self._token.value != before
            if not changed:
                raise
            return self._attempts(fn, what, idempotent=idempotent)

    def _attempts(self, fn: Callable[[Any], Any], what: str, *,
                  idempotent: bool = True, max_attempts: int | None = None) -> Any:
        """Run ``fn(client)``, retrying transient failures with backoff and full jitter.

        A write is retried only when the server cannot have applied it: the
        connection was never made, or the answer was 429 or 503.
        """
        limit = self.retry.max_attempts if max_attempts is None else max_attempts
        attempt = moves = 0
        while True:
            address = self.address
            try:
                with _translate(address, what, client_cert=self._cert is not None):
                    return fn(self._client)
            except UnavailableError as exc:
                if not idempotent and not _not_applied(exc.__cause__):
                    raise
                if moves < len(self.addresses) - 1 and self._fail_over(address):
                    moves += 1
                    continue
                attempt += 1
                if attempt >= limit:
                    if len(self.addresses) > 1:
                        raise UnavailableError(
                            f"no node of the vault cluster ({', '.join(self.addresses)}) "
                            f"answered {what}; last: {exc}", hint=exc.hint) from exc.__cause__
                    raise
                self._sleep(self.retry.delay(attempt - 1, self._random))

    # -- HA --------------------------------------------------------------------------

    def _health(self, address: str) -> int | None:
        """The ``sys/health`` status code of one node, or ``None`` when it cannot be reached."""
        try:
            resp = self._session.get(f"{address}/v1/sys/health",
                                     timeout=min(self._timeout, 2.0), allow_redirects=False)
        except requests.exceptions.RequestException:
            return None
        return int(resp.status_code)

    def _use(self, address: str) -> None:
        self.address = address
        self._client.url = address

    def _locate(self) -> None:
        """Point requests at the active node: the current one if it is, else the first that is.

        With no active node (an election in progress), a standby is used and
        the search repeats after :data:`RECHECK_AFTER` seconds.
        """
        with self._lock:
            if self._clock() < self._recheck_at:
                return  # another thread just did
            current = self.address
            status = self._health(current)
            if status == _ACTIVE:
                self._recheck_at = math.inf
                return
            self._pick(exclude=current, standby=current if status in _STANDBY else None)

    def _fail_over(self, failed: str) -> bool:
        """After ``failed`` could not serve a request: move to another node, if one answers."""
        with self._lock:
            if self.address != failed:
                return True  # another thread has moved already
            return self._pick(exclude=failed)

    def _pick(self, *, exclude: str, standby: str | None = None) -> bool:
        """Use the active node among the others, else ``standby`` or another standby.

        The caller holds the lock.
        """
        start = self.addresses.index(exclude) if exclude in self.addresses else -1
        others = self.addresses[start + 1:] + self.addresses[:start + 1]
        for address in others:
            if address == exclude:
                continue
            status = self._health(address)
            if status == _ACTIVE:
                self._move(address, recheck=math.inf)
                return True
            if status in _STANDBY and standby is None:
                standby = address
        if standby is None:
            self._recheck_at = self._clock() + RECHECK_AFTER
            return False
        self._move(standby, recheck=self._clock() + RECHECK_AFTER)
        return True

    def _move(self, address: str, *, recheck: float) -> None:
        if address != self.address:
            self._use(address)
            self.failovers += 1
        self._recheck_at = recheck


_: Callable[..., Backend] = VaultBackend


@contextlib.contextmanager
def _translate(address: str, what: str, *, client_cert: bool = False) -> Iterator[None]:
    """Turn hvac's and requests' exceptions into macula_secrets errors.

    ``what`` names the API path (``secret/data/macula/app/key``); messages
    carry it and the address, never a token or a value. ``client_cert``
    says whether a client certificate was offered (for TLS messages).
    """
    try:
        yield
    except MaculaError:
        raise  # translated already (PermissionDeniedError is an OSError too)
    except hvac.exceptions.InvalidPath as exc:
        errors = " ".join(exc.errors or [])
        if "no handler for route" in errors:
            raise ConfigError(
                f"nothing is mounted at {what.split('/', 1)[0]}/ in vault at {address}",
                hint="check the backend's mount (a KV v2 secrets engine)") from exc
        if getattr(exc, "json", None) is None:
            # Vault's 404 carries a JSON body; a bare one comes from something
            # else (a proxy, a web server), and must not read as "no secret".
            raise BackendError(
                f"{address} answered 404 for {what} without a vault error body",
                hint="check that the address is a vault or openbao server") from exc
        raise NotFoundError(f"{what} not found in vault at {address}") from exc
    except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
        raise PermissionDeniedError(
            f"permission denied for {what} in vault at {address}",
            hint="check that the token has not expired and that its policy allows this "
                 "path") from exc
    except hvac.exceptions.VaultDown as exc:
        errors = " ".join(exc.errors or []).lower()
        state = "sealed" if "sealed" in errors else "unavailable (HTTP 503)"
        raise UnavailableError(f"vault at {address} is {state}", hint=(
            "unseal it (vault operator unseal, or bao operator unseal)" if state == "sealed"
            else None)) from exc
    except hvac.exceptions.RateLimitExceeded as exc:
        raise UnavailableError(f"vault at {address} is rate limiting (HTTP 429)") from exc
    except (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway,
            hvac.exceptions.UnexpectedError) as exc:
        raise UnavailableError(
            f"vault at {address} failed on {what}: {_first_error(exc)}") from exc
    except hvac.exceptions.VaultNotInitialized as exc:
        raise BackendError(f"vault at {address} is not initialized") from exc
    except hvac.exceptions.InvalidRequest as exc:
        if _CAS_MISMATCH in " ".join(exc.errors or []):
            raise ConflictError(
                f"{what} changed: the check-and-set version is not the current one") from exc
        raise BackendError(f"vault refused {what}: {_first_error(exc)}") from exc
    except hvac.exceptions.VaultError as exc:
        raise BackendError(f"vault at {address} failed on {what}: {_first_error(exc)}") from exc
    except requests.exceptions.SSLError as exc:
        # Not transient and never retried, least of all without verification.
        reason = _reason(exc)
        problem, hint = _tls_problem(reason, client_cert=client_cert)
        raise BackendError(f"TLS to vault at {address} failed: {problem} ({reason})",
                           hint=hint) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise UnavailableError(f"cannot reach vault at {address}: {_reason(exc)}",
                               hint=_UNREACHABLE_HINT) from exc
    except requests.exceptions.RequestException as exc:
        raise BackendError(f"request to vault at {address} failed: {_reason(exc)}") from exc
    # The stdlib reader's transport errors (backends/_vaulthttp.py).
    except ssl.SSLError as exc:
        reason = _reason(exc)
        problem, hint = _tls_problem(reason, client_cert=client_cert)
        raise BackendError(f"TLS to vault at {address} failed: {problem} ({reason})",
                           hint=hint) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise UnavailableError(f"cannot reach vault at {address}: {_reason(exc)}",
                               hint=_UNREACHABLE_HINT) from exc


_UNREACHABLE_HINT: Final = "check the address, and that vault runs and can be reached from here"
_CA_HINT: Final = ("set [vault] ca_cert (or VAULT_CACERT; verify= for VaultBackend) to the "
                   "CA that signed the server certificate")


def _tls_problem(reason: str, *, client_cert: bool) -> tuple[str, str]:
    """What an OpenSSL reason means for the user, and what to do: ``(problem, hint)``."""
    text = reason.lower()
    if "certificate required" in text:
        return ("the server requires a client certificate",
                "set [vault] client_cert and client_key (or VAULT_CLIENT_CERT and "
                "VAULT_CLIENT_KEY) to a certificate signed by a CA the server trusts")
    if "key values mismatch" in text or "pem lib" in text:
        return ("cannot use the client certificate and key",
                "check that client_key is the PEM private key of client_cert")
    if "mismatch" in text or "not valid for" in text:
        return ("the server certificate is not valid for this host name",
                "use a host name or IP address the server certificate was issued for")
    if "has expired" in text or "not yet valid" in text:
        return ("the server certificate is expired or not yet valid",
                "renew the server certificate, or check this machine's clock")
    if "certificate verify failed" in text or "certificate_verify_failed" in text:
        return "the server certificate is not signed by a trusted CA", _CA_HINT
    if client_cert and any(alert in text for alert in (
            "bad certificate", "unknown ca", "certificate unknown", "unsupported certificate",
            "access denied", "eof occurred", "handshake failure")):
        return ("the server rejected the client certificate",
                "check that client_cert is signed by a CA the server trusts for clients "
                "(tls_client_ca_file) and has not expired")
    if "wrong version number" in text or "record layer" in text:
        return ("the server does not speak TLS on this port",
                "check the address's scheme (http:// or https://) and port")
    return "the TLS handshake failed", _CA_HINT + "; check the address's scheme"


def _tls_settings(verify: bool | str | os.PathLike[str],
                  client_cert: str | os.PathLike[str] | None,
                  client_key: str | os.PathLike[str] | None,
                  ) -> tuple[bool | str, tuple[str, str] | None]:
    """requests' ``verify`` and ``cert``, after checking that the files can be read."""
    if verify is False:
        raise ConfigError("vault TLS verification cannot be switched off",
                          hint="give the CA bundle that signed the server certificate")
    checked: bool | str = True
    if verify is not True:
        checked = _readable(os.fspath(verify), "vault CA bundle", folder_ok=True)
    if (client_cert is None) != (client_key is None):
        raise ConfigError("vault client_cert and client_key go together (mTLS)")
    cert = None
    if client_cert is not None and client_key is not None:
        cert = (_readable(os.fspath(client_cert), "vault client certificate"),
                _readable(os.fspath(client_key), "vault client key"))
    return checked, cert


def _readable(path: str, what: str, *, folder_ok: bool = False) -> str:
    """``path`` if it is a readable file (its content is never shown), else ConfigError.

    With ``folder_ok``, a folder is accepted too (an OpenSSL CA folder).
    """
    if not path:
        raise ConfigError(f"{what} path is empty")
    if folder_ok and os.path.isdir(path):
        return path
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return path


def _not_applied(cause: BaseException | None) -> bool:
    """Whether a failed write surely did not reach the storage (safe to send again)."""
    if isinstance(cause, (hvac.exceptions.VaultDown, hvac.exceptions.RateLimitExceeded,
                          requests.exceptions.ConnectTimeout)):
        return True
    return isinstance(cause, requests.exceptions.ConnectionError) and not isinstance(
        cause, requests.exceptions.ReadTimeout)


def _header_safe(value: str) -> bool:
    """Whether ``value`` can be sent as an HTTP header value (printable ASCII)."""
    return value.isascii() and value.isprintable()


def _first_error(exc: Any) -> str:
    errors = getattr(exc, "errors", None) or []
    return str(errors[0]) if errors else type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests error, e.g. ``connection refused``."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split("\n")[0][:200]


def _is_live(meta: Mapping[str, Any] | None, version: int) -> bool:
    if not meta or version <= 0:
        return False
    info = (meta.get("versions") or {}).get(str(version)) or {}
    return bool(info) and not info.get("deletion_time") and not info.get("destroyed")


def _valid(kind: Any, name: str) -> bool:
    try:
        check_name(kind, name)
    except ConfigError:
        return False
    return True


def _split_template(template: str) -> tuple[str, str]:
    """``macula/{app}/{key}`` -> (``macula/``, ``/``): around ``{app}``, before ``{key}``."""
    if template.count("{app}") != 1 or template.count("{key}") != 1 \
            or not template.endswith("{key}"):
        raise ConfigError(
            f"vault path template {template!r} must contain {{app}} once and end with {{key}}")
    before, after = template.split("{app}")
    folder = after[: -len("{key}")]
    if (before and not before.endswith("/")) or not folder.startswith("/") \
            or not folder.endswith("/") or "{" in before + folder:
        raise ConfigError(
            f"vault path template {template!r}: {{app}} and {{key}} must be whole path "
            "segments, {app} before {key}")
    return before.lstrip("/"), folder


def _read_secret_file(path: str, what: str) -> str:
    """A credential file's content, stripped; errors name the file, never its content."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise KeySourceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise KeySourceError(f"{what} {path} is not UTF-8 text") from exc
