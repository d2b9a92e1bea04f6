"""Vault reads (GET and LIST), and requests safe to send twice, over ``http.client``, kept
alive per thread.

Why not hvac for reads too: hvac sends through requests, which spends about
1.3 ms of Python CPU on each request (building it, merging settings,
parsing headers). A fan-out of 100 reads on 8 threads that share the GIL is
bound by that CPU: measured 1.3x faster than the same reads one after the
other. ``http.client`` needs about 0.3 ms, and the same fan-out is 4-5x
faster, and pipelined (:meth:`Reader.request_many`) 5x
(benchmarks/bench_vault.py). Reads are the hot path (``get``, ``load_all``,
``sync``), and so are lease renewals (a ``PUT`` with a small JSON body,
every few seconds for a process holding many leases: benchmarks/bench_leases.py).
A request is sent again on a new connection when a kept-alive one turns out
closed, so only requests that are safe to repeat come here (reads,
renewals, revocations); KV writes and logins stay on hvac.

Vault's error answers are raised as hvac's exceptions
(``hvac.utils.raise_for_error``), so the backend translates every error in
one place; transport failures surface as ``OSError`` /
``http.client.HTTPException`` (``ssl.SSLError`` for TLS). Redirects (a
standby that redirects instead of forwarding) are followed, at most three.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

import hvac.exceptions
import hvac.utils

__all__ = ["PIPELINE_DEPTH", "Answer", "Reader"]

Answer: TypeAlias = "dict[str, Any] | hvac.exceptions.VaultError"
"""A read's JSON answer, or the hvac exception Vault's error answer maps to."""

PIPELINE_DEPTH: Final = 32
"""Requests per pipelined batch: small enough that writing them all can never wait on
answers not yet read (a few KiB against socket buffers of 64 KiB and more)."""

_MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_RESET: Final = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                 ConnectionAbortedError)
"""What a kept-alive connection the server has since closed fails with; sent again once."""

Connection = http.client.HTTPConnection  # HTTPSConnection is a subclass


class Reader:
    """Keep-alive GET/LIST requests, one connection per thread and node; thread-safe.

    Args:
        verify: ``True`` (the CA bundle requests uses, certifi's) or the path
            of a CA bundle file or folder.
        cert: ``(certificate, key)`` PEM files for mTLS, or ``None``.
        timeout: seconds to connect and for each read.
    """

    def __init__(self, *, verify: bool | str, cert: tuple[str, str] | None,
                 timeout: float) -> None:
        self._verify = verify
        self._cert = cert
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[Connection] = set()
        self.pipelining = True
        """Whether :meth:`request_many` pipelines (off once a server dropped a pipeline)."""

    def request(self, base: str, method: str, path: str, headers: Mapping[str, str],
                body: bytes | None = None) -> dict[str, Any]:
        """Send ``method path`` to the node at ``base``; its JSON answer (``{}`` when empty).

        ``path`` starts with ``/v1/`` and is sent as given (the caller quotes it);
        ``body`` is sent as JSON. The request may reach the server twice (see
        the module docstring): send only what is safe to repeat.

        Raises:
            hvac.exceptions.VaultError: Vault answered 400 or more.
            OSError, http.client.HTTPException: the request did not get an answer.
        """
        status, location, answer_body = self._exchange(base, method, path, headers, body)
        answer = self._settle(base, method, path, headers, status, location, answer_body,
                              payload=body)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def request_many(self, base: str, method: str, paths: Sequence[str],
                     headers: Mapping[str, str], *, connections: int = 4) -> list[Answer]:
        """Read every path over ``connections`` pipelined connections; answers in order.

        HTTP/1.1 pipelining: the requests of each connection are written at
        once, then the answers read in turn, all from the calling thread.
        Against one request at a time this halves the client's CPU per
        request, and against threads it leaves out the contention for the
        GIL; Vault works on the connections in parallel. At most
        :data:`PIPELINE_DEPTH` requests go out per connection before their
        answers are read. Each answer is the JSON or the hvac exception
        Vault's error maps to, returned rather than raised so that one
        absent key does not fail the others.

        Requests whose connection ended before they were answered are sent
        again (they are reads). A server that hangs up in the middle of a
        pipeline without saying so (no ``Connection: close``) turns
        pipelining off for this reader: later requests go one at a time.

        Raises:
            OSError, http.client.HTTPException: a new connection got no answer.
        """
        if not self.pipelining or len(paths) < 2:
            return [self._settle(base, method, path, headers,
                                 *self._exchange(base, method, path, headers))
                    for path in paths]
        width = max(1, min(connections, -(-len(paths) // 2)))  # two requests a connection at least
        depth = min(PIPELINE_DEPTH, -(-len(paths) // width))
        raw: list[tuple[int, str | None, bytes] | None] = [None] * len(paths)
        for start in range(0, len(paths), width * depth):
            batches = [range(i, min(i + depth, len(paths)))
                       for i in range(start, min(start + width * depth, len(paths)), depth)]
            self._pipeline(base, method, paths, batches, headers, raw)
        # Settled only now: a redirect is followed on a connection of this
        # thread, which must not carry a request while a pipeline answers.
        answers: list[Answer] = []
        missing = [i for i, got in enumerate(raw) if got is None]
        again = dict(zip(missing, self.request_many(
            base, method, [paths[i] for i in missing], headers, connections=connections),
            strict=True)) if missing else {}
        for i, got in enumerate(raw):
            answers.append(again[i] if got is None
                           else self._settle(base, method, paths[i], headers, *got))
        return answers

    def _pipeline(self, base: str, method: str, paths: Sequence[str],
                  batches: list[range], headers: Mapping[str, str],
                  raw: list[tuple[int, str | None, bytes] | None]) -> None:
        """Write each batch on a connection of its own, then read the answers into ``raw``.

        Answers that did not come stay ``None`` (the caller sends them again).
        """
        host = urllib.parse.urlsplit(base).netloc
        sent: list[tuple[int, Connection, bool, range]] = []
        finished: set[int] = set()
        try:
            for slot, batch in enumerate(batches):
                conn, reused = self._connection(base, slot)
                try:
                    if conn.sock is None:
                        conn.connect()
                    conn.sock.sendall(b"".join(
                        _request_line(method, host, paths[i], headers) for i in batch))
                except _RESET:
                    self._drop(base, conn, slot)
                    if not reused:
                        raise
                    continue  # an idle connection the server had closed: sent again later
                except BaseException:
                    self._drop(base, conn, slot)
                    raise
                sent.append((slot, conn, reused, batch))
            for slot, conn, reused, batch in sent:
                if self._answers(method, conn, reused, batch, raw):
                    finished.add(slot)
        finally:
            # A connection with answers still unread must never serve another request.
            for slot, conn, _, _ in sent:
                if slot not in finished:
                    self._drop(base, conn, slot)

    def _answers(self, method: str, conn: Connection, reused: bool, batch: range,
                 raw: list[tuple[int, str | None, bytes] | None]) -> bool:
        """Read one connection's pipelined answers into ``raw``; whether it can be kept."""
        answered = 0
        try:
            file = conn.sock.makefile("rb")
            try:
                shared = _SharedFile(file)
                for i in batch:
                    resp = http.client.HTTPResponse(shared, method=method)  # type: ignore[arg-type]
                    resp.begin()
                    raw[i] = (resp.status, resp.getheader("Location"), resp.read())
                    answered += 1
                    if resp.will_close:
                        return False
            finally:
                file.close()  # the socket stays open for the connection
        except _RESET:
            if answered:
                self.pipelining = False  # it answered some, then hung up
            elif not reused:
                raise
            return False
        return True

    def close(self) -> None:
        """Close every connection (of every thread); later requests open new ones."""
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    # -- connections -----------------------------------------------------------------

    def _exchange(self, base: str, method: str, path: str, headers: Mapping[str, str],
                  payload: bytes | None = None) -> tuple[int, str | None, bytes]:
        """One request on this thread's first connection to ``base``.

        Returns ``(status, Location, body)``.
        """
        sent = dict(headers)
        if payload is not None:
            sent["Content-Type"] = "application/json"
        while True:
            conn, reused = self._connection(base)
            try:
                conn.request(method, path, body=payload, headers=sent)
                resp = conn.getresponse()
                body = resp.read()
            except _RESET:
                self._drop(base, conn)
                if reused:
                    continue  # the server closed an idle connection: once more, on a new one
                raise
            except BaseException:
                self._drop(base, conn)
                raise
            if resp.will_close:
                self._drop(base, conn)
            return resp.status, resp.getheader("Location"), body

    def _settle(self, base: str, method: str, path: str, headers: Mapping[str, str],
                status: int, location: str | None, body: bytes, hops: int = 0, *,
                payload: bytes | None = None) -> Answer:
        """What an answer means: its JSON, the hvac exception of an error, or the redirect's."""
        if status in _REDIRECTS and location:
            if hops >= _MAX_REDIRECTS:
                raise http.client.HTTPException(
                    f"more than {_MAX_REDIRECTS} redirects from {base}")
            target = urllib.parse.urlsplit(urllib.parse.urljoin(base + path, location))
            base = f"{target.scheme}://{target.netloc}"
            path = target.path + (f"?{target.query}" if target.query else "")
            status, location, body = self._exchange(base, method, path, headers, payload)
            return self._settle(base, method, path, headers, status, location, body, hops + 1,
                                payload=payload)
        decoded = _decode(body)
        if status >= 400:
            # Only a JSON body is Vault's answer (a bare 404 is a web server's).
            doc = decoded if isinstance(decoded, dict) and body.strip() else None
            try:
                hvac.utils.raise_for_error(
                    method, base + path, status, errors=doc and doc.get("errors"),
                    text=body.decode("utf-8", "replace"), json=doc)
            except hvac.exceptions.VaultError as exc:
                return exc
        return decoded if isinstance(decoded, dict) else {}

    def _connection(self, base: str, slot: int = 0) -> tuple[Connection, bool]:
        """This thread's connection number ``slot`` to ``base``, and whether it was used before."""
        conns: dict[tuple[str, int], Connection] | None = getattr(self._local, "conns", None)
        if conns is None or getattr(self._local, "pid", None) != os.getpid():
            # A new thread, or a forked child that must not share its parent's sockets.
            conns = self._local.conns = {}
            self._local.pid = os.getpid()
        conn = conns.get((base, slot))
        if conn is not None:
            return conn, True
        parts = urllib.parse.urlsplit(base)
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout,
                                               context=self._ssl_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        conns[(base, slot)] = conn
        with self._lock:
            self._open.add(conn)
        return conn, False

    def _drop(self, base: str, conn: Connection, slot: int = 0) -> None:
        conn.close()
        conns: dict[tuple[str, int], Connection] = getattr(self._local, "conns", {})
        if conns.get((base, slot)) is conn:
            del conns[(base, slot)]
        with self._lock:
            self._open.discard(conn)

    def _ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of the backend's requests session, as an ``SSLContext``."""
        with self._lock:
            if self._context is None:
                if self._verify is True:
                    import certifi

                    ctx = ssl.create_default_context(cafile=certifi.where())
                elif isinstance(self._verify, str) and os.path.isdir(self._verify):
                    ctx = ssl.create_default_context(capath=self._verify)
                else:
                    ctx = ssl.create_default_context(cafile=str(self._verify))
                if self._cert is not None:
                    ctx.load_cert_chain(*self._cert)
                self._context = ctx
            return self._context


class _SharedFile:
    """One buffered reader that every pipelined response reads from, in turn.

    ``HTTPResponse`` takes a socket and makes its own buffered file of it,
    which could read ahead into the next response and lose it; given this,
    each response reads from the same file. Closing it is left to the
    connection.
    """

    def __init__(self, file: io.BufferedReader) -> None:
        self._file = file

    def makefile(self, *_: object, **__: object) -> _SharedFile:
        return self

    def readline(self, limit: int = -1) -> bytes:
        return self._file.readline(limit)

    def read(self, amount: int | None = None) -> bytes:
        return self._file.read(amount)

    def readinto(self, buffer: Any) -> int | None:
        return self._file.readinto(buffer)

    def peek(self, amount: int = 0) -> bytes:
        return self._file.peek(amount)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _request_line(method: str, host: str, path: str, headers: Mapping[str, str]) -> bytes:
    """One HTTP/1.1 request without a body, as bytes (header values checked by the caller)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _decode(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        return None
