"""The server's ASGI application: Vault's KV v2 paths, JSON shapes and status codes.

A plain ASGI callable, no framework: a cached read costs about a
microsecond in the store, so routing and JSON are most of a request's
cost. Secrets live at ``/v1/secret/{data,metadata,delete,undelete,destroy}/
macula/<app>/<key>`` with the value in the one field ``value``; the tenant
is the Vault namespace (``X-Vault-Namespace``, default ``default``); the
token comes from ``X-Vault-Token`` or ``Authorization: Bearer``. Further
paths: ``sys/health``, ``auth/token/lookup-self``, the mount preflight the
``vault``/``bao`` CLIs send (``sys/internal/ui/mounts/...``), the OpenAPI
description (``sys/internal/specs/openapi``) and the watch stream
(``sys/macula/watch``, server-sent events).

Every request is checked against :meth:`~.auth.Identity.allows` before the
store is touched, and answered only after its audit line is written (and,
with ``--audit-sync always``, fsynced: :mod:`.audit`); a request whose line
cannot be written gets 503 and no value. Latest-version reads run on the
event loop (a store cache hit); a repeated one is answered by
:meth:`App.fast_get` from inside the HTTP protocol, without an ASGI task
(see ``server/run.py``). Everything that may write or scan runs in the
default thread pool, so a write's fsync does not stall the reads of other
clients.

Use :func:`macula_secrets.server.run.serve` to serve it; tests may call the
app directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from .._names import check_name
from ..errors import NotFoundError, UnavailableError
from .audit import encode_string
from .errors import HTTPError, error_body, status_for
from .metrics import operation

if TYPE_CHECKING:
    from ..client import Secrets
    from ..mesh.desk import JoinDesk
    from ..records import VersionInfo
    from .audit import ServerAudit
    from .auth import Authenticator, Identity
    from .metrics import Family, ServerMetrics

__all__ = ["MOUNT", "PREFIX", "App"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MOUNT: Final = "secret"
JOIN_PATH: Final = "sys/macula/join"
"""Where a new node asks to join and polls for the answer (:mod:`.join`)."""
JOIN_BODY_LIMIT: Final = 16 * 1024
"""The one KV v2 mount this server answers."""
PREFIX: Final = "macula"
"""Secret paths are ``macula/<app>/<key>``, as the vault backend writes them."""
PEER_KEY: Final = "macula.peer_uid"
"""Scope key under which the Unix-socket server puts the peer's uid (SO_PEERCRED)."""

_JSON: Final = (b"content-type", b"application/json")
_OPS: Final = frozenset({"data", "metadata", "delete", "undelete", "destroy"})
_MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEEPALIVE: Final = 15.0
_LATEST_CACHE: Final = 10_000
_LATEST_TTL: Final = 5.0
_DATA_PATH: Final = f"/v1/{MOUNT}/data/{PREFIX}/".encode()
_ENVELOPE_HEAD: Final = b'{"request_id":"'
_ENVELOPE_MID: Final = b'","lease_id":"","renewable":false,"lease_duration":0,"data":'
_ENVELOPE_TAIL: Final = b',"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}'


class _Latest:
    """A cached latest version: valid while the store's change token is ``token``
    and until ``expires``; ``data`` is the encoded ``data`` of the answer."""

    __slots__ = ("audit_tail", "data", "expires", "info", "readers", "token", "value_hmac")

    def __init__(self, token: bytes, value: str, info: VersionInfo, value_hmac: str | None,
                 expires: float) -> None:
        self.token = token
        self.info = info
        self.value_hmac = value_hmac
        self.expires = expires
        self.data = _dumps({"data": {"value": value}, "metadata": _version_meta(info)})
        self.readers: dict[int, tuple[object, str, bytes]] = {}
        """id(rules) -> (rules, accessor, audit head) for the rules found to allow
        reading it."""
        tail = b'","value_hmac":' + _json_str(value_hmac) if value_hmac is not None else b'"'
        self.audit_tail = tail + b',"version":' + str(info.version).encode() + b"}"


class _Request:
    """What a handler needs to know about one request."""

    __slots__ = ("audit", "content_type", "identity", "method", "namespace_header", "query",
                 "request_id", "tenant", "token")

    def __init__(self, method: str, query: dict[str, str], tenant: str, token: str | None
                 ) -> None:
        self.method = method
        self.query = query
        self.tenant = tenant
        self.token = token
        self.identity: Identity | None = None
        self.request_id = _request_id()
        self.audit: dict[str, object] = {}
        self.namespace_header = False
        self.content_type = _JSON[1]


class App:
    """The ASGI application over one :class:`~macula_secrets.Secrets` (its tenant views).

    Args:
        secrets: the node's store, opened by the caller (closed by the caller).
        authenticator: maps tokens to identities.
        audit: the server's audit writer.
        max_body: largest request body in bytes (413 beyond it).
        peer_identity: maps a Unix-socket peer's uid to an identity, for
            requests over the socket that carry no token (``None``: tokens only).
        metrics: counts requests for ``sys/metrics`` (``None``: no metrics, and
            ``sys/metrics`` answers 404).
    """

    def __init__(self, secrets: Secrets, authenticator: Authenticator, audit: ServerAudit, *,
                 max_body: int | None = None,
                 peer_identity: Callable[[int], Identity | None] | None = None,
                 version: str = "", metrics: ServerMetrics | None = None) -> None:
        self.secrets = secrets
        self.authenticator = authenticator
        self.audit = audit
        limit = secrets.store.max_value_size if max_body is None else max_body
        # JSON escaping can make a value up to six times longer (\uXXXX).
        self.max_body = max_body if max_body is not None else limit * 6 + 4096
        self.peer_identity = peer_identity
        self.version = version
        self._tenants: dict[str, Secrets] = {secrets.tenant: secrets}
        self._tenant_lock = threading.Lock()
        # (tenant, app, key) -> the latest version read (its answer prebuilt), valid
        # until the next change anywhere in the store, for at most _LATEST_TTL.
        self._latest: dict[tuple[str, str, str], _Latest] = {}
        self._watchers: set[asyncio.Queue[tuple[str, str, int] | None]] = set()
        self._actor = audit.actor_json()
        self._middles: dict[tuple[tuple[str, int] | None, str], bytes] = {}
        """(client, tenant) -> the part of a read's audit line between prev and time."""
        self.on_startup: Callable[[], None] | None = None
        """Called once serving begins (signals are handled from then on)."""
        self.join_desk: JoinDesk | None = None
        """Where nodes ask to join (``sys/macula/join``); ``None``: not offered (no TLS)."""
        self.metrics = metrics
        self.integrity: dict[str, object] = {"status": "not checked"}
        """The store's integrity check (``serve`` runs one in the background at start)."""

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.on_startup is not None:
                        self.on_startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.stop_watchers()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def stop_watchers(self) -> None:
        """End every open watch stream (called on shutdown; from the event loop)."""
        for queue in list(self._watchers):
            queue.put_nowait(None)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        token, namespace, length, _chunked = _scan_headers(scope["headers"])
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        req = _Request(method, query, "default", token or None)
        req.audit = {"method": method, "remote": _client(scope)}
        uid = scope.get(PEER_KEY)
        if uid is not None:
            req.audit["peer_uid"] = uid
        mutating = method in _MUTATING
        try:
            path = _path(scope)
            req.audit["path"] = path
            if namespace is not None:
                req.tenant = check_name("tenant", namespace.strip("/") or "default")
            req.audit["tenant"] = req.tenant
            req.identity = self._identify(req.token, uid)
            if req.identity is not None:
                req.audit["accessor"] = req.identity.accessor
            elif req.token is not None:
                req.audit["token_hmac"] = self.audit.value_hmac(req.token)
            if mutating and self.audit.failing:
                # Fail closed: no change is made while its line may not be written.
                raise HTTPError(503, "the audit log cannot be written; request refused")
            if path == "sys/macula/watch" and method == "GET":
                await self._watch(req, receive, send)
                return
            body = b""
            if method in ("POST", "PUT", "PATCH") and path.startswith(f"{MOUNT}/"):
                self._need_token(req)
                body = await _read_body(receive, length, self.max_body)
            elif method == "POST" and path.startswith(JOIN_PATH):
                body = await _read_body(receive, length, JOIN_BODY_LIMIT)  # no token: a node
            if mutating and req.identity is not None:
                # Vault's request entry: a change is made only after a line saying it
                # was asked for is written to the file and taken by every required
                # sink; else 503 and nothing changes (the response line follows).
                await self.audit.record(_op(method, path), req.audit, result="request")
            status, payload = await self._route(req, path, body, scope)
        except Exception as exc:
            status, message = status_for(exc)
            payload = error_body(message)
            req.audit["error"] = message
        req.audit["status"] = status
        try:
            await self.audit.record(_op(method, req.audit.get("path")), req.audit,
                                    result=_result(status))
        except UnavailableError as exc:
            status, payload = 503, error_body(str(exc))
        metrics = self.metrics
        if metrics is not None:
            metrics.observe(operation(method, req.audit.get("path")), _result(status),
                            time.perf_counter() - started)
        headers = [(b"content-length", str(len(payload)).encode())]
        if payload:
            headers.append((b"content-type", req.content_type if status == 200 else _JSON[1]))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if method == "HEAD" else payload})

    def _identify(self, token: str | None, uid: int | None) -> Identity | None:
        identity = None
        if token is not None:
            identity = self.authenticator.lookup(token)
        elif uid is not None and self.peer_identity is not None:
            identity = self.peer_identity(uid)
        if identity is not None and identity.expires_at is not None \
                and identity.expires_at <= time.time():
            return None
        return identity

    @staticmethod
    def _need_token(req: _Request) -> Identity:
        if req.identity is None:
            raise HTTPError(403, "permission denied")
        return req.identity

    def _allow(self, req: _Request, capability: str, app: str, key: str | None = None
               ) -> None:
        identity = self._need_token(req)
        if not identity.allows(capability, req.tenant, app, key):
            raise HTTPError(403, "permission denied")

    def _tenant(self, tenant: str) -> Secrets:
        view = self._tenants.get(tenant)
        if view is None:
            with self._tenant_lock:  # handlers run in several threads
                view = self._tenants.get(tenant)
                if view is None:
                    view = self._tenants[tenant] = self.secrets.with_tenant(tenant)
        return view

    # -- routing ---------------------------------------------------------------------

    async def _route(self, req: _Request, path: str, body: bytes, scope: Scope
                     ) -> tuple[int, bytes]:
        method = req.method
        parts = path.split("/")
        if parts[0] == MOUNT and len(parts) >= 2 and parts[1] in _OPS:
            return await self._secret(req, parts[1], parts[2:], body)
        if path == JOIN_PATH or path.startswith(JOIN_PATH + "/"):
            from .join import route as join_route

            return await join_route(self.join_desk, method, path, body, req.audit)
        if path == "sys/health":
            _methods(method, "GET", "HEAD")
            loop = asyncio.get_running_loop()
            return 200, _dumps(await loop.run_in_executor(None, self._health))
        if path == "sys/metrics" and self.metrics is not None:
            _methods(method, "GET")
            self._need_token(req)
            return 200, await self._metrics(req)
        if path == "auth/token/lookup-self":
            _methods(method, "GET", "POST")
            return 200, self._envelope(req, self._lookup_self(req))
        if path.startswith("sys/internal/ui/mounts/") or path == "sys/internal/ui/mounts":
            _methods(method, "GET")
            self._need_token(req)
            mount = path[len("sys/internal/ui/mounts/"):].split("/", 1)[0]
            if mount != MOUNT:
                raise HTTPError(404)
            return 200, self._envelope(req, {
                "path": f"{MOUNT}/", "type": "kv", "description": "macula-secrets KV v2",
                "options": {"version": "2"}, "accessor": "kv_macula", "local": True,
                "seal_wrap": False, "external_entropy_access": False, "config": {}})
        if path == "sys/internal/specs/openapi":
            _methods(method, "GET")
            from ._openapi import openapi

            return 200, _dumps(openapi(self.version))
        raise HTTPError(404)

    def _health(self) -> dict[str, object]:
        """Vault's health fields, and ours under ``macula`` (run in a worker thread: it
        reads the store)."""
        from .._health import last_sync

        audit = self.audit
        sinks = audit.sinks.stats if audit.sinks is not None else []
        return {"initialized": True, "sealed": False, "standby": False,
                "performance_standby": False, "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled", "server_time_utc": int(time.time()),
                "version": self.version, "cluster_name": "macula-secrets",
                "cluster_id": "", "enterprise": False,
                "macula": {
                    # A server serves only an unlocked store: it unlocks before listening.
                    "locked": False,
                    "integrity": dict(self.integrity),
                    "audit": {"file": {"path": audit.path, "sync": audit.sync,
                                       "lines": audit.lines, "failing": audit.failing,
                                       "refused": audit.failures},
                              "sinks": [s.to_json() for s in sinks]},
                    "last_sync": last_sync(self.secrets.store, self.secrets.tenant)}}

    async def _metrics(self, req: _Request) -> bytes:
        """``sys/metrics``: JSON, or Prometheus text with ``format=prometheus``."""
        from .metrics import CONTENT_TYPE, render_prometheus

        assert self.metrics is not None  # noqa: S101 - routed only with metrics
        families = self.metrics.families()  # on the loop: the counters move there
        loop = asyncio.get_running_loop()
        families += await loop.run_in_executor(None, self._gauges)
        if req.query.get("format") == "prometheus":
            req.content_type = CONTENT_TYPE
            return render_prometheus(families)
        return _dumps({"metrics": [f.to_json() for f in families]})

    def _gauges(self) -> list[Family]:
        """What the store, the audit writer and its sinks say now (a worker thread)."""
        from .. import _telemetry
        from .metrics import Family

        audit = self.audit
        store = self.secrets.store
        lines = Family("macula_audit_lines_total", "counter",
                       "Lines written to the hash-chained audit file").add(audit.lines)
        refused = Family("macula_audit_failures_total", "counter",
                         "Requests refused because their audit line was not taken "
                         "(file, fsync or a required sink)").add(audit.failures)
        failing = Family("macula_audit_failing", "gauge",
                         "1 while the last audit line failed (changes are refused)"
                         ).add(int(audit.failing))
        sink_lines = Family("macula_audit_sink_lines_total", "counter",
                            "Audit lines a sink took")
        sink_failures = Family("macula_audit_sink_failures_total", "counter",
                               "Audit lines a sink did not take (or whose queue was full)")
        for stats in audit.sinks.stats if audit.sinks is not None else []:
            labels = {"sink": stats.name, "type": stats.kind,
                      "required": str(stats.required).lower()}
            sink_lines.add(stats.lines, **labels)
            sink_failures.add(stats.failures, **labels)
        runs = Family("macula_sync_runs_total", "counter",
                      "Syncs run by this process").add(_telemetry.COUNTS["sync_runs"])
        sync_failures = Family("macula_sync_failures_total", "counter",
                               "Syncs that raised or reported a failing app"
                               ).add(_telemetry.COUNTS["sync_failures"])
        renewals = Family("macula_lease_renewals_total", "counter",
                          "Lease renewals by this process's LeaseKeepers"
                          ).add(_telemetry.lease_renewals())
        age = Family("macula_master_key_age_seconds", "gauge",
                     "Seconds since the master key was made or last rotated")
        made = store.master_key_created()
        if made is not None:
            age.add(max(0.0, time.time() - made))
        size = Family("macula_store_size_bytes", "gauge", "Bytes of store.db and its WAL"
                      ).add(_telemetry.store_size(store.path))
        integrity = Family("macula_store_integrity_ok", "gauge",
                           "1 when the store's last integrity check passed"
                           ).add(int(self.integrity.get("status") == "ok"))
        return [lines, refused, failing, sink_lines, sink_failures, runs, sync_failures,
                renewals, age, size, integrity]

    def _lookup_self(self, req: _Request) -> dict[str, object]:
        identity = self._need_token(req)
        ttl = 0
        expire = None
        if identity.expires_at is not None:
            ttl = max(0, int(identity.expires_at - time.time()))
            from ..records import _rfc3339, from_timestamp

            when = from_timestamp(identity.expires_at)
            expire = _rfc3339(when) if when is not None else None
        return {"accessor": identity.accessor, "display_name": identity.display_name,
                "policies": ["macula"], "meta": dict(identity.meta) or None, "ttl": ttl,
                "expire_time": expire, "renewable": False, "type": "service",
                "path": "auth/token/create", "orphan": True, "num_uses": 0,
                "creation_ttl": 0, "entity_id": "", "explicit_max_ttl": 0}

    # -- the KV v2 mount ---------------------------------------------------------------

    async def _secret(self, req: _Request, op: str, rest: list[str], body: bytes
                      ) -> tuple[int, bytes]:
        method = req.method
        if op == "metadata" and (method == "LIST" or (method == "GET" and
                                                      req.query.get("list") == "true")):
            return await self._list(req, rest)
        app, key = _app_key(rest)
        req.audit.update(app=app, key=key)
        tenant = req.tenant
        loop = asyncio.get_running_loop()
        if op == "data":
            if method == "GET":
                self._allow(req, "read", app, key)
                version = _int(req.query.get("version", "0"), "version")
                if version:
                    req.audit["version"] = version
                else:
                    hit = self._cached_latest(tenant, app, key)
                    if self.metrics is not None:
                        if hit is None:
                            self.metrics.cache_misses += 1
                        else:
                            self.metrics.cache_hits += 1
                    if hit is not None:
                        req.audit["version"] = hit.info.version
                        req.audit["value_hmac"] = hit.value_hmac
                        return 200, self._envelope_bytes(req.request_id, hit.data)
                return await loop.run_in_executor(None, self._read, req, app, key, version)
            if method in ("POST", "PUT", "PATCH"):
                return await loop.run_in_executor(None, self._write, req, app, key, body)
            if method == "DELETE":
                self._allow(req, "delete", app, key)
                await loop.run_in_executor(None, self._change, tenant, "delete", app, key,
                                           None)
                return 204, b""
            raise HTTPError(405)
        if op == "metadata":
            if method == "GET":
                identity = self._need_token(req)
                if not (identity.allows("metadata", tenant, app, key)
                        or identity.allows("read", tenant, app, key)):
                    raise HTTPError(403, "permission denied")
                return await loop.run_in_executor(None, self._metadata, req, app, key)
            if method == "DELETE":
                self._allow(req, "metadata", app, key)
                self._allow(req, "destroy", app, key)
                await loop.run_in_executor(None, self._purge, tenant, app, key)
                return 204, b""
            raise HTTPError(405)
        # delete/, undelete/, destroy/
        _methods(method, "POST", "PUT")
        self._allow(req, "destroy" if op == "destroy" else "delete", app, key)
        versions = _versions(_json_object(body).get("versions"), required=op == "destroy")
        req.audit["versions"] = versions
        await loop.run_in_executor(None, self._change, tenant, op, app, key, versions)
        return 204, b""

    def _cached_latest(self, tenant: str, app: str, key: str) -> _Latest | None:
        """The latest value and its version, when no change was committed since they
        were read (the store's change token, a memory read) and they are fresh."""
        hit = self._latest.get((tenant, app, key))
        if hit is None:
            return None
        if hit.token != self.secrets.store.token() or time.monotonic() > hit.expires:
            self._latest.pop((tenant, app, key), None)
            return None
        return hit

    def fast_get(self, url: bytes, headers: list[tuple[bytes, bytes]],
                 client: tuple[str, int] | None, peer_uid: int | None) -> bytes | None:
        """The body of a 200 answer to ``GET /v1/secret/data/macula/APP/KEY`` (the
        latest version), its audit line written, when it can be given straight from
        the cache; ``None``: nothing was done, take the ASGI path.

        Called by the server's protocol for a GET without a body, before any ASGI
        scope or task is made: the hot path of a read costs a dictionary hit, a
        token lookup, a policy check and the audit line. Anything else (a query,
        an encoded or odd path, a miss, a refusal, an audit failure, ``always``
        audit sync) goes the ordinary way, which answers it in full.
        """
        started = time.perf_counter()
        audit = self.audit
        if audit.sync != "interval" or not url.startswith(_DATA_PATH) \
                or b"?" in url or b"%" in url or b"\\" in url:
            return None
        parts = url[len(_DATA_PATH):].split(b"/")
        if len(parts) != 2:
            return None
        token, namespace, length, chunked = _scan_headers(headers)
        if length is not None or chunked:
            return None
        tenant = "default" if namespace is None else (namespace.strip("/") or "default")
        try:
            app = parts[0].decode("ascii")
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        # A hit means tenant, app and key are valid names: only checked names are cached.
        hit = self._cached_latest(tenant, app, key)
        if hit is None:
            return None
        identity = self._identify(token or None, peer_uid)
        if identity is None:
            return None
        # The audit line is the one the ASGI path writes for this read (the same
        # fields, canonical JSON: keys sorted), built from pieces: what depends on
        # the token's rules and the path is kept per rules object (a token's rules
        # never change; TokenStore hands out the same tuple while it caches the row).
        rules = identity.rules
        known = hit.readers.get(id(rules))
        if known is not None and known[0] is rules and known[1] == identity.accessor \
                and peer_uid is None:
            head = known[2]
        else:
            if not identity.allows("read", tenant, app, key):
                return None
            head = b"".join((
                b'{"accessor":', _json_str(identity.accessor), b',"actor":', self._actor,
                b',"app":', _json_str(app), b',"key":', _json_str(key),
                b',"method":"GET","op":"read data","path":', _json_str(url[4:].decode()),
                b"" if peer_uid is None else b',"peer_uid":' + str(peer_uid).encode(),
                b',"prev":"'))
            if peer_uid is None:
                if len(hit.readers) >= 64:
                    hit.readers.clear()
                hit.readers[id(rules)] = (rules, identity.accessor, head)
        middle = self._middles.get((client, tenant))
        if middle is None:
            remote = _client_of(client)
            middle = b"".join((
                b'"' if remote is None else b'","remote":' + _json_str(remote),
                b',"result":"ok","status":200,"tenant":', _json_str(tenant), b',"time":"'))
            if len(self._middles) >= 4096:
                self._middles.clear()
            self._middles[(client, tenant)] = middle
        try:
            audit.write_canonical(head, middle, hit.audit_tail)
        except UnavailableError:
            return None   # not written: the ASGI path tries again and answers 503
        metrics = self.metrics
        if metrics is not None:
            metrics.cache_hits += 1
            metrics.observe("read data", "ok", time.perf_counter() - started)
        return self._envelope_bytes(_request_id(), hit.data)

    def _read(self, req: _Request, app: str, key: str, version: int) -> tuple[int, bytes]:
        secrets = self._tenant(req.tenant)
        token = secrets.store.token() if version == 0 and secrets.vault is None else None
        try:
            infos = secrets.history(app, key)
        except NotFoundError:
            raise HTTPError(404) from None
        info = _pick(infos, version)
        if info is None:
            raise HTTPError(404)
        if secrets.vault is None or version:
            # The value of the very version described: a write that commits between
            # the history read and this one must not pair version N+1's value with
            # version N's metadata (as reading "the latest" here could).
            value = secrets.get(app, key, version=info.version)
        else:
            value = secrets.get(app, key)
            if value is not None and not info.current:
                # The latest changed between the two reads: describe the value we send.
                infos = secrets.history(app, key)
                info = _pick(infos, 0) or info
        req.audit["version"] = info.version
        meta = _version_meta(info)
        if value is None or info.state != "live":
            return 404, self._envelope(req, {"data": None, "metadata": meta})
        latest = _Latest(token or b"", value, info, self.audit.value_hmac(value),
                         time.monotonic() + _LATEST_TTL)
        if token is not None and info.current:
            if len(self._latest) >= _LATEST_CACHE:
                self._latest.clear()
            self._latest[(req.tenant, app, key)] = latest
        req.audit["value_hmac"] = latest.value_hmac
        return 200, self._envelope_bytes(req.request_id, latest.data)

    def _write(self, req: _Request, app: str, key: str, body: bytes) -> tuple[int, bytes]:
        secrets = self._tenant(req.tenant)
        doc = _json_object(body)
        data = doc.get("data")
        # PATCH is a JSON merge patch of the secret's data: "value" replaced, null deletes it.
        if req.method == "PATCH" and (not isinstance(data, dict)
                                      or data.get("value", 0) is None):
            raise HTTPError(400, "a patch must set the field 'value' "
                                 "(this server keeps exactly one field per secret)")
        value = _value(data)
        options = doc.get("options") or {}
        if not isinstance(options, dict):
            raise HTTPError(400, "'options' must be an object")
        cas = options.get("cas")
        if cas is not None:
            cas = _int(cas, "options.cas")
            req.audit["cas"] = cas
        current = secrets.store.current_version(req.tenant, app, key) \
            if secrets.vault is None else None
        if req.method == "PATCH":
            self._allow(req, "update", app, key)
            if current == 0 or secrets.get(app, key) is None:
                raise HTTPError(404)
        else:
            self._allow(req, "update" if current else "create", app, key)
        req.audit["value_hmac"] = self.audit.value_hmac(value)
        version = secrets.put(app, key, value, cas=cas)
        req.audit["version"] = version
        infos = _safe_history(secrets, app, key)
        info = next((i for i in infos if i.version == version), None)
        meta = _version_meta(info) if info is not None else {
            "created_time": _now_rfc3339(), "custom_metadata": None, "deletion_time": "",
            "destroyed": False, "version": version}
        return 200, self._envelope(req, meta)

    def _change(self, tenant: str, op: str, app: str, key: str, versions: list[int] | None
                ) -> None:
        secrets = self._tenant(tenant)
        if op == "delete":
            secrets.delete(app, key, versions=versions or None)
        elif op == "undelete":
            secrets.undelete(app, key, versions=versions or None)
        else:
            secrets.destroy(app, key, versions or [])

    def _purge(self, tenant: str, app: str, key: str) -> None:
        secrets = self._tenant(tenant)
        if secrets.vault is not None:
            raise HTTPError(405, "deleting all versions is not supported with a vault source")
        if secrets.get(app, key) is not None:
            secrets.delete(app, key)  # also takes it out of the app's sops file
        with contextlib.suppress(NotFoundError):
            secrets.store.purge(tenant, app, key)

    def _metadata(self, req: _Request, app: str, key: str) -> tuple[int, bytes]:
        secrets = self._tenant(req.tenant)
        try:
            infos = secrets.history(app, key)
        except NotFoundError:
            raise HTTPError(404) from None
        if not infos:
            raise HTTPError(404)
        current = next((i.version for i in infos if i.current), infos[-1].version)
        versions = {str(i.version): {"created_time": _rfc(i.created),
                                     "deletion_time": _rfc(i.deleted) if i.deleted else "",
                                     "destroyed": i.destroyed} for i in infos}
        max_versions = secrets.store.get_max_versions(req.tenant, app) \
            if secrets.vault is None else 0
        return 200, self._envelope(req, {
            "cas_required": False, "created_time": _rfc(infos[0].created),
            "current_version": current, "custom_metadata": None,
            "delete_version_after": "0s", "max_versions": max_versions,
            "oldest_version": infos[0].version,
            "updated_time": _rfc(max(i.created for i in infos)), "versions": versions})

    async def _list(self, req: _Request, rest: list[str]) -> tuple[int, bytes]:
        if rest and rest[-1] == "":
            rest = rest[:-1]
        identity = self._need_token(req)
        tenant = req.tenant
        loop = asyncio.get_running_loop()
        if len(rest) > 2 or (rest and rest[0] != PREFIX):
            raise HTTPError(400, f"paths of this server are {PREFIX}/<app>/<key>")
        if len(rest) == 2:
            app = check_name("app", rest[1])
            req.audit["app"] = app
            self._allow(req, "list", app)
            listed: list[str] = await loop.run_in_executor(None, self._tenant(tenant).list,
                                                           app)
            # Only the names the token's key globs reach: a token for db_* of an app
            # does not learn what else the app holds.
            keys = [k for k in listed if identity.allows("list", tenant, app, k)]
        else:
            apps = await loop.run_in_executor(None, self._tenant(tenant).store.list_apps,
                                              tenant)
            allowed = [a for a in apps if identity.allows("list", tenant, a)]
            # metadata/ lists the prefix folder; metadata/macula/ the apps.
            keys = [f"{a}/" for a in allowed] if rest else [f"{PREFIX}/"] * bool(allowed)
        if not keys:
            raise HTTPError(404)
        return 200, self._envelope(req, {"keys": keys})

    # -- watch -----------------------------------------------------------------------

    async def _watch(self, req: _Request, receive: Receive, send: Send) -> None:
        """Server-sent events: one ``change`` event per (app, key, version) the token may read."""
        app = check_name("app", req.query.get("app", ""))
        key = req.query.get("key")
        if key is not None:
            check_name("key", key)
        req.audit.update(app=app, key=key)
        self._allow(req, "read", app, key)
        identity = req.identity
        assert identity is not None  # noqa: S101 - _allow checked it
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str, int] | None] = asyncio.Queue()

        def changed(app_: str, key_: str, version: int) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (app_, key_, version))

        async def until_gone() -> None:
            # uvicorn drops what is sent to a closed connection without an error:
            # the disconnect message is the only sign that the client left.
            while (await receive())["type"] != "http.disconnect":
                pass
            queue.put_nowait(None)

        secrets = self._tenant(req.tenant)
        sub = secrets.subscribe(app, changed, key=key)
        self._watchers.add(queue)
        gone = loop.create_task(until_gone())
        try:
            req.audit["status"] = 200
            await self.audit.record("watch", req.audit, result="ok")
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]})
            await send({"type": "http.response.body", "body": b": watching\n\n",
                        "more_body": True})
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), _KEEPALIVE)
                except TimeoutError:
                    await send({"type": "http.response.body", "body": b": keepalive\n\n",
                                "more_body": True})
                    continue
                if item is None:
                    break
                a, k, v = item
                if not identity.allows("read", req.tenant, a, k):
                    continue
                event = json.dumps({"tenant": req.tenant, "app": a, "key": k, "version": v})
                await send({"type": "http.response.body", "more_body": True,
                            "body": f"event: change\ndata: {event}\n\n".encode()})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            pass  # the client went away
        finally:
            gone.cancel()
            self._watchers.discard(queue)
            await loop.run_in_executor(None, sub.cancel)

    def _envelope(self, req: _Request, data: object) -> bytes:
        return self._envelope_bytes(req.request_id, _dumps(data))

    @staticmethod
    def _envelope_bytes(request_id: str, data: bytes) -> bytes:
        """Vault's response envelope around ``data`` (already JSON)."""
        return b"".join((_ENVELOPE_HEAD, request_id.encode("ascii"), _ENVELOPE_MID, data,
                         _ENVELOPE_TAIL))


# -- helpers -------------------------------------------------------------------------

def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _client(scope: Scope) -> str | None:
    return _client_of(scope.get("client"))


def _client_of(client: tuple[str, int] | None) -> str | None:
    if not client:
        return None
    return f"{client[0]}:{client[1]}"


def _random_prefix() -> str:
    """``xxxxxxxx-xxxx-4xxx-yxxx-`` as in a version 4 UUID, from the OS's random
    bytes (the uuid module costs a few ms of start on a small node)."""
    h = os.urandom(10).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{'89ab'[int(h[18], 16) & 3]}{h[15:18]}-"


_ID_PREFIX: Final = _random_prefix()
_ids = itertools.count(int.from_bytes(os.urandom(5), "big"))


def _request_id() -> str:
    """A request id in UUID form: a random prefix per process, then a counter (unique,
    not secret: Vault's are UUIDs, and clients only show them)."""
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFFFFFF:012x}"


def _json_str(text: str) -> bytes:
    return encode_string(text).encode()


def _path(scope: Scope) -> str:
    """The path after ``/v1/``, decoded once, with traversal refused.

    The raw path is checked, not the server's decoded one: ``..%2f`` and
    ``%2e%2e`` must not become a separator or a parent after validation.
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    raw = raw.split(b"?", 1)[0]
    if not raw.startswith(b"/v1/"):
        raise HTTPError(404)
    lower = raw.lower()
    if b"%2f" in lower or b"%5c" in lower or b"\\" in raw:
        raise HTTPError(400, "encoded '/' or '\\' in the path")
    try:
        text = urllib.parse.unquote_to_bytes(raw[4:]).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "the path is not UTF-8") from None
    for segment in text.split("/"):
        if segment in (".", ".."):
            raise HTTPError(400, "'.' or '..' in the path (path traversal)")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment):
            raise HTTPError(400, "control character in the path")
    return text


def _app_key(rest: list[str]) -> tuple[str, str]:
    if len(rest) != 3 or rest[0] != PREFIX:
        raise HTTPError(400, f"paths of this server are {PREFIX}/<app>/<key>, "
                             "with the value in the field 'value'")
    return check_name("app", rest[1]), check_name("key", rest[2])


def _methods(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HTTPError(405, f"method {method} is not allowed here")


def _scan_headers(headers: Iterable[tuple[bytes, bytes]]
                  ) -> tuple[str | None, str | None, bytes | None, bool]:
    """``(token, namespace, content-length, chunked)`` from a request's headers.

    The token is ``X-Vault-Token``, else ``Authorization: Bearer``.
    """
    token = None
    namespace = None
    length = None
    chunked = False
    for name, value in headers:
        if name == b"x-vault-token":
            token = value.decode("latin-1")
        elif name == b"authorization":
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                token = token or text[7:].strip()
        elif name == b"x-vault-namespace":
            namespace = value.decode("utf-8", "replace")
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            chunked = True
    return token, namespace, length, chunked


async def _read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if size > limit:
            raise HTTPError(413, f"request body over the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client went away")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, f"request body over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        raise HTTPError(400, "failed to parse JSON input: malformed JSON") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "the request body must be a JSON object")
    return doc


def _value(data: object) -> str:
    if not isinstance(data, dict):
        raise HTTPError(400, "no data provided: send {\"data\": {\"value\": \"...\"}}")
    extra = sorted(k for k in data if k != "value")
    if extra:
        raise HTTPError(400, f"unsupported data field {extra[0]!r}: this server keeps one "
                             "string field, 'value', per secret (store other data as a "
                             "JSON string in 'value', or as another key)")
    value = data.get("value")
    if not isinstance(value, str):
        raise HTTPError(400, "the field 'value' must be a string")
    return value


def _int(raw: object, what: str) -> int:
    if isinstance(raw, bool):
        raise HTTPError(400, f"{what} must be a non-negative integer")
    try:
        number: int = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise HTTPError(400, f"{what} must be a non-negative integer") from None
    if number < 0:
        raise HTTPError(400, f"{what} must be a non-negative integer")
    return number


def _versions(raw: object, *, required: bool) -> list[int]:
    if raw is None:
        raw = []
    if isinstance(raw, str):
        raw = [p for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list):
        raise HTTPError(400, "'versions' must be a list of version numbers")
    versions = [_int(v, "each version") for v in raw]
    if required and not versions:
        raise HTTPError(400, "no version number provided")
    return versions


def _pick(infos: list[VersionInfo], version: int) -> VersionInfo | None:
    if version == 0:
        return next((i for i in infos if i.current), infos[-1] if infos else None)
    return next((i for i in infos if i.version == version), None)


def _safe_history(secrets: Secrets, app: str, key: str) -> list[VersionInfo]:
    try:
        return secrets.history(app, key)
    except NotFoundError:
        return []


def _version_meta(info: VersionInfo) -> dict[str, object]:
    return {"created_time": _rfc(info.created), "custom_metadata": None,
            "deletion_time": _rfc(info.deleted) if info.deleted else "",
            "destroyed": info.destroyed, "version": info.version}


def _rfc(when: Any) -> str:
    from ..records import _rfc3339

    return _rfc3339(when)


def _now_rfc3339() -> str:
    from ..audit import _now

    return _now()


def _op(method: str, path: object) -> str:
    """The audit ``op``: ``<method> <path class>``, e.g. ``read data``."""
    if not isinstance(path, str):
        return f"http {method.lower()}"
    parts = path.split("/")
    if parts[0] == MOUNT and len(parts) > 1:
        action = {"GET": "read", "HEAD": "read", "POST": "write", "PUT": "write",
                  "PATCH": "patch", "DELETE": "delete", "LIST": "list"}.get(method, method)
        return f"{action} {parts[1]}"
    return f"{method.lower()} {path}"


def _result(status: int) -> str:
    if status < 300:
        return "ok"
    return {400: "bad request", 403: "denied", 404: "not found", 405: "bad method",
            413: "too large", 503: "unavailable"}.get(status, "error")
