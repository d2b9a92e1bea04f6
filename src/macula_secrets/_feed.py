"""The store's change log as callbacks: what ``Secrets.subscribe`` and ``ref().on_change`` run on.

Every writer on the node (this process, another CLI call, a sync, the
server, the folder watcher) commits a row to the store's change log and
then bumps the shared change token (:mod:`.localstore._notify`) with a
``write()``. So one thread per open store is enough to hear about every
change: it sleeps on inotify until the token file is written
(:mod:`._inotify`), reads the change log from where it left off, and calls
the subscriptions the new rows concern. Nothing polls keys, an idle feed
costs nothing, and a change reaches the callback a few milliseconds after
its commit. Once a second without events the feed also compares the change
log's last entry with its own (a writer killed between its commit and its
bump leaves no event). Where inotify is missing the feed reads the token
every ``interval`` seconds instead (a memory read).

Before a callback runs, the store's read cache has dropped what changed, so
``Secrets.get`` in the callback returns the new value. A callback that
raises is logged (its exception type and the app/key, never a value) and
the feed goes on. The thread starts with the first subscription and ends
with the last one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._inotify import FileWatch

if TYPE_CHECKING:
    from .localstore.store import LocalStore

__all__ = ["DEFAULT_INTERVAL", "ChangeFeed", "Subscription"]

DEFAULT_INTERVAL = 0.02
"""Seconds between looks at the change token where inotify is missing."""

_FALLBACK = 1.0
"""Seconds between checks of the change log itself when no event came."""


def _warn(message: str, *args: object) -> None:
    """Log on ``macula_secrets.subscribe`` (logging is imported only when something
    goes wrong: every ``Secrets.open`` imports this module, and logging costs ~10 ms)."""
    import logging

    logging.getLogger("macula_secrets.subscribe").warning(message, *args)


Callback = Callable[[str, str, int], None]


class Subscription:
    """One subscriber's filter and callback; ``cancel()`` stops it (idempotent)."""

    def __init__(self, feed: ChangeFeed, tenant: str, app: str | None, key: str | None,
                 callback: Callback, interval: float) -> None:
        self.tenant = tenant
        self.app = app
        self.key = key
        self.interval = interval
        self._callback = callback
        self._feed = feed
        self.active = True

    def __repr__(self) -> str:
        target = f"{self.app or '*'}/{self.key or '*'}"
        return f"Subscription({self.tenant}:{target}{'' if self.active else ', cancelled'})"

    def wants(self, tenant: str, app: str, key: str) -> bool:
        return (self.active and tenant == self.tenant and (self.app is None or app == self.app)
                and (self.key is None or key == self.key))

    def deliver(self, app: str, key: str, version: int) -> None:
        try:
            self._callback(app, key, version)
        except Exception as exc:   # a failing callback must not end the feed
            _warn("subscription callback for %s/%s raised %s", app, key,
                         exc.__class__.__name__)

    def cancel(self) -> None:
        """Stop calling back; once this returns, no new call starts (one running ends)."""
        if self.active:
            self.active = False
            self._feed.remove(self)


class ChangeFeed:
    """The change-log reader of one open store, shared by all its subscriptions."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._thread: threading.Thread | None = None
        self._watch: FileWatch | None = None
        self._seq = 0
        self._token = b""

    def subscribe(self, tenant: str, app: str | None, key: str | None, callback: Callback,
                  *, interval: float = DEFAULT_INTERVAL) -> Subscription:
        sub = Subscription(self, tenant, app, key, callback, max(0.001, interval))
        with self._lock:
            if self._thread is None:
                # Changes from now on: the position is taken before the thread starts,
                # so a change committed right after subscribe() returns is seen.
                self._token = self._store.token()
                self._seq = self._store.last_change()
                self._subs.append(sub)
                if self._watch is None:
                    self._watch = FileWatch.open(self._store.token_path)
                self._thread = threading.Thread(target=self._run, name="macula-changes",
                                                daemon=True)
                self._thread.start()
            else:
                self._subs.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        thread = None
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            if not self._subs and self._thread is not None:
                thread, self._thread = self._thread, None
                if self._watch is not None:
                    self._watch.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def close(self) -> None:
        """Cancel every subscription and end the thread."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.cancel()

    def _interval(self) -> float:
        with self._lock:
            return min((s.interval for s in self._subs), default=DEFAULT_INTERVAL)

    def _run(self) -> None:
        me = threading.current_thread()
        watch = self._watch
        while True:
            if watch is not None:
                written = watch.wait(_FALLBACK)
            else:
                # time.sleep, not Event.wait: a timed wait on a lock costs more than
                # twice the CPU per wake-up (0.75% against 0.30% of a core at 50/s).
                time.sleep(self._interval())
                written = True
            if self._thread is not me:   # removed: the last subscription was cancelled
                with self._lock:
                    if self._thread is None and self._watch is not None:
                        self._watch.close()   # a new first subscription opens another
                        self._watch = None
                return
            try:
                self._poll(check_log=not written)
            except Exception as exc:  # e.g. the store was closed under us: try again later
                _warn("reading the change log failed: %s", exc.__class__.__name__)

    def _poll(self, *, check_log: bool = False) -> None:
        store = self._store
        token = store.token()
        if token == self._token and (not check_log or store.last_change() <= self._seq):
            return
        self._token = token
        rows = store.changes_since(self._seq)
        if not rows:
            return
        self._seq = rows[-1][0]
        store.refresh()   # the read cache drops what changed before anyone is told
        with self._lock:
            subs = list(self._subs)
        for _seq, tenant, app, key, version, op in rows:
            if op in ("rotate", "rekey"):   # master key events: no value changed
                continue
            for sub in subs:
                if sub.wants(tenant, app, key):
                    sub.deliver(app, key, version)
