"""Recovery escrow: a copy of the master key age-encrypted to offline recovery recipients.

Losing a node's TPM, or the passphrase, must not be losing the data. With
``[master_key] recovery_recipients`` set, every master key the store
creates or rotates to is also written, age-encrypted (armored) to those
recipients, to ``<home>/master.key.recovery.age``. Decrypted, it is the
text of a plain master key file, so recovery is one standard command::

    age -d -i recovery-identity.txt master.key.recovery.age > master.key

The recovery identity stays offline (a safe, a hardware key); the node
needs only the public recipients. :class:`Escrowed` wraps any provider and
follows its rotations: the new copy goes to ``.next`` with the new key and
replaces the old one when the rotation commits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .master import MasterKeyProvider, format_key

if TYPE_CHECKING:
    from .age import AgeRecipient

__all__ = ["Escrowed", "write_escrow"]


class Escrowed:
    """``inner`` with an escrow copy of its key at ``path`` for ``recipients``."""

    def __init__(self, inner: MasterKeyProvider, path: str | os.PathLike[str],
                 recipients: Sequence[str]) -> None:
        from .age import parse_recipient

        self.inner = inner
        self.path = os.fspath(path)
        self.pending_path = self.path + ".next"
        self._recipients = [parse_recipient(r) for r in recipients]
        self.description = inner.description

    def __repr__(self) -> str:
        return f"Escrowed({self.inner!r}, {self.path!r})"

    def exists(self) -> bool:
        return self.inner.exists()

    def create(self, key: bytes) -> None:
        self.inner.create(key)
        write_escrow(self.path, key, self._recipients)

    def candidates(self) -> list[bytes]:
        return self.inner.candidates()

    def begin_rotation(self, key: bytes) -> None:
        write_escrow(self.pending_path, key, self._recipients)
        self.inner.begin_rotation(key)

    def commit_rotation(self) -> None:
        self.inner.commit_rotation()
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.pending_path, self.path)

    def abort_rotation(self) -> None:
        self.inner.abort_rotation()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pending_path)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.locked()


def write_escrow(path: str, key: bytes, recipients: Sequence[AgeRecipient]) -> None:
    """Write (or replace, atomically) the escrow copy of ``key`` at ``path``, mode 0600."""
    from .age import encrypt

    data = encrypt(format_key(key).encode("ascii"), recipients, armored=True)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
