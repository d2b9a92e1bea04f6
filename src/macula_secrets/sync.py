"""GitOps folder to runtime store: ``macula-secrets sync`` and ``Secrets.sync()``.

Every app file in the secrets folder is decrypted and its values applied to
the store in one transaction per app: a new version only where a value
changed, a soft delete for each key that left the file (only keys that came
from a file: a value put into the store by hand is left alone), nothing at
all when nothing changed, so a second run is a no-op. An app whose file left
the folder has its file-born keys soft-deleted. A file that fails (no key,
tampered, malformed, a bad key name) is reported by name and the others
still sync.
"""

from __future__ import annotations

from collections.abc import Callable

from .backends.sops import SopsBackend
from .errors import MaculaError
from .localstore.store import LocalStore
from .records import AppSync, SyncReport

__all__ = ["sync_folder"]


def sync_folder(store: LocalStore, source: SopsBackend, *, tenant: str,
                progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Sync every app file of ``source`` into ``store``; see the module doc."""
    apps = source.apps()
    results: list[AppSync] = []
    total = len(apps)
    if progress:
        progress(0, total)
    for done, app in enumerate(apps, 1):
        path = source.path_for(app) or app
        try:
            values = source.read_app(app)
            added, changed, deleted, unchanged = store.apply(tenant, app, values,
                                                              origin=source.name)
        except (MaculaError, OSError) as exc:
            results.append(AppSync(app=app, source=path, error=_message(exc)))
        else:
            results.append(AppSync(app=app, source=path, added=tuple(added),
                                   changed=tuple(changed), deleted=tuple(deleted),
                                   unchanged=unchanged))
        if progress:
            progress(done, total)
    # Apps whose file is gone: their file-born keys leave the store too.
    present = set(apps)
    gone = sorted({a for (a, _k), origin in store.origins(tenant).items()
                   if origin == source.name and a not in present})
    for app in gone:
        added, changed, deleted, unchanged = store.apply(tenant, app, {}, origin=source.name)
        if deleted:
            results.append(AppSync(app=app, source="(file removed)", deleted=tuple(deleted)))
    return SyncReport(apps=tuple(results))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return str(exc) or exc.__class__.__name__
