"""The whole exception tree of macula_secrets.

Every error the library raises on purpose is a :class:`MaculaError`::

    MaculaError
    ├── ConfigError(ValueError)        bad .sops.yaml, flags that conflict, bad settings
    ├── FormatError(ValueError)        not a SOPS document; a store cannot parse the text
    │   └── LimitError                 hostile input: too big, too deep, too many keys
    ├── AlreadyEncryptedError          `encrypt` on a file that has SOPS metadata
    ├── KeySourceError                 key file unreadable, bad identity text
    │   └── ThresholdError             fewer Shamir shares than the threshold
    ├── DecryptionError
    │   ├── NoMatchingKeyError         lists the file's recipients + per-key errors (age)
    │   └── IntegrityError             MAC or tag mismatch; deliberately says nothing more
    ├── PathError(LookupError)         a tree path (``["a"][0]``) is invalid or missing
    ├── BackendError
    │   ├── NotFoundError(LookupError), ConflictError (stale version)
    │   ├── PermissionDeniedError(PermissionError)
    │   └── UnavailableError           transient, safe to retry
    └── LockedError                    the local store is not unlocked

Messages are lowercase, have no trailing period and name the thing they are
about (a path, a recipient). They never contain plaintext, key material or
tokens: callers may log them and show them to users as they are. Context that
code may want to act on is kept in attributes as well as in the text.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyEncryptedError",
    "BackendError",
    "ConfigError",
    "ConflictError",
    "DecryptionError",
    "FormatError",
    "IntegrityError",
    "KeySourceError",
    "LimitError",
    "LockedError",
    "MaculaError",
    "NoMatchingKeyError",
    "NotFoundError",
    "PathError",
    "PermissionDeniedError",
    "ThresholdError",
    "UnavailableError",
]


class MaculaError(Exception):
    """Base of every error raised on purpose by macula_secrets.

    ``hint`` is an optional second line telling a person what to do next; the
    CLI prints it as ``macula: hint: ...``.
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(MaculaError, ValueError):
    """Configuration is wrong: a bad ``.sops.yaml``, conflicting options, bad settings."""


class FormatError(MaculaError, ValueError):
    """Input is not what it claims to be: a store cannot parse it, or it is not SOPS."""


class LimitError(FormatError):
    """Input exceeds a safety limit (size, depth, recipients, key groups, stanzas)."""


class AlreadyEncryptedError(MaculaError):
    """``encrypt`` was given a file that already carries SOPS metadata."""


class KeySourceError(MaculaError):
    """A key could not be read or parsed (file, environment variable, command)."""


class ThresholdError(KeySourceError):
    """Fewer key shares could be recovered than the Shamir threshold needs."""

    def __init__(self, message: str, *, threshold: int, recovered: int) -> None:
        super().__init__(message)
        self.threshold = threshold
        self.recovered = recovered


class DecryptionError(MaculaError):
    """Something that was encrypted could not be decrypted."""


class NoMatchingKeyError(DecryptionError):
    """None of the available identities can unwrap the data key.

    ``recipients`` lists the public keys the file was encrypted to, so the user
    can tell which private key is missing; ``errors`` keeps one line per key
    that was tried.
    """

    def __init__(
        self, message: str, *, recipients: Sequence[str] = (), errors: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.recipients = list(recipients)
        self.errors = list(errors)


class IntegrityError(DecryptionError):
    """Authenticated data failed to verify: a MAC or an AES-GCM tag mismatch.

    The message names what failed (the MAC, or a value's path) and nothing
    more: saying *how* it failed would help an attacker and cannot help a user.
    """


class PathError(MaculaError, LookupError):
    """A tree path such as ``["db"]["password"]`` is malformed or names nothing."""


class BackendError(MaculaError):
    """A backend could not complete an operation."""


class NotFoundError(BackendError, LookupError):
    """The requested secret or version does not exist."""


class ConflictError(BackendError):
    """A check-and-set write found a different current version."""


class PermissionDeniedError(BackendError, PermissionError):
    """The caller is not allowed to do this."""


class UnavailableError(BackendError):
    """The backend cannot be reached now; the operation is safe to retry."""


class LockedError(MaculaError):
    """The local store is locked: no master key has been made available."""
