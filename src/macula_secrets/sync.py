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

from .backends.envfile import EnvFileBackend
from .backends.sops import SopsBackend
from .errors import MaculaError
from .localstore.store import LocalStore
from .records import AppSync, SyncReport

__all__ = ["sync_folder"]


def sync_folder(store: LocalStore, source: SopsBackend, *, tenant: str,
                progress: Callable[[int, int], None] | None = None,
                envfiles: EnvFileBackend | None = None) -> SyncReport:
    """Sync every app file of ``source`` (and ``<app>.env.age`` files) into ``store``.

    See the module doc. An app with both a sops file and an env file is an
    error for the env file: reads use the sops file.
    """
    sops_apps = source.apps()
    jobs: list[tuple[str, SopsBackend | EnvFileBackend]] = [(a, source) for a in sops_apps]
    clashes: list[AppSync] = []
    if envfiles is not None:
        for app in envfiles.apps():
            if app in sops_apps:
                clashes.append(AppSync(
                    app=app, source=envfiles.path_for(app),
                    error=f"{app} also has a sops file ({source.path_for(app)}), which is the "
                          "one used; remove one of the two"))
            else:
                jobs.append((app, envfiles))
    results: list[AppSync] = []
    total = len(jobs)
    if progress:
        progress(0, total)
    for done, (app, backend) in enumerate(jobs, 1):
        path = backend.path_for(app) or app
        try:
            values = backend.load_all(app)
            added, changed, deleted, unchanged = store.apply(tenant, app, values,
                                                              origin=backend.name)
        except (MaculaError, OSError) as exc:
            results.append(AppSync(app=app, source=path, error=_message(exc)))
        else:
            results.append(AppSync(app=app, source=path, added=tuple(added),
                                   changed=tuple(changed), deleted=tuple(deleted),
                                   unchanged=unchanged))
        if progress:
            progress(done, total)
    results.extend(clashes)
    # Apps whose file is gone: their file-born keys leave the store too.
    present = {(app, backend.name) for app, backend in jobs}
    if envfiles is not None:  # a clashing env file is still there: keep its keys
        present |= {(c.app, envfiles.name) for c in clashes}
    origins = {source.name} | ({envfiles.name} if envfiles is not None else set())
    gone = sorted({(a, origin) for (a, _k), origin in store.origins(tenant).items()
                   if origin in origins and (a, origin) not in present})
    for app, origin in gone:
        added, changed, deleted, unchanged = store.apply(tenant, app, {}, origin=origin)
        if deleted:
            results.append(AppSync(app=app, source="(file removed)", deleted=tuple(deleted)))
    return SyncReport(apps=tuple(results))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return str(exc) or exc.__class__.__name__
