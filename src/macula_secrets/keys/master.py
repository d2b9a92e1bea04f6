"""The store's master key: where it lives, how it is created, how it is rotated.

Part of the keys layer. The master key (32 random bytes) wraps the store's
data keys and nothing else. This module knows only the key file provider;
other providers (passphrase, TPM, node identity, Shamir shares) implement
the same :class:`MasterKeyProvider` protocol.

Rotation is made crash-safe in two files: the new key is first written,
fsynced, to ``master.key.next``; the store re-wraps its data keys in one
transaction; then ``master.key.next`` is renamed over ``master.key``. A crash
at any point leaves the store readable: before the commit with the old key,
after it with the new one, which is still in ``.next`` if the rename did not
happen (:meth:`candidates` offers both, and the store finishes the rename).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from typing import Final, Protocol

from ..errors import KeySourceError, LockedError

__all__ = ["KEY_PREFIX", "MasterKeyFile", "MasterKeyProvider"]

KEY_PREFIX: Final = "MACULA-MASTER-KEY-1"
"""First characters of the key line, so a key is recognisable and greppable."""

_KEY_SIZE: Final = 32


class MasterKeyProvider(Protocol):
    """Where a store's master key comes from. Methods may be called from any thread."""

    description: str
    """For messages: ``key file /var/lib/macula-secrets/master.key``; never key material."""

    def exists(self) -> bool:
        """Whether a key is present (a new store may create one)."""
        ...

    def create(self, key: bytes) -> None:
        """Store a first key; fails when one exists (a key is never silently replaced)."""
        ...

    def candidates(self) -> list[bytes]:
        """The current key, then a pending one from an interrupted rotation, if any."""
        ...

    def begin_rotation(self, key: bytes) -> None:
        """Store ``key`` durably as the pending key, beside the current one."""
        ...

    def commit_rotation(self) -> None:
        """Make the pending key current (after the store committed to it)."""
        ...

    def abort_rotation(self) -> None:
        """Forget the pending key (the store still uses the current one)."""
        ...

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes: held by a rotation from its start to its end.

        Taken before the store's write lock, never after it (lock order).
        """
        ...


class MasterKeyFile:
    """A master key in a text file, mode 0600, refused when others can read it.

    Subclasses store the key differently (``keys.sealed.SealedKeyFile``) by
    overriding :meth:`_text` and :meth:`_read`; creation, rotation and the
    lock stay the same.
    """

    missing_hint = ("restore the key file from your backup, recover it with `macula-secrets "
                    "key combine`, or from the escrow copy (docs/keys.md)")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.pending_path = self.path + ".next"
        self.description = f"key file {self.path}"

    def __repr__(self) -> str:
        return f"MasterKeyFile({self.path!r})"

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def create(self, key: bytes) -> None:
        write_new(self.path, self._text(key))

    def candidates(self) -> list[bytes]:
        try:
            keys = [self._read(self.path)]
        except FileNotFoundError:
            raise LockedError(f"no master key: {self.path} does not exist",
                              hint=self.missing_hint) from None
        with contextlib.suppress(FileNotFoundError, KeySourceError):
            keys.append(self._read(self.pending_path))
        return keys

    def begin_rotation(self, key: bytes) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pending_path)
        write_new(self.pending_path, self._text(key))

    def commit_rotation(self) -> None:
        os.replace(self.pending_path, self.path)
        _fsync_dir(self.path)

    def abort_rotation(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pending_path)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.path)

    def _text(self, key: bytes) -> str:
        """The file's text for ``key``."""
        if len(key) != _KEY_SIZE:
            raise ValueError("a master key is 32 bytes")
        return format_key(key)

    def _read(self, path: str) -> bytes:
        """The key in the file at ``path`` (``FileNotFoundError`` when there is none)."""
        return parse_key(read_private(path), source=path)


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Exclusive across processes, on ``<path>.lock``: the key file itself is replaced by rename."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def format_key(key: bytes) -> str:
    """The key file's text: a comment and one line with the key in base64."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    encoded = base64.b64encode(key).decode("ascii")
    return (
        "# macula-secrets master key: it decrypts every secret in the store.\n"
        f"# created: {created}\n"
        f"{KEY_PREFIX}{encoded}\n"
    )


def parse_key(text: str, *, source: str) -> bytes:
    """The 32-byte key in a key file's text; ``KeySourceError`` naming ``source`` otherwise."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(KEY_PREFIX):
            break
        try:
            key = base64.b64decode(line[len(KEY_PREFIX):], validate=True)
        except ValueError:
            break
        if len(key) == _KEY_SIZE:
            return key
        break
    raise KeySourceError(f"{source} is not a macula-secrets master key file")


def read_private(path: str, what: str = "master key file", *, limit: int = 65536) -> str:
    """The ASCII text of a key file that only its owner can read; else KeySourceError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise KeySourceError(
                f"{what} {path} can be read by others (mode {mode:04o})",
                hint=f"run: chmod 600 {path}",
            )
        data = os.read(fd, limit)
    finally:
        os.close(fd)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise KeySourceError(f"{path} is not a macula-secrets {what}") from None


def write_new(path: str, text: str) -> None:
    """Write a key file that appears whole or not at all, never over an existing one.

    The text goes to a temporary file (0600 from the start, so the key is
    never readable by others even for a moment), is fsynced, and is then
    hard-linked to its name: ``link`` fails if the name exists, and a crash
    leaves either no key file or a complete one.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeySourceError(f"key file {path} already exists") from None
    finally:
        os.unlink(tmp)
    _fsync_dir(path)


def _remove_stale_temporaries(path: str) -> None:
    """Remove key temporaries left by writers that were killed (they hold key material)."""
    folder = os.path.dirname(path) or "."
    prefix = os.path.basename(path) + ".tmp"
    for name in os.listdir(folder):
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            continue
        pid = int(name[len(prefix):])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
        except PermissionError:
            pass  # alive, someone else's


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
