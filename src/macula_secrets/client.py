"""``Secrets``: the one API applications read secrets through.

Reads go to the node's runtime store first and then to the configured source
(the sops files of the GitOps folder), and what the source had is kept in
the store. Writes go to the source first, then the store, under the store's
write lock. Version history, rollback, soft delete and destroy are the
store's (sops files have no versions; git has them).

With ``source = "vault"`` the store is a cache of Vault instead: a value is
served from it while Vault confirmed it less than ``refresh`` seconds ago,
and while Vault is unreachable for up to ``max_stale`` seconds (marked
stale); writes and version numbers are Vault's (docs/vault.md).

Example::

    from macula_secrets import Secrets

    with Secrets.open() as secrets:                  # config from file/env, else defaults
        url = secrets.require("console", "database_url")
        version = secrets.put("console", "stripe_key", "sk_live_...")
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ._config import Config, load_config
from ._feed import DEFAULT_INTERVAL, ChangeFeed, Subscription
from ._telemetry import counted_sync
from .errors import MaculaError, NotFoundError
from .localstore.store import ABSENT, DELETED, LocalStore

if TYPE_CHECKING:
    from types import TracebackType

    from ._vaultsource import VaultSource
    from ._vaultwatch import VaultRefresher
    from .backends import Backend
    from .backends.envfile import EnvFileBackend
    from .backends.sops import SopsBackend
    from .leases import LeaseCallback, LeaseKeeper
    from .records import AppSync, SecretEntry, SyncReport, VersionInfo
    from .watch import FolderWatcher

__all__ = ["SecretRef", "Secrets", "Subscription"]

Callback = Callable[[str, str, int], None]
"""``callback(app, key, version)``: called after a change to a key is committed."""

class Secrets:
    """Secrets of one tenant: the runtime store with a source behind it. Thread-safe.

    Make one with :meth:`open`; :meth:`with_tenant` gives a view of another
    tenant over the same store. Values are ``str``.
    """

    def __init__(self, store: LocalStore, *, source: SopsBackend | None = None,
                 envfiles: EnvFileBackend | None = None, vault: VaultSource | None = None,
                 tenant: str = "default", config: Config | None = None,
                 _parent: Secrets | None = None,
                 _open_vault_for: Callable[[str], VaultSource] | None = None) -> None:
        from ._names import check_name

        self._store = store
        self._source = source
        self._envfiles = envfiles
        self._vault = vault
        self.tenant = check_name("tenant", tenant)
        self.config = config
        self._parent = _parent
        self._subscriptions: list[Subscription] = []
        self._feed: ChangeFeed | None = None
        self._watchers: builtins.list[FolderWatcher | VaultRefresher] = []
        self._leases: builtins.list[LeaseKeeper] = []
        # Vault source: how to open the source of another tenant (its namespace), and
        # the sources opened that way (closed with this one).
        self._open_vault_for = _open_vault_for
        self._tenant_vaults: dict[str, VaultSource] = {}
        self._tenant_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        *,
        home: str | os.PathLike[str] | None = None,
        secrets_dir: str | os.PathLike[str] | None = None,
        source: str | None = None,
        tenant: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Secrets:
        """Open the node's store (creating it and its master key on first use).

        Arguments override the environment (``MACULA_SECRETS_HOME``,
        ``MACULA_SECRETS_DIR``, ``MACULA_SECRETS_SOURCE``,
        ``MACULA_SECRETS_TENANT``), which overrides the TOML configuration.

        Raises:
            ConfigError: the configuration is invalid.
            KeySourceError: the master key cannot be read or does not fit the store.
            LockedError: the store exists but its master key is missing.
        """
        environ = os.environ if env is None else env
        cfg = load_config(environ, home=os.fspath(home) if home is not None else None,
                          secrets_dir=os.fspath(secrets_dir) if secrets_dir is not None
                          else None, source=source, tenant=tenant)
        from ._masterkey import open_provider
        from .agent import use_if_running

        use_if_running(environ)  # unlock once: keys the agent holds are not asked for again
        from .audit import AuditLog

        store = LocalStore(cfg.store_path, open_provider(cfg, environ),
                           max_versions=cfg.max_versions, max_value_size=cfg.max_value_size,
                           audit=AuditLog(cfg.audit_path))
        try:
            for app, limit in cfg.app_max_versions.items():
                if store.get_max_versions(cfg.tenant, app) != limit:
                    store.set_max_versions(cfg.tenant, app, limit)
            backend = envfiles = vault = None
            open_vault_for: Callable[[str], VaultSource] | None = None
            if cfg.source == "vault" and cfg.vault is not None:
                # Other tenants (namespaces) are opened later with the same settings.
                open_vault_for = functools.partial(_open_vault, cfg, dict(environ))
                vault = open_vault_for(cfg.tenant)
            elif cfg.source == "sops" and cfg.secrets_dir is not None:
                from .backends._folder import default_identities
                from .backends.envfile import EnvFileBackend
                from .backends.sops import SopsBackend

                source_env = dict(environ)
                if cfg.age_key_file:
                    source_env["SOPS_AGE_KEY_FILE"] = cfg.age_key_file
                identities = default_identities(source_env)
                backend = SopsBackend(cfg.secrets_dir, tenant=cfg.tenant, identities=identities)
                envfiles = EnvFileBackend(cfg.secrets_dir, tenant=cfg.tenant,
                                          identities=identities)
        except BaseException:
            store.close()
            raise
        secrets = cls(store, source=backend, envfiles=envfiles, vault=vault, tenant=cfg.tenant,
                      config=cfg, _open_vault_for=open_vault_for)
        from ._telemetry import opened

        try:
            opened(secrets, environ)  # spans and metrics, when OpenTelemetry is wanted
        except BaseException:
            secrets.close()
            raise
        return secrets

    def with_tenant(self, tenant: str) -> Secrets:
        """The same store seen as another tenant (its own data keys and names).

        With a vault source the tenant is a Vault namespace: ``default`` is
        ``[vault] namespace`` as configured, another tenant ``T`` is
        ``<namespace>/T`` (``T`` when none is configured). Its backend is
        opened with the same settings and closed with this ``Secrets``.

        Raises:
            ConfigError: ``tenant`` is not a valid name, or the vault source
                was not made by :meth:`open` (no settings to open another
                namespace with).
        """
        if self._vault is not None:
            from ._names import check_name

            check_name("tenant", tenant)
            vault = (self._vault if tenant == self.tenant
                     else self._root()._tenant_vault(tenant))
            return Secrets(self._store, vault=vault, tenant=tenant, config=self.config,
                           _parent=self, _open_vault_for=self._open_vault_for)
        source = envfiles = None
        if self._source is not None:
            from .backends.envfile import EnvFileBackend
            from .backends.sops import SopsBackend

            root = (self.config.secrets_dir if self.config else None) or self._source.folder
            identities = self._source._identities
            source = SopsBackend(root, tenant=tenant, identities=identities)
            envfiles = EnvFileBackend(root, tenant=tenant,
                                      identities=identities)  # type: ignore[arg-type]
        return Secrets(self._store, source=source, envfiles=envfiles, tenant=tenant,
                       config=self.config, _parent=self)

    def _root(self) -> Secrets:
        root = self
        while root._parent is not None:
            root = root._parent
        return root

    def _tenant_vault(self, tenant: str) -> VaultSource:
        """The vault source of ``tenant`` (its namespace), opened once per root ``Secrets``."""
        if tenant == self.tenant and self._vault is not None:
            return self._vault
        with self._tenant_lock:
            vault = self._tenant_vaults.get(tenant)
            if vault is None:
                if self._open_vault_for is None:
                    from .errors import ConfigError

                    raise ConfigError(
                        "this vault source cannot open another tenant's namespace",
                        hint="make it with Secrets.open, or open another Secrets with "
                             "that tenant")
                vault = self._open_vault_for(tenant)
                self._tenant_vaults[tenant] = vault
            return vault

    def __repr__(self) -> str:
        return f"Secrets({self._store.path!r}, tenant={self.tenant!r})"

    def __enter__(self) -> Secrets:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def store(self) -> LocalStore:
        """The runtime store (internal API: may change)."""
        return self._store

    @property
    def source(self) -> SopsBackend | None:
        """The sops source backend, or ``None`` when the store stands alone or the
        source is Vault."""
        return self._source

    @property
    def envfiles(self) -> EnvFileBackend | None:
        """The ``<app>.env.age`` files of the secrets folder, if there is one."""
        return self._envfiles

    @property
    def vault(self) -> VaultSource | None:
        """The vault source (its ``backend`` is the ``VaultBackend``), or ``None``."""
        return self._vault

    # -- reads ---------------------------------------------------------------------

    def get(self, app: str, key: str, default: str | None = None, *,
            version: int | None = None) -> str | None:
        """The value of ``key`` (latest, or ``version``), or ``default`` when there is none.

        A deleted or destroyed version reads as absent. With a vault source,
        ``version`` is Vault's KV version, read from Vault.

        Raises:
            ConfigError: ``app`` or ``key`` is not a valid name.
            IntegrityError: the stored ciphertext was tampered with.
            UnavailableError: (vault source) Vault is unreachable and the cached
                copy is older than ``max_stale``, or there is none.
        """
        if version is None:
            hit = self._store.lookup(self.tenant, app, key)
            vault = self._vault
            if vault is None:
                if hit.__class__ is str:
                    return hit
                if hit is DELETED:
                    return default
                value = self._from_source(app, key)
                return default if value is None else value
            cur = hit if hit.__class__ is str else None
            value = vault.latest(self._store, self.tenant, app, key, cur)[0]
            return default if value is None else value
        if self._vault is not None:
            old = self._vault.backend.get(app, key, version=version)
            return default if old is None else old
        try:
            old = self._store.read_version(self.tenant, app, key, version)[1]
        except NotFoundError:
            return default
        return default if old is None else old

    def get_entry(self, app: str, key: str) -> SecretEntry | None:
        """The latest value with its store version and whether it is stale, or ``None``.

        ``entry.stale`` is true when Vault could not be reached and the
        cached copy was served (within ``max_stale``); ``entry.source`` is
        ``"vault"`` for a value Vault confirmed within ``refresh`` seconds,
        else ``"store"``.
        """
        from .records import SecretEntry

        vault = self._vault
        if vault is None:
            value = self.get(app, key)
            stale, where = False, "store"
        else:
            value, stale = vault.latest(self._store, self.tenant, app, key,
                                        self._current(app, key))
            where = "store" if stale else "vault"
        if value is None:
            return None
        return SecretEntry(value, self._store.current_version(self.tenant, app, key),
                           stale=stale, source=where)

    def _current(self, app: str, key: str) -> str | None:
        hit = self._store.lookup(self.tenant, app, key)
        return hit if isinstance(hit, str) else None

    def _file_backend(self, app: str) -> Backend | None:
        """The backend holding the app's file: its sops file, else its ``.env.age`` file."""
        if self._source is not None and self._source.has_app(app):
            return self._source
        if self._envfiles is not None and self._envfiles.has_app(app):
            return self._envfiles
        return None

    def _from_source(self, app: str, key: str) -> str | None:
        backend = self._file_backend(app)
        if backend is None:
            return None
        value = backend.get(app, key)
        if value is not None:
            from .errors import ConflictError

            # Another process may have cached it first: the value is the same file's.
            with contextlib.suppress(ConflictError):
                self._store.put(self.tenant, app, key, value, cas=0, origin=backend.name)
        return value

    def require(self, app: str, key: str, *, version: int | None = None) -> str:
        """The value of ``key``; ``NotFoundError`` naming app, key and where it looked."""
        value = self.get(app, key, version=version)
        if value is None:
            where = [f"the store {self._store.path}"]
            if self._vault is not None:
                where.append(f"vault at {self._vault.address}")
            if self._source is not None:
                where.append(f"the secrets folder {self._source.folder}")
            what = f"{app}/{key}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(f"secret {what} not found (looked in {' and '.join(where)})")
        return value

    def _unseen_source_keys(self, app: str) -> builtins.list[str]:
        """Keys of the app's file the store has never had.

        A file that fails to decrypt or parse is skipped when the store
        already holds keys of the app (its last good values stay in
        service; ``sync`` reports the file); with nothing stored the error
        is raised, since there is nothing else to answer with.
        """
        backend = self._file_backend(app)
        if backend is None:
            return []
        known = {k for (_a, k) in self._store.origins(self.tenant, app)}
        try:
            keys = backend.list(app)
        except (MaculaError, OSError):
            if known:
                return []
            raise
        return [k for k in keys if k not in known]

    def list(self, app: str) -> builtins.list[str]:
        """Sorted names of the app's live keys (the store's and the source's)."""
        if self._vault is not None:
            return sorted(self.load_all(app))
        keys = set(self._store.list_keys(self.tenant, app))
        keys.update(self._unseen_source_keys(app))
        return sorted(keys)

    def load_all(self, app: str) -> dict[str, str]:
        """Every live key of the app with its latest value.

        With a vault source: Vault's keys (one LIST, concurrent reads), which
        the store is brought in line with; while Vault is unreachable, the
        store's within ``max_stale`` (else ``UnavailableError``).
        """
        if self._vault is not None:
            return self._vault.load_all(self._store, self.tenant, app)[0]
        for key in self._unseen_source_keys(app):
            self._from_source(app, key)
        return self._store.load_all(self.tenant, app)

    def history(self, app: str, key: str) -> builtins.list[VersionInfo]:
        """Every kept version of ``key``, oldest first; ``NotFoundError`` for an unknown key.

        With a vault source these are Vault's KV versions (read from Vault).
        """
        if self._vault is not None:
            versions = self._vault.backend.versions(app, key)
            if not versions:
                raise NotFoundError(f"{app}/{key} does not exist in vault at "
                                    f"{self._vault.address}")
            return versions
        if self._store.lookup(self.tenant, app, key) is ABSENT:
            self._from_source(app, key)
        return self._store.history(self.tenant, app, key)

    # -- writes --------------------------------------------------------------------

    def _source_has(self, app: str) -> bool:
        """Whether the app has a sops file (writes go there); refuses read-only env files."""
        if self._source is not None and self._source.has_app(app):
            return True
        if self._envfiles is not None and self._envfiles.has_app(app):
            from .errors import PermissionDeniedError

            raise PermissionDeniedError(
                f"{app} comes from {self._envfiles.path_for(app)}, which is read-only",
                hint="change it with 'macula-secrets envfile edit' and run sync")
        return False

    def put(self, app: str, key: str, value: str, *, cas: int | None = None,
            _audit_as: tuple[str, int] | None = None) -> int:
        """Store a new version of ``key``; return its version number.

        With a sops source that has a file for ``app``, the value is written
        into that file too (only its ciphertext changes), before the store
        commits. ``cas=N`` writes only if the current version is N (0: only
        if the key does not exist yet).

        With a vault source the value goes to Vault first, then the store,
        and the result (and ``cas``) is Vault's KV version; the store's own
        version number may differ.

        Raises:
            ConflictError: ``cas`` did not match.
            LimitError: the value is larger than ``max_value_size``.
            UnavailableError: (vault source) Vault is unreachable; nothing is stored.
        """
        if self._vault is not None:
            self._store._encode(self.tenant, app, key, value)  # type and size, before Vault
            version = self._vault.backend.put(app, key, value, cas=cas)
            self._store.put(self.tenant, app, key, value, origin="vault", audit_as=_audit_as)
            self._vault.confirm(self._store, self.tenant, app, key, value, cur=value,
                                stored=True)
            return version
        if self._source_has(app):
            source = self._source
            assert source is not None  # noqa: S101 - checked by _source_has
            return self._store.put(self.tenant, app, key, value, cas=cas, origin=source.name,
                                   before_commit=lambda _v: _ignore(source.put(app, key, value)),
                                   audit_as=_audit_as)
        return self._store.put(self.tenant, app, key, value, cas=cas, audit_as=_audit_as)

    def delete(self, app: str, key: str, *, versions: Iterable[int] | None = None) -> None:
        """Soft-delete the latest version (or ``versions``); ``undelete`` brings it back.

        Deleting the latest version also removes the key from the app's sops file.
        With a vault source, ``versions`` are Vault's; Vault changes first and
        the store follows its latest value.

        Raises:
            NotFoundError: the key does not exist.
        """
        if self._vault is not None:
            if versions is None:
                self._vault.backend.delete(app, key)
            else:
                self._vault.backend.delete_versions(app, key, builtins.list(versions))
            self._follow_vault(app, key)
            return
        if versions is None and self._source_has(app):
            assert self._source is not None  # noqa: S101
            if key in self._source.list(app):
                if self._store.lookup(self.tenant, app, key) is ABSENT:
                    self._from_source(app, key)
                self._source.delete(app, key)
        self._store.delete(self.tenant, app, key, versions)

    def undelete(self, app: str, key: str, *, versions: Iterable[int] | None = None) -> None:
        """Undo a soft delete of the latest version (or ``versions``).

        With a vault source, ``versions`` are Vault's; the store gets the
        restored latest value as a new version.
        """
        if self._vault is not None:
            backend = self._vault.backend
            targets = (builtins.list(versions) if versions is not None
                       else [backend.current_version(app, key)])
            if targets == [0]:
                raise NotFoundError(f"{app}/{key} does not exist in vault at {backend.address}")
            backend.undelete(app, key, targets)
            self._follow_vault(app, key)
            return
        self._store.undelete(self.tenant, app, key, versions)
        if versions is None and self._source_has(app):
            value = self._store.lookup(self.tenant, app, key)
            if isinstance(value, str):
                assert self._source is not None  # noqa: S101
                self._source.put(app, key, value)

    def destroy(self, app: str, key: str, versions: Iterable[int]) -> None:
        """Erase the ciphertext of ``versions`` for good (their records stay).

        With a vault source, ``versions`` are Vault's; store versions holding
        the same values (those Vault could still show) are destroyed too.
        """
        if self._vault is not None:
            backend = self._vault.backend
            targets = builtins.list(versions)
            values = {v for v in (backend.get(app, key, version=n) for n in targets)
                      if v is not None}
            backend.destroy(app, key, targets)
            if values and self._store.current_version(self.tenant, app, key):
                self._store.destroy_values(self.tenant, app, key, values)
            self._follow_vault(app, key)
            return
        self._store.destroy(self.tenant, app, key, versions)

    def rollback(self, app: str, key: str, version: int) -> int:
        """Make the value of ``version`` current again, as a new version; return its number.

        With a vault source, ``version`` and the result are Vault's KV versions.

        Raises:
            NotFoundError: no such version, or it is deleted or destroyed.
        """
        if self._vault is not None:
            old = self._vault.backend.get(app, key, version=version)
            if old is None:
                raise NotFoundError(f"{app}/{key} version {version} is not live in vault at "
                                    f"{self._vault.address}")
            return self.put(app, key, old, _audit_as=("rollback", version))
        if self._source_has(app):
            current = self._store.current_version(self.tenant, app, key)
            _info, value = self._store.read_version(self.tenant, app, key, version)
            if value is None:
                # read_version gave the record; rollback explains why it cannot.
                return self._store.rollback(self.tenant, app, key, version)
            return self.put(app, key, value, cas=current, _audit_as=("rollback", version))
        return self._store.rollback(self.tenant, app, key, version)

    def _follow_vault(self, app: str, key: str) -> None:
        """After a change in Vault: the store takes Vault's latest value (or deletes its copy)."""
        assert self._vault is not None  # noqa: S101
        value = self._vault.backend.get(app, key)
        self._vault.confirm(self._store, self.tenant, app, key, value,
                            cur=self._current(app, key))

    def set_max_versions(self, app: str, max_versions: int | None) -> None:
        """Versions kept per key of ``app`` (``None``: the store default, 10)."""
        self._store.set_max_versions(self.tenant, app, max_versions)

    # -- the store as a whole ------------------------------------------------------

    def rotate_master_key(self, *, reencrypt: bool = False,
                          progress: Callable[[int, int], None] | None = None) -> None:
        """Replace the master key (all tenants); with ``reencrypt``, all data keys too.

        Processes that have the store open keep working: they pick up the
        new key when they next need it.
        """
        self._store.rotate_master_key(reencrypt=reencrypt, progress=progress)

    @counted_sync
    def sync(self, *, progress: Callable[[int, int], None] | None = None) -> SyncReport:
        """Bring the store in line with the secrets folder; see :mod:`macula_secrets.sync`.

        With a vault source: every app Vault has under the path template (its
        namespace for this tenant), read in full; the store changes only
        after every app was read. ``progress(done, total)`` counts apps.

        Raises:
            ConfigError: there is no source to sync from.
            UnavailableError: (vault source) Vault is unreachable or sealed;
                the store was not changed.
        """
        if self._vault is not None:
            return self._vault.sync(self._store, self.tenant, progress=progress)
        if self._source is None:
            from .errors import ConfigError

            raise ConfigError("no secrets folder to sync from",
                              hint="set MACULA_SECRETS_DIR or secrets_dir in the configuration")
        from .sync import sync_folder

        return sync_folder(self._store, self._source, tenant=self.tenant, progress=progress,
                           envfiles=self._envfiles)

    def subscribe(self, app: str, callback: Callback, *, key: str | None = None,
                  interval: float = DEFAULT_INTERVAL) -> Subscription:
        """Call ``callback(app, key, version)`` after each change to the app's keys.

        Changes by any process on the node count (another CLI call, a sync,
        the folder watcher, a server). One background thread per open store
        sleeps on inotify until the store's shared change token is written,
        then reads the change log (:mod:`macula_secrets._feed`); without
        inotify it reads the token every ``interval`` seconds. When the callback runs, :meth:`get`
        already returns the new value. ``version`` is the version the change
        made or touched (for a delete, the version deleted). Callbacks run on
        that thread, one at a time: hand long work to another thread. Call
        ``.cancel()`` on the result to stop.
        """
        from ._names import check_name

        check_name("app", app)
        if key is not None:
            check_name("key", key)
        sub = self._root()._change_feed().subscribe(self.tenant, app, key, callback,
                                                     interval=interval)
        self._subscriptions.append(sub)
        return sub

    def ref(self, app: str, key: str, *, default: str | None = None) -> SecretRef:
        """A live handle on one secret: ``.get()`` always reads the current value.

        For code that holds a credential for a long time (a connection pool,
        a client object): keep the handle instead of the string, read
        ``.get()`` when connecting, and use ``.on_change(fn)`` to be told
        when a new value lands (docs/rotation.md has the SQLAlchemy recipe).
        """
        from ._names import check_name

        return SecretRef(self, check_name("app", app), check_name("key", key), default)

    def lease(self, path: str, *, on_change: LeaseCallback | None = None) -> LeaseKeeper:
        """A dynamic credential (``database/creds/ROLE``) kept valid until :meth:`close`.

        Needs a vault source: the lease is read and renewed with its backend
        (this tenant's namespace); ``close()`` revokes it. Without one, make a
        :class:`~macula_secrets.leases.LeaseKeeper` from a ``VaultBackend``.
        See docs/leases.md.

        Raises:
            ConfigError: the source is not Vault.
            UnavailableError, BackendError: no first credential could be had.
        """
        if self._vault is None:
            from .errors import ConfigError

            raise ConfigError("leases need a vault source", hint="set source = \"vault\" "
                              "and [vault], or use LeaseKeeper with a VaultBackend")
        from .leases import LeaseKeeper

        keeper = LeaseKeeper(self._vault.backend, path, on_change=on_change)
        self._leases.append(keeper)
        return keeper

    def watch(self, *, on_sync: Callable[[AppSync], None] | None = None
              ) -> FolderWatcher | VaultRefresher:
        """Keep the store in line with the source in the background, until :meth:`close`.

        With a secrets folder: a :class:`~macula_secrets.watch.FolderWatcher`
        (inotify; each changed app file synced within ``debounce``, 50 ms).
        With a vault source: a :class:`~macula_secrets._vaultwatch.VaultRefresher`
        (KV metadata versions checked every ``refresh`` seconds, with jitter).
        Either way subscribers of every process on the node hear of the
        changes. ``on_sync`` gets each app's ``AppSync`` (failures included).
        What ``macula-secrets watch`` runs in the foreground.
        """
        watcher: FolderWatcher | VaultRefresher
        if self._vault is not None:
            from ._vaultwatch import VaultRefresher

            watcher = VaultRefresher(self, on_sync=on_sync).start()
        else:
            from .watch import FolderWatcher

            watcher = FolderWatcher(self, on_sync=on_sync).start()
        self._watchers.append(watcher)
        return watcher

    def _change_feed(self) -> ChangeFeed:
        with self._tenant_lock:
            if self._feed is None:
                self._feed = ChangeFeed(self._store)
            return self._feed

    def close(self) -> None:
        """Stop subscriptions and close the store (a tenant view leaves the store open)."""
        for watcher in self._watchers:
            watcher.stop()
        self._watchers.clear()
        for keeper in self._leases:   # before the backend closes: revoking needs it
            keeper.close()
        self._leases.clear()
        for sub in self._subscriptions:
            sub.cancel()
        self._subscriptions.clear()
        if self._parent is None:
            if self._feed is not None:
                self._feed.close()
            if self._source is not None:
                self._source.close()
            if self._envfiles is not None:
                self._envfiles.close()
            with self._tenant_lock:
                extra, self._tenant_vaults = builtins.list(self._tenant_vaults.values()), {}
            for vault in extra:
                vault.backend.close()
            if self._vault is not None:
                self._vault.backend.close()
            self._store.close()


def _open_vault(cfg: Config, environ: Mapping[str, str], tenant: str) -> VaultSource:
    """The vault source of ``[vault]`` for ``tenant`` (its namespace; see
    :func:`~macula_secrets._vaultsource.tenant_namespace`), the token from
    ``environ`` unless a file gives it."""
    from ._vaultsource import VaultSource, tenant_namespace
    from .backends.vault import AppRole, RetryPolicy, VaultBackend

    v = cfg.vault
    assert v is not None  # noqa: S101 - load_config sets it for source = "vault"
    approle = None
    if v.role_id_file is not None and v.secret_id_file is not None:
        approle = AppRole(v.role_id_file, v.secret_id_file)
    backend = VaultBackend(builtins.list(v.addresses), mount=v.mount, path_template=v.path,
                           namespace=tenant_namespace(v.namespace, tenant),
                           token_file=v.token_file, approle=approle,
                           env=environ, verify=v.ca_cert or True, client_cert=v.client_cert,
                           client_key=v.client_key, timeout=v.timeout,
                           retry=RetryPolicy(max_attempts=v.max_attempts))
    return VaultSource(backend, refresh=v.refresh, max_stale=v.max_stale)


def _ignore(_result: object) -> None:
    """Drop a result (a sops file write returns 0; the store's version is the one that counts)."""


class SecretRef:
    """A live reference to one secret (from :meth:`Secrets.ref`).

    ``get()`` reads through :meth:`Secrets.get` each time (a cached read:
    about a microsecond), so it is never stale once a change has landed.
    ``on_change(fn)`` calls ``fn(ref, version)`` after each new version,
    deletion or rollback of the key, from the store's change-feed thread.
    The value is never part of ``repr`` or ``str``: a handle can be logged.
    """

    __slots__ = ("_default", "_secrets", "_subs", "app", "key")

    def __init__(self, secrets: Secrets, app: str, key: str, default: str | None) -> None:
        self._secrets = secrets
        self.app = app
        self.key = key
        self._default = default
        self._subs: builtins.list[Subscription] = []

    def __repr__(self) -> str:
        return f"SecretRef({self.app!r}, {self.key!r})"

    __str__ = __repr__

    def get(self) -> str | None:
        """The current value (or the default given to :meth:`Secrets.ref`)."""
        return self._secrets.get(self.app, self.key, self._default)

    def require(self) -> str:
        """The current value; :class:`NotFoundError` when there is none."""
        return self._secrets.require(self.app, self.key)

    def on_change(self, callback: Callable[[SecretRef, int], None], *,
                  interval: float = DEFAULT_INTERVAL) -> Subscription:
        """Call ``callback(self, version)`` after each change of this secret."""
        def changed(_app: str, _key: str, version: int) -> None:
            callback(self, version)

        sub = self._secrets.subscribe(self.app, changed, key=self.key, interval=interval)
        self._subs.append(sub)
        return sub

    def close(self) -> None:
        """Stop every ``on_change`` callback of this handle."""
        for sub in self._subs:
            sub.cancel()
        self._subs.clear()
