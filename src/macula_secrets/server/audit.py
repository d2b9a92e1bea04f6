"""The server's audit log: one hash-chained JSON line per request, fail closed.

The same chain as :mod:`macula_secrets.audit` (``audit verify`` checks it),
written differently: :class:`AuditLog.append` takes an ``flock``, reads the
last hash and fsyncs for every line, a few milliseconds each, which would
cap the server near a few hundred requests a second. Here the server is the
only writer of its own file (``<home>/audit-server.log``): it holds an
exclusive ``flock`` for as long as it serves, keeps the chain head in memory
and group-commits: lines that arrive while an fsync is running are written
together with one ``write`` and one fsync after it.

A request is answered only after its line is durable. When a write fails
(disk full, I/O error), every line of that batch and those chained after it
fail, the file is cut back to its last durable size and the chain head goes
back with it; the requests get 503 and no value leaves. The next line that
writes brings the log (and the server) back.

Not thread-safe: all calls come from the server's event loop; only the
``write``/``fsync`` run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable, Mapping
from typing import Final

from ..audit import _canonical, _hash, _last_hash, _now
from ..errors import UnavailableError

__all__ = ["ServerAudit"]

_MAX_BATCH: Final = 4096
"""Lines written with one fsync at most (bounds the memory of a burst)."""


class ServerAudit:
    """An in-process, group-committing writer of one hash-chained audit file.

    Args:
        path: the file (created 0600); no other process may write it while
            the server runs (the flock makes a second server fail to start).
        value_hmac: turns a value or token into ``hmac-sha256:...`` (the
            store's audit HMAC key), or ``None`` when no key is available.
    """

    def __init__(self, path: str, *, value_hmac: Callable[[str], str | None]) -> None:
        self.path = path
        self.value_hmac = value_hmac
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise UnavailableError(
                f"the audit log {path} is held by another server",
                hint="stop the other 'macula-secrets serve' of this home first") from None
        self._head = _last_hash(self._fd)   # cuts off a line torn by a crash
        self._durable_head = self._head
        self._durable_size = os.fstat(self._fd).st_size
        self._pending: list[tuple[bytes, str, asyncio.Future[None]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None
        self.failing = False
        """The last batch could not be written: mutations are refused until one line is."""
        self.lines = 0
        self.batches = 0
        self._actor = {"pid": os.getpid(), "uid": os.getuid(), "program": "serve"}
        self._write: Callable[[int, bytes], int] = os.write   # a test swaps in a fault
        self._closed = False

    def __repr__(self) -> str:
        return f"ServerAudit({self.path!r})"

    async def record(self, op: str, fields: Mapping[str, object], *, result: str) -> None:
        """Chain one line and return once it is durable.

        ``None`` fields are left out.

        Raises:
            UnavailableError: the line could not be written; the caller must
                answer 503 and send nothing else.
        """
        if self._closed:
            raise UnavailableError(f"the audit log {self.path} is closed")
        entry: dict[str, object] = {"time": _now(), "op": op,
                                    **{k: v for k, v in fields.items() if v is not None},
                                    "actor": self._actor, "result": result,
                                    "prev": self._head}
        entry["hash"] = self._head = _hash(self._head, entry)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((_canonical(entry) + b"\n", self._head, done))
        if not self._flushing:
            self._flushing = True
            self._task = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                data = b"".join(line for line, _, _ in batch)
                try:
                    await loop.run_in_executor(None, self._write_durably, data)
                except OSError as exc:
                    self._fail(batch, exc)
                    continue
                self.failing = False
                self.lines += len(batch)
                self.batches += 1
                self._durable_size += len(data)
                self._durable_head = batch[-1][1]
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._flushing = False

    def _write_durably(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._write(self._fd, bytes(view))
            if n <= 0:
                raise OSError(28, "short write")
            view = view[n:]
        os.fsync(self._fd)

    def _fail(self, batch: list[tuple[bytes, str, asyncio.Future[None]]], exc: OSError
              ) -> None:
        """Fail the batch and every line chained after it; go back to the durable head."""
        self.failing = True
        failed = batch + self._pending
        self._pending = []
        self._head = self._durable_head
        with contextlib.suppress(OSError):
            # A partial write must not stay: the next line chains onto the durable head.
            os.ftruncate(self._fd, self._durable_size)
        reason = exc.strerror or str(exc)
        for *_, fut in failed:
            if not fut.done():
                fut.set_exception(UnavailableError(
                    f"cannot write the audit log {self.path}: {reason}; request refused"))

    def close(self) -> None:
        """Release the lock and the file (pending lines were answered already)."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

