"""The data key and the master keys that wrap it: one key group, or Shamir over several.

With one key group every master key wraps the whole 32-byte data key. With
several, the data key is split into one Shamir share per group (threshold
``shamir_threshold``, default all groups) and every master key of group
``i`` wraps share ``i`` (SOPS_FORMAT.md 4.3). Only age master keys can be
used here; other key types in a file are kept as they are and reported when
they would be needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..errors import (
    ConfigError,
    DecryptionError,
    FormatError,
    IntegrityError,
    KeySourceError,
    LimitError,
    NoMatchingKeyError,
    ThresholdError,
)
from ..keys import shamir
from .metadata import MAX_KEY_GROUPS, MAX_KEYS_PER_FILE, AgeKey, ForeignKey, MasterKey, Metadata

__all__ = ["IdentityList", "Unwrapper", "unwrap_data_key", "wrap_data_key"]


class Unwrapper(Protocol):
    """Something that can open one age ``enc`` field (an armored age file)."""

    def unwrap_data_key(self, enc: str, *, recipient: str) -> bytes:
        """Return the wrapped bytes; raise ``NoMatchingKeyError`` when no key fits."""
        ...


class IdentityList:
    """An :class:`Unwrapper` over a fixed list of age identities."""

    def __init__(self, identities: Sequence[object]) -> None:
        self._identities = list(identities)

    def __repr__(self) -> str:
        return f"IdentityList({len(self._identities)} identities)"

    def unwrap_data_key(self, enc: str, *, recipient: str) -> bytes:
        from ..keys import age

        return age.unwrap_data_key(enc, self._identities, recipient=recipient)  # type: ignore[arg-type]


def wrap_data_key(
    data_key: bytes,
    groups: list[list[str]],
    *,
    threshold: int = 0,
) -> tuple[list[list[MasterKey]], int]:
    """Wrap ``data_key`` for age recipients grouped in key groups.

    Returns the master-key groups for the metadata and the threshold to
    record (0 for a single group, as sops writes it unless configured).

    Raises:
        ConfigError: a group is empty, a recipient is invalid, or the
            threshold is impossible.
    """
    from ..keys import age

    if not groups:
        raise ConfigError("no recipients: give --age or a .sops.yaml creation rule")
    if any(not g for g in groups):
        raise ConfigError("empty key group provided")
    # Never write a file that Metadata.from_branch would refuse to read back.
    if len(groups) > MAX_KEY_GROUPS:
        raise LimitError(f"{len(groups)} key groups is more than the limit of {MAX_KEY_GROUPS}")
    total = sum(len(g) for g in groups)
    if total > MAX_KEYS_PER_FILE:
        raise LimitError(f"{total} recipients is more than the limit of {MAX_KEYS_PER_FILE}")
    if len(groups) == 1:
        parts = [data_key]
        recorded = threshold
    else:
        recorded = threshold or len(groups)
        if not 2 <= recorded <= len(groups):
            raise ConfigError(
                f"shamir threshold {recorded} is impossible with {len(groups)} key groups"
            )
        parts = shamir.split(data_key, len(groups), recorded)
    out: list[list[MasterKey]] = []
    for part, group in zip(parts, groups, strict=True):
        keys: list[MasterKey] = []
        for text in group:
            recipient = age.parse_recipient(text)
            keys.append(AgeKey(recipient.text, age.wrap_data_key(part, recipient)))
        out.append(keys)
    return out, recorded


def _group_part(group: list[MasterKey], unwrapper: Unwrapper) -> tuple[bytes | None, list[str]]:
    errors: list[str] = []
    for key in group:
        if isinstance(key, ForeignKey):
            errors.append(f"{key.label}: key type {key.kind} is not supported by macula-secrets")
            continue
        try:
            return unwrapper.unwrap_data_key(key.enc, recipient=key.recipient), errors
        except NoMatchingKeyError as exc:
            errors.append(f"{key.recipient}: {exc}")
            errors.extend(f"{key.recipient}: {e}" for e in exc.errors)
        except LimitError:
            # A hostile enc (too large, too many stanzas) is reported as what it
            # is, not folded into "no identity matches".
            raise
        except (FormatError, IntegrityError, KeySourceError) as exc:
            errors.append(f"{key.recipient}: {exc}")
    return None, errors


def unwrap_data_key(metadata: Metadata, unwrapper: Unwrapper, *, name: str = "file") -> bytes:
    """Recover the data key from the master keys, as sops does.

    Raises:
        NoMatchingKeyError: no (or too few) key groups could be opened; the
            error lists the recipients and one line per key tried.
        ThresholdError: some groups opened, but fewer than the threshold.
        DecryptionError: the recovered key is not 32 bytes.
    """
    groups = metadata.key_groups
    parts: list[bytes] = []
    errors: list[str] = []
    for i, group in enumerate(groups):
        part, errs = _group_part(group, unwrapper)
        if part is not None:
            parts.append(part)
        else:
            errors.extend(f"group {i}: {e}" for e in errs)
    recipients = metadata.recipients()
    if len(groups) > 1:
        threshold = metadata.shamir_threshold or len(groups)
        if len(parts) < threshold:
            if not parts:
                err = NoMatchingKeyError(
                    f"no identity matches {name} (encrypted to {len(recipients)} "
                    f"recipients in {len(groups)} key groups: {_list(recipients)})",
                    recipients=recipients,
                    errors=errors,
                )
                err.hint = "set SOPS_AGE_KEY_FILE to a file holding one of those identities"
                raise err
            raise ThresholdError(
                f"{name} was encrypted with a Shamir threshold of {threshold}, but only "
                f"{len(parts)} key group(s) could be opened",
                threshold=threshold,
                recovered=len(parts),
            )
        try:
            key = shamir.combine(parts, threshold=threshold)
        except (KeySourceError, ValueError) as exc:
            raise DecryptionError(f"could not combine the Shamir shares of {name}: {exc}") from None
    else:
        if not parts:
            kinds = "recipient" if len(recipients) == 1 else "recipients"
            err = NoMatchingKeyError(
                f"no identity matches {name} (encrypted to {len(recipients)} {kinds}: "
                f"{_list(recipients)})",
                recipients=recipients,
                errors=errors,
            )
            err.hint = "set SOPS_AGE_KEY_FILE to a file holding one of those identities"
            raise err
        key = parts[0]
    if len(key) != 32:
        raise DecryptionError(f"the data key of {name} is not 32 bytes")
    return key


def _list(recipients: list[str], most: int = 10) -> str:
    """Recipients for a one-line message: all of them, or the first ``most``."""
    shown = ", ".join(recipients[:most])
    more = len(recipients) - most
    return f"{shown} and {more} more" if more > 0 else shown
