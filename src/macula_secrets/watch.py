"""The folder watcher: a ``git pull`` on the node reaches running processes in well under a second.

:class:`FolderWatcher` watches the tenant's secrets folder with
``watchfiles`` (inotify: no polling of files) and syncs each app file that
was changed, added or removed, one app at a time, as ``sync`` would: a new
store version only where a value changed, soft deletes for keys that left
the file, and for a removed file, its file-born keys. Every process on the
node that subscribed (``Secrets.subscribe``, ``ref().on_change``, the
server's watch stream) hears of the new versions through the store's change
feed; the watcher does not need to know who they are.

A file that fails to decrypt or parse is reported by name (``on_sync`` gets
an ``AppSync`` with ``error``) and the store keeps its last good values. A
file caught half-written (git writes files in place) is not reported: its
size or time changed while it was read, so another event is on its way and
the next sync reads the whole file.

``macula-secrets watch`` runs one in the foreground; applications can run
one in-process with :meth:`FolderWatcher.start` (a daemon thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .errors import ConfigError, MaculaError

if TYPE_CHECKING:
    from .backends.envfile import EnvFileBackend
    from .backends.sops import SopsBackend
    from .client import Secrets
    from .records import AppSync, SyncReport

__all__ = ["Background", "FolderWatcher"]



class Background:
    """A loop on a daemon thread, ended by :meth:`stop` (what the watchers share)."""

    _thread: threading.Thread | None = None
    _stop: threading.Event

    def _spawn(self, name: str, target: Callable[..., None], **kwargs: object) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=target, kwargs=kwargs, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop (from any thread); returns when the thread has ended."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)


class FolderWatcher(Background):
    """Sync the app files of ``secrets``' folder into its store as they change.

    Args:
        secrets: an open ``Secrets`` with a sops source (a secrets folder).
        debounce: seconds without further events before a burst of writes is
            synced (``watchfiles``' step); 0.05 s keeps a ``git pull`` of many
            files in one pass without delaying a single edit noticeably.
        on_sync: called with each app's ``AppSync`` after it was synced
            (``error`` set when its file failed), from the watcher's thread.
    """

    def __init__(self, secrets: Secrets, *, debounce: float = 0.05,
                 on_sync: Callable[[AppSync], None] | None = None) -> None:
        source = secrets.source
        if source is None:
            raise ConfigError("the watcher needs a secrets folder",
                              hint="set MACULA_SECRETS_DIR or secrets_dir, or pass --dir")
        if not os.path.isdir(source.folder):
            raise ConfigError(f"the secrets folder {source.folder} does not exist",
                              hint="create it (or clone the GitOps repository) first")
        self.secrets = secrets
        self.folder = source.folder
        self.debounce = debounce
        self.on_sync = on_sync
        self._source: SopsBackend = source
        self._envfiles: EnvFileBackend | None = secrets.envfiles
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once the watch is in place (changes from then on are seen)."""

    def __repr__(self) -> str:
        return f"FolderWatcher({self.folder!r})"

    # -- running ---------------------------------------------------------------------

    def start(self) -> FolderWatcher:
        """Sync everything once, then watch in a daemon thread; returns when watching."""
        if self._thread is not None:
            return self
        self.sync_all()
        self._spawn("macula-watch", self.run, initial_sync=False)
        self.ready.wait(10)
        return self

    def __enter__(self) -> FolderWatcher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def run(self, *, initial_sync: bool = True) -> None:
        """Watch until :meth:`stop` (blocking); with ``initial_sync``, sync everything first."""
        import watchfiles

        if initial_sync:
            self.sync_all()
        step = max(1, round(self.debounce * 1000))
        changes = watchfiles.watch(
            self.folder, watch_filter=self._is_app_file, recursive=False,
            step=step, debounce=max(step, 1600), stop_event=self._stop,
            yield_on_timeout=True, rust_timeout=1000, raise_interrupt=False)
        for batch in changes:
            self.ready.set()   # the first (timeout) yield comes once the watch is in place
            if batch:
                apps = {self._app_of(path) for _kind, path in batch}
                self.sync_apps(sorted(app for app in apps if app is not None))

    # -- syncing ---------------------------------------------------------------------

    def sync_all(self) -> SyncReport:
        """One full ``sync`` of the folder (at start: catch up with what changed while down)."""
        report = self.secrets.sync()
        if self.on_sync is not None:
            for item in report.apps:
                self.on_sync(item)
        return report

    def sync_apps(self, apps: Iterable[str]) -> list[AppSync]:
        """Sync these apps from their files now; one ``AppSync`` each (also to ``on_sync``)."""
        done = []
        for app in apps:
            result = self._sync_app(app)
            if result is None:
                continue
            done.append(result)
            if self.on_sync is not None:
                self.on_sync(result)
        return done

    def _sync_app(self, app: str) -> AppSync | None:
        from .records import AppSync
        from .sync import sync_app

        store, tenant = self.secrets.store, self.secrets.tenant
        backend = self._backend_of(app)
        if backend is None:   # the file is gone: so are its keys
            deleted: list[str] = []
            for origin in {self._source.name} | (
                    {self._envfiles.name} if self._envfiles is not None else set()):
                deleted += store.apply(tenant, app, {}, origin=origin)[2]
            return AppSync(app=app, source="(file removed)", deleted=tuple(deleted))
        path = backend.path_for(app) or app
        before = _stamp(path)
        result = sync_app(store, backend, app, tenant=tenant)
        if result.error is not None and _stamp(path) != before:
            return None   # written while read: the event of the rest is coming
        return result

    def _backend_of(self, app: str) -> SopsBackend | EnvFileBackend | None:
        """Whose file the app has: its sops file, else its env file (as sync decides)."""
        if self._source.has_app(app):
            return self._source
        if self._envfiles is not None and self._envfiles.has_app(app):
            return self._envfiles
        return None

    # -- file names ------------------------------------------------------------------

    def _app_of(self, path: str) -> str | None:
        """The app whose file ``path`` is, by the backends' own naming rules; else ``None``."""
        from ._names import check_name
        from .backends import envfile, sops

        if os.path.dirname(path) != self.folder.rstrip(os.sep):
            return None
        name = os.path.basename(path)
        found = list(sops.app_files([name]))
        if not found and self._envfiles is not None:
            found = list(envfile.app_files([name]))
        if not found:
            return None
        try:
            return check_name("app", found[0])
        except MaculaError:
            return None

    def _is_app_file(self, _change: object, path: str) -> bool:
        return self._app_of(path) is not None


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns
