"""A change token in shared memory: how a process learns, in nanoseconds, that the store changed.

Asking SQLite whether another process committed (``PRAGMA data_version``,
or a query of the change log) costs 6-10 µs here, more than the whole budget
of a cached ``Secrets.get``. So every writer, after it commits, writes 8
fresh random bytes into a small memory-mapped file beside the database, and
readers compare those bytes with the ones they saw last: a read of mapped
memory, no system call. When they differ, the reader consults the change log
(the authoritative record) and drops what changed from its cache.

The bytes are written with ``write()`` rather than through the mapping:
the mapping sees them all the same (one page cache), and a write is what
inotify reports, so processes that wait for changes (the change feed,
:mod:`macula_secrets._inotify`) wake at once instead of polling.

Random bytes rather than a counter: two writers that bump at once cannot
write the same value, so no change goes unnoticed through a lost increment.
A writer killed between its commit and its bump leaves readers unaware of
that one change; the store therefore also consults the change log on a timer
(see ``LocalStore``), which bounds how long that can last.
"""

from __future__ import annotations

import mmap
import os

__all__ = ["ChangeToken"]

_SIZE = 8


class ChangeToken:
    """The mapped token file; ``read()`` and ``bump()`` are safe from any thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                # A short file is one we are creating (or a crash interrupted
                # creating): its content carries no meaning yet.
                os.pwrite(fd, os.urandom(_SIZE), 0)
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def read(self) -> bytes:
        """The current token (8 bytes)."""
        return self._map[:_SIZE]

    def bump(self) -> None:
        """Tell every reader that something changed (and wake those waiting on inotify)."""
        os.pwrite(self._fd, os.urandom(_SIZE), 0)

    def close(self) -> None:
        self._map.close()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
