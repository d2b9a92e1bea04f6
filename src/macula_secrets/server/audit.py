"""The server's audit log: hash-chained JSON lines, one per request (two for a change), fail closed.

The same chain as :mod:`macula_secrets.audit` (``audit verify`` checks it),
written differently: :class:`AuditLog.append` takes an ``flock``, reads the
last hash and fsyncs for every line, a few milliseconds each, which would
cap the server near a few hundred requests a second. Here the server is the
only writer of its own file (``<home>/audit-server.log``): it holds an
exclusive ``flock`` for as long as it serves and keeps the chain head in
memory.

Two durability policies (``serve --audit-sync``):

``interval`` (the default)
    Each line is written to the file (one ``write``, into the page cache)
    before its request is answered, on the event loop; a background thread
    fsyncs the file when lines were written since its last fsync, at most
    every ``interval`` seconds (0.1 s), and once more on close. A crash of
    the process loses nothing (the kernel has the lines); a crash or power
    loss of the machine can lose the lines of the last interval. Vault's
    and OpenBao's file audit device write each entry without any fsync.

``always``
    A request is answered only after its line is durable: lines that arrive
    while an fsync runs are written together, with one ``write`` and one
    fsync, after it (group commit, in a worker thread).

Either way, when a write fails (disk full, I/O error), the request (and,
in ``always`` mode, every line of its batch and those chained after it)
fails, the file is cut back to its last good size and the chain head goes
back with it; the requests get 503 and no value leaves. The same happens
when a required audit sink (:mod:`.sinks`) does not take a line written to
the file: every line of the file reached every required sink, though a
sink may hold a line of a request that then failed. The next line that
writes brings the log (and the server) back. A failed background fsync
fails every request the same way until an fsync (retried each interval)
succeeds again.

Not thread-safe: all calls come from the server's event loop; only the
``write``/``fsync`` of ``always`` mode and the interval fsync run in other
threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Literal

from ..audit import _last_hash
from ..errors import UnavailableError

if TYPE_CHECKING:
    from .sinks import Fanout

__all__ = ["SYNC_MODES", "ServerAudit"]

SyncMode = Literal["always", "interval"]
SYNC_MODES: Final = ("interval", "always")
DEFAULT_INTERVAL: Final = 0.1
"""Seconds between background fsyncs in ``interval`` mode (at most)."""

_MAX_BATCH: Final = 4096
"""Lines written with one fsync at most (bounds the memory of a burst)."""

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
"""A string as JSON, as the canonical encoder writes it (``ensure_ascii=False``)."""


class _Clock:
    """``time`` as the audit module writes it (RFC 3339, microseconds, UTC); the
    seconds part is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        ns = time.time_ns()
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{rest // 1000:06d}Z"


class ServerAudit:
    """An in-process writer of one hash-chained audit file.

    Args:
        path: the file (created 0600); no other process may write it while
            the server runs (the flock makes a second server fail to start).
        value_hmac: turns a value or token into ``hmac-sha256:...`` (the
            store's audit HMAC key), or ``None`` when no key is available.
        sync: ``"interval"`` (write before answering, fsync in the background
            every ``interval`` seconds) or ``"always"`` (answer after the fsync).
        interval: seconds between background fsyncs in ``interval`` mode.
        sinks: where copies of each line go (:mod:`.sinks`); closed with this writer.
    """

    def __init__(self, path: str, *, value_hmac: Callable[[str], str | None],
                 sync: SyncMode = "interval", interval: float = DEFAULT_INTERVAL,
                 sinks: Fanout | None = None) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"audit sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        if not interval > 0:
            raise ValueError("the audit fsync interval must be positive")
        self.path = path
        self.value_hmac = value_hmac
        self.sinks = sinks
        self.sync: SyncMode = sync
        self.interval = interval
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise UnavailableError(
                f"the audit log {path} is held by another server",
                hint="stop the other 'macula-secrets serve' of this home first") from None
        self._head = _last_hash(self._fd)   # cuts off a line torn by a crash
        self._good_head = self._head
        """Head of the last line written whole (``always``: written and fsynced)."""
        self._good_size = os.fstat(self._fd).st_size
        self._pending: list[tuple[bytes, str, asyncio.Future[None]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self.failing = False
        """The last line could not be written: mutations are refused until one line is."""
        self.lines = 0
        self.failures = 0
        """Requests refused because their line was not written (file, fsync or sink)."""
        self.batches = 0
        """``always``: write+fsync batches; ``interval``: background fsyncs."""
        self._actor = {"pid": os.getpid(), "uid": os.getuid(), "program": "serve"}
        self._write: Callable[[int, bytes], int] = os.write   # a test swaps in a fault
        self._fsync: Callable[[int], None] = os.fsync         # likewise
        self._closed = False
        self._clock = _Clock()
        # interval mode: bytes written so far, and the count the last fsync covered.
        self._written = 0
        self._synced = 0
        self._sync_error: OSError | None = None
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if sync == "interval":
            self._syncer = threading.Thread(target=self._sync_loop, name="audit-fsync",
                                            daemon=True)
            self._syncer.start()

    def __repr__(self) -> str:
        return f"ServerAudit({self.path!r}, sync={self.sync!r})"

    # -- lines -------------------------------------------------------------------------

    def _chain(self, op: str, fields: Mapping[str, object], result: str) -> bytes:
        """The next line of the chain (the head moves to it)."""
        entry: dict[str, object] = {k: v for k, v in fields.items() if v is not None}
        entry["time"] = self._clock.now()
        entry["op"] = op
        entry["actor"] = self._actor
        entry["result"] = result
        entry["prev"] = self._head
        body = _encode(entry).encode()
        # The hash covers the canonical entry without "hash" (as audit._hash); the
        # line is that entry with "hash" appended, which audit.verify reads back.
        self._head = digest = hashlib.sha256(
            self._head.encode("ascii") + b"\n" + body).hexdigest()
        return body[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n'

    def write(self, op: str, fields: Mapping[str, object], *, result: str) -> None:
        """``interval`` mode: chain one line and write it now (fsynced within the interval).

        ``None`` fields are left out.

        Raises:
            UnavailableError: the line could not be written, or the last
                background fsync failed; the caller must answer 503.
        """
        if self._closed:
            raise UnavailableError(f"the audit log {self.path} is closed")
        self._append(self._chain(op, fields, result))

    def write_canonical(self, head: bytes, middle: bytes, tail: bytes) -> None:
        """:meth:`write` of a line prepared by the caller: its canonical JSON is
        ``head + prev + middle + time + tail``, the keys sorted, ``head`` ending with
        ``"prev":"``, ``middle`` with ``"time":"`` (and holding ``"actor"``'s
        place is the caller's job: see :meth:`actor_json`). The server's hot read
        path builds these from pieces it keeps, instead of encoding a dictionary.
        """
        if self._closed:
            raise UnavailableError(f"the audit log {self.path} is closed")
        body = b"".join((head, self._head.encode("ascii"), middle,
                         self._clock.now().encode("ascii"), tail))
        self._head = digest = hashlib.sha256(
            self._head.encode("ascii") + b"\n" + body).hexdigest()
        self._append(body[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n')

    def actor_json(self) -> bytes:
        """The ``actor`` field's value as canonical JSON."""
        return _encode(self._actor).encode()

    def _append(self, line: bytes) -> None:
        error = self._sync_error   # stays until a background fsync succeeds again
        if error is None:
            try:
                self._write_all(line)
            except OSError as exc:
                error = exc
        if error is not None:
            self._undo()
            raise self._unavailable(error)
        if self.sinks is not None:
            try:
                self.sinks.deliver(line)
            except UnavailableError:
                self._undo()  # the file keeps no line that a required sink lacks
                raise
        self.failing = False
        self.lines += 1
        self._good_size += len(line)
        self._good_head = self._head
        self._written += 1

    def _undo(self) -> None:
        """Back to the last good line: the head, and the file's size."""
        self.failing = True
        self.failures += 1
        self._head = self._good_head
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._good_size)

    async def record(self, op: str, fields: Mapping[str, object], *, result: str) -> None:
        """Chain one line and return once it is written (``interval``) or durable
        (``always``).

        ``None`` fields are left out.

        Raises:
            UnavailableError: the line could not be written; the caller must
                answer 503 and send nothing else.
        """
        if self.sync == "interval":
            self.write(op, fields, result=result)
            return
        if self._closed:
            raise UnavailableError(f"the audit log {self.path} is closed")
        line = self._chain(op, fields, result)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((line, self._head, done))
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush())
        await done

    # -- always: group commit ------------------------------------------------------------

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                data = b"".join(line for line, _, _ in batch)
                lines = [line for line, _, _ in batch]
                try:
                    await loop.run_in_executor(None, self._write_durably, data, lines)
                except (OSError, UnavailableError) as exc:
                    self._fail(batch, exc)
                    continue
                self.failing = False
                self.lines += len(batch)
                self.batches += 1
                self._good_size += len(data)
                self._good_head = batch[-1][1]
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._flushing = False

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._write(self._fd, bytes(view))
            if n <= 0:
                raise OSError(28, "short write")
            view = view[n:]

    def _write_durably(self, data: bytes, lines: list[bytes]) -> None:
        self._write_all(data)
        self._fsync(self._fd)
        if self.sinks is not None:
            for line in lines:   # the whole batch fails with any of its lines
                self.sinks.deliver(line)

    def _fail(self, batch: list[tuple[bytes, str, asyncio.Future[None]]],
              exc: OSError | UnavailableError) -> None:
        """Fail the batch and every line chained after it; go back to the durable head."""
        self.failing = True
        self.failures += len(batch) + len(self._pending)
        failed = batch + self._pending
        self._pending = []
        self._head = self._good_head
        with contextlib.suppress(OSError):
            # A partial write must not stay: the next line chains onto the durable head.
            os.ftruncate(self._fd, self._good_size)
        error = exc if isinstance(exc, UnavailableError) else self._unavailable(exc)
        for *_, fut in failed:
            if not fut.done():
                fut.set_exception(error)

    def _unavailable(self, exc: OSError) -> UnavailableError:
        reason = exc.strerror or str(exc)
        return UnavailableError(
            f"cannot write the audit log {self.path}: {reason}; request refused")

    # -- interval: background fsync ------------------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync_now()

    def sync_now(self) -> None:
        """fsync the lines written since the last fsync (any thread)."""
        with self._sync_lock:
            written = self._written
            if written == self._synced or self._closed:
                return
            try:
                self._fsync(self._fd)
            except OSError as exc:
                self._sync_error = exc   # requests fail closed until an fsync succeeds
                return
            self._synced = written
            self._sync_error = None
            self.batches += 1

    def close(self) -> None:
        """fsync what is written, release the lock and the file (pending lines were
        answered already)."""
        if self._closed:
            return
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self.sync_now()
        with self._sync_lock:
            self._closed = True
            os.close(self._fd)
        if self.sinks is not None:
            self.sinks.close()
