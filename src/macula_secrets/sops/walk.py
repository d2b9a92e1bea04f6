"""Encrypt and decrypt whole trees: which values to encrypt, and the MAC over them.

The rules are sops's (SOPS_FORMAT.md 2 and 3): a value's associated data is
the map keys on its path joined by ``:`` plus a trailing ``:`` (list indices
are not part of it); one selection rule decides which values are encrypted;
the MAC is SHA-512 over the plaintext bytes of every visited scalar in tree
order, comments and nulls excluded (with ``mac_only_encrypted``, only the
encrypted ones, after a fixed prefix).

Quirks kept on purpose, because a "fix" would make files that sops cannot
read or that read differently: a comment inside a list becomes a plain
``ENC[...]`` list item once encrypted (sops 3.11 does this), keys containing
``:`` make associated data ambiguous, and the MAC does not cover keys.

Walks build new trees; their input is never modified.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .._crypto import sha512_hex
from ..errors import ConfigError, FormatError, IntegrityError
from .cipher import ValueCipher, to_bytes
from .metadata import Metadata
from .tree import Branch, Comment, Timestamp

__all__ = ["MAC_ONLY_ENCRYPTED_INIT", "decrypt_branches", "encrypt_branches"]

#: SHA-256("sops"): fed first into the MAC when ``mac_only_encrypted`` is set.
MAC_ONLY_ENCRYPTED_INIT: Final = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)

_SCALARS: Final = (str, bytes, int, bool, float, Timestamp)


class _Rules:
    """The one selection rule of a file, in a form cheap to evaluate per value."""

    __slots__ = ("comment_kind", "inverse", "match", "regex", "uses_stack")

    def __init__(self, metadata: Metadata) -> None:
        name, value = metadata.rule or ("unencrypted_suffix", "_unencrypted")
        self.comment_kind = ""
        self.regex: re.Pattern[str] | None = None
        self.match: Callable[[str], bool] | None = None
        self.inverse = name.startswith("unencrypted")
        self.uses_stack = False
        if name.endswith("_suffix"):
            suffix = value
            self.match = lambda key: key.endswith(suffix)
        elif name in ("unencrypted_regex", "encrypted_regex"):
            pattern = _compile(value, name)
            self.match = lambda key: pattern.search(key) is not None
        else:
            self.regex = _compile(value, name)
            self.comment_kind = name
            self.uses_stack = True

    def path_says_encrypt(self, hit: bool) -> bool:
        return not hit if self.inverse else hit


def _compile(pattern: str, name: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{name} is not a valid regular expression: {exc}") from None


class _Walk:
    def __init__(self, cipher: ValueCipher, metadata: Metadata, *, encrypting: bool) -> None:
        self.cipher = cipher
        self.rules = _Rules(metadata)
        self.mac_only = metadata.mac_only_encrypted
        # The MAC input, hashed once at the end (faster than many updates).
        self.mac_parts: list[bytes] = [MAC_ONLY_ENCRYPTED_INIT] if self.mac_only else []
        self.encrypting = encrypting
        self.stack: list[list[str]] = []

    def mac_hex(self) -> str:
        return sha512_hex(self.mac_parts)

    # -- decision ---------------------------------------------------------------------

    def _should_encrypt(self, hit: bool, is_comment: bool) -> bool:
        rules = self.rules
        if rules.match is not None:
            return rules.path_says_encrypt(hit)
        if rules.regex is None:  # pragma: no cover - _Rules sets one of the two
            return True
        search = rules.regex.search
        stack = self.stack
        if rules.comment_kind == "unencrypted_comment_regex":
            return not any(search(c) for level in stack for c in level)
        last_level = len(stack) - 1
        for i, level in enumerate(stack):
            last = len(level) - 1
            for j, c in enumerate(level):
                if is_comment and i == last_level and j == last:
                    continue
                if search(c):
                    return True
        return False

    # -- structure ----------------------------------------------------------------------

    def branch(self, branch: Branch, prefix: str, hit: bool) -> Branch:
        out = Branch()
        uses_stack = self.rules.uses_stack
        match = self.rules.match
        level: list[str] = []
        if uses_stack:
            self.stack.append(level)
        leaf = self.leaf
        for key, value in branch:
            if key.__class__ is Comment:
                if uses_stack:
                    level.append(key.value)
                res = leaf(key, prefix, hit, True)
                out.append((res if res.__class__ is Comment else Comment(res), None))  # type: ignore[arg-type]
                continue
            if key.__class__ is not str:
                raise FormatError(
                    f"tree contains a non-string key (type {_go_type(key)}); "
                    "only string keys are supported"
                )
            child_hit = hit or (match is not None and match(key))
            cls = value.__class__
            child_prefix = prefix + key + ":"
            if cls in _SCALARS:
                new = leaf(value, child_prefix, child_hit, False)
            elif value is None:
                new = None
            else:
                new = self.value(value, child_prefix, child_hit)
            out.append((key, new))
            if uses_stack:
                level.clear()
        if uses_stack:
            self.stack.pop()
        return out

    def sequence(self, items: list[object], prefix: str, hit: bool) -> list[object]:
        out: list[object] = []
        uses_stack = self.rules.uses_stack
        level: list[str] = []
        if uses_stack:
            self.stack.append(level)
        for item in items:
            is_comment = item.__class__ is Comment
            if is_comment and uses_stack:
                level.append(item.value)  # type: ignore[attr-defined]
            out.append(self.value(item, prefix, hit))
            if not is_comment and uses_stack:
                level.clear()
        if uses_stack:
            self.stack.pop()
        return out

    def value(self, value: object, prefix: str, hit: bool) -> object:
        cls = value.__class__
        if cls in _SCALARS:
            return self.leaf(value, prefix, hit, False)
        if cls is Comment:
            return self.leaf(value, prefix, hit, True)
        if cls is Branch:
            return self.branch(value, prefix, hit)  # type: ignore[arg-type]
        if cls is list:
            return self.sequence(value, prefix, hit)  # type: ignore[arg-type]
        if value is None:
            return None
        raise FormatError(f"cannot walk value, unknown type: {_go_type(value)}")

    # -- leaves -----------------------------------------------------------------------------

    def leaf(self, value: object, aad: str, hit: bool, is_comment: bool) -> object:
        if not aad:
            aad = ":"  # the empty path (a top-level comment)
        rules = self.rules
        if rules.match is not None:
            encrypted = not hit if rules.inverse else hit
        else:
            encrypted = self._should_encrypt(hit, is_comment)
        if self.encrypting:
            plain = None
            if (not self.mac_only or encrypted) and not is_comment:
                plain = to_bytes(value)
                self.mac_parts.append(plain)
            if not encrypted:
                return value
            out = self.cipher.encrypt(value, aad, plain=plain)
            regex = self.rules.regex
            if (
                is_comment
                and self.rules.comment_kind == "unencrypted_comment_regex"
                and regex is not None
                and regex.search(out)
            ):
                    raise ConfigError(
                        "an encrypted comment matches unencrypted_comment_regex; make sure "
                        "the regex cannot match an encrypted comment"
                    )
            if is_comment:
                return out  # a string: the caller wraps it back into a Comment in maps
            return out
        # decrypting
        result: object
        if encrypted and not is_comment and value.__class__ is str:
            result = self.cipher.decrypt(value, aad)
            if not self.mac_only or encrypted:
                if result.__class__ is str:
                    self.mac_parts.append(result.encode("utf-8"))
                elif result.__class__ is not Comment:
                    self.mac_parts.append(to_bytes(result))
            return result
        if encrypted:
            if is_comment:
                text = value.value  # type: ignore[attr-defined]
                try:
                    result = self.cipher.decrypt(text, aad, where=_where(aad))
                except (FormatError, IntegrityError):
                    # sops keeps a comment it cannot decrypt as it is (files
                    # from old versions have clear comments).
                    result = value
            else:
                if value.__class__ is not str:
                    raise FormatError(
                        f"the value at {_where(aad)!r} is not encrypted but should be"
                    )
                result = self.cipher.decrypt(value, aad, where=_where(aad))
        else:
            result = value
        if (not self.mac_only or encrypted) and result.__class__ is not Comment:
            self.mac_parts.append(to_bytes(result))
        return result


def _where(aad: str) -> str:
    return aad[:-1] if aad.endswith(":") else aad


def _go_type(value: object) -> str:
    names = {bool: "bool", int: "int", float: "float64", dict: "map", list: "slice"}
    return names.get(value.__class__, value.__class__.__name__)


def encrypt_branches(
    branches: list[Branch], cipher: ValueCipher, metadata: Metadata
) -> tuple[list[Branch], str]:
    """Encrypt every selected value; return the encrypted tree and the MAC (hex).

    Raises ``FormatError`` for values sops cannot encrypt (non-string keys,
    integers beyond 64 bits) and ``ConfigError`` for a bad selection rule.
    """
    walk = _Walk(cipher, metadata, encrypting=True)
    out = [walk.branch(b, "", False) for b in branches]
    return out, walk.mac_hex()


def decrypt_branches(
    branches: list[Branch], cipher: ValueCipher, metadata: Metadata
) -> tuple[list[Branch], str]:
    """Decrypt every selected value; return the plaintext tree and the computed MAC.

    Raises ``IntegrityError`` when a value's tag does not verify and
    ``FormatError`` when an expected ciphertext is not one.
    """
    walk = _Walk(cipher, metadata, encrypting=False)
    out = [walk.branch(b, "", False) for b in branches]
    return out, walk.mac_hex()
