"""The master key provider a configuration names (``[master_key]``; docs/keys.md).

Kept out of ``keys/`` because it reads configuration, the environment and
the terminal, which the keys layer does not. With no ``provider`` set, the
provider follows what exists, so a store keeps opening after its key was
moved from a file into a sealed file (``key migrate``):

1. ``$MACULA_SECRETS_MASTER_KEY`` set: ``env``;
2. ``<path or home>/master.key`` exists: ``file``;
3. ``master.key.sealed`` exists: the kind it was sealed by;
4. a store exists without either: ``shares`` (its key is held by the agent
   after ``macula-secrets unlock``);
5. otherwise ``file`` (a new store creates a key file).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from . import _env
from ._config import Config
from .errors import ConfigError, KeySourceError
from .keys.master import MasterKeyFile, MasterKeyProvider

__all__ = ["chosen_kind", "migrate", "open_provider", "provider_for", "sealed_path"]

SEALED_NAME = "master.key.sealed"
RECOVERY_NAME = "master.key.recovery.age"


def sealed_path(cfg: Config) -> str:
    return cfg.master_key.path or os.path.join(cfg.home, SEALED_NAME)


def _plain_path(cfg: Config) -> str:
    return cfg.master_key.path or cfg.master_key_path


def chosen_kind(cfg: Config, env: Mapping[str, str]) -> str:
    """The provider's name: configured, else found from what exists."""
    if cfg.master_key.provider is not None:
        return cfg.master_key.provider
    if env.get(_env.MACULA_SECRETS_MASTER_KEY):
        return "env"
    if os.path.exists(_plain_path(cfg)):
        return "file"
    from .keys.sealed import sealed_kind

    kind = sealed_kind(sealed_path(cfg))
    if kind is None and _initialised(cfg.store_path):
        return "shares"
    return kind or "file"


def _initialised(store_path: str) -> bool:
    """Whether the store has a master key id: a store with one but no key file
    here was opened with a key that now lives elsewhere (recovery shares).

    Not merely whether ``store.db`` exists: another process creating a new
    store makes the file first and its key a moment later, and a process
    opening the same new home in that moment must create or wait, not ask
    for shares.
    """
    if not os.path.exists(store_path):
        return False
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=60)
        try:
            row = conn.execute("SELECT 1 FROM meta WHERE name = 'key_id'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:   # no meta table yet: a store being made right now
        return False
    return row is not None


def open_provider(cfg: Config, env: Mapping[str, str], *,
                  ask: Callable[[str], str] | None = None) -> MasterKeyProvider:
    """The configured provider, with the recovery escrow around it when configured.

    ``ask(prompt)`` reads a passphrase from the person at the terminal
    (default: without echo, or ``KeySourceError`` when there is no terminal).
    """
    provider = provider_for(chosen_kind(cfg, env), cfg, env, ask=ask)
    if cfg.master_key.recovery_recipients:
        from .keys.escrow import Escrowed

        provider = Escrowed(provider, os.path.join(cfg.home, RECOVERY_NAME),
                            cfg.master_key.recovery_recipients)
    return provider


def provider_for(kind: str, cfg: Config, env: Mapping[str, str], *,
                 ask: Callable[[str], str] | None = None,
                 path: str | None = None) -> MasterKeyProvider:
    """The provider of ``kind`` with ``cfg``'s settings (no escrow); ``path`` for its file."""
    mk = cfg.master_key
    if kind == "file":
        return MasterKeyFile(path or _plain_path(cfg))
    if kind == "env":
        from .keys.sealed import EnvKey

        value = env.get(_env.MACULA_SECRETS_MASTER_KEY)
        if not value:
            raise KeySourceError(f"{_env.MACULA_SECRETS_MASTER_KEY} is not set",
                                 hint="the env provider takes the key from that variable")
        return EnvKey(value, name=_env.MACULA_SECRETS_MASTER_KEY)
    from .keys.sealed import IdentitySealer, PassphraseSealer, SealedKeyFile

    path = path or sealed_path(cfg)
    if kind == "passphrase":
        return SealedKeyFile(path, PassphraseSealer(
            _passphrase_source(mk.passphrase_file, env, ask)))
    if kind == "identity":
        if mk.identity is None and mk.recipient is None:
            raise ConfigError("the identity provider needs [master_key] identity",
                              hint="the node's age identity file or ssh host key")
        return SealedKeyFile(path, IdentitySealer(mk.identity, recipient=mk.recipient))
    if kind == "shares":
        from .keys.sealed import HeldKey

        return HeldKey(cfg.store_path,
                       key_file=None if cfg.master_key.provider == "shares" else _plain_path(cfg))
    if kind == "tpm":
        from .keys.tpm import TpmSealer

        return SealedKeyFile(path, TpmSealer(tcti=mk.tcti, pcrs=mk.pcrs))
    raise ConfigError(f"unknown master key provider {kind!r}")


def _passphrase_source(path: str | None, env: Mapping[str, str],
                       ask: Callable[[str], str] | None) -> Callable[[], str]:
    """Where the passphrase comes from, asked only when needed: file, variable, terminal."""

    def read() -> str:
        if path is not None:
            from .keys.master import read_private

            try:
                return read_private(path, "passphrase file").rstrip("\r\n")
            except FileNotFoundError:
                raise KeySourceError(f"passphrase file {path} does not exist") from None
        value = env.get(_env.MACULA_SECRETS_PASSPHRASE)
        if value:
            return value
        if ask is not None:
            return ask("master key passphrase: ")
        from .keys._discovery import read_passphrase_from_terminal

        return read_passphrase_from_terminal("macula-secrets master key passphrase: ")

    return read


def migrate(cfg: Config, env: Mapping[str, str], to: str, *, keep_old: bool = False,
            ask: Callable[[str], str] | None = None) -> tuple[str, str]:
    """Move the master key to provider ``to``; every secret stays readable.

    The key is read from the provider in use and written by the new one (a
    sealed file, or a plain key file); a fresh provider then reads it back
    (for a passphrase typed at the terminal this is the confirmation: it is
    asked twice) and only when it matches is the old file removed, zeroed
    first (``keep_old`` keeps it; an environment variable is left alone).
    Done under the old provider's lock, so no rotation runs meanwhile.

    Returns:
        The old and the new provider's descriptions.

    Raises:
        ConfigError: ``to`` is unknown or already in use.
        KeySourceError: the new provider cannot store or give back the key.
    """
    if to not in ("file", "passphrase", "identity", "tpm"):
        raise ConfigError(f"cannot migrate the master key to {to!r}",
                          hint="one of: file, passphrase, identity, tpm")
    old_kind = chosen_kind(cfg, env)
    if old_kind == to:
        raise ConfigError(f"the master key is already kept by the {to} provider")
    old = provider_for(old_kind, cfg, env, ask=ask)
    old_path: str | None = getattr(old, "path", None)
    target = provider_for(to, cfg, env, ask=ask)
    final: str | None = getattr(target, "path", None)
    # Sealed to sealed (passphrase -> TPM) is one file name: the new seal is
    # made beside it and renamed over it once it proved to give the key back.
    beside = final is not None and final == old_path
    where = f"{final}.migrating" if beside else final
    new = provider_for(to, cfg, env, ask=ask, path=where) if beside else target
    with old.locked():
        key = old.candidates()[0]
        if beside:
            _remove_key_file(where)  # a leftover of an interrupted migration
        if new.exists():
            raise KeySourceError(f"{new.description} already exists",
                                 hint="move it away first if it holds no key you need")
        new.create(key)
        try:
            back = provider_for(to, cfg, env, ask=ask, path=where).candidates()[0]
        except KeySourceError:
            _remove_key_file(where)
            raise
        if back != key:
            _remove_key_file(where)
            raise KeySourceError(f"{new.description} did not give the key back; "
                                 "nothing was changed")
        if beside and where is not None and final is not None:
            if keep_old:
                os.link(final, final + ".old")
            os.replace(where, final)
        elif not keep_old and old_path is not None:
            _remove_key_file(old_path)
    return old.description, target.description


def _remove_key_file(path: str | None) -> None:
    """Overwrite a key file with zeros, fsync and unlink it (best effort on flash storage)."""
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.write(fd, b"\0" * os.fstat(fd).st_size)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
