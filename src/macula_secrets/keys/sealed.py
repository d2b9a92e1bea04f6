"""The master key sealed in a file: by a passphrase, to a node's identity, or by a TPM.

:class:`SealedKeyFile` is a :class:`~macula_secrets.keys.master.MasterKeyProvider`
that does for every kind of sealing what ``MasterKeyFile`` does for a
plain key: create without ever replacing, crash-safe rotation (the new key
sealed into ``<path>.next``, renamed over ``<path>`` once the store
committed), a lock across processes. What differs between kinds is one
small :class:`Sealer`: ``seal(key) -> blob`` and ``unseal(blob) -> key``.
A blob is unsealed once per process (it is cached by its bytes), so a
passphrase is asked for, or scrypt paid, once, not at every rotation check.

The file is text, mode 0600::

    # macula-secrets master key, sealed (passphrase): useless without the passphrase.
    # created: 2026-11-29T10:00:00Z
    MACULA-SEALED-KEY-1 passphrase <base64 of the blob>

Sealers here: :class:`PassphraseSealer` (an age scrypt file, so ``age -d``
opens it with the passphrase) and :class:`IdentitySealer` (an age file to
the node's X25519 or ssh-ed25519 recipient, so each node decrypts only its
own). The TPM sealer is :class:`macula_secrets.keys.tpm.TpmSealer`.
:class:`EnvKey` takes the key from an environment variable (read-only).
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from ..errors import KeySourceError, LockedError
from .master import MasterKeyFile, parse_key, read_private

if TYPE_CHECKING:
    from .age import AgeIdentity, AgeRecipient

__all__ = ["SEALED_PREFIX", "EnvKey", "FixedKey", "HeldKey", "IdentitySealer", "PassphraseSealer",
           "SealedKeyFile", "Sealer"]

SEALED_PREFIX: Final = "MACULA-SEALED-KEY-1"
_KEY_SIZE: Final = 32


class Sealer(Protocol):
    """Turns a secret into a blob only it can turn back (a passphrase, an identity, a TPM)."""

    @property
    def kind(self) -> str:
        """One word for the file and messages: ``passphrase``, ``identity``, ``tpm``."""
        ...

    @property
    def description(self) -> str:
        """For messages; never key material."""
        ...

    def seal(self, secret: bytes) -> bytes:
        """An opaque blob to store in a file."""
        ...

    def unseal(self, blob: bytes) -> bytes:
        """The secret; ``KeySourceError`` saying what is wrong when it cannot."""
        ...


class SealedKeyFile(MasterKeyFile):
    """A master key sealed by ``sealer`` in the file at ``path`` (0600)."""

    def __init__(self, path: str | os.PathLike[str], sealer: Sealer) -> None:
        super().__init__(path)
        self.sealer = sealer
        self.description = f"{sealer.description}, sealed key file {self.path}"
        self._unsealed: dict[bytes, bytes] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SealedKeyFile({self.path!r}, kind={self.sealer.kind!r})"

    # -- the file ----------------------------------------------------------------------

    def _text(self, key: bytes) -> str:
        if len(key) != _KEY_SIZE:
            raise ValueError("a master key is 32 bytes")
        blob = self.sealer.seal(key)
        with self._cache_lock:
            self._unsealed[blob] = key
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (
            f"# macula-secrets master key, sealed ({self.sealer.kind}): useless without "
            f"{_needs(self.sealer.kind)}.\n"
            f"# created: {created}\n"
            f"{SEALED_PREFIX} {self.sealer.kind} {base64.b64encode(blob).decode('ascii')}\n"
        )

    def _read(self, path: str) -> bytes:
        blob = parse_sealed(read_private(path, "sealed master key file"), source=path,
                            kind=self.sealer.kind)
        with self._cache_lock:
            key = self._unsealed.get(blob)
        if key is None:
            from . import _unlocked

            key = _unlocked.recall("sealed-master-key", blob)
            if key is None or len(key) != _KEY_SIZE:
                key = self.sealer.unseal(blob)
                if len(key) != _KEY_SIZE:
                    raise KeySourceError(f"{path} did not unseal to a master key")
                _unlocked.remember("sealed-master-key", blob, key)
            with self._cache_lock:
                self._unsealed[blob] = key
        return key


def parse_sealed(text: str, *, source: str, kind: str | None = None) -> bytes:
    """The blob in a sealed key file's text (of ``kind``, when given)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != SEALED_PREFIX:
            break
        if kind is not None and parts[1] != kind:
            raise KeySourceError(
                f"{source} is sealed by {parts[1]}, not {kind}",
                hint=f"set [master_key] provider = \"{parts[1]}\"")
        try:
            return base64.b64decode(parts[2], validate=True)
        except ValueError:
            break
    raise KeySourceError(f"{source} is not a sealed macula-secrets master key file")


def sealed_kind(path: str) -> str | None:
    """The kind a sealed key file names, or ``None`` when it is not one (or is absent)."""
    try:
        text = read_private(path, "sealed master key file")
    except (OSError, KeySourceError):
        return None
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) == 3 and parts[0] == SEALED_PREFIX:
            return parts[1]
    return None


def _needs(kind: str) -> str:
    return {"passphrase": "the passphrase", "identity": "this node's private key",
            "tpm": "this machine's TPM"}.get(kind, kind)


# -- sealers ---------------------------------------------------------------------------


class PassphraseSealer:
    """The key in an age file encrypted with a passphrase (scrypt, age's work factor 18).

    ``passphrase`` is called when the passphrase is needed (to read a file,
    a prompt, an environment variable): at most once per seal or unseal.
    The blob is a standard age file: ``age -d`` opens it with the passphrase.
    """

    kind = "passphrase"

    def __init__(self, passphrase: Callable[[], str], *, description: str = "passphrase") -> None:
        self._passphrase = passphrase
        self.description = description

    def __repr__(self) -> str:
        return "PassphraseSealer(***)"

    def seal(self, secret: bytes) -> bytes:
        from pyrage import passphrase as _passphrase

        pw = self._ask()
        blob: bytes = _passphrase.encrypt(secret, pw)
        return blob

    def unseal(self, blob: bytes) -> bytes:
        from ..errors import NoMatchingKeyError
        from .age import decrypt_with_passphrase

        try:
            return decrypt_with_passphrase(blob, self._ask())
        except NoMatchingKeyError:
            raise KeySourceError("wrong passphrase for the sealed master key",
                                 hint="the passphrase the key was sealed with") from None

    def _ask(self) -> str:
        pw = self._passphrase()
        if not pw:
            raise KeySourceError("an empty passphrase cannot seal the master key")
        return pw


class IdentitySealer:
    """The key age-encrypted to a node's recipient (X25519 or ssh-ed25519).

    Sealing needs only the recipient; unsealing needs the node's identity
    (an age identity file, or the ssh host key), read when it is needed.
    """

    kind = "identity"

    def __init__(self, identity_file: str | os.PathLike[str] | None = None, *,
                 recipient: str | None = None) -> None:
        if identity_file is None and recipient is None:
            raise KeySourceError("an identity sealer needs an identity file or a recipient")
        self.identity_file = None if identity_file is None else os.fspath(identity_file)
        self._recipient = recipient
        self.description = (f"node identity {self.identity_file}" if self.identity_file
                            else f"node recipient {recipient}")

    def __repr__(self) -> str:
        return f"IdentitySealer({self.identity_file!r})"

    def recipient(self) -> AgeRecipient:
        """The recipient keys are sealed to: given, or the identity's own."""
        from .age import parse_recipient

        if self._recipient is not None:
            return parse_recipient(self._recipient)
        recipient = self._identities()[0].to_recipient()
        return recipient

    def seal(self, secret: bytes) -> bytes:
        from .age import encrypt

        return encrypt(secret, [self.recipient()])

    def unseal(self, blob: bytes) -> bytes:
        from ..errors import NoMatchingKeyError
        from .age import decrypt

        try:
            return decrypt(blob, self._identities())
        except NoMatchingKeyError:
            raise KeySourceError(
                f"the master key was not sealed to {self.description}",
                hint="each node's sealed key opens only with that node's own key") from None

    def _identities(self) -> Sequence[AgeIdentity]:
        from .age import parse_identity_data

        if self.identity_file is None:
            raise KeySourceError("no identity file to unseal the master key with",
                                 hint="set [master_key] identity")
        path = self.identity_file
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
        except OSError as exc:
            raise KeySourceError(f"cannot read identity {path}: {exc.strerror}") from None
        return parse_identity_data(data, source=path)


class _ReadOnlyKey:
    """A provider whose key lives elsewhere: always there, nothing pending, nothing to lock.

    Subclasses say where the key comes from (``candidates``) and why it cannot
    be created or rotated here (``create``, ``begin_rotation``).
    """

    description: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"

    def exists(self) -> bool:
        return True

    def commit_rotation(self) -> None:
        raise FileNotFoundError(self.description)  # nothing pending, ever

    def abort_rotation(self) -> None:
        pass

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield


class FixedKey(_ReadOnlyKey):
    """A master key given as it is; read-only (it cannot be created or rotated here)."""

    def __init__(self, key: bytes, description: str) -> None:
        if len(key) != _KEY_SIZE:
            raise KeySourceError(f"{description} is not a master key (wrong size)")
        self._key = key
        self.description = description

    def create(self, key: bytes) -> None:
        raise KeySourceError(f"the master key in {self.description} cannot be replaced")

    def candidates(self) -> list[bytes]:
        return [self._key]

    def begin_rotation(self, key: bytes) -> None:
        raise KeySourceError(
            f"a master key from {self.description} cannot be rotated in place",
            hint="rotate with a file or sealed key, then hand over the new key")


class EnvKey(FixedKey):
    """A master key given in an environment variable (``MACULA-MASTER-KEY-1...``); read-only.

    For containers and CI, where the key comes from the orchestrator. It
    cannot be created or rotated here: rotation would have to change the
    variable wherever it is set.
    """

    def __init__(self, value: str, *, name: str = "MACULA_SECRETS_MASTER_KEY") -> None:
        super().__init__(parse_key(value, source=f"${name}"), f"environment variable {name}")
        self._name = name

    def __repr__(self) -> str:
        return f"EnvKey({self._name!r})"


class HeldKey(_ReadOnlyKey):
    """A master key that lives only in the agent's memory, put there by ``unlock``.

    For the emergency route of Vault's unseal: no key file exists on the
    node; ``macula-secrets unlock`` combines M recovery shares and hands the
    key to the running agent, and the store opens with it until the agent
    forgets it (``agent lock``, its timeout, a reboot). The name ties it to
    one store (the SHA-256 of the store's path).
    """

    def __init__(self, store_path: str | os.PathLike[str], *,
                 key_file: str | None = None) -> None:
        import hashlib

        real = os.path.realpath(os.fspath(store_path))
        self.name = "held-master-key:" + hashlib.sha256(real.encode()).hexdigest()
        self.description = f"the agent (unlocked with recovery shares for {real})"
        self._key_file = key_file

    def __repr__(self) -> str:
        return f"HeldKey({self.name!r})"

    def create(self, key: bytes) -> None:
        raise KeySourceError("a new store cannot start from recovery shares",
                             hint="create it with another provider, then split its key")

    def candidates(self) -> list[bytes]:
        from . import _unlocked

        try:
            key = _unlocked.held(self.name)
        except OSError:
            key = None
        if key is None or len(key) != _KEY_SIZE:
            where = (f"{self._key_file} does not exist, and " if self._key_file else "")
            raise LockedError(
                f"no master key: {where}no agent holds one unlocked from recovery shares",
                hint="restore the key file from your backup or the escrow copy, or recover "
                     "it: `macula-secrets key combine`, or `agent start` then `unlock`")
        return [key]

    def begin_rotation(self, key: bytes) -> None:
        raise KeySourceError(
            "a master key unlocked from recovery shares cannot be rotated in place",
            hint="restore it first (`key combine`, or `key migrate --to ...`), then rotate "
                 "and split again")
