"""GitOps folder or commit to runtime store: ``macula-secrets sync`` and ``Secrets.sync()``.

Every app file in the secrets folder is decrypted and its values applied to
the store in one transaction per app: a new version only where a value
changed, a soft delete for each key that left the file (only keys that came
from a file: a value put into the store by hand is left alone), nothing at
all when nothing changed, so a second run is a no-op. An app whose file left
the folder has its file-born keys soft-deleted. A file that fails (no key,
tampered, malformed, a bad key name) is reported by name and the others
still sync.

:func:`sync_git` reads the same app files at one commit of a git repository,
straight from git's object store (no checkout; see :mod:`._git`), and is all
or nothing: a commit is one snapshot, so either every app file of it is
applied, in one transaction that also records the commit, or none is. Each
new version carries the commit id, and a commit that does not descend from
the one synced last is refused unless forced (rollback protection).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ._telemetry import counted_sync
from .backends import envfile
from .backends import sops as sopsfiles
from .backends._folder import default_identities, tenant_folder
from .backends.envfile import EnvFileBackend
from .backends.sops import SopsBackend
from .errors import ConfigError, ConflictError, FormatError, MaculaError
from .localstore.store import LocalStore
from .records import AppSync, SyncReport

if TYPE_CHECKING:
    from ._git import TreeEntry
    from .keys._discovery import IdentitySources

__all__ = ["DEFAULT_GIT_PATH", "sync_app", "sync_folder", "sync_git"]

DEFAULT_GIT_PATH: Final = "secrets"
"""The secrets folder inside a repository, unless ``path=`` (``--path``) says otherwise."""

_SYMLINK_MODE: Final = "120000"


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
                clashes.append(_clash(app, envfiles.path_for(app), source.path_for(app)))
            else:
                jobs.append((app, envfiles))
    results: list[AppSync] = []
    total = len(jobs)
    if progress:
        progress(0, total)
    for done, (app, backend) in enumerate(jobs, 1):
        results.append(sync_app(store, backend, app, tenant=tenant))
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
        deleted = store.apply(tenant, app, {}, origin=origin)[2]
        if deleted:
            results.append(AppSync(app=app, source="(file removed)", deleted=tuple(deleted)))
    return SyncReport(apps=tuple(results))


def sync_app(store: LocalStore, backend: SopsBackend | EnvFileBackend, app: str, *,
             tenant: str) -> AppSync:
    """One app from its file, in one transaction (what ``sync`` and the watcher do per app).

    A file that fails is reported in the result's ``error``, and the store
    keeps what it had for the app.
    """
    path = backend.path_for(app) or app
    try:
        values = backend.load_all(app)
        added, changed, deleted, unchanged = store.apply(tenant, app, values,
                                                          origin=backend.name)
    except (MaculaError, OSError) as exc:
        return AppSync(app=app, source=path, error=_message(exc))
    return AppSync(app=app, source=path, added=tuple(added), changed=tuple(changed),
                   deleted=tuple(deleted), unchanged=unchanged)


@counted_sync
def sync_git(store: LocalStore, repo: str | os.PathLike[str], rev: str = "HEAD", *,
             path: str = DEFAULT_GIT_PATH, tenant: str, force: bool = False,
             identities: IdentitySources | None = None,
             progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Sync the app files under ``path`` at commit ``rev`` of ``repo`` into ``store``.

    The files are those a folder sync reads (``<app>.enc.yaml`` and the
    other sops endings, ``<app>.env.age``; a tenant other than ``default``
    reads ``path/<tenant>``), taken from git's object store: the working
    tree, if there is one, is neither read nor touched, so a bare repository
    works. ``repo`` is a local repository (fetch first).

    All or nothing: when any file fails (no matching identity, tampered,
    malformed, a bad key name or value, an app with both a sops and an env
    file), nothing is stored and the report lists every failing file as
    ``<commit>:<path>``. Otherwise every app is applied, apps whose files
    left the commit lose their file-born keys (as in :func:`sync_folder`),
    each new version records the commit (``VersionInfo.commit``), and the
    commit becomes the tenant's ``store.synced_commit(tenant)``: all in one
    durable transaction. Syncing that same commit again changes nothing.

    Rollback protection: unless ``force``, ``rev`` must be the commit synced
    last or a descendant of it. Protection is per tenant and follows the
    commit, not the path of ``repo``: any clone of the repository will do.

    Args:
        identities: how data keys are unwrapped; default: as sops finds
            identities in this process's environment, as for a folder sync.
        progress: ``progress(done, total)`` as files are decrypted.

    Raises:
        GitError: ``repo`` is not a git repository, ``rev`` names no commit,
            or ``path`` is not a folder at that commit (nothing is changed:
            a mistyped ``path`` must not look like "every file was removed").
        ConflictError: ``rev`` is older than or not descended from the
            commit synced last, or that commit is not in ``repo``.
    """
    from . import _git

    repo_path = os.path.abspath(os.fspath(repo))
    try:
        commit = _git.resolve_commit(repo_path, rev)
    except _git.GitError as exc:
        if exc.hint is not None:
            raise
        raise _git.GitError(str(exc), hint="REPO is a local clone (bare or not) and REV a "
                                           "branch, tag or commit it has: fetch first") from None
    last = store.synced_commit(tenant)
    previous = last.commit if last is not None else None
    if previous is not None and previous != commit and not force:
        _check_descends(repo_path, previous, commit, rev)
    folder = _git_folder(path, tenant)
    entries = {e.name: e for e in _git.list_tree(repo_path, commit, folder)}
    if not entries:
        raise _git.GitError(
            f"{repo_path} has no files in {folder or 'its top folder'} at commit "
            f"{commit[:12]}",
            hint="--path names the secrets folder inside the repository (default: "
                 f"{DEFAULT_GIT_PATH}); a tenant other than default reads PATH/<tenant>")
    sops_names = sopsfiles.app_files(entries)
    jobs: list[tuple[str, str, TreeEntry]] = [
        (app, SopsBackend.name, entries[name]) for app, name in sops_names.items()]
    failed: list[AppSync] = []
    for app, name in envfile.app_files(entries).items():
        if app in sops_names:
            failed.append(_clash(app, _where(commit, folder, name),
                                 _where(commit, folder, sops_names[app])))
        else:
            jobs.append((app, EnvFileBackend.name, entries[name]))
    if identities is None:
        identities = default_identities(None)
    apps: dict[str, tuple[str, dict[str, str]]] = {}
    total = len(jobs)
    if progress:
        progress(0, total)
    for done, (app, origin, entry) in enumerate(jobs, 1):
        where = _where(commit, folder, entry.name)
        try:
            values = _read_git_file(repo_path, entry, origin=origin, where=where,
                                    identities=identities)
            store.check_values(tenant, app, values)
        except (MaculaError, OSError) as exc:
            failed.append(AppSync(app=app, source=where, error=_message(exc)))
        else:
            apps[app] = (origin, values)
        if progress:
            progress(done, total)
    if failed:
        return SyncReport(apps=tuple(sorted(failed, key=lambda a: a.source)), commit=commit)
    results = store.apply_commit(tenant, apps, origins=(SopsBackend.name, EnvFileBackend.name),
                                 commit=commit, repo=repo_path, path=folder,
                                 previous=previous, force=force)
    report: list[AppSync] = []
    for app, origin, entry in sorted(jobs):
        added, changed, deleted, unchanged = results[(app, origin)]
        report.append(AppSync(app=app, source=_where(commit, folder, entry.name),
                              added=tuple(added), changed=tuple(changed),
                              deleted=tuple(deleted), unchanged=unchanged))
    present = {(app, origin) for app, origin, _entry in jobs}
    for (app, origin), (_added, _changed, deleted, _unchanged) in sorted(results.items()):
        if (app, origin) not in present and deleted:
            report.append(AppSync(app=app, source="(file removed)", deleted=tuple(deleted)))
    return SyncReport(apps=tuple(report), commit=commit)


def _git_folder(path: str, tenant: str) -> str:
    """The tenant's folder inside the repository, as git names it (``a/b``, no dots)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if path.startswith("/") or ".." in parts:
        raise ConfigError(f"the secrets folder must be a path inside the repository, "
                          f"not {path!r}", hint="e.g. --path secrets")
    return tenant_folder("/".join(parts), tenant).replace(os.sep, "/")


def _where(commit: str, folder: str, name: str) -> str:
    """A file of a commit as git writes it: ``<short id>:<folder>/<name>``."""
    return f"{commit[:12]}:{posixpath.join(folder, name) if folder else name}"


def _read_git_file(repo: str, entry: TreeEntry, *, origin: str, where: str,
                   identities: IdentitySources) -> dict[str, str]:
    """Decrypt one app file of a commit with the code a folder sync uses."""
    from . import _git

    if entry.mode == _SYMLINK_MODE:
        # A link's blob is its target's name, not the file: say so rather
        # than report "not a SOPS file".
        raise FormatError(f"{where} is a symbolic link; sync --git reads regular files only")
    data = _git.read_blob(repo, entry.blob)
    if origin == EnvFileBackend.name:
        return envfile.decrypt_values(data, identities, source=where)
    _doc, values = sopsfiles.decrypt_app_file(data, name=where, identities=identities)
    return values


def _check_descends(repo: str, previous: str, commit: str, rev: str) -> None:
    """Raise unless ``commit`` is ``previous`` or one of its descendants (rollback protection)."""
    from . import _git

    named = commit[:12] if commit.startswith(rev) else f"{rev} ({commit[:12]})"
    try:
        _git.resolve_commit(repo, previous)
    except _git.GitError:
        raise ConflictError(
            f"refusing to sync {named}: the commit synced last, {previous[:12]}, is not in "
            f"{repo}, so it cannot be shown to be older",
            hint="another repository, or rewritten history? if this commit is what the node "
                 "should run, sync it with --force") from None
    if _git.is_ancestor(repo, previous, commit):
        return
    relation = ("older than" if _git.is_ancestor(repo, commit, previous)
                else "not a descendant of")
    raise ConflictError(
        f"refusing to sync {named}: it is {relation} {previous[:12]}, the commit synced last",
        hint="to roll back on purpose, sync it with --force")


def _clash(app: str, env_path: str, sops_path: str | None) -> AppSync:
    return AppSync(app=app, source=env_path,
                   error=f"{app} also has a sops file ({sops_path}), which is the one used; "
                         "remove one of the two")


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return str(exc) or exc.__class__.__name__
