"""A SOPS file in memory: decrypt it, change it, encrypt it again.

:class:`SopsFile` holds the plaintext tree, the metadata and the data key
(inside a :class:`~.cipher.ValueCipher`, never in a repr). Re-encrypting a
decrypted file reuses the data key and the IV of every value that did not
change, so the file on disk changes only where the content did, plus the
MAC and ``lastmodified``.
"""

from __future__ import annotations

import os
from typing import Final

from .._crypto import constant_time_equal
from ..errors import FormatError, IntegrityError, LimitError
from .cipher import ValueCipher
from .keygroups import Unwrapper, unwrap_data_key, wrap_data_key
from .metadata import SOPS_VERSION, AgeKey, MasterKey, Metadata
from .stores import Store, get_store
from .tree import Branch
from .walk import decrypt_branches, encrypt_branches

__all__ = ["DEFAULT_MAX_FILE_SIZE", "SopsFile", "decrypt_bytes", "encrypt_new", "read_encrypted"]

#: Input larger than this is refused before parsing (configurable per call).
DEFAULT_MAX_FILE_SIZE: Final = 64 * 1024 * 1024


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_size(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise LimitError(f"input is {len(data)} bytes, more than the limit of {limit}")


def read_encrypted(
    data: bytes, store: Store, *, max_size: int = DEFAULT_MAX_FILE_SIZE
) -> tuple[list[Branch], Metadata]:
    """Parse an encrypted file without decrypting: ``(encrypted branches, metadata)``."""
    _check_size(data, max_size)
    branches, raw = store.load_encrypted(data)
    return branches, Metadata.from_branch(raw)


class SopsFile:
    """A decrypted SOPS document: plaintext branches, metadata and the data key.

    ``branches`` may be changed freely; :meth:`encrypt` turns them back into
    an encrypted file with the same data key.
    """

    __slots__ = ("_cipher", "branches", "format", "metadata", "name", "path")

    def __init__(
        self,
        branches: list[Branch],
        metadata: Metadata,
        cipher: ValueCipher,
        *,
        format: str,
        name: str = "file",
        path: str | None = None,
    ) -> None:
        self.branches = branches
        self.metadata = metadata
        self._cipher = cipher
        self.format = format
        self.name = name
        self.path = path

    # -- reading and changing values ---------------------------------------------

    def get(self, path: str | list[str | int]) -> object:
        """Return the value at ``path`` (``'["db"]["password"]'`` or ``["db", "password"]``).

        Raises ``PathError`` when nothing is there.
        """
        from .paths import get_path, parse_path

        return get_path(self.branches[0], parse_path(path) if isinstance(path, str) else path)

    def set(self, path: str | list[str | int], value: object) -> bool:
        """Set the value at ``path`` (creating maps on the way); return whether it changed."""
        from .paths import parse_path, set_path

        return set_path(self.branches[0], parse_path(path) if isinstance(path, str) else path,
                        _from_python(value))

    def unset(self, path: str | list[str | int]) -> None:
        """Remove the value at ``path``; ``PathError`` when it is absent."""
        from .paths import parse_path, unset_path

        unset_path(self.branches[0], parse_path(path) if isinstance(path, str) else path)

    def to_dict(self) -> dict[str, object]:
        """The first document as plain Python data (comments dropped)."""
        out = to_python(self.branches[0])
        return out if isinstance(out, dict) else {}

    def save(self, path: str | None = None) -> None:
        """Encrypt and write atomically to ``path`` (default: where it was read from)."""
        from .._fs import atomic_write

        target = path or self.path
        if target is None:
            raise FormatError("this document has no path: pass one to save()")
        atomic_write(target, self.encrypt(), mode=0o644)
        self.path = target

    def __repr__(self) -> str:
        return f"SopsFile({self.name!r}, format={self.format!r}, {self.metadata!r})"

    def encrypt(self, store: Store | None = None, *, now: str | None = None) -> bytes:
        """Encrypt the branches with this file's data key and print the file.

        Sets ``lastmodified`` to ``now`` (default: the current UTC time) and a
        new MAC. ``store`` defaults to this file's format.
        """
        store = store or get_store(self.format)
        enc, mac_hex = encrypt_branches(self.branches, self._cipher, self.metadata)
        self.metadata.lastmodified = now or _now()
        self.metadata.mac = self._cipher.encrypt(mac_hex, self.metadata.mac_aad())
        # No special case for binary files: sops 3.11 omits the selection rule
        # only when it first encrypts binary input (see encrypt_new); its
        # set/rotate/edit write the rule read from the file (the default
        # unencrypted_suffix when none is stored), and so do we.
        return store.emit_encrypted(enc, self.metadata.to_branch())

    def plaintext(self, store: Store | None = None) -> bytes:
        """Print the decrypted document (``sops -d``)."""
        store = store or get_store(self.format)
        return store.emit_plain(self.branches)

    def rotate(self, *, add: list[str] | None = None, remove: list[str] | None = None) -> None:
        """Switch to a new data key, optionally adding/removing age recipients.

        ``add`` goes to the first key group; ``remove`` matches the recipient
        text in any group (as ``sops rotate --add-age/--rm-age``).
        """
        groups = [list(g) for g in self.metadata.key_groups]
        if remove:
            drop = set(remove)
            groups = [[k for k in g if not (isinstance(k, AgeKey) and k.recipient in drop)]
                      for g in groups]
        recipients = _age_groups(groups, self.name)
        if add:
            recipients[0].extend(a for a in add if a not in recipients[0])
        self.rekey(recipients, threshold=self.metadata.shamir_threshold, new_data_key=True)

    def rekey(
        self, groups: list[list[str]], *, threshold: int = 0, new_data_key: bool = False
    ) -> None:
        """Wrap the data key (or a new one) for ``groups`` of age recipients."""
        if new_data_key:
            self._cipher = ValueCipher(os.urandom(32))
        key = self._cipher_key()
        wrapped, recorded = wrap_data_key(key, groups, threshold=threshold)
        self.metadata.key_groups = wrapped
        self.metadata.shamir_threshold = recorded if len(groups) > 1 else threshold

    def _cipher_key(self) -> bytes:
        return self._cipher.data_key()


def _age_groups(groups: list[list[MasterKey]], name: str) -> list[list[str]]:
    out: list[list[str]] = []
    for g in groups:
        keys = []
        for k in g:
            if not isinstance(k, AgeKey):
                raise FormatError(
                    f"{name} has a {k.kind} key ({k.label}); macula-secrets can only "
                    "re-wrap the data key for age recipients",
                    hint="remove the other key types with sops first",
                )
            keys.append(k.recipient)
        out.append(keys)
    return out


def decrypt_bytes(
    data: bytes,
    *,
    format: str,
    unwrapper: Unwrapper,
    ignore_mac: bool = False,
    name: str = "file",
    max_size: int = DEFAULT_MAX_FILE_SIZE,
    store: Store | None = None,
    editable: bool = True,
) -> SopsFile:
    """Decrypt an encrypted file's bytes.

    Raises:
        FormatError: not a SOPS file (``sops metadata not found``) or malformed.
        NoMatchingKeyError, ThresholdError: no identity can open the data key.
        IntegrityError: a value, the MAC, or a clear value changed.
    """
    store = store or get_store(format)
    enc, metadata = read_encrypted(data, store, max_size=max_size)
    key = unwrap_data_key(metadata, unwrapper, name=name)
    # ``editable`` keeps each value's IV so that re-encrypting reproduces
    # unchanged ciphertext; a read-only decrypt does not need it.
    cipher = ValueCipher(key, remember_ivs=editable)
    branches, computed = decrypt_branches(enc, cipher, metadata)
    if not ignore_mac:
        verify_mac(metadata, cipher, computed, name=name)
    return SopsFile(branches, metadata, cipher, format=format, name=name)


def verify_mac(metadata: Metadata, cipher: ValueCipher, computed: str, *, name: str) -> None:
    """Check the stored MAC against the one computed while decrypting."""
    if not metadata.mac:
        raise IntegrityError(f"{name} has no MAC")
    try:
        stored = cipher.decrypt(metadata.mac, metadata.mac_aad(), where="mac")
    except (IntegrityError, FormatError):
        raise IntegrityError(
            f"cannot decrypt the MAC of {name}: the MAC or lastmodified was changed"
        ) from None
    if not isinstance(stored, str) or not constant_time_equal(
        stored.encode("utf-8", "surrogateescape"), computed.encode("ascii")
    ):
        raise IntegrityError(
            f"MAC mismatch in {name}: the file was changed after it was encrypted"
        )


def encrypt_new(
    branches: list[Branch],
    *,
    format: str,
    groups: list[list[str]],
    threshold: int = 0,
    rule: tuple[str, str] | None = None,
    mac_only_encrypted: bool = False,
    name: str = "file",
) -> SopsFile:
    """Make a new SOPS document for ``branches`` with a fresh data key.

    The result is not encrypted yet: call :meth:`SopsFile.encrypt`.
    """
    key = os.urandom(32)
    wrapped, recorded = wrap_data_key(key, groups, threshold=threshold)
    metadata = Metadata(
        wrapped,
        shamir_threshold=recorded,
        rule=rule or ("unencrypted_suffix", "_unencrypted"),
        mac_only_encrypted=mac_only_encrypted,
        version=SOPS_VERSION,
    )
    if format == "binary":
        # sops 3.11 ignores selection rules for binary input and stores none.
        # ``format`` is the output format here: a caller converting binary
        # input to another format, or another format to binary output, sets
        # ``metadata.rule`` itself (sops decides by the input store).
        metadata.rule = None
    return SopsFile(branches, metadata, ValueCipher(key), format=format, name=name)


def to_python(value: object) -> object:
    """Tree -> plain Python: dicts, lists, scalars; comments dropped, first duplicate wins."""
    from .tree import Comment, Timestamp

    if isinstance(value, Branch):
        out: dict[str, object] = {}
        for k, v in value:
            if k.__class__ is Comment:
                continue
            key = str(k)
            if key not in out:
                out[key] = to_python(v)
        return out
    if isinstance(value, list):
        return [to_python(v) for v in value if v.__class__ is not Comment]
    if isinstance(value, Timestamp):
        return value.text
    return value


def _from_python(value: object) -> object:
    """Plain Python -> tree values (dicts become ordered branches)."""
    if isinstance(value, Branch):
        return value
    if isinstance(value, dict):
        return Branch((str(k), _from_python(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_from_python(v) for v in value]
    return value
