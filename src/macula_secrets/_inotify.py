"""Sleeping until a file is written: Linux inotify, for the change feed.

The change feed (:mod:`._feed`) must hear of a commit by another process
quickly, and an idle process must not burn CPU asking. Polling the store's
change token every 20 ms does the first and costs about 1% of a core of a
small machine in wake-ups alone (a Python thread wake-up is about 60 µs
there). inotify does both: writers bump the token with ``write()``
(:meth:`~.localstore._notify.ChangeToken.bump`), the kernel tells every
watcher at once, and a waiting thread costs nothing.

The standard library has no inotify and ``watchfiles`` polls its own event
queue every ``step`` ms, so the three system calls are made through
``ctypes``: ``inotify_init1``, ``inotify_add_watch`` and ``read``. Where
inotify is missing (not Linux, or the per-user watch limit reached),
:meth:`FileWatch.open` returns ``None`` and the feed polls as before.
"""

from __future__ import annotations

import contextlib
import os
import select

__all__ = ["FileWatch"]

_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008


class FileWatch:
    """Wait until one file is written, :meth:`wake` is called, or a timeout passes."""

    def __init__(self, inotify_fd: int) -> None:
        self._fd = inotify_fd
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    @classmethod
    def open(cls, path: str) -> FileWatch | None:
        """A watch on ``path``, or ``None`` where inotify cannot be used."""
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        fd = init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        if add_watch(fd, os.fsencode(path), _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE) < 0:
            os.close(fd)
            return None
        return cls(fd)

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; whether the file was written meanwhile."""
        ready, _, _ = select.select([self._fd, self._wake_r], [], [], timeout)
        written = self._fd in ready
        if written:
            _drain(self._fd)
        if self._wake_r in ready:
            _drain(self._wake_r)
        return written

    def wake(self) -> None:
        """Make a :meth:`wait` in another thread return now (from any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while os.read(fd, 4096):
            pass
